//! Keystone's tokens live four minutes in the conformance cloud
//! (`MOS_TOKEN_EXPIRATION`): a daemon that runs longer than that renews
//! its token and no launch fails for it.

use std::time::{Duration, Instant};

use serde_json::json;

use super::cloud::{REGIONS, login};
use super::daemon::{Daemon, Options, messages};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real OpenStack: run conformance/run"]
async fn an_expiring_token_is_renewed_without_a_failed_launch() {
    let lifetime = Duration::from_secs(
        std::env::var("MOS_TOKEN_EXPIRATION")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(240),
    );
    let demo = login("demo").await;
    demo.wipe().await;
    let started = Instant::now();
    let daemon = Daemon::start("tokens", Options::default());
    let mut ids = Vec::new();
    // One launch per round, until well past the first token's expiry.
    while started.elapsed() < lifetime + lifetime / 4 {
        let launch = daemon.launch(json!({"profile": "tiny", "count": 1})).await;
        let launched = Daemon::ids(&launch);
        let views = daemon
            .wait_for(&launched, "active", Duration::from_secs(180))
            .await;
        ids.extend(launched);
        for view in views {
            assert_eq!(
                view["attempts"], 1,
                "no attempt lost to an expired token: {view}"
            );
        }
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
    assert!(ids.len() >= 3, "launches before and after the expiry");
    for id in &ids {
        let view = daemon.instance(id).await;
        for message in messages(&view) {
            assert!(!message.contains("failed"), "{id}: {message}");
        }
    }
    for region in REGIONS {
        let status = daemon.region(region).await.unwrap();
        assert_eq!(status["breaker"], "closed", "{status}");
        assert_eq!(status["connected"], true, "{status}");
    }
    daemon.delete(&ids).await;
    demo.wait_empty(Duration::from_secs(60)).await;
}
