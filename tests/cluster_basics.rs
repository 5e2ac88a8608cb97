//! Three `oms serve` members on one etcd: one leads, the others answer
//! reads from their replicas and forward writes to it; a client reads on
//! a follower what it just wrote through it; region health reaches every
//! member; `oms cluster status` names the leader.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::binary::{ADMIN, all_instances, sim_servers, sim_state};
use crate::support::cluster::TestCluster;
use crate::support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_forward_writes_and_answer_reads_from_the_shared_store() {
    if !oms_cluster::testing::available() {
        return;
    }
    let dir = crate::support::cluster::test_dir();
    let cluster = TestCluster::start(dir.path(), 3, 1, 5).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    let http = reqwest::Client::new();

    // Every member agrees on the leader and lists all three.
    for n in 0..3 {
        let status = cluster.status(n).await.unwrap();
        assert_eq!(status["leader"]["member"]["name"], format!("m{leader}"));
        assert_eq!(status["members"].as_array().unwrap().len(), 3, "{status}");
        assert_eq!(status["leading"], n == leader);
    }

    // A launch through a follower is answered by the leader, and the
    // follower shows it at once.
    let answer = http
        .post(format!("{}/v1/instances", cluster.urls[follower]))
        .bearer_auth(ADMIN)
        .header("Idempotency-Key", "through-a-follower")
        .json(&json!({"profile": "small", "count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());
    let launched: Value = answer.json().await.unwrap();
    let request = launched["request"]["id"].as_str().unwrap().to_owned();
    let listed = all_instances(&http, &cluster.urls[follower], None).await;
    assert_eq!(listed.len(), 2, "the follower reads what it forwarded");
    assert!(listed.iter().all(|i| i["request_id"] == request));

    // They become active, as every member reports.
    eventually(
        Duration::from_secs(60),
        "two active on every member",
        || async {
            let mut everywhere = true;
            for url in &cluster.urls {
                everywhere &= all_instances(&http, url, Some("active")).await.len() == 2;
            }
            everywhere.then_some(())
        },
    )
    .await;
    assert_eq!(sim_servers(&sim_state(&cluster.control).await).len(), 2);

    // Region health comes from the leader's actors to every member.
    eventually(Duration::from_secs(20), "regions on a follower", || async {
        let regions: Value = http
            .get(format!("{}/v1/regions", cluster.urls[follower]))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        regions["regions"]
            .as_array()
            .is_some_and(|r| r.len() == 2 && r.iter().all(|r| r["health"] == "healthy"))
            .then_some(())
    })
    .await;

    // The same idempotency key through another member: the same request.
    let other = (leader + 2) % 3;
    let again: Value = http
        .post(format!("{}/v1/instances", cluster.urls[other]))
        .bearer_auth(ADMIN)
        .header("Idempotency-Key", "through-a-follower")
        .json(&json!({"profile": "small", "count": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["request"]["id"], request.as_str());

    // The OpenStack façade through the followers: a token from one, the
    // servers through the other (façade tokens live on the leader).
    let token = http
        .post(format!(
            "{}/identity/v3/auth/tokens",
            cluster.urls[follower]
        ))
        .json(&json!({"auth": {"identity": {
            "methods": ["application_credential"],
            "application_credential": {"id": "config-admin", "secret": ADMIN}
        }}}))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 201, "{}", token.text().await.unwrap());
    let token = token.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let servers: Value = http
        .get(format!("{}/compute/v2.1/servers", cluster.urls[other]))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(servers["servers"].as_array().unwrap().len(), 2, "{servers}");

    // The pages of a follower say where changes are made.
    for n in 0..3 {
        let page = http
            .get(format!("{}/login", cluster.urls[n]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let banner = page.contains("This member follows the cluster");
        assert_eq!(banner, n != leader, "m{n}: {page}");
        if n != leader {
            assert!(page.contains(&cluster.urls[leader]), "{page}");
        }
    }

    // Each member's metrics say whether it leads.
    for n in 0..3 {
        let text = http
            .get(format!("{}/metrics", cluster.urls[n]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = format!(
            "oms_cluster_leader{{member=\"m{n}\"}} {}",
            u8::from(n == leader)
        );
        assert!(text.contains(&line), "{line} not in {text}");
        assert!(text.contains("oms_cluster_store_revision{"), "{text}");
    }

    // `oms cluster status` through a follower names the leader.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_oms"))
        .args([
            "cluster",
            "status",
            "--url",
            &cluster.urls[follower],
            "--token",
            ADMIN,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains(&format!("leader m{leader}")), "{text}");
    assert_eq!(text.matches("follower").count(), 2, "{text}");

    // `oms token`, which opens a sled store, refuses a member's state
    // directory instead of making tokens nobody reads.
    let state = cluster.dir().join("m0-state");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(["token", "--state-dir", state.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && said.contains("etcd"), "{said}");
}
