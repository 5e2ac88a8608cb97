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
    let mut child = oms()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
