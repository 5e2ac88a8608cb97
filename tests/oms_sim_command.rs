//! `oms sim` as operators run it: the real binary, its printed endpoints,
//! the `/_sim/` control API over HTTP, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oms_actors::openstack::{
    AuthSpec, Class, Client, ClientConfig, ComputeClient, IdentityVersion, Interface, Session,
};
use serde_json::{Value, json};

struct Running {
    child: Child,
    control: String,
    auth_urls: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `oms sim`, reading the control line and `providers` provider lines.
fn start(args: &[&str], providers: usize) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oms"))
        .arg("sim")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("oms starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let control = lines.next().unwrap().unwrap();
    let control = control
        .strip_prefix("control  ")
        .unwrap()
        .trim_end_matches("/_sim/state")
        .to_owned();
    let mut auth_urls = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "auth_url").unwrap();
        auth_urls.push(words[at + 1].to_owned());
        assert!(line.contains("demo/secret@demo/Default"), "{line}");
        if auth_urls.len() == providers {
            break;
        }
    }
    Running {
        child,
        control,
        auth_urls,
    }
}

fn session(auth_url: &str) -> std::sync::Arc<Session> {
    Session::new(
        Client::new(ClientConfig::default()).unwrap(),
        AuthSpec {
            auth_url: auth_url.parse().unwrap(),
            identity_version: IdentityVersion::V3,
            credentials: crate::support::password("demo", "secret", "demo"),
            interface: Interface::Public,
        },
    )
}

#[tokio::test]
async fn default_serves_three_providers_of_two_regions() {
    let sim = start(&[], 3);
    assert_eq!(sim.auth_urls.len(), 3);
    for auth_url in &sim.auth_urls {
        let catalog = session(auth_url).catalog().await.unwrap();
        assert_eq!(catalog.regions("compute", Interface::Public).len(), 2);
    }
}

#[tokio::test]
async fn faults_are_set_at_run_time_through_the_control_api() {
    let sim = start(&[], 3);
    let http = reqwest::Client::new();
    let compute = ComputeClient::connect(session(&sim.auth_urls[0]), "alpha-1")
        .await
        .unwrap();
    compute.flavors().await.unwrap();

    let put = http
        .put(format!(
            "{}/_sim/providers/alpha/regions/alpha-1/faults",
            sim.control
        ))
        .json(&json!({"outage": "maintenance"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let error = compute.flavors().await.unwrap_err();
    assert_eq!((error.class, error.status), (Class::ServerError, Some(503)));

    let bad = http
        .put(format!(
            "{}/_sim/providers/alpha/regions/alpha-1/faults",
            sim.control
        ))
        .json(&json!({"outage": "sometimes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = http
        .put(format!("{}/_sim/providers/nope/faults", sim.control))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    http.put(format!("{}/_sim/providers/alpha/faults", sim.control))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    compute.flavors().await.unwrap();

    let state: Value = http
        .get(format!("{}/_sim/state", sim.control))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls = &state["providers"][0]["regions"][0]["calls"]["GET/compute/v2.1/flavors/detail"];
    assert_eq!(calls["count"], 3);
    assert_eq!(calls["times_ms"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_config_file_describes_the_providers() {
    let dir = std::env::temp_dir().join(format!("oms-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sim.toml");
    std::fs::write(
        &file,
        "[[providers]]\nname = \"solo\"\n[[providers.regions]]\nname = \"solo-east\"\n[providers.regions.quota]\ninstances = 3\n",
    )
    .unwrap();
    let sim = start(&["--config", file.to_str().unwrap()], 1);
    assert_eq!(sim.auth_urls.len(), 1);
    let compute = ComputeClient::connect(session(&sim.auth_urls[0]), "solo-east")
        .await
        .unwrap();
    assert_eq!(compute.limits().await.unwrap().max_total_instances, 3);
}

#[test]
fn a_bad_config_file_is_refused_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("oms-sim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sim.toml");
    std::fs::write(&file, "[[providers]]\nnmae = \"typo\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(["sim", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nmae"), "{stderr}");
}

#[test]
fn sigterm_stops_it_cleanly() {
    let mut sim = start(&[], 3);
    let pid = sim.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = sim.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "oms sim did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
