//! Capacity and pacing: a full pool queues requests in FIFO order until
//! deletions free slots, deadlines end requests cleanly, and calls to a
//! region respect its rate budget and the provider's Retry-After.

use std::time::Duration;

use crate::support::fleet::{
    all_reach, ask, fast_config, fleet_on, fleet_on_with, sim_of, sim_region, sim_servers,
};
use oms_actors::NewLaunch;
use oms_actors::model::InstanceState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_queues_in_fifo_order_and_deadlines_fail_cleanly() {
    let sim = sim_of(&["tiny"], |p| {
        for r in &mut p.regions {
            r.quota.instances = 3;
        }
    })
    .await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let first = fleet.launch(ask("ci", 6)).await.unwrap();
    let filled = all_reach(
        &store,
        &first.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;

    let second = fleet.launch(ask("ci", 2)).await.unwrap();
    let third = fleet.launch(ask("ci", 1)).await.unwrap();
    let doomed = fleet
        .launch(NewLaunch {
            deadline_secs: Some(2),
            ..ask("ci", 1)
        })
        .await
        .unwrap();
    let failed = all_reach(
        &store,
        &doomed.request.id,
        InstanceState::Failed,
        Duration::from_secs(15),
    )
    .await;
    let reason = failed[0].failure.clone().unwrap();
    assert!(reason.contains("deadline passed"), "{reason}");
    assert!(reason.contains("2 regions full"), "{reason}");
    assert_eq!(sim_servers(&sim), 6, "nothing extra on the provider");
    for instance in store.request_instances(&second.request.id).unwrap() {
        assert_eq!(instance.state, InstanceState::Pending);
    }

    // Two slots free: the older request gets them, the newer one waits.
    fleet.delete(&filled[0].id).await.unwrap();
    fleet.delete(&filled[1].id).await.unwrap();
    all_reach(
        &store,
        &second.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        store.request_instances(&third.request.id).unwrap()[0].state,
        InstanceState::Pending
    );
    let deleted = store.get_instance(&filled[0].id).unwrap().unwrap();
    assert_eq!(deleted.state, InstanceState::Deleted);

    fleet.delete(&filled[2].id).await.unwrap();
    all_reach(
        &store,
        &third.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(sim_servers(&sim), 6);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_everything_leaves_nothing_on_the_provider() {
    let sim = sim_of(&["north", "south"], |_| {}).await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let launched = fleet.launch(ask("ci", 12)).await.unwrap();
    let instances = all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    for instance in &instances {
        let now = fleet.delete(&instance.id).await.unwrap();
        assert_eq!(now.state, InstanceState::Deleting);
    }
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Deleted,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(sim_servers(&sim), 0);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_never_exceed_the_region_budget() {
    let sim = sim_of(&["paced"], |p| p.regions.truncate(1)).await;
    let (fleet, store) = fleet_on_with(&sim, fast_config(), |a| {
        a.limits.mutating_per_sec = 5.0;
    })
    .await;
    let launched = fleet.launch(ask("ci", 15)).await.unwrap();
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    let region = sim_region(&sim, "paced", "paced-1");
    let times: Vec<f64> = region["calls"]["POST/compute/v2.1/servers"]["times_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    assert_eq!(times.len(), 15);
    // A token bucket of five a second, five deep: any run of creates from
    // the i-th to the j-th spans at least (count - burst) / rate seconds;
    // one more may fall in through arrival jitter on the simulator's side.
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    for i in 0..sorted.len() {
        for j in i..sorted.len() {
            let count = (j - i + 1) as f64;
            let allowed = 5.0 + 5.0 * (sorted[j] - sorted[i]) / 1000.0 + 1.0;
            assert!(
                count <= allowed,
                "{count} creates within {} ms",
                sorted[j] - sorted[i]
            );
        }
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_nothing_fails() {
    let sim = sim_of(&["busy"], |p| {
        p.regions.truncate(1);
        p.regions[0].faults.rate_limit_per_sec = Some(3.0);
    })
    .await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let launched = fleet.launch(ask("ci", 12)).await.unwrap();
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(60),
    )
    .await;
    let region = sim_region(&sim, "busy", "busy-1");
    let refused: Vec<f64> = region["rate_limited_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    assert!(!refused.is_empty(), "the simulator never said 429");
    let calls: Vec<f64> = region["calls"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|c| {
            c["times_ms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_f64().unwrap())
        })
        .collect();
    // After a 429, nothing arrives until Retry-After (1 s) has passed,
    // except calls already on the wire when the 429 was sent.
    for t in &refused {
        let early = calls
            .iter()
            .filter(|c| **c > t + 150.0 && **c < t + 950.0)
            .count();
        assert_eq!(early, 0, "calls within Retry-After of the 429 at {t}");
    }
    assert_eq!(
        crate::support::fleet::count(&store, InstanceState::Failed),
        0
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_deleted_when_their_lease_ends() {
    let sim = sim_of(&["leased"], |_| {}).await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let launched = fleet
        .launch(NewLaunch {
            expires_in_secs: Some(1),
            ..ask("ci", 3)
        })
        .await
        .unwrap();
    let active = all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    assert!(active.iter().all(|i| i.expires_at.is_some()));
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Deleted,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(sim_servers(&sim), 0);
    fleet.shutdown().await;
}

/// Where an instance failed is remembered while it is out being tried:
/// with the naive policy (fixed order, next region after any error) and
/// the first two regions full, every instance is refused once by each and
/// lands in the third, instead of bouncing between the two full ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_regions_are_remembered_across_attempts() {
    let sim = sim_of(&["a", "b"], |p| {
        for r in &mut p.regions {
            r.quota.instances = if p.name == "a" { 0 } else { 5 };
        }
    })
    .await;
    let config = oms_actors::FleetConfig {
        policy: oms_actors::placement::Policy::Naive,
        ..fast_config()
    };
    let (fleet, store) = fleet_on(&sim, config).await;
    let launched = fleet.launch(ask("ci", 3)).await.unwrap();
    let active = all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    for instance in active {
        let refusals = store
            .events(&instance.id)
            .unwrap()
            .iter()
            .filter(|e| e.message.contains("quota"))
            .count();
        assert!(refusals <= 2, "{}: refused {refusals} times", instance.id);
        assert!(instance.attempt.unwrap().region.starts_with("b-"));
    }
}

/// A profile no region's flavors can meet would wait out its deadline:
/// it is refused at once, with the reason, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_that_fits_no_flavor_anywhere_is_refused_at_once() {
    use oms_actors::FleetError;
    use oms_actors::model::Profile;
    let sim = sim_of(&["p", "q"], |_| {}).await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let huge = Profile {
        name: "huge".into(),
        min_vcpus: 64,
        ..crate::support::fleet::small()
    };
    fleet.put_profile(huge).await.unwrap();
    let refused = fleet
        .launch(NewLaunch {
            profile: "huge".into(),
            ..ask("ci", 1)
        })
        .await;
    match refused {
        Err(FleetError::Invalid(why)) => {
            assert!(why.contains("no enabled account-region can boot"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(store.list_requests().unwrap().is_empty());
    // Minima beyond any machine are refused when the profile is written.
    let absurd = Profile {
        name: "absurd".into(),
        min_ram_mb: u64::MAX,
        ..crate::support::fleet::small()
    };
    match fleet.put_profile(absurd).await {
        Err(FleetError::Invalid(why)) => assert!(why.starts_with("min_ram_mb"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The ordinary profile still launches.
    let launched = fleet.launch(ask("ci", 1)).await.unwrap();
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    fleet.shutdown().await;
}
