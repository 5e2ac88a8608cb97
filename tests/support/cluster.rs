//! A cluster as operators run one: etcd members on loopback, `oms sim`,
//! and several `oms serve` processes on the etcd store, each with its log
//! in the test's directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oms_cluster::testing::EtcdCluster;
use serde_json::{Value, json};

use crate::support::binary::{ADMIN, Proc, private_file, start_sim};

/// The simulated provider: one account, two regions, room for a few
/// hundred servers, quick builds.
const SIM: &str = r#"
[[providers]]
name = "solo"
[[providers.regions]]
name = "solo-1"
build_secs = 0.5
delete_secs = 0.3
[providers.regions.quota]
instances = 2000
key_pairs = 2000
cores = 100000
ram = 100000000
[[providers.regions]]
name = "solo-2"
build_secs = 0.5
delete_secs = 0.3
[providers.regions.quota]
instances = 2000
key_pairs = 2000
cores = 100000
ram = 100000000
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory for a test's cluster, kept after the test when
/// `KEEP_TEST_DIR` is set (to read the members' logs).
pub fn test_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .disable_cleanup(std::env::var_os("KEEP_TEST_DIR").is_some())
        .tempdir()
        .unwrap()
}

/// One `oms serve` member.
pub struct Member {
    /// Its process.
    pub proc: Proc,
    /// Its API.
    pub base: String,
}

/// etcd, the simulator and the members.
pub struct TestCluster {
    /// The etcd members.
    pub etcd: EtcdCluster,
    /// The simulator.
    pub sim: Proc,
    /// The simulator's control URL.
    pub control: String,
    /// Running members by index (None: killed).
    pub members: Vec<Option<Member>>,
    /// Each member's API URL (fixed ports: a member that starts over
    /// listens where it did).
    pub urls: Vec<String>,
    /// The lease TTL, seconds.
    pub ttl: u64,
    dir: PathBuf,
}

impl TestCluster {
    /// Starts etcd (`etcd_members`), the simulator and `size` members with
    /// a lease of `ttl` seconds; returns once one of them leads.
    pub async fn start(dir: &Path, size: usize, etcd_members: usize, ttl: u64) -> TestCluster {
        // Shown with a failure; KEEP_TEST_DIR=1 keeps the directory.
        eprintln!("cluster logs in {}", dir.display());
        let etcd = EtcdCluster::start(etcd_members).await;
        let sim_config = dir.join("sim.toml");
        std::fs::write(&sim_config, SIM).unwrap();
        let (sim, control, auth_urls) = start_sim(&sim_config, 1);
        private_file(&dir.join("admin-token"), ADMIN);
        private_file(&dir.join("demo-password"), "secret");
        let urls: Vec<String> = (0..size)
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        for (n, url) in urls.iter().enumerate() {
            let endpoints: Vec<String> = etcd
                .endpoints()
                .iter()
                .map(|e| format!("\"{e}\""))
                .collect();
            std::fs::write(
                dir.join(format!("m{n}.toml")),
                format!(
                    "state_dir = \"{state}\"\nlisten = \"{listen}\"\nadmin_token_file = \"admin-token\"\n\
                     [api]\nclient_rate_per_sec = 500\nclient_burst = 100\n\
                     [store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [{endpoints}]\nprefix = \"/oms-test/\"\nrequest_timeout_secs = 3.0\n\
                     [cluster]\nmember = \"m{n}\"\nlease_ttl_secs = {ttl}\n\
                     [fleet]\npoll_interval_secs = 0.5\nrefresh_interval_secs = 1.0\nleak_interval_secs = 2.0\nleak_grace_secs = 10.0\nadoption_grace_secs = 5\n\
                     [[profiles]]\nname = \"small\"\nmin_vcpus = 1\nmin_ram_mb = 512\nmin_disk_gb = 1\nimage = \"cirros-fake\"\n\
                     [[accounts]]\nname = \"solo\"\nauth_url = \"{auth}\"\nusername = \"demo\"\nproject_name = \"demo\"\npassword_file = \"demo-password\"\n",
                    state = dir.join(format!("m{n}-state")).display(),
                    listen = url.trim_start_matches("http://"),
                    endpoints = endpoints.join(", "),
                    auth = auth_urls[0],
                ),
            )
            .unwrap();
        }
        // Every member seals with the same key, as the README says.
        for n in 0..size {
            let state = dir.join(format!("m{n}-state"));
            std::fs::create_dir_all(&state).unwrap();
            private_file(&state.join("secret.key"), &"k".repeat(32));
        }
        let mut cluster = TestCluster {
            etcd,
            sim,
            control,
            members: (0..size).map(|_| None).collect(),
            urls,
            ttl,
            dir: dir.to_owned(),
        };
        for n in 0..size {
            cluster.start_member(n);
        }
        cluster.wait_leader(Duration::from_secs(30)).await;
        cluster
    }

