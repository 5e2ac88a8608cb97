//! The actor tree against the simulator, in-process: launches spread over
//! six account-regions, never over quota, and reach active.

use std::time::Duration;

use crate::support::fleet::{all_reach, ask, fast_config, fleet_on, sim_of, sim_region};
use oms_actors::model::InstanceState;
use oms_sim::{ProviderConfig, SimConfig, Simulator};

async fn three_by_two() -> Simulator {
    let providers = ["north", "south", "west"]
        .iter()
        .map(|name| {
            let mut p = ProviderConfig::named(name);
            for r in &mut p.regions {
                r.build_secs = 0.5;
                r.delete_secs = 0.2;
            }
            p
        })
        .collect();
    Simulator::start(SimConfig {
        providers,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_and_ten_launches_fill_six_regions_without_a_quota_refusal() {
    let sim = three_by_two().await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let launched = fleet.launch(ask("ci", 110)).await.unwrap();
    let instances = all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(instances.len(), 110);
    assert!(instances.iter().all(|i| i.address.is_some()));

    let state = sim.state();
    let mut total = 0;
    for provider in state["providers"].as_array().unwrap() {
        for region in provider["regions"].as_array().unwrap() {
            assert_eq!(region["creates_refused_quota"], 0, "{}", region["name"]);
            let alive = region["servers_alive"].as_u64().unwrap();
            assert!(alive <= 20, "{} holds {alive}", region["name"]);
            total += alive;
        }
    }
    assert_eq!(total, 110);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_list_only_servers_that_changed_since_the_oldest_build() {
    let sim = sim_of(&["solo"], |p| {
        p.regions.truncate(1);
        p.regions[0].quota.instances = 40;
    })
    .await;
    let mut config = fast_config();
    // Leak scans list every server by design; keep them out of the count.
    config.leak_interval = Duration::from_secs(3600);
    let (fleet, store) = fleet_on(&sim, config).await;
    let first = fleet.launch(ask("ci", 20)).await.unwrap();
    all_reach(
        &store,
        &first.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    // Past the poll's slack (5 s, and the provider's clock is known to the
    // second), with room for a loaded machine, so the twenty are old news.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let seen = |sim: &Simulator| {
        let region = sim_region(sim, "solo", "solo-1");
        (
            region["servers_listed"].as_u64().unwrap(),
            region["calls"]["GET/compute/v2.1/servers/detail"]["count"]
                .as_u64()
                .unwrap_or(0),
        )
    };
    let (listed_before, polls_before) = seen(&sim);
    let one = fleet.launch(ask("ci", 1)).await.unwrap();
    all_reach(
        &store,
        &one.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    let (listed_after, polls_after) = seen(&sim);
    let (listed, polls) = (listed_after - listed_before, polls_after - polls_before);
    assert!(polls >= 1, "the new server was polled");
    // A full listing would return 21 servers per poll.
    assert!(
        listed <= polls,
        "{listed} servers listed in {polls} polls: the twenty active ones came back"
    );
    fleet.shutdown().await;
}
