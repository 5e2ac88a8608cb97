//! Driving the real `oms` binary: processes, the simulator's state, the
//! API as an admin.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The admin token the test configurations declare.
pub const ADMIN: &str = "oms_kill-test-admin-token-0123456789abcdef";

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `oms args` and returns its first `lines` lines of output.
pub fn start(args: &[&str], lines: usize) -> (Proc, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
    let read: Vec<String> = reader.by_ref().take(lines).map(|l| l.unwrap()).collect();
    std::thread::spawn(move || for _ in reader {});
    (Proc(child), read)
}

/// `oms sim --config FILE` with `providers` providers: the process, the
/// control URL (without `/_sim/state`) and each provider's auth URL.
pub fn start_sim(config: &std::path::Path, providers: usize) -> (Proc, String, Vec<String>) {
    let (sim, lines) = start(
        &["sim", "--config", config.to_str().unwrap()],
        1 + providers,
    );
    let control = lines[0]
        .trim_start_matches("control  ")
        .trim_end_matches("/_sim/state")
        .to_owned();
    let auth_urls = lines[1..]
        .iter()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "auth_url").unwrap();
            words[at + 1].to_owned()
        })
        .collect();
    (sim, control, auth_urls)
}

/// `oms serve --config FILE`, and the API's base URL.
pub fn serve(config: &str) -> (Proc, String) {
    let (proc, lines) = start(&["serve", "--config", config], 1);
    let base = lines[0].trim_start_matches("listening on ").to_owned();
    (proc, base)
}

/// `GET /_sim/state`.
pub async fn sim_state(control: &str) -> Value {
    reqwest::get(format!("{control}/_sim/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn regions(state: &Value) -> impl Iterator<Item = &Value> {
    state["providers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["regions"].as_array().unwrap().iter())
}

/// Every server alive in the simulator.
pub fn sim_servers(state: &Value) -> Vec<Value> {
    regions(state)
        .flat_map(|r| r["servers"].as_array().unwrap().iter().cloned())
        .collect()
}

/// Every key pair of ours (`oms-k-...`) in the simulator.
pub fn sim_keypairs(state: &Value) -> Vec<String> {
    regions(state)
        .flat_map(|r| {
            r["keypairs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
        })
        .filter(|k| k.starts_with("oms-k-"))
        .collect()
}

/// Calls of one route summed over every region.
pub fn sim_calls(state: &Value, route: &str) -> u64 {
    regions(state)
        .map(|r| r["calls"][route]["count"].as_u64().unwrap_or(0))
        .sum()
}

/// Every instance (as admin), optionally of one status.
pub async fn all_instances(http: &reqwest::Client, base: &str, status: Option<&str>) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/instances?limit=500");
        if let Some(s) = status {
            url.push_str(&format!("&status={s}"));
        }
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(&url)
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.extend(page["instances"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

/// Writes a secret file others cannot read.
pub fn private_file(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
