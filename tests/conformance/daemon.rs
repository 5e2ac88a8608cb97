//! The real `oms serve` pointed at the conformance cloud, and the admin's
//! calls to its API.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::cloud::auth_url;
use crate::support::binary::{ADMIN, Proc, private_file};

/// How a test wants its daemon.
pub struct Options {
    /// Register the demo account in the configuration (otherwise the
    /// test registers it through the API).
    pub with_account: bool,
    /// Creates in flight per region.
    pub max_concurrent_creates: u32,
    /// How often limits and usage are read again from Nova.
    pub refresh_secs: f64,
    /// The daemon's own defaults for the fleet and the account's limits
    /// (the benchmark measures what operators get), not the tier's
    /// quicker settings.
    pub defaults: bool,
    /// `RUST_LOG` for the daemon (its default when `None`).
    pub log: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            with_account: true,
            max_concurrent_creates: 4,
            refresh_secs: 10.0,
            defaults: false,
            log: None,
        }
    }
}

/// One daemon; its state and log live under the test's own directory
/// (`target/tmp/conformance/<name>`), kept afterwards for reading.
pub struct Daemon {
    /// The API's base URL.
    pub base: String,
    /// The state directory and log.
    pub dir: PathBuf,
    config: PathBuf,
    log: Option<&'static str>,
    proc: Option<Proc>,
    http: reqwest::Client,
}

impl Daemon {
    /// Writes the configuration and starts `oms serve`.
    pub fn start(name: &str, options: Options) -> Daemon {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("conformance")
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        private_file(&dir.join("admin-token"), ADMIN);
        private_file(&dir.join("demo-password"), "secret");
        let fleet = if options.defaults {
            String::new()
        } else {
            format!(
                "[fleet]\npoll_interval_secs = 1.0\nrefresh_interval_secs = {}\n\
                 adoption_grace_secs = 30\nleak_interval_secs = 5.0\nleak_grace_secs = 10.0\n",
                options.refresh_secs
            )
        };
        let mut config = format!(
            "state_dir = \"{state}\"\nlisten = \"127.0.0.1:0\"\nadmin_token_file = \"admin-token\"\n\
             [api]\nclient_rate_per_sec = 1000\nclient_burst = 1000\n{fleet}\
             [[profiles]]\nname = \"tiny\"\nmin_vcpus = 1\nmin_ram_mb = 512\nmin_disk_gb = 1\nimage = \"cirros-fake\"\nboot_timeout_secs = 180\n",
            state = dir.join("state").display(),
        );
        if options.with_account {
            config.push_str(&format!(
                "[[accounts]]\nname = \"mini\"\nauth_url = \"{url}\"\nusername = \"demo\"\n\
                 user_domain_name = \"Default\"\nproject_name = \"demo\"\nproject_domain_name = \"Default\"\n\
                 password_file = \"demo-password\"\n",
                url = auth_url(),
            ));
            if !options.defaults {
                config.push_str(&format!(
                    "[accounts.limits]\nmutating_per_sec = 10.0\nread_per_sec = 20.0\n\
                     max_concurrent_creates = {}\n",
                    options.max_concurrent_creates
                ));
            }
        }
        let path = dir.join("oms.toml");
        std::fs::write(&path, config).unwrap();
        let mut daemon = Daemon {
            base: String::new(),
            dir,
            config: path,
            log: options.log,
            proc: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        daemon.spawn();
        daemon
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("oms.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_oms"));
        if let Some(log) = self.log {
            command.env("RUST_LOG", log);
        }
        let mut child = command
            .args(["serve", "--config", self.config.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let Some(Ok(first)) = lines.next() else {
            let log = std::fs::read_to_string(self.dir.join("oms.log")).unwrap_or_default();
            panic!("oms serve did not start:\n{log}");
        };
        std::thread::spawn(move || for _ in lines {});
        self.base = first.trim_start_matches("listening on ").to_owned();
        self.proc = Some(Proc(child));
    }

    /// SIGKILL: no goodbye, no flush beyond what was acknowledged.
    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.0.kill().unwrap();
            proc.0.wait().unwrap();
        }
    }

    /// Starts it again on the same state directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// An admin call to the API: status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/instances`, which must be accepted; the 202 body.
    pub async fn launch(&self, body: Value) -> Value {
        let (status, answer) = self
            .call(reqwest::Method::POST, "/v1/instances", Some(body))
            .await;
        assert_eq!(status, 202, "launch refused: {answer}");
        answer
    }

    /// Ids of the instances a launch answer holds.
    pub fn ids(answer: &Value) -> Vec<String> {
        answer["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `GET /v1/instances/{id}` (with its events).
    pub async fn instance(&self, id: &str) -> Value {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("/v1/instances/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until every one of `ids` has `status`; their views.
    pub async fn wait_for(&self, ids: &[String], status: &str, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut views = Vec::new();
            for id in ids {
                views.push(self.instance(id).await);
            }
            if views.iter().all(|v| v["status"] == status) {
                return views;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not all {status} in {within:?}: {}",
                serde_json::to_string_pretty(&views).unwrap()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Deletes `ids` and waits until they are `deleted`.
    pub async fn delete(&self, ids: &[String]) {
        for id in ids {
            let (status, body) = self
                .call(
                    reqwest::Method::DELETE,
                    &format!("/v1/instances/{id}"),
                    None,
                )
                .await;
            assert_eq!(status, 202, "{body}");
        }
        self.wait_for(ids, "deleted", Duration::from_secs(180))
            .await;
    }

    /// `GET /v1/regions`: the status of each account-region.
    pub async fn regions(&self) -> Vec<Value> {
        let (status, body) = self.call(reqwest::Method::GET, "/v1/regions", None).await;
        assert_eq!(status, 200, "{body}");
        body["regions"].as_array().unwrap().clone()
    }

    /// The status of `region`, once the daemon has one.
    pub async fn region(&self, region: &str) -> Option<Value> {
        self.regions()
            .await
            .into_iter()
            .find(|r| r["region"] == region)
    }

    /// Waits until `check` holds for `region`'s status.
    pub async fn wait_region(
        &self,
        region: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let status = self.region(region).await;
            if let Some(status) = &status
                && check(status)
            {
                return status.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{region} never reached the expected state: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Every event message of an instance view, in order.
pub fn messages(view: &Value) -> Vec<String> {
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["where"].as_str().unwrap_or("-"),
                e["message"].as_str().unwrap()
            )
        })
        .collect()
}
