//! A leader paused (SIGSTOP) for twice its lease while launches are in
//! flight: another member leads, and when the old one resumes it makes
//! no provider call and no write after its lease ended. The simulator's
//! calls by User-Agent (which names the member) and etcd's history of the
//! writer mark (every leader transaction puts it) prove it. Then it
//! starts over as a follower, and every answered launch completes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions};
use serde_json::Value;

use crate::support::binary::{all_instances, sim_servers, sim_state};
use crate::support::cluster::{TestCluster, launch};

/// Every call of `member` the simulator saw (keystone and every region),
/// in ms since the epoch.
fn calls_of(state: &Value, member: &str) -> Vec<f64> {
    let mark = format!("(member {member})");
    let mut times = Vec::new();
    for provider in state["providers"].as_array().unwrap() {
        let mut maps = vec![&provider["keystone_agents"]];
        maps.extend(
            provider["regions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| &r["agents"]),
        );
        for map in maps {
            for (agent, calls) in map.as_object().into_iter().flatten() {
                if agent.contains(&mark) {
                    times.extend(
                        calls["times_ms"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|t| t.as_f64().unwrap()),
                    );
                }
            }
        }
    }
    times
}

/// Every value the writer mark held, with its revision, from etcd's
/// history (nothing is compacted in the test).
async fn writer_history(endpoints: &[String]) -> Vec<(i64, String)> {
    let key = "/oms-test/cluster/writer";
    let mut etcd = etcd_client::Client::connect(endpoints, None).await.unwrap();
    let now = etcd.get(key, None).await.unwrap();
    let last = now.kvs()[0].mod_revision();
    let mut stream = etcd
        .watch(key, Some(WatchOptions::new().with_start_revision(1)))
        .await
        .unwrap();
    let mut history: Vec<(i64, String)> = Vec::new();
    while history.last().is_none_or(|(r, _)| *r < last) {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("etcd's history arrives")
            .unwrap()
            .unwrap();
        for event in message.events() {
            if event.event_type() == EventType::Put
                && let Some(kv) = event.kv()
            {
                history.push((
                    kv.mod_revision(),
                    String::from_utf8_lossy(kv.value()).into_owned(),
                ));
            }
        }
    }
    history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_acts_no_more_once_its_lease_ended() {
    if !oms_cluster::testing::available() {
        return;
    }
    let total = 60;
    let dir = crate::support::cluster::test_dir();
    let mut cluster = TestCluster::start(dir.path(), 3, 1, 4).await;
    let ttl_ms = cluster.ttl as f64 * 1000.0;
    let urls = cluster.urls.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Launches keep coming through every member.
    let launches = tokio::spawn({
        let (http, urls) = (http.clone(), urls.clone());
        async move {
            let mut requests = Vec::new();
            for n in 0..total {
                requests.push(launch(&http, &urls, n, &format!("f{n:03}")).await);
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            requests
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;

    let old = cluster.wait_leader(Duration::from_secs(30)).await;
    let old_name = format!("m{old}");
    let stopped_at = chrono::Utc::now().timestamp_millis() as f64;
    cluster.signal(old, "STOP");
    let new = cluster
        .wait_leader_except(Some(old), Duration::from_secs(cluster.ttl + 10))
        .await;
    let term = cluster.status(new).await.unwrap()["leader"]["revision"]
        .as_i64()
        .unwrap();
    tokio::time::sleep(
        Duration::from_secs(2 * cluster.ttl).saturating_sub(Duration::from_millis(
            (chrono::Utc::now().timestamp_millis() as f64 - stopped_at) as u64,
        )),
    )
    .await;
    cluster.signal(old, "CONT");

    // It notices, starts over, and comes back as a follower.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = cluster.status(old).await
            && status["leading"] == false
            && status["leader"]["member"]["name"] == format!("m{new}")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "m{old} did not come back as a follower"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(cluster.dir().join(format!("m{old}.log"))).unwrap();
    assert!(log.contains("starting over as a follower"), "{log}");

    let requests = launches.await.unwrap();
    let reader = &urls[new];
    crate::support::eventually(Duration::from_secs(120), "every launch active", || async {
        let active = all_instances(&http, reader, Some("active")).await;
        (active.len() == total).then_some(())
    })
    .await;
    let present: BTreeSet<String> = all_instances(&http, reader, None)
        .await
        .iter()
        .map(|i| i["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(requests.iter().all(|r| present.contains(r)));

    // No provider call of the old leader after its lease ended (it began
    // before the pause: its end is at most one TTL after it).
    let state = sim_state(&cluster.control).await;
    let calls = calls_of(&state, &old_name);
    assert!(
        !calls.is_empty(),
        "the old leader made calls before the pause"
    );
    let late: Vec<f64> = calls
        .iter()
        .copied()
        .filter(|t| *t > stopped_at + ttl_ms)
        .collect();
    assert!(
        late.is_empty(),
        "m{old} called providers after its lease ended: {late:?}"
    );
    assert_eq!(sim_servers(&state).len(), total, "one server per launch");

    // No write of the old leader once the new leader's term began.
    let history = writer_history(&cluster.etcd.endpoints()).await;
    let old_writes: Vec<i64> = history
        .iter()
        .filter(|(_, mark)| mark.starts_with(&format!("{old_name} ")))
        .map(|(revision, _)| *revision)
        .collect();
    assert!(
        !old_writes.is_empty(),
        "the old leader wrote before the pause"
    );
    assert!(
        old_writes.iter().all(|r| *r < term),
        "m{old} wrote at {old_writes:?}, after m{new}'s term began at {term}"
    );
    assert!(
        history
            .iter()
            .any(|(r, mark)| *r > term && mark.starts_with(&format!("m{new} ")))
    );
    cluster.kill(old);
}
