//! The in-memory store: the same contract as sled, nothing survives the
//! process. For tests and `oms demo`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use std::sync::{Mutex, MutexGuard};

use crate::model::{Account, ApiToken, Event, Instance, KeyPair, LaunchRequest, Profile};

use super::{FlushFuture, Inserted, InstanceFilter, Store, StoreResult};

#[derive(Debug, Default)]
struct Tables {
    accounts: BTreeMap<String, Account>,
    profiles: BTreeMap<String, Profile>,
    keypairs: BTreeMap<(String, String), KeyPair>,
    requests: BTreeMap<String, LaunchRequest>,
    idempotency: BTreeMap<(String, String), String>,
    instances: BTreeMap<String, Instance>,
    events: BTreeMap<String, Vec<Event>>,
    tokens: BTreeMap<String, ApiToken>,
    shared: BTreeMap<String, Vec<u8>>,
}

/// What [`MemoryStore::purge_finished_report`] removed, so that a replica
/// can remove the same from its backend.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Purged {
    /// The instances (with their timelines).
    pub instances: Vec<String>,
    /// The requests left with no instance: id, client, idempotency key.
    pub requests: Vec<(String, String, Option<String>)>,
}

/// A store in a mutex-guarded set of maps.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes everything `other` holds, dropping what this held: a replica
    /// loading a fresh snapshot of its backend.
    pub fn replace_with(&self, other: MemoryStore) {
        let fresh = other.tables.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.tables() = fresh;
    }

    /// Creates or replaces a request as a replica learns of it, its
    /// idempotency key with it.
    pub fn set_request(&self, request: &LaunchRequest) {
        let mut tables = self.tables();
        if let Some(key) = &request.idempotency_key {
            tables
                .idempotency
                .insert((request.client.clone(), key.clone()), request.id.clone());
        }
        tables.requests.insert(request.id.clone(), request.clone());
    }

    /// Removes a request and its idempotency key.
    pub fn remove_request(&self, id: &str) {
        let mut tables = self.tables();
        if let Some(request) = tables.requests.remove(id)
            && let Some(key) = request.idempotency_key
        {
            tables.idempotency.remove(&(request.client, key));
        }
    }

    /// Removes an instance and its timeline.
    pub fn remove_instance(&self, id: &str) {
        let mut tables = self.tables();
        tables.instances.remove(id);
        tables.events.remove(id);
    }

    /// Sets the event at `seq` of an instance's timeline (appended when
    /// it is the next one; a gap is filled when the rest arrives).
    pub fn set_event(&self, instance_id: &str, seq: usize, event: &Event) {
        let mut tables = self.tables();
        let timeline = tables.events.entry(instance_id.to_owned()).or_default();
        if seq < timeline.len() {
            timeline[seq] = event.clone();
        } else {
            timeline.resize(seq, event.clone());
            timeline.push(event.clone());
        }
    }

    /// An instance's last event and its position in the timeline (what
    /// a replica writes after an append or a transition).
    pub fn last_event(&self, instance_id: &str) -> Option<(usize, Event)> {
        let tables = self.tables();
        let timeline = tables.events.get(instance_id)?;
        Some((timeline.len() - 1, timeline.last()?.clone()))
    }

    /// Removes a shared document.
    pub fn remove_shared(&self, name: &str) {
        self.tables().shared.remove(name);
    }

    /// [`Store::purge_finished`], answering what went.
    pub fn purge_finished_report(&self, before: DateTime<Utc>, limit: usize) -> Purged {
        let mut tables = self.tables();
        let old: Vec<(String, String)> = tables
            .instances
            .values()
            .filter(|i| i.state.is_terminal() && i.updated_at < before)
            .take(limit)
            .map(|i| (i.id.clone(), i.request_id.clone()))
            .collect();
        let mut purged = Purged::default();
        for (id, _) in &old {
            tables.instances.remove(id);
            tables.events.remove(id);
            purged.instances.push(id.clone());
        }
        for (_, request_id) in &old {
            let prefix = format!("{request_id}-");
            let left = tables
                .instances
                .range(prefix.clone()..)
                .next()
                .is_some_and(|(id, _)| id.starts_with(&prefix));
            if !left && let Some(request) = tables.requests.remove(request_id) {
                if let Some(key) = &request.idempotency_key {
                    tables
                        .idempotency
                        .remove(&(request.client.clone(), key.clone()));
                }
                purged
                    .requests
                    .push((request.id, request.client, request.idempotency_key));
            }
        }
        purged
    }
}

impl Store for MemoryStore {
    fn put_account(&self, account: &Account) -> StoreResult<()> {
        self.tables()
            .accounts
            .insert(account.id.clone(), account.clone());
        Ok(())
    }

    fn get_account(&self, id: &str) -> StoreResult<Option<Account>> {
        Ok(self.tables().accounts.get(id).cloned())
    }

    fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        Ok(self.tables().accounts.values().cloned().collect())
    }

    fn account_names(&self) -> StoreResult<Vec<(String, String)>> {
        Ok(self
            .tables()
            .accounts
            .values()
            .map(|a| (a.id.clone(), a.name.clone()))
            .collect())
    }

    fn delete_account(&self, id: &str) -> StoreResult<bool> {
        Ok(self.tables().accounts.remove(id).is_some())
    }

    fn put_profile(&self, profile: &Profile) -> StoreResult<()> {
        self.tables()
            .profiles
            .insert(profile.name.clone(), profile.clone());
        Ok(())
    }

    fn get_profile(&self, name: &str) -> StoreResult<Option<Profile>> {
        Ok(self.tables().profiles.get(name).cloned())
    }

    fn list_profiles(&self) -> StoreResult<Vec<Profile>> {
        Ok(self.tables().profiles.values().cloned().collect())
    }

    fn delete_profile(&self, name: &str) -> StoreResult<bool> {
        Ok(self.tables().profiles.remove(name).is_some())
    }

    fn put_keypair(&self, keypair: &KeyPair) -> StoreResult<()> {
        self.tables().keypairs.insert(
            (keypair.client.clone(), keypair.name.clone()),
            keypair.clone(),
        );
        Ok(())
    }

    fn get_keypair(&self, client: &str, name: &str) -> StoreResult<Option<KeyPair>> {
        Ok(self
            .tables()
            .keypairs
            .get(&(client.to_owned(), name.to_owned()))
            .cloned())
    }

    fn list_keypairs(&self, client: &str) -> StoreResult<Vec<KeyPair>> {
        Ok(self
            .tables()
            .keypairs
            .values()
            .filter(|k| k.client == client)
            .cloned()
            .collect())
    }

    fn delete_keypair(&self, client: &str, name: &str) -> StoreResult<bool> {
        Ok(self
            .tables()
            .keypairs
            .remove(&(client.to_owned(), name.to_owned()))
            .is_some())
    }

    fn insert_request(
        &self,
        request: &LaunchRequest,
        instances: &[Instance],
    ) -> StoreResult<Inserted> {
        let mut tables = self.tables();
        if let Some(key) = &request.idempotency_key {
            let slot = (request.client.clone(), key.clone());
            if let Some(existing) = tables.idempotency.get(&slot) {
                let existing = tables.requests.get(existing).cloned();
                return Ok(existing.map_or(Inserted::New, |r| Inserted::Existing(Box::new(r))));
            }
            tables.idempotency.insert(slot, request.id.clone());
        }
        tables.requests.insert(request.id.clone(), request.clone());
        for instance in instances {
            tables
                .instances
                .insert(instance.id.clone(), instance.clone());
        }
        Ok(Inserted::New)
    }

    fn find_request_by_key(&self, client: &str, key: &str) -> StoreResult<Option<LaunchRequest>> {
        let tables = self.tables();
        let id = tables.idempotency.get(&(client.to_owned(), key.to_owned()));
        Ok(id.and_then(|id| tables.requests.get(id)).cloned())
    }

    fn get_request(&self, id: &str) -> StoreResult<Option<LaunchRequest>> {
        Ok(self.tables().requests.get(id).cloned())
    }

    fn list_requests(&self) -> StoreResult<Vec<LaunchRequest>> {
        Ok(self.tables().requests.values().cloned().collect())
    }

    fn put_instance(&self, instance: &Instance) -> StoreResult<()> {
        self.tables()
            .instances
            .insert(instance.id.clone(), instance.clone());
        Ok(())
    }

    fn get_instance(&self, id: &str) -> StoreResult<Option<Instance>> {
        Ok(self.tables().instances.get(id).cloned())
    }

    fn list_instances(&self, filter: &InstanceFilter) -> StoreResult<Vec<Instance>> {
        let tables = self.tables();
        let start = filter.after.clone();
        let range = tables.instances.range::<String, _>((
            start
                .as_ref()
                .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
            std::ops::Bound::Unbounded,
        ));
        let matching = range.map(|(_, i)| i).filter(|i| filter.matches(i)).cloned();
        Ok(match filter.limit {
            0 => matching.collect(),
            limit => matching.take(limit).collect(),
        })
    }

    fn request_instances(&self, request_id: &str) -> StoreResult<Vec<Instance>> {
        let prefix = format!("{request_id}-");
        Ok(self
            .tables()
            .instances
            .range(prefix.clone()..)
            .take_while(|(id, _)| id.starts_with(&prefix))
            .map(|(_, i)| i.clone())
            .collect())
    }

    fn append_event(&self, instance_id: &str, event: &Event) -> StoreResult<()> {
        self.tables()
            .events
            .entry(instance_id.to_owned())
            .or_default()
            .push(event.clone());
        Ok(())
    }

    fn transition(
        &self,
        expected: DateTime<Utc>,
        instance: &Instance,
        event: &Event,
    ) -> StoreResult<bool> {
        let mut tables = self.tables();
        if tables.instances.get(&instance.id).map(|i| i.updated_at) != Some(expected) {
            return Err(super::StoreError::Stale(format!(
                "instance {}",
                instance.id
            )));
        }
        tables
            .instances
            .insert(instance.id.clone(), instance.clone());
        let timeline = tables.events.entry(instance.id.clone()).or_default();
        match timeline.last_mut() {
            Some(last) if last.is_repeated_by(event) => {
                last.absorb(event);
                Ok(true)
            }
            _ => {
                timeline.push(event.clone());
                Ok(false)
            }
        }
    }

    fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        Ok(self.purge_finished_report(before, limit).instances.len())
    }

    fn events(&self, instance_id: &str) -> StoreResult<Vec<Event>> {
        Ok(self
            .tables()
            .events
            .get(instance_id)
            .cloned()
            .unwrap_or_default())
    }

    fn put_token(&self, token: &ApiToken) -> StoreResult<()> {
        self.tables().tokens.insert(token.id.clone(), token.clone());
        Ok(())
    }

    fn token_by_hash(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        Ok(self
            .tables()
            .tokens
            .values()
            .find(|t| t.hash == hash)
            .cloned())
    }

    fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        Ok(self.tables().tokens.values().cloned().collect())
    }

    fn put_shared(&self, name: &str, value: &[u8]) -> StoreResult<()> {
        self.tables().shared.insert(name.to_owned(), value.to_vec());
        Ok(())
    }

    fn get_shared(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.tables().shared.get(name).cloned())
    }

    fn flush(&self) -> FlushFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}
