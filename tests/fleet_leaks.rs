//! Leak collection and stubborn deletes: servers and key pairs of ours
//! that no instance accounts for are deleted on a second sighting after a
//! grace period, never while a listing merely lags; a DELETE the provider
//! refuses is retried until it works, the instance staying `deleting`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::fleet::{all_reach, ask, fast_config, fleet_on, sim_of, sim_region};
use crate::support::{compute, demo_session, eventually};
use oms_actors::FleetConfig;
use oms_actors::model::InstanceState;
use oms_actors::openstack::{CreateServer, ImageClient, Networks};
use oms_sim::Faults;

fn config() -> FleetConfig {
    FleetConfig {
        daemon_id: "leaktest".into(),
        ..fast_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_and_key_pairs_of_ours_unknown_to_the_store_are_collected() {
    let sim = sim_of(&["p"], |p| p.regions.truncate(1)).await;
    let (fleet, store) = fleet_on(&sim, config()).await;
    let launched = fleet.launch(ask("ci", 2)).await.unwrap();
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;

    // Left behind by a crash, say: tagged as ours, unknown to the store.
    let nova = compute(&sim, "p-1").await;
    let image = ImageClient::connect(demo_session(&sim), "p-1")
        .await
        .unwrap()
        .active_images(Some("cirros-fake"))
        .await
        .unwrap()[0]
        .id
        .clone();
    let create = |name: &str, tags: Vec<String>| CreateServer {
        name: name.into(),
        flavor_ref: "1".into(),
        image_ref: image.clone(),
        metadata: BTreeMap::new(),
        networks: Networks::Auto,
        tags,
        ..CreateServer::default()
    };
    let leaked = nova
        .create_server(&create(
            "oms-orphan",
            vec!["oms-leaktest".into(), "oms-a-gone".into()],
        ))
        .await
        .unwrap();
    let foreign = nova
        .create_server(&create("not-ours", vec!["team-x".into()]))
        .await
        .unwrap();
    nova.import_keypair(
        "oms-k-gone",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpDFr+8I0HQV9icG0+dBIJHThN1YYprA6OMhadAwztn x",
    )
    .await
    .unwrap();
    nova.import_keypair(
        "someone-elses",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpDFr+8I0HQV9icG0+dBIJHThN1YYprA6OMhadAwztn y",
    )
    .await
    .unwrap();

    eventually(Duration::from_secs(20), "the leak collected", || async {
        let gone = nova
            .get_server(&leaked)
            .await
            .err()
            .is_some_and(|e| e.is_not_found());
        let keys: Vec<String> = nova
            .list_keypairs()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        (gone && !keys.contains(&"oms-k-gone".to_owned())).then_some(())
    })
    .await;
    assert!(
        nova.get_server(&foreign).await.is_ok(),
        "a server not tagged as ours was touched"
    );
    let keys: Vec<String> = nova
        .list_keypairs()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert!(keys.contains(&"someone-elses".to_owned()));
    // Our live instances were left alone.
    for instance in store.request_instances(&launched.request.id).unwrap() {
        assert_eq!(instance.state, InstanceState::Active);
    }
    assert_eq!(sim_region(&sim, "p", "p-1")["servers_alive"], 3);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_listing_never_gets_a_server_collected() {
    let sim = sim_of(&["p"], |p| {
        p.regions.truncate(1);
        p.regions[0].faults.list_lag_secs = 10.0;
    })
    .await;
    let (fleet, store) = fleet_on(&sim, config()).await;
    let launched = fleet.launch(ask("ci", 8)).await.unwrap();
    let instances = all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(60),
    )
    .await;
    // Several leak scans (every 0.5 s, grace 2 s) passed while the
    // listing hid the new servers; a few more pass now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let region = sim_region(&sim, "p", "p-1");
    assert_eq!(region["servers_alive"], 8);
    assert!(
        region["calls"]
            .get("DELETE/compute/v2.1/servers/{id}")
            .is_none(),
        "a server was deleted"
    );
    assert!(instances.iter().all(|i| i.attempts == 1));
    for instance in store.request_instances(&launched.request.id).unwrap() {
        assert_eq!(instance.state, InstanceState::Active);
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delete_is_retried_until_the_provider_recovers() {
    let sim = sim_of(&["p"], |p| p.regions.truncate(1)).await;
    let (fleet, store) = fleet_on(&sim, config()).await;
    let launched = fleet.launch(ask("ci", 2)).await.unwrap();
    let instances = all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    sim.set_faults(
        "p",
        Some("p-1"),
        Faults {
            delete_error_rate: 1.0,
            ..Faults::default()
        },
    )
    .unwrap();
    for instance in &instances {
        fleet.delete(&instance.id).await.unwrap();
    }
    eventually(
        Duration::from_secs(10),
        "deletes refused a few times",
        || async {
            let region = sim_region(&sim, "p", "p-1");
            let tries = region["calls"]["DELETE/compute/v2.1/servers/{id}"]["count"]
                .as_u64()
                .unwrap_or(0);
            (tries >= 4).then_some(())
        },
    )
    .await;
    for instance in store.request_instances(&launched.request.id).unwrap() {
        assert_eq!(instance.state, InstanceState::Deleting);
    }
    assert_eq!(sim_region(&sim, "p", "p-1")["servers_alive"], 2);
    sim.set_faults("p", Some("p-1"), Faults::default()).unwrap();
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Deleted,
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(sim_region(&sim, "p", "p-1")["servers_alive"], 0);
    fleet.shutdown().await;
}
