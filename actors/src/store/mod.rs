//! Durable state behind a small domain-level trait, so another backend
//! (etcd, for several daemons) can be added without touching the actors or
//! the web crate.
//!
//! Writes are applied at once and made durable by [`Store::flush`]: a
//! caller that must not lose a write awaits `flush` before it acknowledges
//! or acts on it. Concurrent flushes are coalesced (group commit).

mod group_commit;
mod instance_cache;
mod memo;
mod memory;
mod seal;
mod sled_store;

#[cfg(test)]
mod contract;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

use crate::model::{
    Account, ApiToken, Event, Instance, InstanceState, KeyPair, LaunchRequest, Profile,
};

pub use memory::{MemoryStore, Purged};
pub use seal::{AccountRecord, Sealer};
pub use sled_store::SledStore;

/// The schema this binary writes; older stores are migrated on open.
pub const SCHEMA_VERSION: u32 = 2;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, corruption reported by the engine).
    #[error("storage backend: {0}")]
    Backend(String),
    /// A record could not be decoded.
    #[error("unreadable record in {tree}: {reason}")]
    Corrupt {
        /// Tree or table.
        tree: &'static str,
        /// Decoder's message.
        reason: String,
    },
    /// The store was written by a newer binary.
    #[error("store schema {found} is newer than this binary's {supported}")]
    Schema {
        /// Version found.
        found: u32,
        /// Version this binary writes.
        supported: u32,
    },
    /// Sealing or unsealing a secret failed (wrong key, damaged data).
    #[error("secret sealing: {0}")]
    Seal(String),
    /// A conditional write found the record changed since the caller
    /// read it (or gone): nothing was written.
    #[error("{0} changed since it was read; not overwritten")]
    Stale(String),
    /// The store cannot take writes now (a shared backend without quorum,
    /// or a daemon that is not the cluster's leader). The outcome of the
    /// writes not yet flushed is unknown: retry with the same
    /// idempotency key.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// A record as durable stores keep it (JSON).
pub fn encode<T: serde::Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encoding: {e}")))
}

/// A record a durable store kept; `tree` names where it was, for the error.
pub fn decode<T: serde::de::DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

/// A future returned by [`Store::flush`].
pub type FlushFuture<'a> = Pin<Box<dyn Future<Output = StoreResult<()>> + Send + 'a>>;

/// What `insert_request` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// The request and its instances were written.
    New,
    /// The client had already used this idempotency key: nothing written.
    Existing(Box<LaunchRequest>),
}

/// Which instances to list. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    /// Owning client.
    pub client: Option<String>,
    /// Any of these states (all when empty).
    pub states: Vec<InstanceState>,
    /// Account id of the current attempt.
    pub account_id: Option<String>,
    /// Region of the current attempt.
    pub region: Option<String>,
    /// Profile name.
    pub profile: Option<String>,
    /// The launch request it belongs to.
    pub request_id: Option<String>,
    /// Substring of the name.
    pub name_contains: Option<String>,
    /// Only ids after this one (pagination cursor).
    pub after: Option<String>,
    /// At most this many (0: no limit).
    pub limit: usize,
}

impl InstanceFilter {
    /// Instances that are not finished (deleted or failed).
    pub fn live() -> InstanceFilter {
        InstanceFilter {
            states: InstanceState::LIVE.to_vec(),
            ..InstanceFilter::default()
        }
    }

    /// Whether only unfinished instances can match, so a store may look
    /// at those alone.
    pub fn only_live(&self) -> bool {
        !self.states.is_empty() && self.states.iter().all(|s| !s.is_terminal())
    }

    /// Whether `instance` passes every field but the cursor and limit.
    pub fn matches(&self, instance: &Instance) -> bool {
        let attempt = instance.attempt.as_ref();
        self.client.as_ref().is_none_or(|c| *c == instance.client)
            && (self.states.is_empty() || self.states.contains(&instance.state))
            && self
                .account_id
                .as_ref()
                .is_none_or(|a| attempt.is_some_and(|t| t.account_id == *a))
            && self
                .region
                .as_ref()
                .is_none_or(|r| attempt.is_some_and(|t| t.region == *r))
            && self.profile.as_ref().is_none_or(|p| *p == instance.profile)
            && self
                .request_id
                .as_ref()
                .is_none_or(|r| *r == instance.request_id)
            && self
                .name_contains
                .as_ref()
                .is_none_or(|n| instance.name.contains(n.as_str()))
    }
}

