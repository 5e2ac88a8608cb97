//! The store on etcd. Every daemon keeps a replica of the cluster's
//! records in memory (a [`MemoryStore`]), so reads never leave the
//! process and still answer while etcd has no quorum. A follower's replica
//! follows etcd's watch. Only the leader writes: its writes apply to its
//! replica at once and queue in a journal that one task sends to etcd in
//! transactions, each guarded by the leader key's revision (the fence), so
//! a leader that lost its lease cannot write anything. [`Store::flush`]
//! waits until what was queued before it is committed, and answers
//! `Unavailable` when etcd does not commit in time or the fence failed.
//! The leader never reads its own writes back from the watch: it is the
//! only writer, and an echo could briefly undo a newer local write.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use oms_actors::model::{Account, ApiToken, Event, Instance, KeyPair, LaunchRequest, Profile};
use oms_actors::store::{
    AccountRecord, FlushFuture, Inserted, InstanceFilter, MemoryStore, Sealer, Store, StoreError,
    StoreResult, decode, encode,
};
use tokio::sync::{Notify, watch};
use tracing::{debug, error, warn};

use crate::journal::{Journal, Op};
use crate::keys::{Keys, Record, prefix_end};

/// Keys read per range request while loading a snapshot.
const PAGE: i64 = 500;

/// What the writer has done.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Every unit through this sequence number is committed.
    committed: u64,
    /// etcd's revision after the last commit.
    revision: i64,
    /// Why the store takes no more writes, for good (fenced).
    failed: Option<String>,
    /// Why the last attempt failed, while it is retried.
    retrying: Option<String>,
}

/// The fence of a leader's writes.
#[derive(Debug, Clone)]
pub struct WriteFence {
    /// The leader key's create revision when this daemon won it.
    pub revision: i64,
    /// Who writes (the member's name), marked on every transaction.
    pub member: String,
}

struct Inner {
    client: etcd_client::Client,
    keys: Keys,
    sealer: Sealer,
    replica: MemoryStore,
    journal: Mutex<Journal>,
    work: Arc<Notify>,
    progress: watch::Sender<Progress>,
    fence: Mutex<Option<WriteFence>>,
    /// The revision the replica reflects (a follower's watch position),
    /// watched by forwarded writes waiting to read what they wrote.
    applied: watch::Sender<i64>,
    /// Longest wait for a commit before a flush answers `Unavailable`.
    commit_timeout: Duration,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.keys.prefix())
            .field("applied", &*self.applied.borrow())
            .finish_non_exhaustive()
    }
}

/// The etcd backend; cheap to clone.
#[derive(Debug, Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

/// What a delete answers and queues: nothing when there was nothing.
fn removal(gone: bool, key: String) -> (bool, Vec<Op>, Vec<String>) {
    let ops = if gone { vec![Op::Delete(key)] } else { vec![] };
    (gone, ops, vec![])
}

fn etcd_error(e: etcd_client::Error) -> StoreError {
    StoreError::Unavailable(format!("etcd: {e}"))
}

impl EtcdStore {
    /// Opens the store under `keys` on `client`: loads a snapshot into the
    /// replica and follows etcd from there. Writes wait for
    /// [`EtcdStore::lead`].
    pub async fn open(
        client: etcd_client::Client,
        keys: Keys,
        sealer: Sealer,
        commit_timeout: Duration,
    ) -> StoreResult<EtcdStore> {
        let store = EtcdStore {
            inner: Arc::new(Inner {
                client,
                keys,
                sealer,
                replica: MemoryStore::new(),
                journal: Mutex::new(Journal::default()),
                work: Arc::new(Notify::new()),
                progress: watch::Sender::new(Progress::default()),
                fence: Mutex::new(None),
                applied: watch::Sender::new(0),
                commit_timeout,
            }),
        };
        let revision = store.load().await?;
        tokio::spawn(follow(Arc::downgrade(&store.inner), revision));
        tokio::spawn(write_loop(Arc::downgrade(&store.inner)));
        Ok(store)
    }

