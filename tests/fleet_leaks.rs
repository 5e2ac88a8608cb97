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
async fn only_what_is_provably_ours_and_unknown_to_the_store_is_collected() {
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
    let account = store.list_accounts().unwrap()[0].id.clone();
    let mine = vec![
        "oms-leaktest".to_owned(),
        format!("oms-acct-{account}"),
        "oms-a-gone".to_owned(),
    ];
    let leaked = nova
        .create_server(&create("oms-orphan", mine))
        .await
        .unwrap();
    // Not provably this deployment's and this account's: never touched.
    let survivors = [
        ("not-ours", vec!["team-x".to_owned()]),
        // Another account of this deployment on the same project.
        (
            "oms-sibling",
            vec![
                "oms-leaktest".into(),
                "oms-acct-other".into(),
                "oms-a-x".into(),
            ],
        ),
        // Another deployment through an account of the same id.
        (
            "oms-other-deployment",
            vec![
                "oms-elsewhere".into(),
                format!("oms-acct-{account}"),
                "oms-a-y".into(),
            ],
        ),
        // An earlier format, which named no account.
        ("oms-old", vec!["oms-leaktest".into(), "oms-a-z".into()]),
    ];
    let mut foreign = Vec::new();
    for (name, tags) in survivors {
        foreign.push(nova.create_server(&create(name, tags)).await.unwrap());
    }
    let key = crate::support::PUBLIC_KEY;
    let our_key = format!("oms-k-leaktest-{account}-gone");
    let foreign_keys = [
        "someone-elses".to_owned(),
        "oms-k-gone".to_owned(),
        format!("oms-k-elsewhere-{account}-gone"),
        "oms-k-leaktest-other-gone".to_owned(),
    ];
    for name in std::iter::once(&our_key).chain(&foreign_keys) {
        nova.import_keypair(name, key).await.unwrap();
    }

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
        (gone && !keys.contains(&our_key)).then_some(())
    })
    .await;
    // Two more scans: what is not provably ours is still there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &foreign {
        assert!(
            nova.get_server(id).await.is_ok(),
            "a server not provably ours was touched"
        );
    }
    let keys: Vec<String> = nova
        .list_keypairs()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    for name in &foreign_keys {
        assert!(keys.contains(name), "key pair {name} was deleted");
    }
    // Our live instances were left alone.
    for instance in store.request_instances(&launched.request.id).unwrap() {
        assert_eq!(instance.state, InstanceState::Active);
    }
    assert_eq!(sim_region(&sim, "p", "p-1")["servers_alive"], 6);
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

/// Against real Nova, a region whose builds all went to ERROR left one
/// key pair behind per failed build until a leak scan: the failed
/// attempt's key pair must go with its server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_builds_leave_no_key_pair_behind_without_a_leak_scan() {
    let sim = sim_of(&["p"], |p| p.regions[0].faults.build_error_rate = 1.0).await;
    let (fleet, store) = fleet_on(
        &sim,
        FleetConfig {
            // No leak scan within the test: the deletes alone must do it.
            leak_interval: Duration::from_secs(3600),
            ..config()
        },
    )
    .await;
    let launched = fleet
        .launch(oms_actors::NewLaunch {
            public_key: Some(crate::support::PUBLIC_KEY.into()),
            ..ask("ci", 6)
        })
        .await
        .unwrap();
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(60),
    )
    .await;
    let failed_attempts: u32 = store
        .request_instances(&launched.request.id)
        .unwrap()
        .iter()
        .map(|i| i.attempts - 1)
        .sum();
    assert!(
        failed_attempts > 0,
        "no build failed in p-1: nothing tested"
    );
    eventually(Duration::from_secs(20), "p-1 empty", || async {
        let region = sim_region(&sim, "p", "p-1");
        let keys = region["keypairs"].as_array().unwrap().len();
        (keys == 0 && region["servers_alive"] == 0).then_some(())
    })
    .await;
    // Every active instance still has its key pair in p-2.
    let keys = sim_region(&sim, "p", "p-2")["keypairs"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(keys, 6);
    fleet.shutdown().await;
}

/// With the store unreadable, a leak scan knows nothing of the live
/// instances: it must be skipped (and counted), not run as if the region
/// held no instance of ours, which would delete every server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_store_skips_the_leak_scan_instead_of_deleting_everything() {
    use crate::support::failing_store::FailingStore;
    use crate::support::fleet::fleet_on_store;
    use oms_actors::store::{MemoryStore, Store};
    use std::sync::Arc;

    let sim = sim_of(&["p"], |p| p.regions.truncate(1)).await;
    let failing = FailingStore::new(Arc::new(MemoryStore::new()));
    let store: Arc<dyn Store> = failing.clone();
    let (fleet, _) = fleet_on_store(&sim, config(), store.clone(), |_| {}).await;
    let mut events = fleet.subscribe();
    let launched = fleet.launch(ask("ci", 2)).await.unwrap();
    all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;

    failing.set_failing(true);
    // Six skipped scans, 500 ms apart at the least: past the 2 s grace in
    // which a second sighting would have got both servers deleted.
    let mut skipped = 0;
    while skipped < 6 {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("leak scans go on while the store fails");
        if let Ok(oms_actors::FleetEvent::Skipped {
            step: oms_actors::Step::LeakScan,
        }) = event
        {
            skipped += 1;
        }
    }
    failing.set_failing(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let region = sim_region(&sim, "p", "p-1");
    assert_eq!(region["servers_alive"], 2, "{region}");
    assert_eq!(region["deletions"].as_array().unwrap().len(), 0, "{region}");
    for instance in store.request_instances(&launched.request.id).unwrap() {
        assert_eq!(instance.state, InstanceState::Active);
    }
    fleet.shutdown().await;
}
