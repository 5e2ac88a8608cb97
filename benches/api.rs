//! The real `oms serve` under load from this process (another process
//! than the daemon): requests per second and latency of `GET
//! /v1/instances` with 10,000 instances in the store and of accepted
//! `POST /v1/instances` against a simulator that answers at once; then its
//! footprint with 1,000 account-regions and 100,000 instance records:
//! resident memory and the time from start to ready.
//!
//! `cargo bench --bench api` prints Markdown tables.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use oms_actors::model::{Attempt, Instance, InstanceState, LaunchRequest, PlacementHints};
use oms_sim::Simulator;
use serde_json::{Value, json};

mod common;

const ADMIN: &str = "oms_bench-admin-token-0123456789abcdef0123456789";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(api());
    runtime.block_on(footprint());
}

/// Writes the configuration and starts `oms serve`; (process, base URL).
fn serve(dir: &Path, accounts: &str) -> (Daemon, String) {
    for (file, secret) in [("admin-token", ADMIN), ("demo-password", "secret")] {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(file);
        std::fs::write(&path, secret).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = format!(
        "state_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\nadmin_token_file = \"admin-token\"\n\
         [api]\nmax_count = 100\nclient_rate_per_sec = 1000000\nclient_burst = 1000000\n\
         [fleet]\npoll_interval_secs = 1.0\nrefresh_interval_secs = 30.0\n\
         [[profiles]]\nname = \"small\"\nmin_vcpus = 1\nmin_ram_mb = 512\nmin_disk_gb = 1\nimage = \"cirros-fake\"\n{accounts}",
        dir.join("state").display()
    );
    std::fs::write(dir.join("oms.toml"), config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(["serve", "--config", dir.join("oms.toml").to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    std::thread::spawn(move || for _ in lines {});
    (
        Daemon(child),
        first.trim_start_matches("listening on ").to_owned(),
    )
}

/// The daemon, killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    /// Resident memory in MiB, from /proc.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        kb / 1024.0
    }
}

/// An admin GET and its JSON body.
async fn admin_get(client: &reqwest::Client, url: &str) -> Value {
    let answer = client.get(url).bearer_auth(ADMIN).send().await.unwrap();
    answer.json().await.unwrap()
}

async fn api() {
    let sim = Simulator::start(common::instant_sim(1, 2)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let auth_url = &sim.providers()[0].auth_url;
    let account = format!(
        "[[accounts]]\nname = \"fast\"\nauth_url = \"{auth_url}\"\nusername = \"demo\"\nproject_name = \"demo\"\n\
         password_file = \"demo-password\"\n[accounts.limits]\nmutating_per_sec = 5000.0\nread_per_sec = 5000.0\nmax_concurrent_creates = 500\n"
    );
    let (_daemon, base) = serve(dir.path(), &account);
    let client = common::http();
    wait_ready(&client, &base, 2).await;

    // 10,000 instances, launched a hundred at a time, all active.
    let seeding = Instant::now();
    for _ in 0..100 {
        let answer = client
            .post(format!("{base}/v1/instances"))
            .bearer_auth(ADMIN)
            .json(&json!({"profile": "small", "count": 100, "public_key": PUBLIC}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 202);
    }
    // Done when nothing is pending, scheduled or building any more.
    loop {
        let mut busy = 0;
        for status in ["pending", "scheduled", "building"] {
            let page = admin_get(
                &client,
                &format!("{base}/v1/instances?status={status}&limit=1"),
            )
            .await;
            busy += page["instances"].as_array().map_or(0, Vec::len);
        }
        if busy == 0 {
            break;
        }
        assert!(
            seeding.elapsed() < Duration::from_secs(600),
            "seeding stalled"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let seeded = seeding.elapsed().as_secs_f64();

    let generator = if wrk_available() {
        "wrk"
    } else {
        "this process (install wrk for a lighter load generator)"
    };
    let get = if wrk_available() {
        wrk(
            &format!("{base}/v1/instances?limit=50"),
            32,
            10,
            "wrk.headers[\"Authorization\"] = \"Bearer ADMIN\"",
        )
    } else {
        let (client, url) = (client.clone(), format!("{base}/v1/instances?limit=50"));
        common::load(32, 10, move || {
            let request = client.get(&url).bearer_auth(ADMIN).send();
            async move {
                match request.await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                }
            }
        })
        .await
    };
    let body = json!({"profile": "small", "count": 1, "public_key": PUBLIC}).to_string();
    let post = if wrk_available() {
        wrk(
            &format!("{base}/v1/instances"),
            16,
            10,
            &format!(
                "wrk.method = \"POST\"\nwrk.body = '{body}'\n\
                 wrk.headers[\"Content-Type\"] = \"application/json\"\n\
                 wrk.headers[\"Authorization\"] = \"Bearer ADMIN\""
            ),
        )
    } else {
        let (client, url) = (client.clone(), format!("{base}/v1/instances"));
        common::load(16, 10, move || {
            let request = client
                .post(&url)
                .bearer_auth(ADMIN)
                .header("content-type", "application/json")
                .body(body.clone())
                .send();
            async move { matches!(request.await, Ok(r) if r.status().as_u16() == 202) }
        })
        .await
    };
    println!("| API (oms serve; load from {generator}) | requests/s | p50 | p99 | failed |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, (rps, p50, p99, failed)) in [
        (
            "GET /v1/instances?limit=50, 10,000 in the store, 32 connections",
            get,
        ),
        ("POST /v1/instances (accepted), 16 connections", post),
    ] {
        println!("| {name} | {rps:.0} | {p50:.2} ms | {p99:.2} ms | {failed} |");
    }
    println!("\n(seeding 10,000 active instances through the API took {seeded:.1} s)\n");
    sim.shutdown().await;
}

/// Whether Debian's `wrk` is installed.
fn wrk_available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Loads `url` with wrk (two threads, `connections`, `secs`) set up by the
/// Lua `script` (`ADMIN` stands for the admin token); (requests/s, p50 ms,
/// p99 ms, non-2xx answers and socket errors).
fn wrk(url: &str, connections: usize, secs: u64, script: &str) -> (f64, f64, f64, usize) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script.replace("ADMIN", ADMIN)).unwrap();
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{secs}s")])
        .args(["--latency", "-s", file.path().to_str().unwrap(), url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let ms = |value: &str| -> f64 {
        let split = value
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(value.len());
        let (number, unit) = value.split_at(split);
        let number: f64 = number.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => number / 1000.0,
            "s" => number * 1000.0,
            _ => number,
        }
    };
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().last())
    };
    let rps = field("Requests/sec:").map_or(f64::NAN, |v| v.parse().unwrap_or(f64::NAN));
    let p50 = field("50%").map_or(f64::NAN, ms);
    let p99 = field("99%").map_or(f64::NAN, ms);
    let mut failed = field("Non-2xx or 3xx responses:").map_or(0, |v| v.parse().unwrap_or(0));
    if let Some(line) = text.lines().find(|l| l.contains("Socket errors:")) {
        failed += line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<usize>().ok())
            .sum::<usize>();
    }
    assert!(rps.is_finite(), "wrk printed no rate:\n{text}");
    (rps, p50, p99, failed)
}

const PUBLIC: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpDFr+8I0HQV9icG0+dBIJHThN1YYprA6OMhadAwztn bench";

/// Waits for `/readyz` and for `regions` connected account-regions.
async fn wait_ready(client: &reqwest::Client, base: &str, regions: usize) -> (f64, f64) {
    let start = Instant::now();
    let mut ready_at = None;
    loop {
        if ready_at.is_none()
            && client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        {
            ready_at = Some(start.elapsed().as_secs_f64());
        }
        if let Some(ready) = ready_at {
            let body = admin_get(client, &format!("{base}/v1/regions")).await;
            let connected = body["regions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["connected"] == true)
                .count();
            if connected >= regions {
                return (ready, start.elapsed().as_secs_f64());
            }
        }
        assert!(start.elapsed() < Duration::from_secs(300), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 250 accounts × 4 regions and 100,000 instance records (finished ones:
/// deleted or failed, as months of use leave them), written straight into
/// a state directory; then the daemon starts on it.
async fn footprint() {
    let sim = Simulator::start(common::instant_sim(250, 4)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seeding = Instant::now();
    {
        let store = openmultistack::state::open_store(&dir.path().join("state")).unwrap();
        for provider in sim.providers() {
            store
                .put_account(&common::account(&provider.name, &provider.auth_url, 5.0))
                .unwrap();
        }
        let accounts = store.list_accounts().unwrap();
        for r in 0..1_000u32 {
            let request = LaunchRequest {
                id: format!("req-{r:06}"),
                client: "bench".into(),
                idempotency_key: None,
                body_digest: String::new(),
                profile: "small".into(),
                count: 100,
                name_prefix: "bench".into(),
                user_data: None,
                metadata: BTreeMap::new(),
                public_key: None,
                hints: PlacementHints::default(),
                expires_in_secs: None,
                deadline: Utc::now(),
                max_attempts: 10,
                created_at: Utc::now(),
                replace_lost: false,
                tags: Vec::new(),
            };
            let instances: Vec<Instance> = (0..100)
                .map(|i| {
                    let account = &accounts[(r as usize * 7 + i as usize) % accounts.len()];
                    Instance {
                        id: Instance::id_for(&request.id, i),
                        request_id: request.id.clone(),
                        client: "bench".into(),
                        name: format!("bench-{r}-{i}"),
                        profile: "small".into(),
                        state: if i % 10 == 0 {
                            InstanceState::Failed
                        } else {
                            InstanceState::Deleted
                        },
                        attempt: Some(Attempt {
                            id: format!("att-{r}-{i}"),
                            account_id: account.id.clone(),
                            region: format!("{}-{}", account.name, i % 4),
                            server_id: Some(format!("srv-{r}-{i}")),
                            keypair: None,
                            started_at: Utc::now(),
                        }),
                        attempts: 1,
                        address: Some("10.0.0.1".into()),
                        failure: None,
                        expires_at: None,
                        provider_status: None,
                        deadline: None,
                        replaced: 0,
                        created_at: Utc::now(),
                        updated_at: Utc::now(),
                    }
                })
                .collect();
            store.insert_request(&request, &instances).unwrap();
        }
        store.flush().await.unwrap();
    }
    let seeded = seeding.elapsed().as_secs_f64();

    let (daemon, base) = serve(dir.path(), "");
    let client = common::http();
    let (ready, connected) = wait_ready(&client, &base, 1_000).await;
    let rss_ready = daemon.rss_mib();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let rss_settled = daemon.rss_mib();
    println!("| footprint: 1,000 account-regions, 100,000 instance records | value |");
    println!("| --- | --- |");
    println!("| start to ready (`/readyz` answers 200) | {ready:.2} s |");
    println!("| start to all 1,000 account-regions connected | {connected:.1} s |");
    println!("| resident memory when ready | {rss_ready:.0} MiB |");
    println!("| resident memory 20 s later (polling, refreshing) | {rss_settled:.0} MiB |");
    println!("\n(writing the state took {seeded:.1} s)");
    drop(daemon);
    sim.shutdown().await;
}
