//! The sled store: one tree per entity, JSON values, indexes written in the
//! same transaction as what they index, account secrets sealed.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::model::{Account, ApiToken, Event, Instance, KeyPair, LaunchRequest, Profile};

use super::group_commit::GroupCommit;
use super::instance_cache::InstanceCache;
use super::memo::Memo;
use super::{
    AccountRecord, FlushFuture, Inserted, InstanceFilter, SCHEMA_VERSION, Sealer, Store,
    StoreError, StoreResult, decode, encode,
};

const SCHEMA_KEY: &[u8] = b"schema_version";

/// Upgrades from version N to N+1, in order.
const MIGRATIONS: &[fn(&sled::Db) -> StoreResult<()>] = &[index_live_instances];

/// Version 2 keeps an index of unfinished instances (`live_instances`):
/// built here from every instance record.
fn index_live_instances(db: &sled::Db) -> StoreResult<()> {
    let instances = db.open_tree("instances").map_err(backend)?;
    let live = db.open_tree("live_instances").map_err(backend)?;
    for entry in instances.iter() {
        let (key, value) = entry.map_err(backend)?;
        let instance: Instance = decode("instances", &value)?;
        if !instance.state.is_terminal() {
            live.insert(key, &[]).map_err(backend)?;
        }
    }
    Ok(())
}

/// A store in a sled database in the state directory.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    meta: sled::Tree,
    accounts: sled::Tree,
    profiles: sled::Tree,
    /// Key pairs under `client \0 name`.
    keypairs: sled::Tree,
    requests: sled::Tree,
    idempotency: sled::Tree,
    instances: sled::Tree,
    /// Ids of unfinished instances (values empty): what actors scan.
    live: sled::Tree,
    events: sled::Tree,
    tokens: sled::Tree,
    token_hashes: sled::Tree,
    sealer: Sealer,
    commits: GroupCommit,
    cache: InstanceCache,
    /// Every account's id and name.
    names: Memo<Vec<(String, String)>>,
}

