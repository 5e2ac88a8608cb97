//! A store that fails on demand, to show that a step which cannot read
//! what is known is skipped, never run as if nothing were known.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use oms_actors::model::{Account, ApiToken, Event, Instance, KeyPair, LaunchRequest, Profile};
use oms_actors::store::{FlushFuture, Inserted, InstanceFilter, Store, StoreError, StoreResult};

/// Forwards to `inner`, except that instance listings fail while
/// `fail_listings` is set.
#[derive(Debug)]
pub struct FailingStore {
    pub inner: Arc<dyn Store>,
    pub fail_listings: AtomicBool,
}

impl FailingStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<FailingStore> {
        Arc::new(FailingStore {
            inner,
            fail_listings: AtomicBool::new(false),
        })
    }

    pub fn set_failing(&self, failing: bool) {
        self.fail_listings.store(failing, Ordering::SeqCst);
    }
}

impl Store for FailingStore {
    fn put_account(&self, account: &Account) -> StoreResult<()> {
        self.inner.put_account(account)
    }
    fn get_account(&self, id: &str) -> StoreResult<Option<Account>> {
        self.inner.get_account(id)
    }
    fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        self.inner.list_accounts()
    }
    fn account_names(&self) -> StoreResult<Vec<(String, String)>> {
        self.inner.account_names()
    }
    fn delete_account(&self, id: &str) -> StoreResult<bool> {
        self.inner.delete_account(id)
    }
    fn put_profile(&self, profile: &Profile) -> StoreResult<()> {
        self.inner.put_profile(profile)
    }
    fn put_keypair(&self, keypair: &KeyPair) -> StoreResult<()> {
        self.inner.put_keypair(keypair)
    }
    fn get_keypair(&self, client: &str, name: &str) -> StoreResult<Option<KeyPair>> {
        self.inner.get_keypair(client, name)
    }
    fn list_keypairs(&self, client: &str) -> StoreResult<Vec<KeyPair>> {
        self.inner.list_keypairs(client)
    }
    fn delete_keypair(&self, client: &str, name: &str) -> StoreResult<bool> {
        self.inner.delete_keypair(client, name)
    }
    fn get_profile(&self, name: &str) -> StoreResult<Option<Profile>> {
        self.inner.get_profile(name)
    }
    fn list_profiles(&self) -> StoreResult<Vec<Profile>> {
        self.inner.list_profiles()
    }
    fn delete_profile(&self, name: &str) -> StoreResult<bool> {
        self.inner.delete_profile(name)
    }
    fn insert_request(
        &self,
        request: &LaunchRequest,
        instances: &[Instance],
    ) -> StoreResult<Inserted> {
        self.inner.insert_request(request, instances)
    }
    fn find_request_by_key(&self, client: &str, key: &str) -> StoreResult<Option<LaunchRequest>> {
        self.inner.find_request_by_key(client, key)
    }
    fn get_request(&self, id: &str) -> StoreResult<Option<LaunchRequest>> {
        self.inner.get_request(id)
    }
    fn list_requests(&self) -> StoreResult<Vec<LaunchRequest>> {
        self.inner.list_requests()
    }
    fn put_instance(&self, instance: &Instance) -> StoreResult<()> {
        self.inner.put_instance(instance)
    }
    fn get_instance(&self, id: &str) -> StoreResult<Option<Instance>> {
        self.inner.get_instance(id)
    }
    fn list_instances(&self, filter: &InstanceFilter) -> StoreResult<Vec<Instance>> {
        if self.fail_listings.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected: disk unreadable".into()));
        }
        self.inner.list_instances(filter)
    }
    fn request_instances(&self, request_id: &str) -> StoreResult<Vec<Instance>> {
        self.inner.request_instances(request_id)
    }
    fn append_event(&self, instance_id: &str, event: &Event) -> StoreResult<()> {
        self.inner.append_event(instance_id, event)
    }
    fn transition(
        &self,
        expected: chrono::DateTime<chrono::Utc>,
        instance: &Instance,
        event: &Event,
    ) -> StoreResult<bool> {
        self.inner.transition(expected, instance, event)
    }
    fn purge_finished(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> StoreResult<usize> {
        if self.fail_listings.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("disk on fire".into()));
        }
        self.inner.purge_finished(before, limit)
    }
    fn events(&self, instance_id: &str) -> StoreResult<Vec<Event>> {
        self.inner.events(instance_id)
    }
    fn put_token(&self, token: &ApiToken) -> StoreResult<()> {
        self.inner.put_token(token)
    }
    fn token_by_hash(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        self.inner.token_by_hash(hash)
    }
    fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        self.inner.list_tokens()
    }
    fn put_shared(&self, name: &str, value: &[u8]) -> StoreResult<()> {
        self.inner.put_shared(name, value)
    }
    fn get_shared(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get_shared(name)
    }
    fn flush(&self) -> FlushFuture<'_> {
        self.inner.flush()
    }
}
