//! The `oms` binary as operators run it: a token made on the command line
//! opens the API of `oms serve`; `oms demo` comes up with six regions and
//! live instances; both stop cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::eventually;
use serde_json::Value;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn terminate_and_wait(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "oms did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn oms() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oms"))
}

/// Starts `oms args`, returning it and the stdout lines up to one
/// starting with `until`.
fn start(args: &[&str], until: &str) -> (Running, Vec<String>) {
    start_with_stderr(args, until, Stdio::null())
}

fn start_with_stderr(args: &[&str], until: &str, stderr: Stdio) -> (Running, Vec<String>) {
    let mut child = oms()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in reader.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with(until);
        lines.push(line);
        if done {
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader {});
    (Running(child), lines)
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_line_token_opens_the_api_of_oms_serve() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let created = oms()
        .args([
            "token",
            "create",
            "--state-dir",
            state,
            "--name",
            "root",
            "--role",
            "admin",
            // The first admin token, before the daemon ever ran.
            "--create",
        ])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("oms_"));
    assert!(
        !String::from_utf8_lossy(&created.stderr).contains(&token),
        "the value goes to stdout only, never into the log"
    );

    let (serve, lines) = start(
        &["serve", "--state-dir", state, "--listen", "127.0.0.1:0"],
        "listening on",
    );
    let base = lines
        .last()
        .unwrap()
        .trim_start_matches("listening on ")
        .to_owned();
    assert_eq!(get(&format!("{base}/healthz"), None).await.0, 200);
    eventually(Duration::from_secs(10), "ready", || async {
        (get(&format!("{base}/readyz"), None).await.0 == 200).then_some(())
    })
    .await;
    let (status, tokens) = get(&format!("{base}/v1/tokens"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(tokens["tokens"][0]["name"], "root");
    assert_eq!(
        get(&format!("{base}/v1/tokens"), Some("oms_wrong")).await.0,
        401
    );

    // The store is the daemon's while it runs.
    let busy = oms()
        .args(["token", "list", "--state-dir", state])
        .output()
        .unwrap();
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("REST API"));

    assert!(serve.terminate_and_wait().success());
    let listed = oms()
        .args(["token", "list", "--state-dir", state])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("root"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(format!("{state}/secret.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oms_demo_comes_up_with_six_regions_and_live_instances() {
    let (demo, lines) = start(&["demo", "--listen", "127.0.0.1:0"], "stop");
    let find = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_owned()
    };
    let regions_url = find("api");
    let token = find("token");
    let base = regions_url.trim_end_matches("/v1/regions").to_owned();
    eventually(Duration::from_secs(30), "six regions", || async {
        let (_, body) = get(&regions_url, Some(&token)).await;
        (body["regions"].as_array().map_or(0, Vec::len) == 6).then_some(())
    })
    .await;
    eventually(Duration::from_secs(60), "demo instances active", || async {
        let (_, body) = get(&format!("{base}/v1/instances?status=active"), Some(&token)).await;
        (body["instances"].as_array().map_or(0, Vec::len) == 6).then_some(())
    })
    .await;
    // The pages are served too.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let home = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(home.status().as_u16(), 303);
    let login = http.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(login.status().as_u16(), 200);
    assert!(login.text().await.unwrap().contains("Admin token"));
    assert!(demo.terminate_and_wait().success());
}

fn banner_value(lines: &[String], prefix: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {lines:#?}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

async fn accounts_connected(base: &str, token: &str, count: usize) {
    eventually(Duration::from_secs(30), "accounts connected", || async {
        let (_, body) = get(&format!("{base}/v1/regions"), Some(token)).await;
        let connected = body["accounts"].as_array().map_or(0, |a| {
            a.iter().filter(|a| a["health"] == "connected").count()
        });
        (connected == count).then_some(())
    })
    .await;
}

/// The demo is quiet on the terminal (its log goes to the file it names),
/// prints the simulated providers and a clouds.yaml that imports as is,
/// and with --state-dir keeps what it was given across runs, its
/// accounts following the simulated providers to their new ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oms_demo_is_quiet_imports_its_clouds_yaml_and_keeps_state_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("demo");
    let state_arg = state.to_str().unwrap();
    let stderr_file = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_file).unwrap();
    let (demo, lines) = start_with_stderr(
        &["demo", "--listen", "127.0.0.1:0", "--state-dir", state_arg],
        "stop",
        Stdio::from(stderr),
    );
    let base = banner_value(&lines, "web").trim_end_matches('/').to_owned();
    let token = banner_value(&lines, "token");
    let log = banner_value(&lines, "logs");
    assert_eq!(log, state.join("oms-demo.log").to_str().unwrap());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("/v3") && l.contains("demo/secret")),
        "{lines:#?}"
    );
    let clouds = banner_value(&lines, "clouds");
    accounts_connected(&base, &token, 3).await;
    let imported = oms()
        .args(["account", "import-clouds", &clouds, "--url", &base])
        .env("OMS_TOKEN", &token)
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    accounts_connected(&base, &token, 6).await;
    assert!(demo.terminate_and_wait().success());
    assert_eq!(
        std::fs::read_to_string(&stderr_file).unwrap(),
        "",
        "the demo wrote to the terminal"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("account connected")
    );

    // Again on the same directory: a new token, the six accounts back.
    let (demo, lines) = start(
        &["demo", "--listen", "127.0.0.1:0", "--state-dir", state_arg],
        "stop",
    );
    let base = banner_value(&lines, "web").trim_end_matches('/').to_owned();
    let second = banner_value(&lines, "token");
    assert_ne!(second, token);
    accounts_connected(&base, &second, 6).await;
    assert!(demo.terminate_and_wait().success());
}

/// The README's tour of the API, pasted into bash against `oms demo` as
/// the README says: every call must succeed (`curl -f`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_api_tour_runs_pasted_against_the_demo() {
    let readme = include_str!("../README.md");
    let tour = readme
        .split("## A tour of the API")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|block| block.split("\n```").next())
        .expect("the tour's sh block");
    let (first, script) = tour.split_once('\n').unwrap();
    assert!(first.starts_with("B=") && first.contains("T=") && first.contains("A="));
    let (demo, lines) = start(&["demo", "--listen", "127.0.0.1:0"], "stop");
    let base = banner_value(&lines, "web").trim_end_matches('/').to_owned();
    let token = banner_value(&lines, "token");
    let alpha = banner_value(&lines, "  alpha");
    accounts_connected(&base, &token, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let ran = tokio::task::spawn_blocking({
        let script = script.to_owned();
        let dir = dir.path().to_owned();
        move || {
            Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .current_dir(dir)
                .env("B", base)
                .env("T", token)
                .env("A", alpha)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        ran.status.success(),
        "the tour failed:\n{}\n{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    let out = String::from_utf8_lossy(&ran.stdout);
    assert!(
        out.contains("\"alpha-ops\"") && out.contains("\"deleting\""),
        "{out}"
    );
    assert!(demo.terminate_and_wait().success());
}