    /// Takes writes from now on, fenced by the leader key's revision:
    /// loads a fresh snapshot, which holds every write of the previous
    /// leader (its writes were fenced by a key that no longer exists),
    /// then, in one step, makes it the replica, stops following the
    /// watch and opens writes, so no write lands in a replica that the
    /// snapshot then replaces, and no late watch event undoes the
    /// snapshot.
    pub async fn lead(&self, fence: WriteFence) -> StoreResult<()> {
        let (fresh, revision) = snapshot(&self.inner).await?;
        let _journal = self.journal();
        let mut current = self.inner.fence.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.replica.replace_with(fresh);
        advance(&self.inner, revision);
        *current = Some(fence);
        Ok(())
    }

    /// The etcd revision the replica reflects (for a leader: its last
    /// commit).
    pub fn revision(&self) -> i64 {
        let committed = self.inner.progress.borrow().revision;
        committed.max(*self.inner.applied.borrow())
    }

    /// Waits until the replica reflects `revision` (a write another daemon
    /// answered), at most `wait`. Answers whether it does.
    pub async fn caught_up(&self, revision: i64, wait: Duration) -> bool {
        if self.revision() >= revision {
            return true;
        }
        let mut applied = self.inner.applied.subscribe();
        matches!(
            tokio::time::timeout(wait, applied.wait_for(|at| *at >= revision)).await,
            Ok(Ok(_))
        )
    }

    /// Takes no more writes from now on (this daemon's lead ended): what
    /// waits for a commit answers `Unavailable` at once.
    pub fn stop_writes(&self, why: &str) {
        fail(&self.inner, why.to_owned());
    }

    /// Why the store takes no more writes (this daemon was fenced off).
    pub fn failed(&self) -> Option<String> {
        self.inner.progress.borrow().failed.clone()
    }

    /// Resolves once the store takes no more writes.
    pub async fn wait_failed(&self) -> String {
        let mut progress = self.inner.progress.subscribe();
        match progress.wait_for(|p| p.failed.is_some()).await {
            Ok(p) => p.failed.clone().unwrap_or_default(),
            Err(_) => "store closed".into(),
        }
    }

    /// The replica, for reads.
    fn replica(&self) -> &MemoryStore {
        &self.inner.replica
    }

    fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Applies a change to the replica and queues its etcd operations, in
    /// one step so that the journal's order is the replica's. Refused at
    /// once, the replica untouched, unless this daemon leads and the
    /// store has not been fenced off.
    fn write<R>(
        &self,
        change: impl FnOnce(&MemoryStore) -> StoreResult<(R, Vec<Op>, Vec<String>)>,
    ) -> StoreResult<R> {
        let mut journal = self.journal();
        self.writable()?;
        let (answer, ops, absent) = change(self.replica())?;
        if !ops.is_empty() {
            journal.push(ops, absent);
            self.inner.work.notify_one();
        }
        Ok(answer)
    }

    /// Whether this daemon may write now: it leads and was not fenced off.
    fn writable(&self) -> StoreResult<()> {
        if let Some(failed) = self.failed() {
            return Err(StoreError::Unavailable(failed));
        }
        if self
            .inner
            .fence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
        {
            return Err(StoreError::Unavailable(
                "this daemon is not the cluster's leader; writes go to the leader".into(),
            ));
        }
        Ok(())
    }

    /// Creates or replaces one record: `apply` to the replica, `value`
    /// at `key` in etcd.
    fn put(
        &self,
        key: String,
        value: Vec<u8>,
        apply: impl FnOnce(&MemoryStore) -> StoreResult<()>,
    ) -> StoreResult<()> {
        self.write(|r| {
            apply(r)?;
            Ok(((), vec![Op::Put(key, value)], vec![]))
        })
    }

