//! Decoded instance records, kept in memory: parsing a record's JSON was
//! the largest part of serving an instance listing. Bounded in entries.
//!
//! Coherence: every write of instance records holds `writes` across the
//! database write and the cache update, so the cache never holds an older
//! value than the database once a write returns. A reader that missed
//! decodes what it read and adds it only if, under the same lock, the
//! database still holds those very bytes — a write that slipped in between
//! wins.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::Instance;

/// Most records kept (about 1 KB each).
const CAPACITY: usize = 20_000;

/// The cache and the lock that orders writes against it.
#[derive(Debug)]
pub(crate) struct InstanceCache {
    records: quick_cache::sync::Cache<Vec<u8>, Arc<Instance>>,
    writes: Mutex<()>,
}

impl Default for InstanceCache {
    fn default() -> Self {
        InstanceCache::with_capacity(CAPACITY)
    }
}

impl InstanceCache {
    /// A cache of at most `capacity` records (tests use tiny ones, so that
    /// readers miss and race writers).
    pub(crate) fn with_capacity(capacity: usize) -> InstanceCache {
        InstanceCache {
            records: quick_cache::sync::Cache::new(capacity),
            writes: Mutex::new(()),
        }
    }

    /// Held by every write of instance records, until the cache is told.
    pub(crate) fn writing(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere leaves nothing broken.
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a written instance; call while holding [`Self::writing`].
    pub(crate) fn written(&self, instance: &Instance) {
        self.records
            .insert(instance.id.as_bytes().to_vec(), Arc::new(instance.clone()));
    }

    /// Forgets a removed record; call while holding [`Self::writing`].
    pub(crate) fn removed(&self, key: &[u8]) {
        self.records.remove(key);
    }

    /// The decoded record under `key`, if kept.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Arc<Instance>> {
        self.records.get(key)
    }

    /// Keeps `decoded`, read as `raw`, if `current` (read under the write
    /// lock) still returns those bytes.
    pub(crate) fn offer<E>(
        &self,
        key: &[u8],
        raw: &[u8],
        decoded: &Arc<Instance>,
        current: impl FnOnce() -> Result<Option<sled::IVec>, E>,
    ) -> Result<(), E> {
        let _writes = self.writing();
        if current()?.is_some_and(|now| now == raw) {
            self.records.insert(key.to_vec(), decoded.clone());
        }
        Ok(())
    }
}
