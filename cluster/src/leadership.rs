//! Membership and leader election on one etcd lease per daemon.
//!
//! Each daemon grants a lease (10 s by default) and keeps it alive; its
//! member key lives on it, and so does the leader key when it wins. The
//! election is a transaction: create the leader key if it does not exist.
//! The winner's fence holds until the lease could have ended, counted
//! from the last keepalive it sent; etcd deletes the leader key when the
//! lease ends, and the followers, watching that key, campaign at once.
//! A leader whose lease ended never leads again in that process: it
//! reports the loss and the daemon starts over as a follower.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use etcd_client::{Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, WatchOptions};
use oms_actors::cluster_view::{ClusterStatus, Leadership, Member};
use oms_actors::fence::Fence;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::keys::Keys;

/// Subtracted from the lease's end before the fence closes: keepalives
/// reach etcd after they are sent, and clocks drift a little.
const MARGIN: Duration = Duration::from_millis(1500);

/// What the leader key holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderRecord {
    /// The leading member.
    pub member: Member,
    /// When it won.
    pub since: chrono::DateTime<Utc>,
}

/// Who leads now, as this daemon last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentLeader {
    /// The record.
    pub record: LeaderRecord,
    /// The key's create revision.
    pub revision: i64,
    /// The key's lease.
    pub lease: i64,
}

/// Why leadership or membership ended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Lost {
    /// The lease ended or could not be kept alive in time.
    #[error("the cluster lease ended: {0}")]
    Lease(String),
}

/// The lease this daemon holds now, shared with its keepalive task.
#[derive(Debug)]
struct Lease {
    /// Its id (a follower whose lease ended gets a new one).
    id: AtomicI64,
    /// Until when it surely runs (from the last keepalive sent).
    until: Mutex<Instant>,
    /// Whether this daemon leads on it.
    leading: AtomicBool,
}

impl Lease {
    fn until(&self) -> Instant {
        *self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn extend(&self, end: Instant) {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        *until = (*until).max(end);
    }
}

/// One daemon's membership.
pub struct Membership {
    client: etcd_client::Client,
    keys: Keys,
    me: Member,
    ttl: Duration,
    lease: Arc<Lease>,
    /// The fence of provider calls: open only while this daemon leads.
    fence: Fence,
    leader: watch::Receiver<Option<CurrentLeader>>,
    lost: watch::Receiver<Option<Lost>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("member", &self.me.name)
            .field("lease", &self.lease.id)
            .finish_non_exhaustive()
    }
}

/// Grants a lease and puts the member key on it.
async fn announce(
    client: &etcd_client::Client,
    keys: &Keys,
    me: &Member,
    ttl: Duration,
) -> Result<(i64, Instant), etcd_client::Error> {
    let mut etcd = client.clone();
    let granted_at = Instant::now();
    let granted = etcd.lease_grant(ttl.as_secs() as i64, None).await?;
    etcd.put(
        keys.member(&me.name),
        serde_json::to_vec(me).unwrap_or_default(),
        Some(PutOptions::new().with_lease(granted.id())),
    )
    .await?;
    Ok((
        granted.id(),
        granted_at + Duration::from_secs(granted.ttl().max(0) as u64),
    ))
}

impl Membership {
    /// Grants this daemon's lease, announces it as a member and starts
    /// keeping the lease alive and watching the leader key.
    pub async fn join(
        client: etcd_client::Client,
        keys: Keys,
        me: Member,
        ttl: Duration,
    ) -> Result<Membership, etcd_client::Error> {
        let (id, until) = announce(&client, &keys, &me, ttl).await?;
        let lease = Arc::new(Lease {
            id: AtomicI64::new(id),
            until: Mutex::new(until),
            leading: AtomicBool::new(false),
        });
        let fence = Fence::leased();
        let (lost_tx, lost) = watch::channel(None);
        tokio::spawn(keep_alive(
            client.clone(),
            keys.clone(),
            me.clone(),
            ttl,
            lease.clone(),
            fence.clone(),
            lost_tx,
        ));
        let (leader_tx, leader) = watch::channel(None);
        tokio::spawn(watch_leader(client.clone(), keys.clone(), leader_tx));
        info!(member = %me.name, lease = id, ttl_secs = ttl.as_secs(), "joined the cluster");
        Ok(Membership {
            client,
            keys,
            me,
            ttl,
            lease,
            fence,
            leader,
            lost,
        })
    }