    /// The put of an instance's last event (appended, or counted into).
    fn last_event_op(&self, replica: &MemoryStore, instance_id: &str) -> StoreResult<Op> {
        let (seq, last) = replica
            .last_event(instance_id)
            .ok_or_else(|| StoreError::Backend(format!("no event for {instance_id}")))?;
        Ok(Op::Put(self.keys().event(instance_id, seq), encode(&last)?))
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.inner.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads everything under the prefix at one revision into a fresh
    /// replica, unless this daemon leads meanwhile (its replica is then
    /// the truth); answers that revision.
    async fn load(&self) -> StoreResult<i64> {
        let (fresh, revision) = snapshot(&self.inner).await?;
        let fence = self.inner.fence.lock().unwrap_or_else(|p| p.into_inner());
        if fence.is_none() {
            self.inner.replica.replace_with(fresh);
            advance(&self.inner, revision);
        }
        Ok(revision)
    }
}

/// Moves the replica's known revision forward (never back).
fn advance(inner: &Inner, revision: i64) {
    inner.applied.send_if_modified(|at| {
        let later = revision > *at;
        *at = (*at).max(revision);
        later
    });
}

/// Reads the whole prefix at one revision, page by page.
async fn snapshot(inner: &Inner) -> StoreResult<(MemoryStore, i64)> {
    let mut client = inner.client.clone();
    let prefix = inner.keys.prefix().to_owned();
    let end = prefix_end(&prefix);
    let fresh = MemoryStore::new();
    let mut from = prefix.as_bytes().to_vec();
    let mut revision = 0;
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let answer = client
            .get(from.clone(), Some(options))
            .await
            .map_err(etcd_error)?;
        if revision == 0 {
            revision = answer.header().map_or(0, |h| h.revision());
        }
        for kv in answer.kvs() {
            apply(inner, &fresh, EventType::Put, kv.key(), kv.value());
        }
        match answer.kvs().last() {
            Some(last) if answer.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => break,
        }
    }
    Ok((fresh, revision))
}

/// Applies one etcd change to a replica. An unreadable record is logged
/// and skipped: one bad record must not blind a daemon to the rest.
fn apply(inner: &Inner, replica: &MemoryStore, kind: EventType, key: &[u8], value: &[u8]) {
    let Ok(key) = std::str::from_utf8(key) else {
        return;
    };
    let Some(record) = inner.keys.parse(key) else {
        return;
    };
    let put = kind == EventType::Put;
    let applied: StoreResult<()> = (|| {
        match record {
            Record::Account(_) if put => {
                let record: AccountRecord = decode("accounts", value)?;
                replica.put_account(&inner.sealer.open_account(record)?)?;
            }
            Record::Account(id) => drop(replica.delete_account(&id)?),
            Record::Profile(_) if put => replica.put_profile(&decode("profiles", value)?)?,
            Record::Profile(name) => drop(replica.delete_profile(&name)?),
            Record::KeyPair(_, _) if put => replica.put_keypair(&decode("keypairs", value)?)?,
            Record::KeyPair(client, name) => drop(replica.delete_keypair(&client, &name)?),
            Record::Request(_) if put => replica.set_request(&decode("requests", value)?),
            Record::Request(id) => replica.remove_request(&id),
            Record::Instance(_) if put => replica.put_instance(&decode("instances", value)?)?,
            Record::Instance(id) => replica.remove_instance(&id),
            Record::Event(instance, seq) if put => {
                replica.set_event(&instance, seq, &decode("events", value)?)
            }
            Record::Token(_) if put => replica.put_token(&decode("tokens", value)?)?,
            Record::Token(_) => {}
            Record::Shared(name) if put => replica.put_shared(&name, value)?,
            Record::Shared(name) => replica.remove_shared(&name),
            // Reservations live with their request; events go with their
            // instance; the cluster's own keys are read where needed.
            Record::Event(_, _) | Record::Idempotency(_, _) | Record::Cluster => {}
        }
        Ok(())
    })();
    if let Err(e) = applied {
        error!(%key, error = %e, "unreadable record in etcd; skipped");
    }
}

