//! What a daemon knows of its cluster, as the API and the pages see it.
//! The cluster crate (etcd) implements [`ClusterView`]; the web crate
//! reads it through the Fleet without depending on etcd.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A daemon of the cluster, as it announced itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Member {
    /// Its name (`[cluster] member`, the host name by default).
    pub name: String,
    /// Where its API answers, for the other members.
    pub url: String,
    /// When it joined.
    pub started_at: DateTime<Utc>,
    /// Its version.
    pub version: String,
}

/// The leader, and how long its lease still runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Leadership {
    /// The leading member.
    pub member: Member,
    /// When it won.
    pub since: DateTime<Utc>,
    /// The leader key's create revision: its term, the fence of its writes.
    pub revision: i64,
    /// The lease's TTL, seconds.
    pub lease_ttl_secs: i64,
    /// Seconds left before the lease ends unless kept alive.
    pub lease_remaining_secs: Option<i64>,
}

/// The cluster as one member sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClusterStatus {
    /// The cluster's id: what server tags carry.
    pub cluster_id: String,
    /// The member answering.
    pub member: String,
    /// Whether it leads.
    pub leading: bool,
    /// The leader, if there is one now.
    pub leader: Option<Leadership>,
    /// Every member whose lease runs.
    pub members: Vec<Member>,
    /// The store revision this member's replica reflects.
    pub revision: i64,
}

/// A boxed future of the cluster's answers.
pub type ClusterFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A daemon's window on its cluster.
pub trait ClusterView: Send + Sync + std::fmt::Debug + 'static {
    /// The cluster now (reads etcd).
    fn status(&self) -> ClusterFuture<'_, Result<ClusterStatus, String>>;
    /// Where the leader's API answers, when another member leads.
    fn leader_url(&self) -> Option<String>;
    /// Whether this member leads.
    fn leads(&self) -> bool;
    /// The store revision this member's replica reflects.
    fn revision(&self) -> i64;
    /// This member's name.
    fn member(&self) -> String;
    /// How long this member's lease surely still runs.
    fn lease_remaining(&self) -> Duration;
    /// Waits (at most `wait`) until the replica reflects `revision`, so a
    /// client reads here what the leader answered it; whether it does.
    fn caught_up(&self, revision: i64, wait: Duration) -> ClusterFuture<'_, bool>;
}
