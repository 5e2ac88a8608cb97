//! The actor tree against the simulator, in-process: launches spread over
//! six account-regions, never over quota, and reach active.

use std::time::Duration;

use crate::support::fleet::{all_reach, ask, fast_config, fleet_on};
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
