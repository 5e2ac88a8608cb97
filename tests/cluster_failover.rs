//! Three members on a three-member etcd: launches with idempotency keys
//! spread over every member's API while the leader is killed twice. Each
//! time another member leads within the TTL and 5 s; at the end every
//! answered request is there, each instance active on exactly one server,
//! no server twice, none leaked.
//!
//! `CLUSTER_LAUNCHES` sets how many launches (300 by default).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::binary::{all_instances, sim_servers, sim_state};
use crate::support::cluster::{TestCluster, launch};
use crate::support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_survive_the_leader_killed_twice() {
    if !oms_cluster::testing::available() {
        return;
    }
    let total: usize = std::env::var("CLUSTER_LAUNCHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let dir = crate::support::cluster::test_dir();
    let mut cluster = TestCluster::start(dir.path(), 3, 3, 5).await;
    let urls = cluster.urls.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Twelve clients at once, each launch through another member.
    let answered = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (http, urls, answered, next) =
            (http.clone(), urls.clone(), answered.clone(), next.clone());
        clients.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    return mine;
                }
                let key = format!("k{n:04}");
                let request = launch(&http, &urls, n, &key).await;
                answered.fetch_add(1, Ordering::SeqCst);
                mine.push((key, request));
            }
        });
    }

    // Kill the leader twice: after a quarter and after two thirds.
    for when in [total / 4, total * 2 / 3] {
        while answered.load(Ordering::SeqCst) < when {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let leader = cluster.wait_leader(Duration::from_secs(30)).await;
        let killed_at = Instant::now();
        cluster.kill(leader);
        let successor = cluster
            .wait_leader_except(Some(leader), Duration::from_secs(60))
            .await;
        let took = killed_at.elapsed();
        eprintln!("m{leader} killed; m{successor} leads after {took:?}");
        assert!(
            took <= Duration::from_secs(cluster.ttl + 5),
            "a new leader took {took:?}, more than the TTL ({} s) and 5 s",
            cluster.ttl
        );
        // systemd starts it again; it comes back as a follower.
        cluster.start_member(leader);
    }

    let mut requests: BTreeMap<String, String> = BTreeMap::new();
    while let Some(mine) = clients.join_next().await {
        for (key, request) in mine.unwrap() {
            assert!(requests.insert(key, request).is_none());
        }
    }
    assert_eq!(requests.len(), total);

    // Every instance becomes active, as any member reports.
    let reader = &urls[cluster.wait_leader(Duration::from_secs(30)).await];
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let all = all_instances(&http, reader, None).await;
        if all.iter().filter(|i| i["status"] == "active").count() == total {
            break;
        }
        if Instant::now() > deadline {
            let mut states: BTreeMap<String, usize> = BTreeMap::new();
            for i in &all {
                *states.entry(i["status"].to_string()).or_default() += 1;
            }
            let present: BTreeSet<&str> = all
                .iter()
                .map(|i| i["request_id"].as_str().unwrap())
                .collect();
            let missing: Vec<_> = requests
                .iter()
                .filter(|(_, r)| !present.contains(r.as_str()))
                .collect();
            panic!(
                "not every instance became active: {states:?}, answered but missing: {missing:?}; logs in {}",
                cluster.dir().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let instances = all_instances(&http, reader, None).await;
    assert_eq!(instances.len(), total, "one instance per request, no more");
    let by_request: BTreeSet<&str> = instances
        .iter()
        .map(|i| i["request_id"].as_str().unwrap())
        .collect();
    for (key, request) in &requests {
        assert!(
            by_request.contains(request.as_str()),
            "{key}'s request {request} is gone"
        );
    }
    let server_ids: BTreeSet<&str> = instances
        .iter()
        .map(|i| i["server_id"].as_str().unwrap())
        .collect();
    assert_eq!(server_ids.len(), total, "two instances share a server");

    // The provider holds exactly those servers: none twice, none leaked
    // (a duplicate create of the old leader's would be collected).
    eventually(
        Duration::from_secs(60),
        "the provider holds one server per instance",
        || async {
            let servers = sim_servers(&sim_state(&cluster.control).await);
            let ids: BTreeSet<String> = servers
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned())
                .collect();
            (servers.len() == total && ids.iter().all(|id| server_ids.contains(id.as_str())))
                .then_some(())
        },
    )
    .await;
    let servers = sim_servers(&sim_state(&cluster.control).await);
    let owners: BTreeSet<&str> = servers
        .iter()
        .map(|s| s["metadata"]["oms-instance"].as_str().unwrap())
        .collect();
    assert_eq!(owners.len(), total, "an instance has two servers");
}
