//! What each region actor publishes after every change: the snapshot
//! placement decides on and operators watch. Kept on a shared board so
//! readers never wait on an actor's mailbox.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::breaker::BreakerState;
use crate::ledger::Footprint;

/// How a profile fits in a region right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "fit")]
pub enum ProfileFit {
    /// Resolved; this many more fit.
    Fits {
        /// Servers of this profile that still fit.
        headroom: i64,
        /// Chosen flavor name.
        flavor: String,
        /// Chosen image name.
        image: String,
    },
    /// No flavor or image for it here.
    Unresolvable {
        /// Why.
        reason: String,
    },
    /// Its flavor failed recently: used only when nothing better has room.
    NotNow {
        /// Why.
        reason: String,
        /// Servers of this profile that would still fit.
        headroom: i64,
    },
}

/// One account-region as its actor sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegionStatus {
    /// Account id.
    pub account_id: String,
    /// Account name.
    pub account: String,
    /// Region.
    pub region: String,
    /// Whether the account accepts launches.
    pub enabled: bool,
    /// Whether the account drains.
    pub drain: bool,
    /// Operator priority.
    pub priority: i32,
    /// Whether the compute endpoint was reached at least once.
    pub connected: bool,
    /// Breaker state.
    pub breaker: BreakerState,
    /// Nova's limits, if known.
    pub limit: Option<Footprint>,
    /// Usage including our reservations.
    pub used: Footprint,
    /// Creates sent and not yet answered, or answered and not yet in
    /// Nova's counts.
    pub reserved: usize,
    /// Servers building.
    pub building: usize,
    /// Creates in flight now.
    pub creating: u32,
    /// Most creates in flight at once.
    pub max_creating: u32,
    /// Calls paused by a Retry-After.
    pub paused: bool,
    /// Recent latency, milliseconds (moving average).
    pub latency_ms: f64,
    /// Recent error rate (moving average, 0..1).
    pub error_rate: f64,
    /// Reached, breaker closed, and no failing call since the last
    /// success: what operators and metrics call healthy.
    pub healthy: bool,
    /// The same in operators' words, with the shades between healthy and
    /// down (set by [`RegionBoard::publish`] from the other fields).
    pub health: RegionHealth,
    /// Since when every call fails (a 5xx, a refused connection, a
    /// timeout), until one succeeds.
    pub failing_since: Option<DateTime<Utc>>,
    /// Last error seen; it ages out once the region has recovered.
    pub last_error: Option<String>,
    /// When it was seen.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, ProfileFit>,
    /// Every flavor's shape, once the flavors were read: whether a profile
    /// can fit here at all, before the region resolved it.
    #[serde(skip)]
    pub flavors: Option<Arc<[FlavorShape]>>,
    /// Launch messages processed (for the dispatcher's bookkeeping).
    pub launches_seen: u64,
    /// Provider calls that failed since the region's actor started, by
    /// failure class (for metrics).
    #[serde(skip)]
    pub calls_failed: BTreeMap<&'static str, u64>,
    /// Why the region takes no launches although its account is enabled:
    /// its project is another account's.
    pub conflict: Option<String>,
    /// When this snapshot was taken.
    pub updated_at: DateTime<Utc>,
}

/// What a cluster's leader publishes of its boards for the followers,
/// which run no region actors and answer from this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedBoard {
    /// Every region's status.
    pub regions: Vec<RegionStatus>,
    /// Every account's status.
    pub accounts: Vec<AccountStatus>,
}

/// A region's health in operators' words rather than breaker states.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RegionHealth {
    /// Reached, breaker closed, calls succeeding.
    Healthy,
    /// Takes launches, but calls fail now and then, or the provider asked
    /// us to slow down.
    Degraded,
    /// Breaker open: it takes no launches until a probe succeeds.
    Down,
    /// Breaker half-open: one probe decides.
    Probing,
    /// Not reached yet.
    #[default]
    Connecting,
    /// Its project is another account's: it takes no launches.
    Conflict,
}

