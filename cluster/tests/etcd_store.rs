//! The etcd store against a real etcd: the store contract, a follower's
//! replica equal to the leader's, follower writes refused, and a leader
//! fenced off once its key is gone.

use std::time::Duration;

use chrono::Utc;
use oms_actors::cluster_view::ClusterView;
use oms_actors::model::{Event, InstanceState};
use oms_actors::store::{InstanceFilter, Sealer, Store, StoreError, testsuite};
use oms_cluster::Cluster;
use oms_cluster::testing::{EtcdCluster, member, options};
use secrecy::ExposeSecret;

async fn join(etcd: &EtcdCluster, prefix: &str, name: &str, key: u8) -> std::sync::Arc<Cluster> {
    Cluster::join(
        &options(etcd.endpoints(), prefix),
        Sealer::from_key(&[key; 32]),
        member(name),
        Duration::from_secs(3),
    )
    .await
    .unwrap()
}

/// Everything a store answers, as comparable text.
fn contents(store: &dyn Store) -> String {
    let mut text = String::new();
    for account in store.list_accounts().unwrap() {
        text += &format!(
            "{}\n{}\n",
            serde_json::to_string(&account).unwrap(),
            account.secret.expose_secret()
        );
    }
    text += &serde_json::to_string(&store.list_profiles().unwrap()).unwrap();
    for client in ["ci", "other", "a"] {
        text += &serde_json::to_string(&store.list_keypairs(client).unwrap()).unwrap();
    }
    text += &serde_json::to_string(&store.list_requests().unwrap()).unwrap();
    for instance in store.list_instances(&InstanceFilter::default()).unwrap() {
        text += &serde_json::to_string(&instance).unwrap();
        text += &serde_json::to_string(&store.events(&instance.id).unwrap()).unwrap();
    }
    text += &serde_json::to_string(&store.list_tokens().unwrap()).unwrap();
    for name in ["regions", "other"] {
        text += &format!("{:?}", store.get_shared(name).unwrap());
    }
    text
}

#[tokio::test]
async fn the_etcd_store_meets_the_contract_and_its_followers_see_what_it_wrote() {
    if !oms_cluster::testing::available() {
        return;
    }
    let etcd = EtcdCluster::start(1).await;
    let leader = join(&etcd, "/contract", "a", 5).await;
    leader.lead().await.unwrap();
    assert!(leader.leads());
    testsuite::run(&leader.store).await;

    let follower = join(&etcd, "/contract", "b", 5).await;
    assert!(!follower.leads());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while follower.leader_url().is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        follower.leader_url().as_deref(),
        Some("http://a.invalid"),
        "a follower knows where the leader answers"
    );
    assert!(
        follower
            .caught_up(leader.revision(), Duration::from_secs(10))
            .await
    );
    assert_eq!(contents(&follower.store), contents(&leader.store));

    // Changes after the follower joined reach it through the watch.
    let (request, instances) = testsuite::request("ci", Some("late"), 2);
    leader.store.insert_request(&request, &instances).unwrap();
    let mut changed = instances[0].clone();
    let read = changed.updated_at;
    changed.state = InstanceState::Active;
    let event = Event {
        at: Utc::now(),
        state: InstanceState::Active,
        account_region: Some("p/r".into()),
        message: "active".into(),
        detail: None,
        repeated: 0,
        last_at: None,
    };
    leader.store.transition(read, &changed, &event).unwrap();
    leader
        .store
        .transition(changed.updated_at, &changed, &event)
        .unwrap();
    leader.store.flush().await.unwrap();
    assert!(
        follower
            .caught_up(leader.revision(), Duration::from_secs(10))
            .await
    );
    assert_eq!(contents(&follower.store), contents(&leader.store));
    let timeline = follower.store.events(&changed.id).unwrap();
    assert_eq!(timeline.len(), 1, "the repeat was counted into one event");

    // A follower writes nothing, and says why.
    let refused = follower.store.put_profile(&testsuite_profile("x"));
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );

    // A daemon with another sealing key cannot join.
    let stranger = Cluster::join(
        &options(etcd.endpoints(), "/contract"),
        Sealer::from_key(&[6; 32]),
        member("c"),
        Duration::from_secs(3),
    )
    .await
    .unwrap_err();
    assert!(stranger.to_string().contains("sealing key"), "{stranger}");
}

#[tokio::test]
async fn a_leader_whose_key_is_gone_writes_nothing_and_another_takes_over() {
    if !oms_cluster::testing::available() {
        return;
    }
    let etcd = EtcdCluster::start(1).await;
    let first = join(&etcd, "/fence", "a", 7).await;
    first.lead().await.unwrap();
    first
        .store
        .put_profile(&testsuite_profile("before"))
        .unwrap();
    first.store.flush().await.unwrap();

    // Another process takes the leader key away (as etcd does when the
    // lease ends while the leader is paused).
    let mut etcd_client = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    etcd_client
        .delete("/fence/cluster/leader", None)
        .await
        .unwrap();
    let second = join(&etcd, "/fence", "b", 7).await;
    tokio::time::timeout(Duration::from_secs(10), second.lead())
        .await
        .unwrap()
        .unwrap();

    // The old leader's write is refused by etcd, and it stops writing.
    first
        .store
        .put_profile(&testsuite_profile("after"))
        .unwrap();
    let flushed = first.store.flush().await;
    assert!(
        matches!(flushed, Err(StoreError::Unavailable(_))),
        "{flushed:?}"
    );
    assert!(first.store.failed().unwrap().contains("fenced"));
    assert!(
        first
            .store
            .put_profile(&testsuite_profile("later"))
            .is_err()
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), first.ended())
        .await
        .unwrap();
    assert!(ended.contains("fenced"), "{ended}");

    // etcd holds the first leader's write before, none after.
    let names: Vec<String> = second
        .store
        .list_profiles()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, vec!["before".to_owned()]);
}

fn testsuite_profile(name: &str) -> oms_actors::model::Profile {
    serde_json::from_value(serde_json::json!({
        "name": name, "min_vcpus": 1, "min_ram_mb": 512, "min_disk_gb": 1,
        "image": "cirros", "boot_timeout_secs": 600
    }))
    .unwrap()
}
