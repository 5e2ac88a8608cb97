//! Faults a region (or a Keystone) can be told to show, set in the config
//! file and changed at run time through `/_sim/`.

use serde::{Deserialize, Serialize};

/// How an endpoint is out of service.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outage {
    /// Every call answers 503 with a load balancer's maintenance page.
    Maintenance,
    /// Nothing listens: connections are refused, open ones are dropped.
    Refused,
}

/// The fault settings of one endpoint. The default is a healthy endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Out of service, and how.
    pub outage: Option<Outage>,
    /// Fraction of calls answered 500 with Nova's "Unexpected API Error".
    pub error_rate: f64,
    /// Fraction of new servers that go to ERROR ("No valid host was found").
    pub build_error_rate: f64,
    /// Milliseconds added before every answer.
    pub latency_ms: u64,
    /// Calls per second above which the answer is 429 with Retry-After.
    pub rate_limit_per_sec: Option<f64>,
    /// Instances that `GET /limits` reports beyond what is enforced.
    pub stale_quota_extra: i64,
    /// Seconds a new server stays invisible in server listings.
    pub list_lag_secs: f64,
    /// Fraction of server DELETEs answered 500 (the server stays).
    pub delete_error_rate: f64,
}

impl Faults {
    /// Whether a call with this fraction should fail now.
    pub(crate) fn roll(fraction: f64) -> bool {
        fraction > 0.0 && rand::random::<f64>() < fraction
    }
}
