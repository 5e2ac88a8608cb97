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
    /// When set, which builds fail is fixed by this seed: the n-th server
    /// this region accepts fails when [`build_fails`] says so, whoever
    /// sends it, so a benchmark can compute what the sequence allows.
    pub build_error_seed: Option<u64>,
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

    /// Whether the `n`-th accepted server (from 0) goes to ERROR.
    pub(crate) fn build_fails_at(&self, n: u64) -> bool {
        match self.build_error_seed {
            Some(seed) => build_fails(seed, n, self.build_error_rate),
            None => Faults::roll(self.build_error_rate),
        }
    }
}

/// Whether the `n`-th server of a region seeded with `seed` fails, at
/// `rate`: splitmix64 of the two, as a fraction of 2^64.
pub fn build_fails(seed: u64, n: u64, rate: f64) -> bool {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(n)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    rate > 0.0 && ((z >> 11) as f64 / (1u64 << 53) as f64) < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_failures_are_fixed_and_near_the_rate() {
        let fails = |seed| (0..10_000).filter(|&n| build_fails(seed, n, 0.3)).count();
        assert_eq!(fails(7), fails(7));
        assert!((2_700..3_300).contains(&fails(7)), "{}", fails(7));
        let first = |seed| {
            (0..64)
                .map(|n| build_fails(seed, n, 0.3))
                .collect::<Vec<_>>()
        };
        assert_ne!(first(1), first(2));
        assert!(!build_fails(1, 0, 0.0));
    }
}
