//! What the benchmarks share: the simulator's demo account and percentiles.
// Each benchmark uses some of these.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::Utc;
use oms_actors::model::{Account, AccountAuth, RegionLimits};
use oms_actors::openstack::{Domain, IdentityVersion, Interface, Named};
use secrecy::SecretString;

/// The demo user's account on a simulated provider, at `mutating_per_sec`.
pub fn account(name: &str, auth_url: &str, mutating_per_sec: f64) -> Account {
    let named = |n: &str| Named::Name {
        name: n.into(),
        domain: Domain::Name("Default".into()),
    };
    Account {
        id: oms_actors::model::new_id(),
        name: name.into(),
        auth_url: auth_url.parse().unwrap(),
        identity_version: IdentityVersion::V3,
        interface: Interface::Public,
        auth: AccountAuth::Password {
            user: named("demo"),
            project: named("demo"),
        },
        secret: SecretString::from("secret"),
        regions: vec![],
        networks: vec![],
        enabled: true,
        drain: false,
        priority: 0,
        limits: RegionLimits {
            mutating_per_sec,
            read_per_sec: 20.0,
            max_concurrent_creates: 10,
        },
        pins: BTreeMap::new(),
        created_at: Utc::now(),
    }
}

/// The `p` quantile of sorted values (NaN when there are none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