fn backend(error: sled::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn transaction_failed(error: TransactionError<()>) -> StoreError {
    match error {
        TransactionError::Storage(e) => backend(e),
        TransactionError::Abort(()) => StoreError::Backend("transaction aborted".into()),
    }
}

fn all<T: DeserializeOwned>(tree: &sled::Tree, name: &'static str) -> StoreResult<Vec<T>> {
    tree.iter()
        .values()
        .map(|v| decode(name, &v.map_err(backend)?))
        .collect()
}

fn idempotency_key(client: &str, key: &str) -> Vec<u8> {
    [client.as_bytes(), &[0], key.as_bytes()].concat()
}

impl SledStore {
    /// Opens (or creates) the database at `dir/db`, with secrets sealed by
    /// `sealer`. Refuses a database written by a newer binary.
    pub fn open(dir: &Path, sealer: Sealer) -> StoreResult<SledStore> {
        // A store closed a moment ago in this process may still hold its
        // file lock while sled's flusher thread lets go: wait a little
        // before deciding that another process has it.
        let mut tries = 0;
        let db = loop {
            match sled::Config::new().path(dir.join("db")).open() {
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock && tries < 40 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other.map_err(backend)?,
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let store = SledStore {
            meta: tree("meta")?,
            accounts: tree("accounts")?,
            profiles: tree("profiles")?,
            keypairs: tree("keypairs")?,
            requests: tree("requests")?,
            idempotency: tree("idempotency")?,
            instances: tree("instances")?,
            live: tree("live_instances")?,
            events: tree("events")?,
            tokens: tree("tokens")?,
            token_hashes: tree("token_hashes")?,
            db,
            sealer,
            commits: GroupCommit::default(),
            cache: InstanceCache::default(),
            names: Memo::default(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The same store with a decoded-record cache of `capacity` entries.
    #[cfg(test)]
    pub(crate) fn with_cache_capacity(mut self, capacity: usize) -> SledStore {
        self.cache = InstanceCache::with_capacity(capacity);
        self
    }

    fn migrate(&self) -> StoreResult<()> {
        let found = match self.meta.get(SCHEMA_KEY).map_err(backend)? {
            Some(bytes) => {
                u32::from_be_bytes(bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    tree: "meta",
                    reason: "schema version is not 4 bytes".into(),
                })?)
            }
            None => SCHEMA_VERSION,
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::Schema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for version in found..SCHEMA_VERSION {
            let step = MIGRATIONS.get(version as usize - 1).ok_or_else(|| {
                StoreError::Backend(format!("no migration from schema {version}"))
            })?;
            step(&self.db)?;
        }
        self.meta
            .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
            .map_err(backend)?;
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        name: &'static str,
        key: &str,
    ) -> StoreResult<Option<T>> {
        tree.get(key.as_bytes())
            .map_err(backend)?
            .map(|v| decode(name, &v))
            .transpose()
    }

    /// The instance under `key`: kept decoded, or decoded from `raw` (read
    /// here when not given); `None` if there is none.
    fn instance_at(
        &self,
        key: &[u8],
        raw: Option<sled::IVec>,
    ) -> StoreResult<Option<Arc<Instance>>> {
        if let Some(kept) = self.cache.get(key) {
            return Ok(Some(kept));
        }
        let raw = match raw {
            Some(raw) => raw,
            None => match self.instances.get(key).map_err(backend)? {
                Some(raw) => raw,
                None => return Ok(None),
            },
        };
        let decoded = Arc::new(decode::<Instance>("instances", &raw)?);
        self.cache.offer(key, &raw, &decoded, || {
            self.instances.get(key).map_err(backend)
        })?;
        Ok(Some(decoded))
    }

    fn open_account(&self, record: AccountRecord) -> StoreResult<Account> {
        self.sealer.open_account(record)
    }
}

impl Store for SledStore {
    fn put_account(&self, account: &Account) -> StoreResult<()> {
        let record = self.sealer.seal_account(account)?;
        self.accounts
            .insert(account.id.as_bytes(), encode(&record)?)
            .map_err(backend)?;
        self.names.changed();
        Ok(())
    }

    fn get_account(&self, id: &str) -> StoreResult<Option<Account>> {
        self.get::<AccountRecord>(&self.accounts, "accounts", id)?
            .map(|r| self.open_account(r))
            .transpose()
    }

    fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        all::<AccountRecord>(&self.accounts, "accounts")?
            .into_iter()
            .map(|r| self.open_account(r))
            .collect()
    }

    fn account_names(&self) -> StoreResult<Vec<(String, String)>> {
        let names = self.names.get_or(|| {
            Ok::<_, StoreError>(
                all::<AccountRecord>(&self.accounts, "accounts")?
                    .into_iter()
                    .map(|r| (r.account.id, r.account.name))
                    .collect(),
            )
        })?;
        Ok(names.as_ref().clone())
    }

    fn delete_account(&self, id: &str) -> StoreResult<bool> {
        let removed = self.accounts.remove(id.as_bytes()).map_err(backend)?;
        self.names.changed();
        Ok(removed.is_some())
    }

    fn put_profile(&self, profile: &Profile) -> StoreResult<()> {
        self.profiles
            .insert(profile.name.as_bytes(), encode(profile)?)
            .map_err(backend)?;
        Ok(())
    }

    fn get_profile(&self, name: &str) -> StoreResult<Option<Profile>> {
        self.get(&self.profiles, "profiles", name)
    }

    fn list_profiles(&self) -> StoreResult<Vec<Profile>> {
        all(&self.profiles, "profiles")
    }

    fn delete_profile(&self, name: &str) -> StoreResult<bool> {
        Ok(self
            .profiles
            .remove(name.as_bytes())
            .map_err(backend)?
            .is_some())
    }

    fn put_keypair(&self, keypair: &KeyPair) -> StoreResult<()> {
        self.keypairs
            .insert(
                idempotency_key(&keypair.client, &keypair.name),
                encode(keypair)?,
            )
            .map_err(backend)?;
        Ok(())
    }

    fn get_keypair(&self, client: &str, name: &str) -> StoreResult<Option<KeyPair>> {
        self.keypairs
            .get(idempotency_key(client, name))
            .map_err(backend)?
            .map(|v| decode("keypairs", &v))
            .transpose()
    }

    fn list_keypairs(&self, client: &str) -> StoreResult<Vec<KeyPair>> {
        self.keypairs
            .scan_prefix([client.as_bytes(), &[0]].concat())
            .values()
            .map(|v| decode("keypairs", &v.map_err(backend)?))
            .collect()
    }

    fn delete_keypair(&self, client: &str, name: &str) -> StoreResult<bool> {
        Ok(self
            .keypairs
            .remove(idempotency_key(client, name))
            .map_err(backend)?
            .is_some())
    }

    fn insert_request(
        &self,
        request: &LaunchRequest,
        instances: &[Instance],
    ) -> StoreResult<Inserted> {
        let request_bytes = encode(request)?;
        let instance_bytes: Vec<(String, Vec<u8>, bool)> = instances
            .iter()
            .map(|i| Ok((i.id.clone(), encode(i)?, !i.state.is_terminal())))
            .collect::<StoreResult<_>>()?;
        let slot = request
            .idempotency_key
            .as_ref()
            .map(|key| idempotency_key(&request.client, key));
        // The closure may run more than once: it only reads and writes trees.
        let writes = self.cache.writing();
        let outcome = (
            &self.requests,
            &self.idempotency,
            &self.instances,
            &self.live,
        )
            .transaction(|(requests, idempotency, instances, live)| {
                if let Some(slot) = &slot {
                    if let Some(existing) = idempotency.get(slot)? {
                        return Ok(Some(existing.to_vec()));
                    }
                    idempotency.insert(slot.as_slice(), request.id.as_bytes())?;
                }
                requests.insert(request.id.as_bytes(), request_bytes.as_slice())?;
                for (id, bytes, is_live) in &instance_bytes {
                    instances.insert(id.as_bytes(), bytes.as_slice())?;
                    if *is_live {
                        live.insert(id.as_bytes(), &[])?;
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(None)
            });
        if let Ok(None) = outcome {
            for instance in instances {
                self.cache.written(instance);
            }
        }
        drop(writes);
        match outcome {
            Ok(None) => Ok(Inserted::New),
            Ok(Some(existing)) => {
                let id = String::from_utf8_lossy(&existing).into_owned();
                Ok(self
                    .get_request(&id)?
                    .map_or(Inserted::New, |r| Inserted::Existing(Box::new(r))))
            }
            Err(e) => Err(transaction_failed(e)),
        }
    }

    fn find_request_by_key(&self, client: &str, key: &str) -> StoreResult<Option<LaunchRequest>> {
        match self
            .idempotency
            .get(idempotency_key(client, key))
            .map_err(backend)?
        {
            Some(id) => self.get_request(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    fn get_request(&self, id: &str) -> StoreResult<Option<LaunchRequest>> {
        self.get(&self.requests, "requests", id)
    }

    fn list_requests(&self) -> StoreResult<Vec<LaunchRequest>> {
        all(&self.requests, "requests")
    }

    fn put_instance(&self, instance: &Instance) -> StoreResult<()> {
        let bytes = encode(instance)?;
        let key = instance.id.as_bytes();
        let is_live = !instance.state.is_terminal();
        let _writes = self.cache.writing();
        (&self.instances, &self.live)
            .transaction(|(instances, live)| {
                instances.insert(key, bytes.as_slice())?;
                if is_live {
                    live.insert(key, &[])?;
                } else {
                    live.remove(key)?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_failed)?;
        self.cache.written(instance);
        Ok(())
    }

    fn get_instance(&self, id: &str) -> StoreResult<Option<Instance>> {
        Ok(self
            .instance_at(id.as_bytes(), None)?
            .map(|i| Instance::clone(&i)))
    }

    fn list_instances(&self, filter: &InstanceFilter) -> StoreResult<Vec<Instance>> {
        // Finished instances accumulate for months; a filter that cannot
        // match them walks the live index instead.
        let only_live = filter.only_live();
        let walked = if only_live {
            &self.live
        } else {
            &self.instances
        };
        let iter = match &filter.after {
            Some(after) => {
                let mut start = after.as_bytes().to_vec();
                start.push(0);
                walked.range(start..)
            }
            None => walked.iter(),
        };
        let mut out = Vec::new();
        for entry in iter {
            let (key, value) = entry.map_err(backend)?;
            // The live index holds no values: the record is read by key.
            let raw = (!only_live).then_some(value);
            let Some(instance) = self.instance_at(&key, raw)? else {
                continue;
            };
            if filter.matches(&instance) {
                out.push(Instance::clone(&instance));
                if filter.limit != 0 && out.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn request_instances(&self, request_id: &str) -> StoreResult<Vec<Instance>> {
        let mut out = Vec::new();
        for entry in self
            .instances
            .scan_prefix(format!("{request_id}-").as_bytes())
        {
            let (key, value) = entry.map_err(backend)?;
            if let Some(instance) = self.instance_at(&key, Some(value))? {
                out.push(Instance::clone(&instance));
            }
        }
        Ok(out)
    }

    fn append_event(&self, instance_id: &str, event: &Event) -> StoreResult<()> {
        let seq = self.db.generate_id().map_err(backend)?;
        let key = [instance_id.as_bytes(), &[0], &seq.to_be_bytes()].concat();
        self.events.insert(key, encode(event)?).map_err(backend)?;
        Ok(())
    }

    fn transition(
        &self,
        expected: DateTime<Utc>,
        instance: &Instance,
        event: &Event,
    ) -> StoreResult<bool> {
        /// The part of a record a conditional write compares.
        #[derive(serde::Deserialize)]
        struct Version {
            updated_at: DateTime<Utc>,
        }
        let bytes = encode(instance)?;
        let key = instance.id.as_bytes();
        // Only the dispatcher writes an instance's timeline, one change at
        // a time: the last event read here is still the last when written.
        let prefix = [key, &[0]].concat();
        let last = self.events.scan_prefix(&prefix).next_back();
        let mut repeated = None;
        if let Some(entry) = last {
            let (last_key, value) = entry.map_err(backend)?;
            let mut last: Event = decode("events", &value)?;
            if last.is_repeated_by(event) {
                last.absorb(event);
                repeated = Some((last_key.to_vec(), encode(&last)?));
            }
        }
        let absorbed = repeated.is_some();
        let (event_key, event_bytes) = match repeated {
            Some(rewritten) => rewritten,
            None => {
                let seq = self.db.generate_id().map_err(backend)?;
                ([key, &[0], &seq.to_be_bytes()].concat(), encode(event)?)
            }
        };
        let is_live = !instance.state.is_terminal();
        let _writes = self.cache.writing();
        let written =
            (&self.instances, &self.live, &self.events).transaction(|(instances, live, events)| {
                let current = instances
                    .get(key)?
                    .and_then(|raw| serde_json::from_slice::<Version>(&raw).ok());
                if current.map(|v| v.updated_at) != Some(expected) {
                    return Err(ConflictableTransactionError::Abort(()));
                }
                instances.insert(key, bytes.as_slice())?;
                if is_live {
                    live.insert(key, &[])?;
                } else {
                    live.remove(key)?;
                }
                events.insert(event_key.as_slice(), event_bytes.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            });
        match written {
            Ok(()) => {}
            Err(TransactionError::Abort(())) => {
                return Err(StoreError::Stale(format!("instance {}", instance.id)));
            }
            Err(other) => return Err(transaction_failed(other)),
        }
        self.cache.written(instance);
        Ok(absorbed)
    }

    fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        let mut old: Vec<(sled::IVec, String)> = Vec::new();
        for entry in self.instances.iter() {
            let (key, value) = entry.map_err(backend)?;
            // Live records (the working set) are never purged: not decoded.
            if self.live.contains_key(&key).map_err(backend)? {
                continue;
            }
            let instance: Instance = decode("instances", &value)?;
            if instance.state.is_terminal() && instance.updated_at < before {
                old.push((key, instance.request_id));
                if old.len() >= limit {
                    break;
                }
            }
        }
        for (key, _) in &old {
            let prefix = [key.as_ref(), &[0]].concat();
            let events: Vec<sled::IVec> = self
                .events
                .scan_prefix(&prefix)
                .keys()
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            // An instance and its timeline go together, or not at all.
            let _writes = self.cache.writing();
            (&self.instances, &self.live, &self.events)
                .transaction(|(instances, live, timeline)| {
                    instances.remove(key)?;
                    live.remove(key)?;
                    for event in &events {
                        timeline.remove(event)?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(transaction_failed)?;
            self.cache.removed(key);
        }
        let mut requests: Vec<&String> = old.iter().map(|(_, r)| r).collect();
        requests.dedup();
        for request_id in requests {
            let left = self
                .instances
                .scan_prefix(format!("{request_id}-").as_bytes())
                .next()
                .is_some();
            if left {
                continue;
            }
            if let Some(request) = self.get_request(request_id)? {
                if let Some(key) = &request.idempotency_key {
                    self.idempotency
                        .remove(idempotency_key(&request.client, key))
                        .map_err(backend)?;
                }
                self.requests
                    .remove(request_id.as_bytes())
                    .map_err(backend)?;
            }
        }
        Ok(old.len())
    }

    fn events(&self, instance_id: &str) -> StoreResult<Vec<Event>> {
        let prefix = [instance_id.as_bytes(), &[0]].concat();
        self.events
            .scan_prefix(prefix)
            .values()
            .map(|v| decode("events", &v.map_err(backend)?))
            .collect()
    }

    fn put_token(&self, token: &ApiToken) -> StoreResult<()> {
        let bytes = encode(token)?;
        (&self.tokens, &self.token_hashes)
            .transaction(|(tokens, hashes)| {
                tokens.insert(token.id.as_bytes(), bytes.as_slice())?;
                hashes.insert(token.hash.as_bytes(), token.id.as_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_failed)
    }

    fn token_by_hash(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        match self.token_hashes.get(hash.as_bytes()).map_err(backend)? {
            Some(id) => self.get(&self.tokens, "tokens", &String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        all(&self.tokens, "tokens")
    }

    fn put_shared(&self, name: &str, value: &[u8]) -> StoreResult<()> {
        self.meta
            .insert(format!("shared/{name}").as_bytes(), value)
            .map_err(backend)?;
        Ok(())
    }

    fn get_shared(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .meta
            .get(format!("shared/{name}").as_bytes())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn flush(&self) -> FlushFuture<'_> {
        Box::pin(
            self.commits
                .commit(|| async { self.db.flush_async().await.map(drop).map_err(backend) }),
        )
    }
}
