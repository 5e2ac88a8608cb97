//! `oms serve` with a configuration file, against `oms sim` processes:
//! accounts and profiles from the file, an admin token from a credential
//! file, launch → active → delete, SIGTERM within the grace period, a
//! restart on the same state directory, and SIGHUP with a broken account.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::eventually;
use serde_json::{Value, json};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn signal(&self, name: &str) {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "oms did not stop within the grace period"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts `oms args` and returns the stdout lines until `lines` were read.
fn start(args: &[&str], lines: usize) -> (Running, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
    let read: Vec<String> = reader.by_ref().take(lines).map(|l| l.unwrap()).collect();
    std::thread::spawn(move || for _ in reader {});
    (Running(child), read)
}

fn auth_urls(sim_lines: &[String]) -> Vec<String> {
    sim_lines
        .iter()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words
                .iter()
                .position(|w| *w == "auth_url")
                .map(|i| words[i + 1].to_owned())
        })
        .collect()
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn config(dir: &Path, accounts: &str) -> String {
    format!(
        r#"
state_dir = "{state}"
listen = "127.0.0.1:0"
admin_token_file = "admin-token"

[fleet]
poll_interval_secs = 0.3
refresh_interval_secs = 1.0

[[profiles]]
name = "small"
min_vcpus = 1
min_ram_mb = 512
min_disk_gb = 1
image = "cirros-fake"
{accounts}
"#,
        state = dir.join("state").display()
    )
}

fn account(name: &str, auth_url: &str) -> String {
    format!(
        "\n[[accounts]]\nname = \"{name}\"\nauth_url = \"{auth_url}\"\nusername = \"demo\"\nproject_name = \"demo\"\npassword_file = \"demo-password\"\n"
    )
}

struct Http {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Http {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_from_a_config_file_launches_stops_and_restarts() {
    let (_sim, sim_lines) = start(&["sim"], 4);
    let urls = auth_urls(&sim_lines);
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("demo-password"), "secret\n");
    let admin = "oms_configured-admin-token-for-tests";
    write_private(&dir.path().join("admin-token"), admin);
    let file = dir.path().join("oms.toml");
    let accounts = account("alpha", &urls[0]) + &account("beta", &urls[1]);
    std::fs::write(&file, config(dir.path(), &accounts)).unwrap();

    let checked = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    let (serve, lines) = start(&["serve", "--config", file.to_str().unwrap()], 1);
    let http = Http {
        base: lines[0].trim_start_matches("listening on ").to_owned(),
        token: admin.to_owned(),
        client: reqwest::Client::new(),
    };
    eventually(Duration::from_secs(20), "four regions", || async {
        let (_, body) = http.send(reqwest::Method::GET, "/v1/regions", None).await;
        let ready = body["regions"].as_array().map_or(0, |r| {
            r.iter()
                .filter(|r| r["profiles"]["small"]["fit"] == "fits")
                .count()
        });
        (ready == 4).then_some(())
    })
    .await;
    let (status, launched) = http
        .send(
            reqwest::Method::POST,
            "/v1/instances",
            Some(json!({"profile": "small", "count": 2})),
        )
        .await;
    assert_eq!(status, 202, "{launched}");
    let ids: Vec<String> = launched["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        let path = format!("/v1/instances/{id}");
        eventually(Duration::from_secs(30), "active", || async {
            (http.send(reqwest::Method::GET, &path, None).await.1["status"] == "active")
                .then_some(())
        })
        .await;
    }
    let (status, _) = http
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/instances/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let gone = format!("/v1/instances/{}", ids[0]);
    eventually(Duration::from_secs(30), "deleted", || async {
        (http.send(reqwest::Method::GET, &gone, None).await.1["status"] == "deleted").then_some(())
    })
    .await;
    assert!(serve.stop().success());

