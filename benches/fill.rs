//! Fill under faults: 200 instances asked at once of 12 simulated
//! account-regions (quota 20 each) of which two are in maintenance, one
//! fails 30 % of its builds and one reports 10 more slots than it enforces;
//! measured with the pooled placement policy over several runs and with the
//! naive one once, against the lower bound each run's scenario allows.
//!
//! Which builds fail is fixed by a seed per run (the simulator's
//! `build_error_seed`: the n-th server the failing region accepts fails or
//! not, whoever sends it), so the bound is computed for the very sequence
//! the daemon met.
//!
//! `cargo bench --bench fill` prints Markdown tables. `FILL_RUNS` (default
//! 7) sets the pooled runs, seeded from `FILL_SEED` (default 1) on; `FILL_POLICY=pooled` or `naive` runs one policy
//! only; `FILL_DEBUG=1` prints each region's servers and the timeline of
//! the last instance to become active.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oms_actors::model::InstanceState;
use oms_actors::openstack::ClientConfig;
use oms_actors::placement::Policy;
use oms_actors::store::{InstanceFilter, MemoryStore, Store};
use oms_actors::{FleetConfig, FleetEvent, NewLaunch};
use oms_sim::{
    Faults, Outage, ProviderConfig, QuotaConfig, RegionConfig, SimConfig, Simulator, build_fails,
};

mod common;

/// The scenario's numbers, which the lower bound is computed from.
struct Scenario {
    providers: usize,
    quota: i64,
    build_secs: f64,
    latency_ms: u64,
    mutating_per_sec: f64,
    error_rate: f64,
    /// Seconds a deleted server still counts against the quota.
    delete_secs: f64,
    /// Mutating calls a region may get at once (the account's burst).
    mutating_burst: u32,
    stale_extra: i64,
    instances: u32,
    give_up: Duration,
}

const SCENARIO: Scenario = Scenario {
    providers: 6,
    quota: 20,
    build_secs: 3.0,
    latency_ms: 30,
    mutating_per_sec: 5.0,
    error_rate: 0.3,
    delete_secs: 0.5,
    mutating_burst: 5,
    stale_extra: 10,
    instances: 200,
    give_up: Duration::from_secs(300),
};

/// What one run measured.
#[derive(Default)]
struct Outcome {
    active: usize,
    makespan: Option<f64>,
    to_active: Vec<f64>,
    creates: u64,
    refused_quota: u64,
    error_left: usize,
    leaked: usize,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(default)
    };
    let runs = number("FILL_RUNS", 7);
    let first = number("FILL_SEED", 1);
    let only = std::env::var("FILL_POLICY").ok();
    let mut pooled = Vec::new();
    if only.as_deref() != Some("naive") {
        for seed in first..first + runs {
            let outcome = runtime.block_on(run(Policy::Pooled, seed));
            pooled.push((seed, lower_bound(&SCENARIO, seed), outcome));
        }
    }
    let naive = (only.as_deref() != Some("pooled")).then(|| {
        (
            1,
            lower_bound(&SCENARIO, 1),
            runtime.block_on(run(Policy::Naive, 1)),
        )
    });
    print_tables(&pooled, naive.as_ref());
}

fn simulator_config(s: &Scenario, seed: u64) -> SimConfig {
    let providers = (1..=s.providers)
        .map(|p| {
            let name = format!("p{p}");
            let mut provider = ProviderConfig::named(&name);
            provider.regions = (1..=2)
                .map(|r| {
                    let mut faults = Faults {
                        latency_ms: s.latency_ms,
                        ..Faults::default()
                    };
                    match (p, r) {
                        (1, _) => faults.outage = Some(Outage::Maintenance),
                        (2, 1) => {
                            faults.build_error_rate = s.error_rate;
                            faults.build_error_seed = Some(seed);
                        }
                        (3, 1) => faults.stale_quota_extra = s.stale_extra,
                        _ => {}
                    }
                    RegionConfig {
                        build_secs: s.build_secs,
                        delete_secs: s.delete_secs,
                        quota: QuotaConfig {
                            instances: s.quota,
                            cores: 10_000,
                            ram: 100_000_000,
                            key_pairs: 1_000,
                        },
                        faults,
                        ..RegionConfig::named(&format!("{name}-{r}"))
                    }
                })
                .collect();
            provider
        })
        .collect();
    SimConfig {
        providers,
        ..SimConfig::default()
    }
}