/// A follower's replica follows etcd's changes until this daemon leads;
/// after a lost watch (a compaction, a restart of etcd) it loads a new
/// snapshot and watches again.
async fn follow(inner: std::sync::Weak<Inner>, mut revision: i64) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong
            .fence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return;
        }
        let mut client = strong.client.clone();
        let options = WatchOptions::new()
            .with_range(prefix_end(strong.keys.prefix()))
            .with_start_revision(revision + 1);
        let prefix = strong.keys.prefix().to_owned();
        drop(strong);
        let mut stream = match client.watch(prefix, Some(options)).await {
            Ok(stream) => stream,
            Err(e) => {
                debug!(error = %e, "cannot watch etcd; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut lost = false;
        loop {
            let message = match stream.message().await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => {
                    debug!(error = %e, "etcd watch ended; watching again");
                    break;
                }
            };
            let Some(strong) = inner.upgrade() else {
                return;
            };
            // Applied under the fence's lock: once this daemon leads, no
            // late event reaches the replica.
            let fence = strong.fence.lock().unwrap_or_else(|p| p.into_inner());
            if fence.is_some() {
                return;
            }
            if message.canceled() {
                warn!(
                    compacted = message.compact_revision(),
                    reason = message.cancel_reason(),
                    "etcd watch canceled; loading a fresh snapshot"
                );
                lost = true;
                break;
            }
            // Only the events say how far the replica is: a response's
            // header may be ahead of events still on their way.
            for event in message.events() {
                if let Some(kv) = event.kv() {
                    apply(
                        &strong,
                        &strong.replica,
                        event.event_type(),
                        kv.key(),
                        kv.value(),
                    );
                    revision = revision.max(kv.mod_revision());
                }
            }
            advance(&strong, revision);
        }
        if lost {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            let store = EtcdStore { inner: strong };
            match store.load().await {
                Ok(at) => revision = at,
                Err(e) => {
                    warn!(error = %e, "cannot load a snapshot; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// Sends the journal to etcd, batch after batch, each guarded by the
/// fence. A failed transaction (the fence no longer holds) stops every
/// write for good; an etcd that does not answer is retried.
async fn write_loop(inner: std::sync::Weak<Inner>) {
    let mut attempt = 0u32;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong.progress.borrow().failed.is_some() {
            return;
        }
        let batch = strong
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_batch();
        if batch.units == 0 {
            let work = strong.work.clone();
            drop(strong);
            // Wakes for new work, or now and then to notice a drop.
            let _ = tokio::time::timeout(Duration::from_secs(1), work.notified()).await;
            continue;
        }
        let Some(fence) = strong
            .fence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            // Written only through `write`, which needs a fence.
            fail(&strong, "writes queued without a fence".into());
            return;
        };
        let keys = &strong.keys;
        let mut when = vec![Compare::create_revision(
            keys.leader(),
            CompareOp::Equal,
            fence.revision,
        )];
        when.extend(
            batch
                .absent
                .iter()
                .map(|k| Compare::version(k.as_str(), CompareOp::Equal, 0)),
        );
        let mut then: Vec<TxnOp> = batch
            .ops
            .iter()
            .map(|op| match op {
                Op::Put(key, value) => TxnOp::put(key.as_str(), value.clone(), None),
                Op::Delete(key) => TxnOp::delete(key.as_str(), None),
                Op::DeletePrefix(key) => TxnOp::delete(
                    key.as_str(),
                    Some(etcd_client::DeleteOptions::new().with_prefix()),
                ),
            })
            .collect();
        then.push(TxnOp::put(
            keys.writer(),
            format!("{} {}", fence.member, batch.through),
            None::<PutOptions>,
        ));
        let txn = Txn::new().when(when).and_then(then);
        let mut client = strong.client.clone();
        let sent = tokio::time::timeout(strong.commit_timeout, client.txn(txn)).await;
        match sent {
            Ok(Ok(answer)) if answer.succeeded() => {
                attempt = 0;
                committed(&strong, &batch, answer.header().map_or(0, |h| h.revision()));
            }
            Ok(Ok(_)) => {
                // A retried transaction may have committed the first time,
                // its answer lost: then the reservations are ours.
                if attempt > 0
                    && let Some(revision) = committed_before(&strong, &fence, &batch).await
                {
                    attempt = 0;
                    committed(&strong, &batch, revision);
                    continue;
                }
                fail(
                    &strong,
                    "fenced: this daemon no longer holds the cluster's leader key".into(),
                );
                return;
            }
            Ok(Err(e)) => {
                attempt += 1;
                retrying(&strong, format!("etcd: {e}"), attempt).await;
            }
            Err(_) => {
                attempt += 1;
                retrying(&strong, "etcd did not answer in time".into(), attempt).await;
            }
        }
    }
}

/// Drops a committed batch from the journal and wakes the flushes that
/// waited for it.
fn committed(inner: &Inner, batch: &crate::journal::Batch, revision: i64) {
    inner
        .journal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .committed(batch);
    inner.progress.send_modify(|p| {
        p.committed = batch.through;
        p.revision = p.revision.max(revision);
        p.retrying = None;
    });
}

/// The revision at which a batch whose transaction failed its compare
/// had in fact committed on an earlier attempt, if it had: the leader key
/// is still ours and the writer mark says this batch.
async fn committed_before(
    inner: &Inner,
    fence: &WriteFence,
    batch: &crate::journal::Batch,
) -> Option<i64> {
    let mut client = inner.client.clone();
    let leader = client.get(inner.keys.leader(), None).await.ok()?;
    let ours = leader
        .kvs()
        .first()
        .is_some_and(|kv| kv.create_revision() == fence.revision);
    let writer = client.get(inner.keys.writer(), None).await.ok()?;
    let mark = format!("{} {}", fence.member, batch.through);
    let kv = writer.kvs().first()?;
    (ours && kv.value() == mark.as_bytes()).then(|| kv.mod_revision())
}

async fn retrying(inner: &Inner, why: String, attempt: u32) {
    if attempt == 1 || attempt % 20 == 0 {
        warn!(%why, attempt, "etcd write failed; retrying");
    }
    inner.progress.send_modify(|p| p.retrying = Some(why));
    let backoff = Duration::from_millis(100 * u64::from(attempt.min(10)));
    tokio::time::sleep(backoff).await;
}

fn fail(inner: &Inner, why: String) {
    error!(%why, "the store takes no more writes");
    inner.progress.send_modify(|p| p.failed = Some(why));
}

impl Store for EtcdStore {
    fn put_account(&self, account: &Account) -> StoreResult<()> {
        let record = encode(&self.inner.sealer.seal_account(account)?)?;
        self.put(self.keys().account(&account.id), record, |r| {
            r.put_account(account)
        })
    }

    fn get_account(&self, id: &str) -> StoreResult<Option<Account>> {
        self.replica().get_account(id)
    }

    fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        self.replica().list_accounts()
    }

    fn account_names(&self) -> StoreResult<Vec<(String, String)>> {
        self.replica().account_names()
    }

    fn delete_account(&self, id: &str) -> StoreResult<bool> {
        self.write(|r| {
            let gone = r.delete_account(id)?;
            Ok(removal(gone, self.keys().account(id)))
        })
    }

    fn put_profile(&self, profile: &Profile) -> StoreResult<()> {
        self.put(self.keys().profile(&profile.name), encode(profile)?, |r| {
            r.put_profile(profile)
        })
    }

    fn get_profile(&self, name: &str) -> StoreResult<Option<Profile>> {
        self.replica().get_profile(name)
    }

    fn list_profiles(&self) -> StoreResult<Vec<Profile>> {
        self.replica().list_profiles()
    }

    fn delete_profile(&self, name: &str) -> StoreResult<bool> {
        self.write(|r| {
            let gone = r.delete_profile(name)?;
            Ok(removal(gone, self.keys().profile(name)))
        })
    }

    fn put_keypair(&self, keypair: &KeyPair) -> StoreResult<()> {
        let key = self.keys().keypair(&keypair.client, &keypair.name);
        self.put(key, encode(keypair)?, |r| r.put_keypair(keypair))
    }

    fn get_keypair(&self, client: &str, name: &str) -> StoreResult<Option<KeyPair>> {
        self.replica().get_keypair(client, name)
    }

    fn list_keypairs(&self, client: &str) -> StoreResult<Vec<KeyPair>> {
        self.replica().list_keypairs(client)
    }

    fn delete_keypair(&self, client: &str, name: &str) -> StoreResult<bool> {
        self.write(|r| {
            let gone = r.delete_keypair(client, name)?;
            Ok(removal(gone, self.keys().keypair(client, name)))
        })
    }

    fn insert_request(
        &self,
        request: &LaunchRequest,
        instances: &[Instance],
    ) -> StoreResult<Inserted> {
        let mut ops = Vec::with_capacity(instances.len() + 2);
        for instance in instances {
            ops.push(Op::Put(
                self.keys().instance(&instance.id),
                encode(instance)?,
            ));
        }
        ops.push(Op::Put(self.keys().request(&request.id), encode(request)?));
        let mut absent = Vec::new();
        if let Some(key) = &request.idempotency_key {
            let reservation = self.keys().idempotency(&request.client, key);
            ops.push(Op::Put(reservation.clone(), request.id.as_bytes().to_vec()));
            absent.push(reservation);
        }
        self.write(|r| match r.insert_request(request, instances)? {
            Inserted::New => Ok((Inserted::New, ops, absent)),
            existing => Ok((existing, vec![], vec![])),
        })
    }

    fn find_request_by_key(&self, client: &str, key: &str) -> StoreResult<Option<LaunchRequest>> {
        self.replica().find_request_by_key(client, key)
    }

    fn get_request(&self, id: &str) -> StoreResult<Option<LaunchRequest>> {
        self.replica().get_request(id)
    }

    fn list_requests(&self) -> StoreResult<Vec<LaunchRequest>> {
        self.replica().list_requests()
    }

    fn put_instance(&self, instance: &Instance) -> StoreResult<()> {
        self.put(self.keys().instance(&instance.id), encode(instance)?, |r| {
            r.put_instance(instance)
        })
    }

    fn get_instance(&self, id: &str) -> StoreResult<Option<Instance>> {
        self.replica().get_instance(id)
    }

    fn list_instances(&self, filter: &InstanceFilter) -> StoreResult<Vec<Instance>> {
        self.replica().list_instances(filter)
    }

    fn request_instances(&self, request_id: &str) -> StoreResult<Vec<Instance>> {
        self.replica().request_instances(request_id)
    }

    fn append_event(&self, instance_id: &str, event: &Event) -> StoreResult<()> {
        self.write(|r| {
            r.append_event(instance_id, event)?;
            Ok(((), vec![self.last_event_op(r, instance_id)?], vec![]))
        })
    }

    fn transition(
        &self,
        expected: DateTime<Utc>,
        instance: &Instance,
        event: &Event,
    ) -> StoreResult<bool> {
        let record = encode(instance)?;
        self.write(|r| {
            // Checked on the replica, which is the truth while this daemon
            // leads: nobody else writes (the fence).
            let absorbed = r.transition(expected, instance, event)?;
            let ops = vec![
                Op::Put(self.keys().instance(&instance.id), record),
                self.last_event_op(r, &instance.id)?,
            ];
            Ok((absorbed, ops, vec![]))
        })
    }

    fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        // One unit per instance: a purge need not be atomic, and units
        // this small always fit a transaction.
        let mut journal = self.journal();
        self.writable()?;
        let purged = self.replica().purge_finished_report(before, limit);
        let keys = self.keys();
        for id in &purged.instances {
            journal.push(
                vec![
                    Op::Delete(keys.instance(id)),
                    Op::DeletePrefix(keys.events_of(id)),
                ],
                vec![],
            );
        }
        for (id, client, key) in &purged.requests {
            let mut ops = vec![Op::Delete(keys.request(id))];
            if let Some(key) = key {
                ops.push(Op::Delete(keys.idempotency(client, key)));
            }
            journal.push(ops, vec![]);
        }
        if !purged.instances.is_empty() {
            self.inner.work.notify_one();
        }
        Ok(purged.instances.len())
    }

    fn events(&self, instance_id: &str) -> StoreResult<Vec<Event>> {
        self.replica().events(instance_id)
    }

    fn put_token(&self, token: &ApiToken) -> StoreResult<()> {
        self.put(self.keys().token(&token.id), encode(token)?, |r| {
            r.put_token(token)
        })
    }

    fn token_by_hash(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        self.replica().token_by_hash(hash)
    }

    fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        self.replica().list_tokens()
    }

    fn put_shared(&self, name: &str, value: &[u8]) -> StoreResult<()> {
        self.put(self.keys().shared(name), value.to_vec(), |r| {
            r.put_shared(name, value)
        })
    }

    fn get_shared(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.replica().get_shared(name)
    }

    fn flush(&self) -> FlushFuture<'_> {
        let target = self.journal().last();
        let mut progress = self.inner.progress.subscribe();
        let timeout = self.inner.commit_timeout;
        Box::pin(async move {
            let reached = tokio::time::timeout(
                timeout,
                progress.wait_for(|p| p.committed >= target || p.failed.is_some()),
            )
            .await;
            match reached {
                Ok(Ok(p)) => match &p.failed {
                    Some(why) if p.committed < target => Err(StoreError::Unavailable(why.clone())),
                    _ => Ok(()),
                },
                Ok(Err(_)) => Err(StoreError::Unavailable("the store is closed".into())),
                Err(_) => {
                    let why = self
                        .inner
                        .progress
                        .borrow()
                        .retrying
                        .clone()
                        .unwrap_or_else(|| "no answer".into());
                    Err(StoreError::Unavailable(format!(
                        "etcd did not commit within {} s ({why})",
                        timeout.as_secs()
                    )))
                }
            }
        })
    }
}