impl RegionHealth {
    /// Its name as the API spells it: the pages' class and, with spaces,
    /// their word.
    pub fn as_str(self) -> &'static str {
        match self {
            RegionHealth::Healthy => "healthy",
            RegionHealth::Degraded => "degraded",
            RegionHealth::Down => "down",
            RegionHealth::Probing => "probing",
            RegionHealth::Connecting => "connecting",
            RegionHealth::Conflict => "conflict",
        }
    }
}

/// An error rate above which a region that still takes launches is
/// degraded (a moving average, so one failure among many calls is not).
const DEGRADED_ERROR_RATE: f64 = 0.2;

impl RegionStatus {
    /// A connected, healthy region of account `acme`, for unit tests.
    #[cfg(test)]
    pub(crate) fn sample(breaker: crate::breaker::BreakerState) -> RegionStatus {
        RegionStatus {
            account_id: "a".into(),
            account: "acme".into(),
            region: "r1".into(),
            enabled: true,
            drain: false,
            priority: 0,
            connected: true,
            breaker,
            limit: None,
            used: Default::default(),
            reserved: 0,
            building: 0,
            creating: 0,
            max_creating: 10,
            paused: false,
            latency_ms: 1.0,
            error_rate: 0.0,
            healthy: true,
            health: RegionHealth::default(),
            failing_since: None,
            last_error: None,
            last_error_at: None,
            profiles: Default::default(),
            flavors: None,
            launches_seen: 0,
            calls_failed: Default::default(),
            conflict: None,
            updated_at: Utc::now(),
        }
    }

    /// Judges [`RegionStatus::health`] from the breaker and the calls.
    pub fn judge_health(&self) -> RegionHealth {
        use crate::breaker::BreakerState;
        if self.conflict.is_some() {
            return RegionHealth::Conflict;
        }
        match self.breaker {
            BreakerState::Open => RegionHealth::Down,
            BreakerState::HalfOpen => RegionHealth::Probing,
            BreakerState::Closed if !self.connected => RegionHealth::Connecting,
            BreakerState::Closed
                if self.failing_since.is_some()
                    || self.paused
                    || self.error_rate >= DEGRADED_ERROR_RATE =>
            {
                RegionHealth::Degraded
            }
            BreakerState::Closed => RegionHealth::Healthy,
        }
    }
}

/// What a flavor offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlavorShape {
    /// vCPUs.
    pub vcpus: u32,
    /// RAM, MiB.
    pub ram_mb: u64,
    /// Root disk, GB.
    pub disk_gb: u64,
}

impl FlavorShape {
    /// Whether it meets every minimum of `profile`.
    pub fn fits(&self, profile: &crate::model::Profile) -> bool {
        self.vcpus >= profile.min_vcpus
            && self.ram_mb >= profile.min_ram_mb
            && self.disk_gb >= profile.min_disk_gb
    }
}

impl From<&crate::openstack::Flavor> for FlavorShape {
    fn from(flavor: &crate::openstack::Flavor) -> FlavorShape {
        FlavorShape {
            vcpus: flavor.vcpus,
            ram_mb: flavor.ram,
            disk_gb: flavor.disk,
        }
    }
}

/// Region key: (account id, region).
pub type RegionKey = (String, String);

/// The latest status of every region, shared read-mostly.
#[derive(Debug, Clone, Default)]
pub struct RegionBoard {
    inner: Arc<RwLock<BTreeMap<RegionKey, RegionStatus>>>,
}