async fn run(policy: Policy, seed: u64) -> Outcome {
    let s = &SCENARIO;
    let sim = Simulator::start(simulator_config(s, seed)).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let config = FleetConfig {
        poll_interval: Duration::from_millis(500),
        refresh_interval: Duration::from_secs(5),
        dispatch_interval: Duration::from_millis(100),
        reroute_backoff: Duration::from_secs(10),
        policy,
        client: ClientConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        },
        ..FleetConfig::default()
    };
    let fleet = common::fleet_over(&sim, store.clone(), config, s.mutating_per_sec, 120).await;
    // Every reachable region resolved the profile (the two in
    // maintenance never will).
    common::wait_resolved(&fleet, 2 * s.providers - 2, Duration::from_secs(30)).await;

    let mut events = fleet.subscribe();
    let start = Instant::now();
    let launches = (0..s.instances).map(|_| {
        fleet.launch(NewLaunch {
            client: "bench".into(),
            profile: "small".into(),
            count: 1,
            // Both policies may try as long as the run lasts: the naive
            // one needs many more attempts.
            max_attempts: Some(1_000),
            deadline_secs: Some(3_600),
            ..NewLaunch::default()
        })
    });
    for launched in futures_util::future::join_all(launches).await {
        launched.unwrap();
    }
    let mut to_active = Vec::new();
    let mut makespan = None;
    while start.elapsed() < s.give_up {
        match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            Ok(Ok(FleetEvent::Active { seconds })) => {
                to_active.push(seconds);
                if to_active.len() == s.instances as usize {
                    makespan = Some(start.elapsed().as_secs_f64());
                    break;
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
            _ => {}
        }
    }
    // Let deletions of failed builds finish before counting what is left.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let instances = store.list_instances(&InstanceFilter::default()).unwrap();
    let active = instances
        .iter()
        .filter(|i| i.state == InstanceState::Active)
        .count();
    let known: HashSet<String> = instances
        .iter()
        .filter(|i| !i.state.is_terminal())
        .filter_map(|i| i.attempt.as_ref()?.server_id.clone())
        .collect();
    // The instance that did not become active, or else the last to.
    let slowest = instances
        .iter()
        .find(|i| i.state != InstanceState::Active)
        .or_else(|| instances.iter().max_by_key(|i| i.updated_at));
    if std::env::var_os("FILL_DEBUG").is_some()
        && let Some(stuck) = slowest
    {
        for event in store.events(&stuck.id).unwrap().iter().rev().take(12) {
            eprintln!("{} {:?} {}", event.at, event.account_region, event.message);
        }
    }
    let state = sim.state();
    let regions: Vec<&serde_json::Value> = state["providers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["regions"].as_array().unwrap())
        .collect();
    if std::env::var_os("FILL_DEBUG").is_some() {
        for r in &regions {
            eprintln!(
                "{} alive {} creates {} refused {} by status {}",
                r["name"],
                r["servers_alive"],
                r["creates"],
                r["creates_refused_quota"],
                r["servers_by_status"]
            );
        }
    }
    let sum = |key: &str| regions.iter().map(|r| r[key].as_u64().unwrap_or(0)).sum();
    let servers: Vec<&serde_json::Value> = regions
        .iter()
        .flat_map(|r| r["servers"].as_array().unwrap())
        .collect();
    let outcome = Outcome {
        active,
        makespan,
        to_active,
        creates: sum("creates"),
        refused_quota: sum("creates_refused_quota"),
        error_left: servers.iter().filter(|s| s["status"] == "ERROR").count(),
        leaked: servers
            .iter()
            .filter(|s| !known.contains(s["id"].as_str().unwrap()))
            .count(),
    };
    fleet.shutdown().await;
    sim.shutdown().await;
    outcome
}

/// The fastest any daemon could fill the pool with run `seed`'s failures.
///
/// Demand (200) equals the usable slots (10 regions × 20), so every usable
/// region must reach 20 active servers; the bound is the slowest region.
/// Each region is played out in 1 ms steps by a daemon that reacts at
/// once: mutating calls at the account's rate with its burst; a create
/// whenever a slot is free; a build seen one API latency after it ends;
/// a failed build (the region's n-th accepted server fails as the seed
/// says, as in the simulator) deleted as soon as it is seen, its slot
/// free only once the delete is done (Nova counts a deleting server).
fn lower_bound(s: &Scenario, seed: u64) -> f64 {
    let clean = region_fill(s, |_| false);
    let failing = region_fill(s, |n| build_fails(seed, n, s.error_rate));
    clean.max(failing)
}

fn region_fill(s: &Scenario, fails: impl Fn(u64) -> bool) -> f64 {
    const STEP: f64 = 0.001;
    let slots = s.quota as usize;
    let burst = s.mutating_burst as f64;
    let latency = s.latency_ms as f64 / 1000.0;
    let mut tokens = burst;
    let (mut used, mut active, mut to_delete, mut accepted) = (0usize, 0usize, 0usize, 0u64);
    // (seen at, failed) and freed at.
    let mut builds: Vec<(f64, bool)> = Vec::new();
    let mut deletes: Vec<f64> = Vec::new();
    let mut t = 0.0;
    loop {
        tokens = (tokens + s.mutating_per_sec * STEP).min(burst);
        builds.retain(|&(seen, failed)| {
            if seen > t {
                return true;
            }
            if failed {
                to_delete += 1;
            } else {
                active += 1;
            }
            false
        });
        deletes.retain(|&freed| {
            if freed > t {
                return true;
            }
            used -= 1;
            false
        });
        if active >= slots {
            return t;
        }
        // A sequence that never fills (every build failing) has no bound
        // worth the name; the run gives up at the same time.
        if t > s.give_up.as_secs_f64() {
            return f64::INFINITY;
        }
        while tokens >= 1.0 {
            if used < slots {
                used += 1;
                let failed = fails(accepted);
                accepted += 1;
                builds.push((t + latency + s.build_secs + latency, failed));
            } else if to_delete > 0 {
                to_delete -= 1;
                deletes.push(t + latency + s.delete_secs);
            } else {
                break;
            }
            tokens -= 1.0;
        }
        t += STEP;
    }
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

fn median(values: &[f64]) -> f64 {
    common::percentile(&sorted(values), 0.5)
}

fn print_tables(pooled: &[(u64, f64, Outcome)], naive: Option<&(u64, f64, Outcome)>) {
    println!(
        "| fill under faults ({} instances), seed | policy | active | makespan | lower bound | makespan / bound | to active p50 / p95 / p99 | creates sent | refused for quota | ERROR left | leaked |",
        SCENARIO.instances
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let row = |policy: &str, (seed, bound, o): &(u64, f64, Outcome)| {
        let to_active = sorted(&o.to_active);
        let p = |q| common::percentile(&to_active, q);
        println!(
            "| {seed} | {policy} | {} | {} | {bound:.1} s | {} | {:.1} / {:.1} / {:.1} s | {} | {} | {} | {} |",
            o.active,
            o.makespan
                .map_or_else(|| "not filled".to_owned(), |m| format!("{m:.1} s")),
            o.makespan
                .map_or("-".into(), |m| format!("{:.2}×", m / bound)),
            p(0.5),
            p(0.95),
            p(0.99),
            o.creates,
            o.refused_quota,
            o.error_left,
            o.leaked,
        );
    };
    for run in pooled {
        row("pooled", run);
    }
    if let Some(run) = naive {
        row("naive", run);
    }
    let ratios: Vec<f64> = pooled
        .iter()
        .filter_map(|(_, bound, o)| Some(o.makespan? / bound))
        .collect();
    if !pooled.is_empty() {
        println!(
            "\npooled over {} runs: makespan / bound median {:.2}× (filled {} of {})",
            pooled.len(),
            median(&ratios),
            ratios.len(),
            pooled.len()
        );
    }
    let first = pooled.first().and_then(|(_, _, o)| o.makespan);
    if let (Some(p), Some(n)) = (first, naive.and_then(|(_, _, o)| o.makespan)) {
        println!("naive / pooled makespan (seed 1): {:.2}×", n / p);
    }
}
