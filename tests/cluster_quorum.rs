//! etcd losing members under a running cluster. One member of three
//! lost: nothing changes for clients. Quorum lost: writes answer 503
//! with a clear error, reads answer from the replicas, the provider sees
//! no create; when quorum returns a leader is elected and everything
//! resumes, a launch refused during the outage included.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::binary::{ADMIN, all_instances, sim_servers, sim_state};
use crate::support::cluster::{TestCluster, launch};
use crate::support::eventually;

async fn active(http: &reqwest::Client, url: &str) -> usize {
    all_instances(http, url, Some("active")).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_rides_out_a_lost_etcd_member_and_waits_out_a_lost_quorum() {
    if !oms_cluster::testing::available() {
        return;
    }
    let dir = crate::support::cluster::test_dir();
    let mut cluster = TestCluster::start(dir.path(), 3, 3, 4).await;
    let urls = cluster.urls.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // One etcd member of three gone: launches go on.
    cluster.etcd.kill(0);
    for n in 0..5 {
        launch(&http, &urls, n, &format!("one-down-{n}")).await;
    }
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    eventually(Duration::from_secs(60), "five active", || async {
        (active(&http, &urls[follower]).await == 5).then_some(())
    })
    .await;

    // Quorum gone.
    cluster.etcd.kill(1);
    let servers = sim_servers(&sim_state(&cluster.control).await).len();
    assert_eq!(servers, 5);
    for url in [&urls[leader], &urls[follower]] {
        // An answer, not a hang: the client gives up after 30 s.
        let answer = http
            .post(format!("{url}/v1/instances"))
            .bearer_auth(ADMIN)
            .header("Idempotency-Key", "during-the-outage")
            .json(&json!({"profile": "small", "count": 1, "name_prefix": "during-the-outage"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 503, "a write without quorum");
        assert!(answer.headers().contains_key("retry-after"));
        let body: Value = answer.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("etcd") || message.contains("leader"),
            "the error says why: {body}"
        );
    }
    // Reads answer from a follower's replica, as they stood.
    let listed = all_instances(&http, &urls[follower], None).await;
    assert_eq!(listed.len(), 5);
    let regions = http
        .get(format!("{}/v1/regions", urls[follower]))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(regions.status(), 200);

    // Past the lease, the leader has stood down; nothing was created.
    tokio::time::sleep(Duration::from_secs(2 * cluster.ttl)).await;
    assert_eq!(
        sim_servers(&sim_state(&cluster.control).await).len(),
        servers
    );
    assert!(
        cluster.leader(None).await.is_none(),
        "nobody leads without quorum"
    );

    // Quorum back: a leader, the refused launch retried with its key (it
    // may have been committed as etcd came back: a 503 is an unknown
    // outcome), new launches.
    cluster.etcd.restart(0);
    cluster.etcd.restart(1);
    cluster.wait_leader(Duration::from_secs(60)).await;
    launch(&http, &urls, 0, "during-the-outage").await;
    for n in 0..4 {
        launch(&http, &urls, n, &format!("after-{n}")).await;
    }
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    eventually(Duration::from_secs(90), "ten active", || async {
        (active(&http, &urls[leader]).await == 10).then_some(())
    })
    .await;
    assert_eq!(sim_servers(&sim_state(&cluster.control).await).len(), 10);
}