impl RegionBoard {
    /// Publishes a snapshot.
    pub fn publish(&self, mut status: RegionStatus) {
        status.health = status.judge_health();
        let key = (status.account_id.clone(), status.region.clone());
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, status);
    }

    /// Forgets one region.
    pub fn remove_region(&self, account_id: &str, region: &str) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(account_id.to_owned(), region.to_owned()));
    }

    /// Forgets every region of an account.
    pub fn remove_account(&self, account_id: &str) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(a, _), _| a != account_id);
    }

    /// One region's latest status.
    pub fn get(&self, account_id: &str, region: &str) -> Option<RegionStatus> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(account_id.to_owned(), region.to_owned()))
            .cloned()
    }

    /// Holds exactly `statuses`: a follower taking the leader's board.
    pub fn replace_all(&self, statuses: Vec<RegionStatus>) {
        let fresh = statuses
            .into_iter()
            .map(|s| ((s.account_id.clone(), s.region.clone()), s))
            .collect();
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// Every region, ordered by account id and name.
    pub fn snapshot(&self) -> Vec<RegionStatus> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// How an account stands, as its supervisor last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountHealth {
    /// Authenticating for the first time.
    Connecting,
    /// Authenticated; its regions run.
    Connected,
    /// Keystone refused its credentials.
    AuthFailed,
    /// Keystone or the catalog could not be read (unreachable, failing).
    Failing,
    /// Authenticated, but no compute region (of those it selects) is in
    /// the catalog.
    NoRegion,
    /// Its project is another account's: it takes no launches.
    Conflict,
    /// Disabled by the operator.
    Disabled,
}

impl AccountHealth {
    /// Whether it can take launches.
    pub fn is_up(self) -> bool {
        self == AccountHealth::Connected
    }
}

/// One account as its supervisor sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AccountStatus {
    /// Account id.
    pub account_id: String,
    /// Account name.
    pub account: String,
    /// How it stands.
    pub health: AccountHealth,
    /// Why, when it is not connected.
    pub reason: Option<String>,
    /// Since when it stands so.
    pub since: DateTime<Utc>,
    /// The project Keystone scoped its token to.
    pub project_id: Option<String>,
    /// Compute regions it runs.
    pub regions: Vec<String>,
}

/// The latest status of every account with a supervisor.
#[derive(Debug, Clone, Default)]
pub struct AccountBoard {
    inner: Arc<RwLock<BTreeMap<String, AccountStatus>>>,
}

impl AccountBoard {
    /// Publishes a status; `since` is kept while the health stays the same.
    pub fn publish(&self, mut status: AccountStatus) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = inner.get(&status.account_id)
            && old.health == status.health
        {
            status.since = old.since;
        }
        inner.insert(status.account_id.clone(), status);
    }

    /// Forgets an account.
    pub fn remove(&self, account_id: &str) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(account_id);
    }

    /// Holds exactly `statuses`: a follower taking the leader's board.
    pub fn replace_all(&self, statuses: Vec<AccountStatus>) {
        let fresh = statuses
            .into_iter()
            .map(|s| (s.account_id.clone(), s))
            .collect();
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// Every account's status, in id order.
    pub fn snapshot(&self) -> Vec<AccountStatus> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// One account's status.
    pub fn get(&self, account_id: &str) -> Option<AccountStatus> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(account_id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;

    #[test]
    fn health_in_words_from_the_breaker_and_the_calls() {
        let judge = |change: &dyn Fn(&mut RegionStatus)| {
            let mut status = RegionStatus::sample(BreakerState::Closed);
            change(&mut status);
            status.judge_health()
        };
        assert_eq!(judge(&|_| {}), RegionHealth::Healthy);
        assert_eq!(
            judge(&|s| s.breaker = BreakerState::Open),
            RegionHealth::Down
        );
        assert_eq!(
            judge(&|s| s.breaker = BreakerState::HalfOpen),
            RegionHealth::Probing
        );
        assert_eq!(judge(&|s| s.connected = false), RegionHealth::Connecting);
        assert_eq!(
            judge(&|s| s.failing_since = Some(Utc::now())),
            RegionHealth::Degraded
        );
        assert_eq!(judge(&|s| s.paused = true), RegionHealth::Degraded);
        assert_eq!(judge(&|s| s.error_rate = 0.3), RegionHealth::Degraded);
        assert_eq!(judge(&|s| s.error_rate = 0.1), RegionHealth::Healthy);
        // A conflict wins over everything: the region takes no launches.
        assert_eq!(
            judge(&|s| {
                s.conflict = Some("held".into());
                s.breaker = BreakerState::Open;
            }),
            RegionHealth::Conflict
        );
    }
}
