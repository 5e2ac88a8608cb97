//! Decisions per second of the dispatcher actor itself over 1,000
//! account-regions (250 simulated providers × 4 regions): a burst of
//! 5,000 instances is accepted, and the time until none is left pending
//! is what the dispatcher took to place them all — each decision with its
//! store reads, the scheduled record and event, the write-intent flush of
//! its pass and the order sent to the region. The regions create what they
//! are sent meanwhile, in the same process, as in a running daemon.
//!
//! `cargo bench --bench dispatch` prints a Markdown table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oms_actors::model::InstanceState;
use oms_actors::store::{InstanceFilter, Store};
use oms_actors::{FleetConfig, NewLaunch};
use oms_sim::{QuotaConfig, RegionConfig, Simulator};

mod common;

/// The daemon's allocator, so the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PROVIDERS: usize = 250;
const REGIONS: usize = 4;
const LAUNCHES: u32 = 50;
const COUNT: u32 = 100;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(dispatch());
}

async fn dispatch() {
    let sim = Simulator::start(common::pool("d", PROVIDERS, REGIONS, |region| {
        RegionConfig {
            quota: QuotaConfig {
                instances: 100,
                cores: 1_000,
                ram: 10_000_000,
                key_pairs: 1_000,
            },
            ..region
        }
    }))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = openmultistack::state::open_store(dir.path()).unwrap();
    let config = FleetConfig {
        dispatch_interval: Duration::from_millis(100),
        ..FleetConfig::default()
    };
    let fleet = common::fleet_over(&sim, store.clone(), config, 5.0, 600).await;
    let ready = common::wait_resolved(&fleet, PROVIDERS * REGIONS, Duration::from_secs(120)).await;
    assert_eq!(
        ready,
        PROVIDERS * REGIONS,
        "regions that resolved the profile"
    );

    let total = (LAUNCHES * COUNT) as usize;
    let start = Instant::now();
    let launches = (0..LAUNCHES).map(|_| {
        fleet.launch(NewLaunch {
            client: "bench".into(),
            profile: "small".into(),
            count: COUNT,
            ..NewLaunch::default()
        })
    });
    for launched in futures_util::future::join_all(launches).await {
        launched.unwrap();
    }
    let accepted = start.elapsed().as_secs_f64();
    let pending = InstanceFilter {
        states: vec![InstanceState::Pending],
        limit: 1,
        ..InstanceFilter::default()
    };
    while !store.list_instances(&pending).unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "placing stalled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let placed = start.elapsed().as_secs_f64();
    let placed_anywhere = store
        .list_instances(&InstanceFilter::live())
        .unwrap()
        .iter()
        .filter(|i| i.attempt.is_some())
        .count();
    assert_eq!(placed_anywhere, total, "every instance was placed");

    println!("| dispatcher actor, 1,000 account-regions | value |");
    println!("| --- | --- |");
    println!("| instances asked for ({LAUNCHES} launches of {COUNT}) | {total} |");
    println!("| all accepted (stored and flushed) after | {accepted:.2} s |");
    println!("| all placed (none pending) after | {placed:.2} s |");
    println!(
        "| dispatcher decisions per second | {:.0} |",
        total as f64 / placed
    );
    fleet.shutdown().await;
    sim.shutdown().await;
}
