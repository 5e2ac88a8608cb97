//! What the benchmarks share: simulated pools, a fleet over them, the
//! simulator's demo account and percentiles.
// Each benchmark uses some of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use oms_actors::model::{Account, AccountAuth, Profile, RegionLimits};
use oms_actors::openstack::{Domain, IdentityVersion, Interface, Named};
use oms_actors::store::Store;
use oms_actors::{Fleet, FleetConfig};
use oms_sim::{ProviderConfig, QuotaConfig, RegionConfig, SimConfig, Simulator};
use secrecy::SecretString;

/// `providers` simulated providers named `{prefix}000`... of `regions`
/// regions each (`{provider}-{n}`), every region shaped by `region`.
pub fn pool(
    prefix: &str,
    providers: usize,
    regions: usize,
    region: impl Fn(RegionConfig) -> RegionConfig,
) -> SimConfig {
    SimConfig {
        providers: (0..providers)
            .map(|p| {
                let name = format!("{prefix}{p:03}");
                let mut provider = ProviderConfig::named(&name);
                provider.regions = (0..regions)
                    .map(|r| region(RegionConfig::named(&format!("{name}-{r}"))))
                    .collect();
                provider
            })
            .collect(),
        ..SimConfig::default()
    }
}

/// A simulator whose regions build at once and never run out.
pub fn instant_sim(providers: usize, regions: usize) -> SimConfig {
    pool("b", providers, regions, |region| RegionConfig {
        build_secs: 0.0,
        delete_secs: 0.0,
        quota: QuotaConfig {
            instances: 1_000_000,
            cores: 10_000_000,
            ram: 1_000_000_000,
            key_pairs: 1_000_000,
        },
        ..region
    })
}

/// A fleet on `store` with profile `small` (cirros, booting within
/// `boot_timeout_secs`) and every provider of `sim` as an account at
/// `mutating_per_sec`.
pub async fn fleet_over(
    sim: &Simulator,
    store: Arc<dyn Store>,
    config: FleetConfig,
    mutating_per_sec: f64,
    boot_timeout_secs: u64,
) -> Fleet {
    let fleet = Fleet::start(store, config).await.unwrap();
    fleet
        .put_profile(Profile {
            name: "small".into(),
            min_vcpus: 1,
            min_ram_mb: 512,
            min_disk_gb: 1,
            image: "cirros-fake".into(),
            boot_timeout_secs,
        })
        .await
        .unwrap();
    for provider in sim.providers() {
        fleet
            .put_account(account(
                &provider.name,
                &provider.auth_url,
                mutating_per_sec,
            ))
            .await
            .unwrap();
    }
    fleet
}

/// Waits until `wanted` regions resolved profile `small`, or `limit`
/// passed; how many did.
pub async fn wait_resolved(fleet: &Fleet, wanted: usize, limit: Duration) -> usize {
    let start = Instant::now();
    loop {
        let ready = fleet
            .regions()
            .iter()
            .filter(|r| r.profiles.contains_key("small"))
            .count();
        if ready >= wanted || start.elapsed() > limit {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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
            mutating_burst: 5,
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

/// An HTTP client for load: long timeouts, many idle connections.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// Requests per second and latency percentiles of `call`, from
/// `connections` concurrent loops for `secs`.
pub async fn load<F, Fut>(connections: usize, secs: u64, call: F) -> (f64, f64, f64, usize)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (call, stop) = (call.clone(), stop.clone());
            tokio::spawn(async move {
                let mut times = Vec::new();
                let mut failed = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if call().await {
                        times.push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        failed += 1;
                    }
                }
                (times, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (times, f) = task.await.unwrap();
        all.extend(times);
        failed += f;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&all, 0.5), percentile(&all, 0.99));
    (all.len() as f64 / elapsed, p50, p99, failed)
}
