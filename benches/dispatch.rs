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

use oms_actors::model::{InstanceState, Profile};
use oms_actors::store::{InstanceFilter, Store};
use oms_actors::{Fleet, FleetConfig, NewLaunch};
use oms_sim::{ProviderConfig, QuotaConfig, RegionConfig, SimConfig, Simulator};

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
    let sim = Simulator::start(SimConfig {
        providers: (0..PROVIDERS)
            .map(|p| {
                let name = format!("d{p:03}");
                let mut provider = ProviderConfig::named(&name);
                provider.regions = (0..REGIONS)
                    .map(|r| RegionConfig {
                        quota: QuotaConfig {
                            instances: 100,
                            cores: 1_000,
                            ram: 10_000_000,
                            key_pairs: 1_000,
                        },
                        ..RegionConfig::named(&format!("{name}-{r}"))
                    })
                    .collect();
                provider
            })
            .collect(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = openmultistack::state::open_store(dir.path()).unwrap();
    let config = FleetConfig {
        dispatch_interval: Duration::from_millis(100),
        ..FleetConfig::default()
    };
    let fleet = Fleet::start(store.clone(), config).await.unwrap();
    fleet
        .put_profile(Profile {
            name: "small".into(),
            min_vcpus: 1,
            min_ram_mb: 512,
            min_disk_gb: 1,
            image: "cirros-fake".into(),
            boot_timeout_secs: 600,
        })
        .await
        .unwrap();
    for provider in sim.providers() {
        fleet
            .put_account(common::account(&provider.name, &provider.auth_url, 5.0))
            .await
            .unwrap();
    }
    let settle = Instant::now();
    loop {
        let ready = fleet
            .regions()
            .iter()
            .filter(|r| r.profiles.contains_key("small"))
            .count();
        if ready >= PROVIDERS * REGIONS {
            break;
        }
        assert!(
            settle.elapsed() < Duration::from_secs(120),
            "only {ready} regions resolved the profile"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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
