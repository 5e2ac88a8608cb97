//! The daemon killed with SIGKILL while creates are in flight, then
//! restarted on the same state: every server it made is adopted or
//! removed, every instance ends active, and Nova holds exactly the
//! servers the store knows, no more.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;

use super::cloud::{REGIONS, login};
use super::daemon::{Daemon, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real OpenStack: run conformance/run"]
async fn sigkill_mid_launch_leaves_no_leak_in_nova() {
    let demo = login("demo").await;
    demo.wipe().await;
    let mut daemon = Daemon::start("restart", Options::default());
    for region in REGIONS {
        daemon
            .wait_region(region, Duration::from_secs(90), |r| {
                r["profiles"]["tiny"]["fit"] == "fits"
            })
            .await;
    }
    let ids = Daemon::ids(&daemon.launch(json!({"profile": "tiny", "count": 6})).await);

    // Kill it once Nova accepted a create while others are still on the
    // wire.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let built: BTreeMap<String, String> = loop {
        let mut built = BTreeMap::new();
        for id in &ids {
            let view = daemon.instance(id).await;
            if let Some(server) = view["server_id"].as_str() {
                built.insert(id.clone(), server.to_owned());
            }
        }
        if !built.is_empty() {
            break built;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no create was ever accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    daemon.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    daemon.restart();

    let views = daemon
        .wait_for(&ids, "active", Duration::from_secs(300))
        .await;
    let known: BTreeSet<String> = views
        .iter()
        .map(|v| v["server_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(known.len(), ids.len(), "one server per instance");
    for view in &views {
        if let Some(before) = built.get(view["id"].as_str().unwrap()) {
            assert_eq!(
                view["server_id"],
                before.as_str(),
                "a server made before the kill is adopted"
            );
        }
    }

    // Servers an abandoned attempt made are collected after the grace.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let mut in_nova = BTreeSet::new();
        for region in REGIONS {
            for server in demo.servers(region).await {
                in_nova.insert(server["id"].as_str().unwrap().to_owned());
            }
        }
        if in_nova == known {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Nova {in_nova:?} against the store {known:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    daemon.delete(&ids).await;
    demo.wait_empty(Duration::from_secs(60)).await;
    // A key pair imported for a create the kill cut short is collected by
    // the leak scan (second sighting after the grace).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let left = demo.our_keypairs().await;
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "key pairs leaked: {left:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