/// Everything OpenMultiStack keeps.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Creates or replaces an account (its secret sealed at rest).
    fn put_account(&self, account: &Account) -> StoreResult<()>;
    /// One account, secret included.
    fn get_account(&self, id: &str) -> StoreResult<Option<Account>>;
    /// Every account, in id order.
    fn list_accounts(&self) -> StoreResult<Vec<Account>>;
    /// Every account's id and name, in id order, without opening secrets:
    /// what views that name providers need.
    fn account_names(&self) -> StoreResult<Vec<(String, String)>>;
    /// Removes an account; false if there was none.
    fn delete_account(&self, id: &str) -> StoreResult<bool>;

    /// Creates or replaces a profile.
    fn put_profile(&self, profile: &Profile) -> StoreResult<()>;
    /// One profile by name.
    fn get_profile(&self, name: &str) -> StoreResult<Option<Profile>>;
    /// Every profile, by name.
    fn list_profiles(&self) -> StoreResult<Vec<Profile>>;
    /// Removes a profile; false if there was none.
    fn delete_profile(&self, name: &str) -> StoreResult<bool>;

    /// Creates or replaces a client's key pair.
    fn put_keypair(&self, keypair: &KeyPair) -> StoreResult<()>;
    /// One key pair of a client.
    fn get_keypair(&self, client: &str, name: &str) -> StoreResult<Option<KeyPair>>;
    /// A client's key pairs, by name.
    fn list_keypairs(&self, client: &str) -> StoreResult<Vec<KeyPair>>;
    /// Removes a key pair; false if there was none.
    fn delete_keypair(&self, client: &str, name: &str) -> StoreResult<bool>;

    /// Writes a request with its instances in one transaction, unless the
    /// client already used its idempotency key.
    fn insert_request(
        &self,
        request: &LaunchRequest,
        instances: &[Instance],
    ) -> StoreResult<Inserted>;
    /// The request a client made with an idempotency key, if any.
    fn find_request_by_key(&self, client: &str, key: &str) -> StoreResult<Option<LaunchRequest>>;
    /// One request.
    fn get_request(&self, id: &str) -> StoreResult<Option<LaunchRequest>>;
    /// Every request, oldest first (the FIFO order).
    fn list_requests(&self) -> StoreResult<Vec<LaunchRequest>>;

    /// Creates or replaces an instance.
    fn put_instance(&self, instance: &Instance) -> StoreResult<()>;
    /// One instance.
    fn get_instance(&self, id: &str) -> StoreResult<Option<Instance>>;
    /// Instances matching `filter`, in id order.
    fn list_instances(&self, filter: &InstanceFilter) -> StoreResult<Vec<Instance>>;
    /// The instances of one request, in index order.
    fn request_instances(&self, request_id: &str) -> StoreResult<Vec<Instance>>;

    /// Appends to an instance's timeline.
    fn append_event(&self, instance_id: &str, event: &Event) -> StoreResult<()>;
    /// Writes an instance and appends the event of its change in one
    /// transaction: a crash keeps both or neither. It applies only if the
    /// stored instance is the version the caller read (its `updated_at`
    /// is `expected`); otherwise nothing is written and the answer is
    /// [`StoreError::Stale`]. An event that says the same as the
    /// instance's last one is counted into it ([`Event::absorb`]) instead
    /// of appended; then the answer is true.
    fn transition(
        &self,
        expected: DateTime<Utc>,
        instance: &Instance,
        event: &Event,
    ) -> StoreResult<bool>;
    /// Removes finished instances (deleted, failed, lost) last changed
    /// before `before` with their events, and the requests (and their
    /// idempotency keys) left with no instance; at most `limit` instances
    /// per call. How many instances went.
    fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<usize>;
    /// An instance's timeline, oldest first.
    fn events(&self, instance_id: &str) -> StoreResult<Vec<Event>>;

    /// Creates or replaces a token.
    fn put_token(&self, token: &ApiToken) -> StoreResult<()>;
    /// The token whose value hashes to `hash`.
    fn token_by_hash(&self, hash: &str) -> StoreResult<Option<ApiToken>>;
    /// Every token, in id order.
    fn list_tokens(&self) -> StoreResult<Vec<ApiToken>>;

    /// Creates or replaces a small document daemons share (region
    /// health, published by the leader), by name.
    fn put_shared(&self, name: &str, value: &[u8]) -> StoreResult<()>;
    /// A shared document.
    fn get_shared(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Makes every write made before the call durable.
    fn flush(&self) -> FlushFuture<'_>;
}