    /// The fence to give the provider client.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// This member.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// Whether this daemon leads.
    pub fn leads(&self) -> bool {
        self.lease.leading.load(Ordering::SeqCst)
    }

    /// How long the lease surely still runs.
    pub fn lease_remaining(&self) -> Duration {
        self.lease.until().saturating_duration_since(Instant::now())
    }

    /// The leader as last seen.
    pub fn leader(&self) -> Option<CurrentLeader> {
        self.leader.borrow().clone()
    }

    /// Resolves when the lease this daemon leads on ends (a follower's
    /// lease is renewed in place).
    pub async fn lost(&self) -> Lost {
        let mut lost = self.lost.clone();
        match lost.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or(Lost::Lease("unknown".into())),
            Err(_) => Lost::Lease("keepalive stopped".into()),
        }
    }

    /// Campaigns until this daemon holds the leader key; answers the key's
    /// create revision (the fence of its writes). Waits while another
    /// leads. The caller then readies the store and calls
    /// [`Membership::begin_leading`].
    pub async fn campaign(&self) -> i64 {
        let record = LeaderRecord {
            member: self.me.clone(),
            since: Utc::now(),
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let mut leader = self.leader.clone();
        loop {
            let txn = Txn::new()
                .when(vec![Compare::version(
                    self.keys.leader(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then(vec![TxnOp::put(
                    self.keys.leader(),
                    value.clone(),
                    Some(PutOptions::new().with_lease(self.lease.id.load(Ordering::SeqCst))),
                )]);
            match self.client.clone().txn(txn).await {
                Ok(answer) if answer.succeeded() => {
                    let revision = answer.header().map_or(0, |h| h.revision());
                    info!(member = %self.me.name, revision, "this daemon won the leader key");
                    return revision;
                }
                Ok(_) => {}
                Err(e) => {
                    debug!(error = %e, "campaign failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            // Another leads: wait until its key is gone (or a second, to
            // notice a lost watch).
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                leader.wait_for(|l| {
                    l.as_ref()
                        .is_none_or(|l| l.lease == self.lease.id.load(Ordering::SeqCst))
                }),
            )
            .await;
        }
    }

    /// Leads from now on: answers writes here rather than forwarding
    /// them, and opens the fence of provider calls until the lease's last
    /// known end. Called once the store takes this daemon's writes.
    pub fn begin_leading(&self) {
        let until = self.lease.until();
        self.lease.leading.store(true, Ordering::SeqCst);
        self.fence
            .extend_until(until.checked_sub(MARGIN).unwrap_or(until));
        info!(member = %self.me.name, "this daemon leads the cluster");
    }

    /// Gives leadership up and ends the lease (an orderly stop), so that
    /// another member leads at once instead of after the TTL.
    pub async fn resign(&self) {
        self.fence.close();
        self.lease.leading.store(false, Ordering::SeqCst);
        let _ = self
            .client
            .clone()
            .lease_revoke(self.lease.id.load(Ordering::SeqCst))
            .await;
    }

    /// The cluster now, read from etcd.
    pub async fn status(&self, cluster_id: &str, revision: i64) -> Result<ClusterStatus, String> {
        let mut etcd = self.client.clone();
        let members = etcd
            .get(
                self.keys.members(),
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .map_err(|e| format!("etcd: {e}"))?;
        let members: Vec<Member> = members
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect();
        let leader = etcd
            .get(self.keys.leader(), None)
            .await
            .map_err(|e| format!("etcd: {e}"))?;
        let leader = match leader.kvs().first() {
            Some(kv) => {
                let record: Option<LeaderRecord> = serde_json::from_slice(kv.value()).ok();
                let remaining = etcd
                    .lease_time_to_live(kv.lease(), None)
                    .await
                    .ok()
                    .map(|t| t.ttl());
                record.map(|record| Leadership {
                    member: record.member,
                    since: record.since,
                    revision: kv.create_revision(),
                    lease_ttl_secs: self.ttl.as_secs() as i64,
                    lease_remaining_secs: remaining,
                })
            }
            None => None,
        };
        Ok(ClusterStatus {
            cluster_id: cluster_id.to_owned(),
            member: self.me.name.clone(),
            leading: self.leads(),
            leader,
            members,
            revision,
        })
    }
}

/// Keeps this daemon's lease alive. A leader whose lease ends closes its
/// fence and reports the loss (the daemon starts over); a follower's
/// lease that ends (etcd without quorum longer than the TTL) is granted
/// again once etcd answers, and the member announced again.
async fn keep_alive(
    client: etcd_client::Client,
    keys: Keys,
    me: Member,
    ttl: Duration,
    lease: Arc<Lease>,
    fence: Fence,
    lost: watch::Sender<Option<Lost>>,
) {
    loop {
        let why = renew(&client, ttl, &lease, &fence).await;
        if lease.leading.load(Ordering::SeqCst) {
            fence.close();
            warn!(%why, "the leader's lease ended");
            let _ = lost.send(Some(Lost::Lease(why)));
            return;
        }
        warn!(%why, "lease ended while following; joining again when etcd answers");
        loop {
            match announce(&client, &keys, &me, ttl).await {
                Ok((id, until)) => {
                    lease.id.store(id, Ordering::SeqCst);
                    *lease.until.lock().unwrap_or_else(|p| p.into_inner()) = until;
                    info!(lease = id, "joined the cluster again");
                    break;
                }
                Err(e) => {
                    debug!(error = %e, "cannot join again yet");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Sends a keepalive every third of the TTL; each answer moves the
/// lease's known end (and a leader's fence) to the send time plus the TTL
/// granted. Returns why the lease ended: etcd no longer knows it, or it
/// was not renewed before its end.
async fn renew(
    client: &etcd_client::Client,
    ttl: Duration,
    lease: &Lease,
    fence: &Fence,
) -> String {
    let every = ttl / 3;
    let id = lease.id.load(Ordering::SeqCst);
    loop {
        let mut etcd = client.clone();
        // Opening the stream may hang on an etcd without quorum: never
        // past the lease's end.
        let wait = lease.until().saturating_duration_since(Instant::now());
        let opened = tokio::time::timeout(
            wait.max(Duration::from_millis(100)),
            etcd.lease_keep_alive(id),
        )
        .await
        .unwrap_or_else(|_| {
            Err(etcd_client::Error::LeaseKeepAliveError(
                "no answer before the lease ended".into(),
            ))
        });
        let (mut keeper, mut answers) = match opened {
            Ok(pair) => pair,
            Err(e) => {
                if Instant::now() >= lease.until() {
                    return format!("cannot reach etcd: {e}");
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        loop {
            let sent = Instant::now();
            let answer = async {
                keeper.keep_alive().await?;
                answers.message().await
            };
            let wait = lease.until().saturating_duration_since(Instant::now());
            match tokio::time::timeout(wait.max(Duration::from_millis(100)), answer).await {
                Ok(Ok(Some(answer))) if answer.ttl() > 0 => {
                    let end = sent + Duration::from_secs(answer.ttl() as u64);
                    lease.extend(end);
                    if lease.leading.load(Ordering::SeqCst) {
                        fence.extend_until(end.checked_sub(MARGIN).unwrap_or(end));
                    }
                }
                Ok(Ok(Some(_))) => return "etcd no longer knows the lease".into(),
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => return "no keepalive answer before the lease ended".into(),
            }
            if Instant::now() >= lease.until() {
                return "the lease ended before a keepalive answered".into();
            }
            tokio::time::sleep(every).await;
        }
        // The stream broke: open another, unless the lease ended meanwhile.
        if Instant::now() >= lease.until() {
            return "the lease ended while etcd was unreachable".into();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keeps `leader` at the leader key's current value: a read, then a
/// watch from the read's revision; again after any break.
async fn watch_leader(
    client: etcd_client::Client,
    keys: Keys,
    leader: watch::Sender<Option<CurrentLeader>>,
) {
    let parse = |kv: &etcd_client::KeyValue| {
        serde_json::from_slice::<LeaderRecord>(kv.value())
            .ok()
            .map(|record| CurrentLeader {
                record,
                revision: kv.create_revision(),
                lease: kv.lease(),
            })
    };
    loop {
        if leader.is_closed() {
            return;
        }
        let mut etcd = client.clone();
        let read = match etcd.get(keys.leader(), None).await {
            Ok(read) => read,
            Err(e) => {
                debug!(error = %e, "cannot read the leader key");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let revision = read.header().map_or(0, |h| h.revision());
        let _ = leader.send(read.kvs().first().and_then(parse));
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let Ok(mut stream) = etcd.watch(keys.leader(), Some(options)).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        while let Ok(Some(message)) = stream.message().await {
            if message.canceled() {
                break;
            }
            for event in message.events() {
                let now = match (event.event_type(), event.kv()) {
                    (EventType::Put, Some(kv)) => parse(kv),
                    _ => None,
                };
                let _ = leader.send(now);
            }
        }
    }
}
