//! RegionTwo's nova-api stopped mid-run: its breaker opens, launches land
//! in RegionOne, and the breaker closes once nova-api is back.

use std::time::Duration;

use serde_json::json;

use super::cloud::{login, nova_api};
use super::daemon::{Daemon, Options};

/// Starts RegionTwo's compute API again even when the test fails.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        if std::thread::panicking() {
            nova_api("start", "RegionTwo");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real OpenStack: run conformance/run"]
async fn a_stopped_nova_api_opens_the_breaker_and_launches_go_elsewhere() {
    let demo = login("demo").await;
    demo.wipe().await;
    let daemon = Daemon::start("outage", Options::default());
    for region in ["RegionOne", "RegionTwo"] {
        daemon
            .wait_region(region, Duration::from_secs(90), |r| {
                r["profiles"]["tiny"]["fit"] == "fits"
            })
            .await;
    }
    let before = Daemon::ids(&daemon.launch(json!({"profile": "tiny", "count": 2})).await);
    daemon
        .wait_for(&before, "active", Duration::from_secs(180))
        .await;

    let restore = Restore;
    nova_api("stop", "RegionTwo");
    let during = Daemon::ids(&daemon.launch(json!({"profile": "tiny", "count": 4})).await);
    let open = daemon
        .wait_region("RegionTwo", Duration::from_secs(120), |r| {
            r["breaker"] == "open"
        })
        .await;
    assert!(
        open["last_error"].is_string(),
        "the reason is shown: {open}"
    );
    let views = daemon
        .wait_for(&during, "active", Duration::from_secs(240))
        .await;
    for view in &views {
        assert_eq!(
            view["region"], "RegionOne",
            "launched around the outage: {view}"
        );
    }

    nova_api("start", "RegionTwo");
    drop(restore);
    daemon
        .wait_region("RegionTwo", Duration::from_secs(180), |r| {
            r["breaker"] == "closed"
        })
        .await;
    let after = Daemon::ids(
        &daemon
            .launch(json!({"profile": "tiny", "count": 1, "placement": {"allow_regions": ["RegionTwo"]}}))
            .await,
    );
    daemon
        .wait_for(&after, "active", Duration::from_secs(180))
        .await;

    let mut all = before;
    all.extend(during);
    all.extend(after);
    daemon.delete(&all).await;
    demo.wait_empty(Duration::from_secs(60)).await;
}
