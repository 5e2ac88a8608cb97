//! The real `oms serve` alone on sled, and on etcd alone and as three
//! members: accepted launches per second and `GET /v1/instances` per
//! second, from clients spread over every member, against a simulator
//! that builds at once. etcd runs three members on loopback, as the
//! cluster tests start it.
//!
//! `cargo bench --features etcd --bench cluster` prints a Markdown table;
//! `BENCH_SECS` sets each measurement's length (5 s by default).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oms_cluster::testing::EtcdCluster;
use oms_sim::Simulator;
use serde_json::{Value, json};

mod common;

const ADMIN: &str = "oms_bench-admin-token-0123456789abcdef0123456789";
const PUBLIC: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpDFr+8I0HQV9icG0+dBIJHThN1YYprA6OMhadAwztn bench";

/// A member process, killed when dropped.
struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Starts `members` daemons (on etcd when `etcd` is given); their URLs.
fn start(
    dir: &Path,
    auth_url: &str,
    etcd: Option<&EtcdCluster>,
    members: usize,
) -> (Vec<Member>, Vec<String>) {
    private(&dir.join("admin-token"), ADMIN);
    private(&dir.join("demo-password"), "secret");
    let mut procs = Vec::new();
    let mut urls = Vec::new();
    for n in 0..members {
        let state = dir.join(format!("m{n}"));
        std::fs::create_dir_all(&state).unwrap();
        private(&state.join("secret.key"), &"k".repeat(32));
        let url = format!("127.0.0.1:{}", free_port());
        let store = match etcd {
            Some(etcd) => format!(
                "[store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [{}]\n[cluster]\nmember = \"m{n}\"\n",
                etcd.endpoints()
                    .iter()
                    .map(|e| format!("\"{e}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        let config = format!(
            "state_dir = \"{}\"\nlisten = \"{url}\"\nadmin_token_file = \"admin-token\"\n\
             [api]\nmax_count = 100\nclient_rate_per_sec = 1000000\nclient_burst = 1000000\n\
             [fleet]\npoll_interval_secs = 1.0\nrefresh_interval_secs = 30.0\n{store}\
             [[profiles]]\nname = \"small\"\nmin_vcpus = 1\nmin_ram_mb = 512\nmin_disk_gb = 1\nimage = \"cirros-fake\"\n\
             [[accounts]]\nname = \"fast\"\nauth_url = \"{auth_url}\"\nusername = \"demo\"\nproject_name = \"demo\"\n\
             password_file = \"demo-password\"\n[accounts.limits]\nmutating_per_sec = 1000.0\nread_per_sec = 1000.0\nmax_concurrent_creates = 500\n",
            state.display()
        );
        let file = dir.join(format!("m{n}.toml"));
        std::fs::write(&file, config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_oms"))
            .args(["serve", "--config", file.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("m{n}.log"))).unwrap())
            .spawn()
            .unwrap();
        procs.push(Member(child));
        urls.push(format!("http://{url}"));
    }
    (procs, urls)
}

/// Waits until every member lists both regions healthy.
async fn wait_ready(client: &reqwest::Client, urls: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in urls {
        loop {
            let healthy = async {
                let body: Value = client
                    .get(format!("{url}/v1/regions"))
                    .bearer_auth(ADMIN)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                Some(
                    body["regions"]
                        .as_array()?
                        .iter()
                        .filter(|r| r["health"] == "healthy")
                        .count(),
                )
            }
            .await;
            if healthy == Some(2) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} not ready (its log is in the directory printed above; KEEP_TEST_DIR=1 keeps it)"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One row: launches and listings per second through `urls`.
async fn measure(urls: Vec<String>, secs: u64) -> [String; 6] {
    let client = common::http();
    wait_ready(&client, &urls).await;
    let urls = std::sync::Arc::new(urls);
    let turn = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let next = {
        let (urls, turn) = (urls.clone(), turn.clone());
        move || urls[turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % urls.len()].clone()
    };
    let launches = {
        let (client, next) = (client.clone(), next.clone());
        common::load(16, secs, move || {
            let (client, url) = (client.clone(), next());
            async move {
                client
                    .post(format!("{url}/v1/instances"))
                    .bearer_auth(ADMIN)
                    .json(&json!({"profile": "small", "count": 1, "public_key": PUBLIC}))
                    .send()
                    .await
                    .is_ok_and(|a| a.status().as_u16() == 202)
            }
        })
        .await
    };
    let listings = common::load(16, secs, move || {
        let (client, url) = (client.clone(), next());
        async move {
            client
                .get(format!("{url}/v1/instances?limit=50"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .is_ok_and(|a| a.status().is_success())
        }
    })
    .await;
    [
        format!("{:.0}", launches.0),
        format!("{:.1} / {:.1} ms", launches.1, launches.2),
        launches.3.to_string(),
        format!("{:.0}", listings.0),
        format!("{:.1} / {:.1} ms", listings.1, listings.2),
        listings.3.to_string(),
    ]
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sim = Simulator::start(common::instant_sim(1, 2)).await.unwrap();
        let auth_url = sim.providers()[0].auth_url.clone();
        let mut rows = Vec::new();
        for (label, etcd, members) in [
            ("sled, one daemon", false, 1),
            ("etcd, one daemon", true, 1),
            ("etcd, three daemons", true, 3),
        ] {
            let dir = tempfile::Builder::new()
                .disable_cleanup(std::env::var_os("KEEP_TEST_DIR").is_some())
                .tempdir()
                .unwrap();
            eprintln!("{label}: {}", dir.path().display());
            let cluster = if etcd {
                Some(EtcdCluster::start(3).await)
            } else {
                None
            };
            let (_members, urls) = start(dir.path(), &auth_url, cluster.as_ref(), members);
            rows.push((label, measure(urls, secs).await));
        }
        println!(
            "| {secs} s each, 16 clients | launches/s | p50 / p99 | failed | GET /v1/instances/s | p50 / p99 | failed |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for (label, row) in rows {
            println!("| {label} | {} |", row.join(" | "));
        }
    });
}