    // Same state directory: the instances are still there.
    let (serve, lines) = start(&["serve", "--config", file.to_str().unwrap()], 1);
    let http = Http {
        base: lines[0].trim_start_matches("listening on ").to_owned(),
        ..http
    };
    let (status, kept) = http
        .send(
            reqwest::Method::GET,
            &format!("/v1/instances/{}", ids[1]),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(kept["status"], "active");
    assert_eq!(
        http.send(reqwest::Method::GET, &gone, None).await.1["status"],
        "deleted"
    );
    assert!(serve.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_account_keeps_the_others_working() {
    let (_sim, sim_lines) = start(&["sim"], 4);
    let urls = auth_urls(&sim_lines);
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("demo-password"), "secret");
    let admin = "oms_configured-admin-token-for-sighup";
    write_private(&dir.path().join("admin-token"), admin);
    let file = dir.path().join("oms.toml");
    std::fs::write(&file, config(dir.path(), &account("alpha", &urls[0]))).unwrap();
    let (serve, lines) = start(&["serve", "--config", file.to_str().unwrap()], 1);
    let http = Http {
        base: lines[0].trim_start_matches("listening on ").to_owned(),
        token: admin.to_owned(),
        client: reqwest::Client::new(),
    };
    let accounts = || async {
        http.send(reqwest::Method::GET, "/v1/accounts", None)
            .await
            .1
    };
    assert_eq!(accounts().await["accounts"].as_array().unwrap().len(), 1);

    // Add a good account and a broken one (no secret), then SIGHUP.
    let broken = format!(
        "\n[[accounts]]\nname = \"broken\"\nauth_url = \"{}\"\nusername = \"demo\"\nproject_name = \"demo\"\n",
        urls[2]
    );
    let more = account("alpha", &urls[0]) + &account("beta", &urls[1]) + &broken;
    std::fs::write(&file, config(dir.path(), &more)).unwrap();
    serve.signal("HUP");
    eventually(Duration::from_secs(15), "beta applied", || async {
        let names: Vec<String> = accounts().await["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect();
        (names.contains(&"beta".to_owned())).then_some(names)
    })
    .await;
    let names = accounts().await;
    assert!(!names.to_string().contains("broken"));
    eventually(
        Duration::from_secs(20),
        "alpha and beta regions",
        || async {
            let (_, body) = http.send(reqwest::Method::GET, "/v1/regions", None).await;
            (body["regions"].as_array().map_or(0, Vec::len) == 4).then_some(())
        },
    )
    .await;
    let (status, _) = http
        .send(
            reqwest::Method::POST,
            "/v1/instances",
            Some(json!({"profile": "small", "count": 1})),
        )
        .await;
    assert_eq!(status, 202);
    assert!(serve.stop().success());
}

fn check_config(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oms"))
        .arg("check-config")
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_config_prints_every_problem_in_one_run_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oms.toml");
    let path = file.to_str().unwrap();
    std::fs::write(
        &file,
        "listen = 5\n\n[fleet]\npoll_interval_secs = -3\ndefault_max_attempts = 0\n\n\
         [api]\nmax_count = 0\nbody_limit = \"big\"\n\n\
         [[profiles]]\nname = \"small\"\nmin_vcpus = 1\nmin_ram_mb = 512\nimage = \"i\"\n\n\
         [[profiles]]\nname = \"small\"\nmin_vcpus = 1\nmin_ram_mb = 512\nimage = \"i\"\n\n\
         [[accounts]]\nname = \"nosecret\"\nauth_url = \"https://k/v3\"\nusername = \"u\"\nproject_name = \"p\"\n",
    )
    .unwrap();
    let (ok, text) = check_config(&[path]);
    assert!(!ok, "{text}");
    for expected in [
        format!("{path}:1:10: listen: invalid type"),
        format!("{path}:4:1: fleet.poll_interval_secs: must be more than 0"),
        format!("{path}:5:1: fleet.default_max_attempts: 1 to"),
        format!("{path}:8:1: api.max_count: at least 1"),
        format!("{path}:9:14: api.body_limit: invalid type"),
        format!("{path}:18:1: profile small is declared twice"),
        format!("{path}:24:1: account nosecret: a password or an application credential"),
    ] {
        assert!(text.contains(&expected), "{expected:?} not in:\n{text}");
    }
    assert_eq!(text.lines().count(), 7, "{text}");

    std::fs::write(&file, "listen = \n").unwrap();
    let (ok, text) = check_config(&[path]);
    assert!(!ok && text.contains(&format!("{path}:")), "{text}");
}

/// The shipped example passes as shipped: its secrets are systemd
/// credentials, which a shell cannot see, so they are notes; given where
/// they are, they are checked.
#[test]
fn check_config_passes_the_shipped_example_and_checks_its_secrets_where_told() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/oms.toml.example");
    let (ok, text) = check_config(&[example]);
    assert!(ok, "{text}");
    assert!(
        text.contains("note: account acme: acme-password is not in"),
        "{text}"
    );
    assert!(text.trim_end().ends_with(": ok"), "{text}");

    let credentials = tempfile::tempdir().unwrap();
    let dir = credentials.path().to_str().unwrap();
    write_private(&credentials.path().join("acme-password"), "pw\n");
    write_private(
        &credentials.path().join("admin-token"),
        "oms_example-admin-token\n",
    );
    let (ok, text) = check_config(&[example, "--credentials", dir]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("account bigcloud: cannot read") && !text.contains("note:"),
        "{text}"
    );
    write_private(&credentials.path().join("bigcloud-secret"), "s\n");
    let (ok, text) = check_config(&[example, "--credentials", dir]);
    assert!(ok, "{text}");

    // credentials/ beside the file is where the README installs secrets:
    // once it exists, a secret missing from it is a problem.
    let etc = tempfile::tempdir().unwrap();
    let file = etc.path().join("oms.toml");
    std::fs::copy(example, &file).unwrap();
    std::fs::create_dir(etc.path().join("credentials")).unwrap();
    let (ok, text) = check_config(&[file.to_str().unwrap()]);
    assert!(!ok && text.contains("account acme: cannot read"), "{text}");
}

/// Under systemd with the watchdog on, a task pings the watchdog with a
/// handle on the fleet; SIGTERM must still stop the actor tree.
#[test]
fn sigterm_stops_the_actor_tree_with_the_watchdog_on() {
    use std::io::Read;
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let state = dir.path().join("state");
    // systemd names the pid the watchdog is for; `exec` keeps the shell's.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"WATCHDOG_PID=$$ exec "$0" serve --listen 127.0.0.1:0 --state-dir "$1""#)
        .arg(env!("CARGO_BIN_EXE_oms"))
        .arg(&state)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let running = Running(child);
    // READY=1, then at least two watchdog pings: the task holds the fleet.
    let mut buf = [0u8; 256];
    let mut pings = 0;
    let mut ready = false;
    while pings < 2 {
        let n = socket.recv(&mut buf).expect("a notification from oms");
        let message = String::from_utf8_lossy(&buf[..n]);
        ready |= message.contains("READY=1");
        pings += usize::from(message.contains("WATCHDOG=1"));
    }
    assert!(ready, "READY=1 comes before the pings");
    let status = running.stop();
    assert!(status.success(), "{status:?}");
    let logs = logs.join().unwrap();
    assert!(logs.contains("actor tree stopped"), "{logs}");
}
