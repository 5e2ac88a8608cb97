//! The kill test: 300 launches with idempotency keys over six regions
//! while the real `oms serve` is killed with SIGKILL at three random
//! moments and restarted on the same state directory; every POST whose
//! answer was lost is sent again. At the end there are exactly 300 active
//! instances, each matched one-to-one with a server in `oms sim`, nothing
//! of ours the store does not know, and deleting everything leaves the
//! simulator with no server and no key pair of ours.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::support::binary::{
    all_instances, private_file, serve, sim_keypairs, sim_servers, sim_state, start_sim,
};
use crate::support::eventually;
use serde_json::{Value, json};

const LAUNCHES: usize = 300;
use crate::support::binary::ADMIN;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_sigkills_lose_nothing_duplicate_nothing_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim_config = dir.path().join("sim.toml");
    let mut sim_toml = String::new();
    for provider in ["alpha", "beta", "gamma"] {
        sim_toml.push_str(&format!("[[providers]]\nname = \"{provider}\"\n"));
        for n in 1..=2 {
            sim_toml.push_str(&format!(
                "[[providers.regions]]\nname = \"{provider}-{n}\"\nbuild_secs = 1.0\ndelete_secs = 0.3\nimages = [\"cirros-fake\"]\n[providers.regions.quota]\ninstances = 60\ncores = 1000\nram = 10000000\nkey_pairs = 1000\n"
            ));
        }
    }
    std::fs::write(&sim_config, sim_toml).unwrap();
    let (_sim, control, auth_urls) = start_sim(&sim_config, 3);

    private_file(&dir.path().join("admin-token"), ADMIN);
    private_file(&dir.path().join("demo-password"), "secret");
    let mut config = format!(
        "state_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\nadmin_token_file = \"admin-token\"\n[api]\nclient_rate_per_sec = 1000\nclient_burst = 1000\n[fleet]\npoll_interval_secs = 0.3\nrefresh_interval_secs = 1.0\nadoption_grace_secs = 4\nleak_interval_secs = 1.0\nleak_grace_secs = 3.0\n[[profiles]]\nname = \"small\"\nmin_vcpus = 1\nmin_ram_mb = 512\nmin_disk_gb = 1\nimage = \"cirros-fake\"\n",
        dir.path().join("state").display()
    );
    for (name, url) in ["alpha", "beta", "gamma"].iter().zip(&auth_urls) {
        config.push_str(&format!(
            "[[accounts]]\nname = \"{name}\"\nauth_url = \"{url}\"\nusername = \"demo\"\nproject_name = \"demo\"\npassword_file = \"demo-password\"\n[accounts.limits]\nmutating_per_sec = 20.0\nread_per_sec = 50.0\nmax_concurrent_creates = 20\n"
        ));
    }
    let config_path = dir.path().join("oms.toml");
    std::fs::write(&config_path, config).unwrap();
    let config_path = config_path.to_str().unwrap().to_owned();

    let (daemon, base) = serve(&config_path);
    let daemon = Arc::new(Mutex::new(Some(daemon)));
    let base = Arc::new(RwLock::new(base));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Clients: each key is sent until a 202 comes back.
    let pending: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new((0..LAUNCHES).rev().collect()));
    let answered: Arc<Mutex<BTreeMap<usize, String>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let resent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    // Few clients, pacing themselves, so the kills land while POSTs are
    // still being sent and answers are lost.
    for _ in 0..4 {
        let (pending, answered, base, http) = (
            pending.clone(),
            answered.clone(),
            base.clone(),
            http.clone(),
        );
        let resent = resent.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let Some(key) = pending.lock().unwrap().pop() else { return };
                loop {
                    let url = format!("{}/v1/instances", base.read().unwrap());
                    let sent = http
                        .post(&url)
                        .bearer_auth(ADMIN)
                        .header("Idempotency-Key", format!("kill-{key}"))
                        .json(&json!({"profile": "small", "count": 1, "public_key": crate::support::PUBLIC_KEY}))
                        .send()
                        .await;
                    if let Ok(response) = sent
                        && response.status().as_u16() == 202
                        && let Ok(body) = response.json::<Value>().await
                    {
                        let id = body["instances"][0]["id"].as_str().unwrap().to_owned();
                        let previous = answered.lock().unwrap().insert(key, id.clone());
                        if let Some(previous) = previous {
                            assert_eq!(previous, id, "a repeated key got another instance");
                        }
                        tokio::time::sleep(Duration::from_millis(60)).await;
                        break;
                    }
                    // No answer: the daemon is down; send it again later.
                    resent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }

    // Three SIGKILLs at random moments, each followed by a restart.
    let mut rng = 0x9e3779b97f4a7c15u64 ^ std::process::id() as u64;
    for kill in 0..3 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = Duration::from_millis(500 + rng % 1500);
        tokio::time::sleep(wait).await;
        if let Some(mut proc) = daemon.lock().unwrap().take() {
            let _ = Command::new("kill")
                .args(["-KILL", &proc.0.id().to_string()])
                .status();
            let _ = proc.0.wait();
        }
        let (proc, new_base) = serve(&config_path);
        *daemon.lock().unwrap() = Some(proc);
        *base.write().unwrap() = new_base;
        eprintln!(
            "kill {kill} after {wait:?}; {} answered so far",
            answered.lock().unwrap().len()
        );
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert_eq!(answered.len(), LAUNCHES);
    assert!(
        resent.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "no POST was ever lost to a kill"
    );
    let base = base.read().unwrap().clone();

    // Every answered request is there and active; nothing else is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let active = loop {
        let active = all_instances(&http, &base, Some("active")).await;
        if active.len() == LAUNCHES {
            break active;
        }
        if tokio::time::Instant::now() > deadline {
            let all = all_instances(&http, &base, None).await;
            let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
            for i in &all {
                *by_status
                    .entry(i["status"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
            let stuck = all.iter().find(|i| i["status"] != "active").unwrap();
            let detail: Value = http
                .get(format!(
                    "{base}/v1/instances/{}",
                    stuck["id"].as_str().unwrap()
                ))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            panic!("not all active: {by_status:?}\n{detail:#}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let all = all_instances(&http, &base, None).await;
    assert_eq!(all.len(), LAUNCHES, "no extra instances");
    let active_ids: BTreeSet<String> = active
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    for id in answered.values() {
        assert!(
            active_ids.contains(id),
            "an answered request is missing: {id}"
        );
    }

    // One server per instance, nothing of ours unknown, key pairs matching.
    let matched = eventually(
        Duration::from_secs(30),
        "simulator matches the store",
        || async {
            let state = sim_state(&control).await;
            let servers = sim_servers(&state);
            let owners: Vec<String> = servers
                .iter()
                .filter_map(|s| s["metadata"]["oms-instance"].as_str().map(str::to_owned))
                .collect();
            let unique: BTreeSet<&String> = owners.iter().collect();
            let keypairs: BTreeSet<String> = sim_keypairs(&state).into_iter().collect();
            let server_keys: BTreeSet<String> = servers
                .iter()
                .filter_map(|s| s["key_name"].as_str().map(str::to_owned))
                .collect();
            let ok = servers.len() == LAUNCHES
                && owners.len() == LAUNCHES
                && unique.len() == LAUNCHES
                && unique.iter().all(|o| active_ids.contains(*o))
                && keypairs == server_keys;
            ok.then_some((servers.len(), keypairs.len()))
        },
    )
    .await;
    eprintln!("matched: {matched:?}");

    // Delete everything: the simulator ends empty of ours.
    for id in &active_ids {
        let response = http
            .delete(format!("{base}/v1/instances/{id}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
    }
    eventually(Duration::from_secs(120), "nothing of ours left", || async {
        let state = sim_state(&control).await;
        (sim_servers(&state).is_empty() && sim_keypairs(&state).is_empty()).then_some(())
    })
    .await;
    let deleted = all_instances(&http, &base, Some("deleted")).await;
    assert_eq!(deleted.len(), LAUNCHES);
}
