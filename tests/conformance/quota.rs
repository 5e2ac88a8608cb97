//! The demo project's instance quota set to 2 in both regions behind the
//! daemon's back: a launch of 5 lands 2 per region, the real 403 is
//! classified `quota` and rerouted, and once a region refused, no create
//! the ledger knew would fail is sent to it again.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::cloud::{REGIONS, login};
use super::daemon::{Daemon, Options, messages};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real OpenStack: run conformance/run"]
async fn a_real_quota_refusal_is_classified_learned_and_rerouted() {
    let demo = login("demo").await;
    let admin = login("admin").await;
    demo.wipe().await;
    for region in REGIONS {
        admin.instance_quota(region, &demo.project_id, None).await;
    }
    // One create at a time per region: Nova's API counts the servers it
    // already accepted, so each refusal is a clean 403 and never a
    // conductor-side recheck that leaves an ERROR server.
    let daemon = Daemon::start(
        "quota",
        Options {
            max_concurrent_creates: 1,
            refresh_secs: 600.0,
            ..Options::default()
        },
    );
    for region in REGIONS {
        daemon
            .wait_region(region, Duration::from_secs(90), |r| {
                r["profiles"]["tiny"]["fit"] == "fits" && r["limit"]["instances"].as_u64() > Some(2)
            })
            .await;
    }
    // The ledger read the old quota; now it shrinks to 2 per region.
    for region in REGIONS {
        admin
            .instance_quota(region, &demo.project_id, Some(2))
            .await;
    }
    let refused_before = nova_refusals();

    let launch = daemon.launch(json!({"profile": "tiny", "count": 5})).await;
    let ids = Daemon::ids(&launch);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let views = loop {
        let mut views = Vec::new();
        for id in &ids {
            views.push(daemon.instance(id).await);
        }
        let active = views.iter().filter(|v| v["status"] == "active").count();
        let waiting = views
            .iter()
            .filter(|v| v["status"] == "pending" && messages(v).iter().any(|m| m.contains("quota")))
            .count();
        if active == 4 && waiting == 1 {
            break views;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            serde_json::to_string_pretty(&views).unwrap()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    for region in REGIONS {
        let here = views
            .iter()
            .filter(|v| v["status"] == "active" && v["region"] == region)
            .count();
        assert_eq!(here, 2, "two land in {region}");
    }
    let refusals = |views: &[serde_json::Value], region: &str| {
        views
            .iter()
            .flat_map(messages)
            .filter(|m| m.contains(region) && m.contains("attempt failed: quota (403)"))
            .count()
    };
    let mut total = 0;
    for region in REGIONS {
        let here = refusals(&views, region);
        assert!(
            here <= 1,
            "{region} refused {here} creates: the ledger sent one it knew would fail"
        );
        total += here;
    }
    assert!(total >= 1, "the shrunken quota was met with a real refusal");

    // The region ledgers know now: one more launch waits and sends nothing.
    let more = Daemon::ids(&daemon.launch(json!({"profile": "tiny", "count": 1})).await);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut all = ids.clone();
    all.extend(more.iter().cloned());
    let mut views = Vec::new();
    for id in &all {
        views.push(daemon.instance(id).await);
    }
    assert_eq!(views[5]["status"], "pending", "{}", views[5]);
    for region in REGIONS {
        assert!(
            refusals(&views, region) <= 1,
            "no create sent to a region known to be full"
        );
    }
    if let Some(before) = refused_before {
        let seen = nova_refusals().unwrap() - before;
        assert_eq!(
            seen, total,
            "Nova refused exactly the creates the events report"
        );
    }
    for status in daemon.regions().await {
        assert_eq!(
            status["breaker"], "closed",
            "a quota refusal is no outage: {status}"
        );
    }

    daemon.delete(&all).await;
    demo.wait_empty(Duration::from_secs(60)).await;
    for region in REGIONS {
        admin.instance_quota(region, &demo.project_id, None).await;
    }
}

/// Creates Nova answered 403 so far, from both compute APIs' access logs
/// (`None` when the logs are not readable from here).
fn nova_refusals() -> Option<usize> {
    let state = PathBuf::from(
        std::env::var("MOS_STATE").unwrap_or_else(|_| "/var/tmp/oms-conformance".into()),
    );
    let mut count = 0;
    for n in ["1", "2"] {
        let log =
            std::fs::read_to_string(state.join(format!("log/nova{n}-api-access.log"))).ok()?;
        count += log
            .lines()
            .filter(|l| l.contains("\"POST /v2.1/servers HTTP") && l.contains("\" 403 "))
            .count();
    }
    Some(count)
}
