//! Bounded: finished instances, their events and their requests are
//! purged in the background once past the retention period; what is
//! still running, and what finished lately, stays.

use std::time::Duration;

use oms_actors::FleetConfig;
use oms_actors::model::InstanceState;

use crate::support::eventually;
use crate::support::fleet::{all_reach, ask, fast_config, fleet_on, sim_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_instances_are_purged_after_the_retention_period() {
    let sim = sim_of(&["p"], |p| p.regions.truncate(1)).await;
    let config = FleetConfig {
        retention: Duration::from_secs(2),
        purge_interval: Duration::from_millis(300),
        ..fast_config()
    };
    let (fleet, store) = fleet_on(&sim, config).await;
    let done = fleet.launch(ask("ci", 2)).await.unwrap();
    let kept = fleet.launch(ask("ci", 1)).await.unwrap();
    for launched in [&done, &kept] {
        all_reach(
            &store,
            &launched.request.id,
            InstanceState::Active,
            Duration::from_secs(30),
        )
        .await;
    }
    for instance in &done.instances {
        fleet.delete(&instance.id).await.unwrap();
    }
    all_reach(
        &store,
        &done.request.id,
        InstanceState::Deleted,
        Duration::from_secs(30),
    )
    .await;
    // Just finished: still there, with its timeline.
    assert!(!store.events(&done.instances[0].id).unwrap().is_empty());

    eventually(Duration::from_secs(10), "purged", || async {
        store
            .get_request(&done.request.id)
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    for instance in &done.instances {
        assert!(store.get_instance(&instance.id).unwrap().is_none());
        assert!(store.events(&instance.id).unwrap().is_empty());
    }
    let active = store.get_instance(&kept.instances[0].id).unwrap().unwrap();
    assert_eq!(active.state, InstanceState::Active, "a live instance stays");
    assert!(store.get_request(&kept.request.id).unwrap().is_some());
    fleet.shutdown().await;
}
