//! Fill under faults: 200 instances asked at once of 12 simulated
//! account-regions (quota 20 each) of which two are in maintenance, one
//! fails 30 % of its builds and one reports 10 more slots than it enforces;
//! measured with the pooled placement policy and with the naive one, side
//! by side, against the lower bound the scenario allows.
//!
//! `cargo bench --bench fill` prints a Markdown table. `FILL_POLICY=pooled`
//! or `naive` runs one policy only; `FILL_DEBUG=1` prints each region's
//! servers and the timeline of an instance that did not become active.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oms_actors::model::InstanceState;
use oms_actors::openstack::ClientConfig;
use oms_actors::placement::Policy;
use oms_actors::store::{InstanceFilter, MemoryStore, Store};
use oms_actors::{FleetConfig, FleetEvent, NewLaunch};
use oms_sim::{Faults, Outage, ProviderConfig, QuotaConfig, RegionConfig, SimConfig, Simulator};

mod common;

/// The scenario's numbers, which the lower bound is computed from.
struct Scenario {
    providers: usize,
    quota: i64,
    build_secs: f64,
    latency_ms: u64,
    mutating_per_sec: f64,
    error_rate: f64,
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
    let bound = lower_bound(&SCENARIO);
    let only = std::env::var("FILL_POLICY").ok();
    let pooled = runtime.block_on(run(Policy::Pooled, only.as_deref() != Some("naive")));
    let naive = runtime.block_on(run(Policy::Naive, only.as_deref() != Some("pooled")));
    print_table(bound, &pooled, &naive);
}

fn simulator_config(s: &Scenario) -> SimConfig {
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
                        (2, 1) => faults.build_error_rate = s.error_rate,
                        (3, 1) => faults.stale_quota_extra = s.stale_extra,
                        _ => {}
                    }
                    RegionConfig {
                        build_secs: s.build_secs,
                        delete_secs: 0.5,
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

async fn run(policy: Policy, wanted: bool) -> Outcome {
    if !wanted {
        return Outcome::default();
    }
    let s = &SCENARIO;
    let sim = Simulator::start(simulator_config(s)).await.unwrap();
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

/// The fastest any strategy could fill the pool, from the scenario alone.
///
/// Demand (200) equals the usable slots (10 regions × 20), so every usable
/// region must reach 20 active servers, each region limited to
/// `mutating_per_sec` calls with a burst of as many. A clean region needs
/// 20 creates; the failing one needs 20 / 0.7 creates and a delete per
/// failure, and a slot there whose build fails needs another build after
/// it: with 20 slots, the deepest run of failed builds one slot can expect
/// is the largest k with 20 × 0.3^k ≥ 1 (k = 2), so k + 1 builds in a row
/// (one expected slot needs a third failure: 20 × 0.3³ = 0.54). The bound is the
/// slowest region: its calls at the rate limit, plus its chain of builds,
/// each build plus two API latencies.
fn lower_bound(s: &Scenario) -> f64 {
    let slots = s.quota as f64;
    let burst = s.mutating_per_sec;
    let round = s.build_secs + 2.0 * s.latency_ms as f64 / 1000.0;
    let clean = ((slots - burst).max(0.0)) / s.mutating_per_sec + round;
    let creates = slots / (1.0 - s.error_rate);
    let calls = creates + (creates - slots);
    let mut failures = 1.0;
    while slots * s.error_rate.powf(failures + 1.0) >= 1.0 {
        failures += 1.0;
    }
    let failing_rate = ((calls - burst).max(0.0)) / s.mutating_per_sec + round;
    let failing_chain = (failures + 1.0) * round;
    clean.max(failing_rate).max(failing_chain)
}

fn print_table(bound: f64, pooled: &Outcome, naive: &Outcome) {
    let row = |name: &str, f: &dyn Fn(&Outcome) -> String| {
        println!("| {name} | {} | {} |", f(pooled), f(naive));
    };
    let secs = |v: Option<f64>| v.map_or_else(|| "not filled".to_owned(), |v| format!("{v:.1} s"));
    println!(
        "| fill under faults ({} instances) | pooled | naive |",
        SCENARIO.instances
    );
    println!("| --- | --- | --- |");
    row("active at the end", &|o| o.active.to_string());
    row("makespan", &|o| secs(o.makespan));
    row("lower bound", &|_| format!("{bound:.1} s"));
    row("makespan / lower bound", &|o| {
        o.makespan
            .map_or("-".into(), |m| format!("{:.2}×", m / bound))
    });
    for (name, p) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
        row(&format!("time to active {name}"), &|o| {
            let mut sorted = o.to_active.clone();
            sorted.sort_by(f64::total_cmp);
            format!("{:.1} s", common::percentile(&sorted, p))
        });
    }
    row("create calls sent", &|o| o.creates.to_string());
    row("creates refused for quota", &|o| {
        o.refused_quota.to_string()
    });
    row("ERROR servers left", &|o| o.error_left.to_string());
    row("leaked servers", &|o| o.leaked.to_string());
    if let (Some(p), Some(n)) = (pooled.makespan, naive.makespan) {
        println!("\nnaive / pooled makespan: {:.2}×", n / p);
    } else {
        println!(
            "\nnaive / pooled makespan: the naive policy did not fill the pool in {} s",
            SCENARIO.give_up.as_secs()
        );
    }
}
