//! Supervision: an actor that panics or hangs is restarted by its
//! supervisor, rebuilds from the store and the provider, and no accepted
//! request is lost.

use std::time::Duration;

use crate::support::eventually;
use crate::support::fleet::{all_reach, ask, fast_config, fleet_on, sim_of, sim_servers};
use oms_actors::model::InstanceState;
use oms_actors::{Chaos, ChaosTarget};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_that_panics_mid_launch_is_restarted_and_adopts_its_servers() {
    let sim = sim_of(&["solo"], |p| {
        for r in &mut p.regions {
            r.build_secs = 1.5;
        }
    })
    .await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let regions = fleet.regions();
    let launched = fleet.launch(ask("ci", 16)).await.unwrap();
    // Let creates start, then crash both regions while servers build.
    eventually(Duration::from_secs(10), "builds under way", || async {
        (crate::support::fleet::count(&store, InstanceState::Building) >= 4).then_some(())
    })
    .await;
    let mut before = Vec::new();
    for region in &regions {
        before.push(
            fleet
                .region_actor_id(&region.account_id, &region.region)
                .unwrap(),
        );
        fleet
            .inject_chaos(
                ChaosTarget::Region {
                    account_id: region.account_id.clone(),
                    region: region.region.clone(),
                },
                Chaos::Panic,
            )
            .unwrap();
    }
    eventually(Duration::from_secs(10), "regions restarted", || async {
        let restarted = regions.iter().zip(&before).all(|(r, old)| {
            fleet
                .region_actor_id(&r.account_id, &r.region)
                .is_some_and(|id| id != *old)
        });
        restarted.then_some(())
    })
    .await;
    let instances = all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(instances.len(), 16);
    // One server per instance: nothing created twice, nothing left over.
    assert_eq!(sim_servers(&sim), 16);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_dispatcher_is_killed_and_restarted_without_losing_requests() {
    let sim = sim_of(&["solo"], |_| {}).await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let before = fleet.dispatcher_actor_id().unwrap();
    fleet
        .inject_chaos(ChaosTarget::Dispatcher, Chaos::Hang)
        .unwrap();
    // Accepted while the dispatcher does not answer.
    let launched = fleet.launch(ask("ci", 5)).await.unwrap();
    eventually(Duration::from_secs(15), "dispatcher restarted", || async {
        fleet
            .dispatcher_actor_id()
            .filter(|id| *id != before)
            .map(drop)
    })
    .await;
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_that_panics_is_restarted_and_keeps_the_queue() {
    let sim = sim_of(&["solo"], |_| {}).await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let before = fleet.dispatcher_actor_id().unwrap();
    let first = fleet.launch(ask("ci", 4)).await.unwrap();
    fleet
        .inject_chaos(ChaosTarget::Dispatcher, Chaos::Panic)
        .unwrap();
    let second = fleet.launch(ask("ci", 4)).await.unwrap();
    eventually(Duration::from_secs(15), "dispatcher restarted", || async {
        fleet
            .dispatcher_actor_id()
            .filter(|id| *id != before)
            .map(drop)
    })
    .await;
    all_reach(
        &store,
        &first.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    all_reach(
        &store,
        &second.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(sim_servers(&sim), 8);
    assert!(fleet.ready().await);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_region_is_killed_by_its_account_supervisor() {
    let sim = sim_of(&["solo"], |p| p.regions.truncate(1)).await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let region = fleet.regions().remove(0);
    let before = fleet
        .region_actor_id(&region.account_id, &region.region)
        .unwrap();
    fleet
        .inject_chaos(
            ChaosTarget::Region {
                account_id: region.account_id.clone(),
                region: region.region.clone(),
            },
            Chaos::Hang,
        )
        .unwrap();
    let launched = fleet.launch(ask("ci", 3)).await.unwrap();
    eventually(Duration::from_secs(15), "region restarted", || async {
        fleet
            .region_actor_id(&region.account_id, &region.region)
            .filter(|id| *id != before)
            .map(drop)
    })
    .await;
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(sim_servers(&sim), 3);
    fleet.shutdown().await;
}