    /// Starts member `n` (again), its log appended to `m<n>.log`.
    pub fn start_member(&mut self, n: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("m{n}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_oms"))
            .args(["serve", "--config"])
            .arg(self.dir.join(format!("m{n}.toml")))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.members[n] = Some(Member {
            proc: Proc(child),
            base: self.urls[n].clone(),
        });
    }

    /// Kills member `n` with SIGKILL.
    pub fn kill(&mut self, n: usize) {
        self.members[n] = None;
    }

    /// Sends `signal` (STOP, CONT) to member `n`.
    pub fn signal(&self, n: usize, signal: &str) {
        let pid = self.members[n].as_ref().unwrap().proc.0.id();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `GET /v1/cluster` of member `n`, if it answers.
    pub async fn status(&self, n: usize) -> Option<Value> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let answer = http
            .get(format!("{}/v1/cluster", self.urls[n]))
            .bearer_auth(ADMIN)
            .send()
            .await
            .ok()?;
        answer.status().is_success().then_some(())?;
        answer.json().await.ok()
    }

    /// The member that leads, as the running members report it (all that
    /// answer must agree, and the leader must say it leads).
    pub async fn leader(&self, except: Option<usize>) -> Option<usize> {
        for n in 0..self.members.len() {
            if Some(n) == except || self.members[n].is_none() {
                continue;
            }
            if let Some(status) = self.status(n).await
                && status["leading"] == true
            {
                return Some(n);
            }
        }
        None
    }

    /// Waits until some member other than `except` leads; answers it.
    pub async fn wait_leader_except(&self, except: Option<usize>, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(n) = self.leader(except).await {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "no leader within {within:?}; logs in {}",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until a member leads.
    pub async fn wait_leader(&self, within: Duration) -> usize {
        self.wait_leader_except(None, within).await
    }

    /// Where the members' logs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Launches one instance with `key`, trying the members in turn from
/// `first` until one answers 2xx (a killed member refuses connections; a
/// member without a leader answers 503). Answers the request id.
pub async fn launch(http: &reqwest::Client, urls: &[String], first: usize, key: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut attempt = 0;
    loop {
        let url = &urls[(first + attempt) % urls.len()];
        attempt += 1;
        let sent = http
            .post(format!("{url}/v1/instances"))
            .bearer_auth(ADMIN)
            .header("Idempotency-Key", key)
            .json(&json!({"profile": "small", "count": 1, "name_prefix": key}))
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => {
                let body: Value = answer.json().await.unwrap();
                return body["request"]["id"].as_str().unwrap().to_owned();
            }
            // No leader now, or too fast for the token's rate: later.
            Ok(answer) if answer.status().is_server_error() || answer.status() == 429 => {}
            Ok(answer) => panic!(
                "launch {key} refused: {} {}",
                answer.status(),
                answer.text().await.unwrap_or_default()
            ),
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "launch {key} never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
