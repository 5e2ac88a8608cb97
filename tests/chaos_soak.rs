//! The chaos soak: the real `oms serve` against `oms sim` (4 providers × 2
//! regions) while three clients launch and delete without pause and a
//! schedule injects a maintenance window, a 429 storm, failing builds,
//! listing lag, token revocation, servers deleted behind the daemon's
//! back, a second account on a registered project, and two SIGKILLs with
//! restarts. A second daemon and a person share the `demo` project (and
//! user) with their own servers and key pairs. An invariant checker runs
//! every few seconds and at the end, prints a table, and fails on any
//! violation.
//!
//! `SOAK_SECS` sets the chaos phase (90 s by default; run it for an
//! hour before a release).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use oms_actors::openstack::{
    AuthSpec, ComputeClient, CreateServer, IdentityVersion, ImageClient, Interface, Networks,
    Session,
};
use serde_json::{Value, json};

use crate::support::binary::{ADMIN, Proc, all_instances, private_file, sim_state, start_sim};
use crate::support::{client, password};

const PROVIDERS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
const KEY: &str = crate::support::PUBLIC_KEY;
/// The daemon's poll interval: a vanished server must be noticed within two.
const POLL_SECS: f64 = 1.0;

fn soak_secs() -> u64 {
    std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90)
}

/// Checks made, violations (the first few), the worst value seen.
type Row = (u64, Vec<String>, String);

/// One row per invariant.
#[derive(Default)]
struct Ledger {
    rows: Mutex<BTreeMap<&'static str, Row>>,
}

impl Ledger {
    fn check(&self, name: &'static str, ok: bool, why: impl FnOnce() -> String) {
        let mut rows = self.rows.lock().unwrap();
        let row = rows.entry(name).or_default();
        row.0 += 1;
        if !ok && row.1.len() < 20 {
            row.1.push(why());
        }
    }
    fn worst(&self, name: &'static str, value: String) {
        self.rows.lock().unwrap().entry(name).or_default().2 = value;
    }
    fn report(&self) -> (String, usize) {
        let rows = self.rows.lock().unwrap();
        let mut text = format!(
            "{:<52} {:>7} {:>10}  worst\n",
            "invariant", "checks", "violations"
        );
        let mut violations = 0;
        for (name, (checks, bad, worst)) in rows.iter() {
            violations += bad.len();
            text.push_str(&format!(
                "{name:<52} {checks:>7} {:>10}  {worst}\n",
                bad.len()
            ));
            for why in bad.iter().take(5) {
                text.push_str(&format!("    {why}\n"));
            }
        }
        (text, violations)
    }
}

/// One `oms serve`, its log lines counted.
struct Daemon {
    proc: Option<Proc>,
    base: String,
    lines: Arc<AtomicUsize>,
}

fn serve_counted(config: &str, lines: Arc<AtomicUsize>) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(["serve", "--config", config])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let counter = lines.clone();
    let early: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = early.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            if n < 20 {
                kept.lock().unwrap().push(line.unwrap_or_default());
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let Some(Ok(first)) = stdout.next() else {
        std::thread::sleep(Duration::from_millis(200));
        panic!("oms serve did not start: {:#?}", early.lock().unwrap());
    };
    std::thread::spawn(move || for _ in stdout {});
    Daemon {
        proc: Some(Proc(child)),
        base: first.trim_start_matches("listening on ").to_owned(),
        lines,
    }
}

fn rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn daemon_config(dir: &std::path::Path, state: &str, accounts: &[(&str, &str)]) -> String {
    let mut config = format!(
        "state_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\nadmin_token_file = \"admin-token\"\n\
         [api]\nclient_rate_per_sec = 1000\nclient_burst = 1000\n\
         [fleet]\npoll_interval_secs = {POLL_SECS}\nrefresh_interval_secs = 2.0\n\
         adoption_grace_secs = 5\nleak_interval_secs = 2.0\nleak_grace_secs = 4.0\n\
         default_deadline_secs = 120\n\
         [[profiles]]\nname = \"small\"\nmin_vcpus = 1\nmin_ram_mb = 512\nmin_disk_gb = 1\nimage = \"cirros-fake\"\n",
        dir.join(state).display()
    );
    for (name, url) in accounts {
        config.push_str(&format!(
            "[[accounts]]\nname = \"{name}\"\nauth_url = \"{url}\"\nusername = \"demo\"\nproject_name = \"demo\"\npassword_file = \"demo-password\"\n[accounts.limits]\nmutating_per_sec = 20.0\nread_per_sec = 50.0\nmax_concurrent_creates = 10\n"
        ));
    }
    config
}

async fn api(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

/// Nova as a user of the `demo` project on one provider.
async fn nova(auth_url: &str, user: &str, region: &str) -> ComputeClient {
    let session = Session::new(
        client(),
        AuthSpec {
            auth_url: auth_url.parse().unwrap(),
            identity_version: IdentityVersion::V3,
            credentials: password(user, "secret", "demo"),
            interface: Interface::Public,
        },
    );
    ComputeClient::connect(session, region).await.unwrap()
}

fn regions_of(state: &Value) -> Vec<(String, String, Value)> {
    state["providers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["regions"].as_array().unwrap().iter().map(|r| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    r["name"].as_str().unwrap().to_owned(),
                    r.clone(),
                )
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_soak_keeps_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim_toml = String::new();
    for provider in PROVIDERS {
        sim_toml.push_str(&format!("[[providers]]\nname = \"{provider}\"\n"));
        for user in ["demo", "person"] {
            sim_toml.push_str(&format!(
                "[[providers.users]]\nname = \"{user}\"\npassword = \"secret\"\nproject = \"demo\"\n"
            ));
        }
        for n in 1..=2 {
            sim_toml.push_str(&format!(
                "[[providers.regions]]\nname = \"{provider}-{n}\"\nbuild_secs = 1.0\ndelete_secs = 0.3\nimages = [\"cirros-fake\"]\n[providers.regions.quota]\ninstances = 20\ncores = 1000\nram = 10000000\nkey_pairs = 1000\n"
            ));
        }
    }
    let sim_config = dir.path().join("sim.toml");
    std::fs::write(&sim_config, sim_toml).unwrap();
    let (_sim, control, auth_urls) = start_sim(&sim_config, PROVIDERS.len());
    private_file(&dir.path().join("admin-token"), ADMIN);
    private_file(&dir.path().join("demo-password"), "secret");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ledger = Arc::new(Ledger::default());

    // A person's server and key pair in the shared project and user.
    let alpha1 = nova(&auth_urls[0], "demo", "alpha-1").await;
    let image = ImageClient::connect(
        Session::new(
            client(),
            AuthSpec {
                auth_url: auth_urls[0].parse().unwrap(),
                identity_version: IdentityVersion::V3,
                credentials: password("demo", "secret", "demo"),
                interface: Interface::Public,
            },
        ),
        "alpha-1",
    )
    .await
    .unwrap()
    .active_images(Some("cirros-fake"))
    .await
    .unwrap()[0]
        .id
        .clone();
    alpha1.import_keypair("human-key", KEY).await.unwrap();
    let human = alpha1
        .create_server(&CreateServer {
            name: "human-vm".into(),
            flavor_ref: "1".into(),
            image_ref: image,
            key_name: Some("human-key".into()),
            networks: Networks::Auto,
            ..CreateServer::default()
        })
        .await
        .unwrap();

    // A second daemon on alpha with its own deployment, servers and keys.
    let other_config = dir.path().join("other.toml");
    std::fs::write(
        &other_config,
        daemon_config(dir.path(), "other-state", &[("alpha", &auth_urls[0])]),
    )
    .unwrap();
    let other_lines = Arc::new(AtomicUsize::new(0));
    let other = serve_counted(other_config.to_str().unwrap(), other_lines);
    let mut other_ids = Vec::new();
    loop {
        if let Some((202, body)) = api(
            &http,
            reqwest::Method::POST,
            format!("{}/v1/instances", other.base),
            ADMIN,
            Some(json!({"profile": "small", "count": 3, "public_key": KEY})),
        )
        .await
        {
            other_ids = body["instances"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect();
        }
        if !other_ids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let other_deployment = std::fs::read_to_string(dir.path().join("other-state/daemon-id"))
        .unwrap()
        .trim()
        .to_owned();

    // The daemon under test, on all four providers.
    let accounts: Vec<(&str, &str)> = PROVIDERS
        .iter()
        .copied()
        .zip(auth_urls.iter().map(String::as_str))
        .collect();
    let config = dir.path().join("oms.toml");
    std::fs::write(&config, daemon_config(dir.path(), "state", &accounts)).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let lines = Arc::new(AtomicUsize::new(0));
    let daemon = Arc::new(RwLock::new(serve_counted(&config, lines.clone())));
    let base = || daemon.read().unwrap().base.clone();
    let ours = std::fs::read_to_string(dir.path().join("state/daemon-id"))
        .unwrap()
        .trim()
        .to_owned();
    let our_tag = format!("oms-{ours}");
    let our_keys = format!("oms-k-{ours}-");
    let their_tag = format!("oms-{other_deployment}");
    let their_keys = format!("oms-k-{other_deployment}-");

    // Three clients.
    let mut tokens = Vec::new();
    for name in ["ci-a", "ci-b", "ci-c"] {
        let (status, body) = api(
            &http,
            reqwest::Method::POST,
            format!("{}/v1/tokens", base()),
            ADMIN,
            Some(json!({"name": name, "role": "client"})),
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "{body}");
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let launches = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        let (stop, launches, http, token, daemon) = (
            stop.clone(),
            launches.clone(),
            http.clone(),
            token.clone(),
            daemon.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let base = daemon.read().unwrap().base.clone();
                let listed = api(
                    &http,
                    reqwest::Method::GET,
                    format!("{base}/v1/instances?status=active"),
                    &token,
                    None,
                )
                .await;
                let active: Vec<String> = listed
                    .and_then(|(_, body)| body["instances"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_owned())
                    .collect();
                if active.len() >= 4 {
                    let _ = api(
                        &http,
                        reqwest::Method::DELETE,
                        format!("{base}/v1/instances/{}", active[0]),
                        &token,
                        None,
                    )
                    .await;
                } else {
                    // The same key until an answer comes: never twice.
                    let key = format!("soak-{n}-{round}");
                    let mut body = json!({"profile": "small", "count": 1 + round % 2,
                                          "replace_lost": round % 3 == 0});
                    if round % 2 == 0 {
                        body["public_key"] = json!(KEY);
                    }
                    loop {
                        let base = daemon.read().unwrap().base.clone();
                        let sent = http
                            .post(format!("{base}/v1/instances"))
                            .bearer_auth(&token)
                            .header("Idempotency-Key", &key)
                            .json(&body)
                            .send()
                            .await;
                        if sent.is_ok_and(|r| r.status().as_u16() < 500) {
                            launches.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        }));
    }

    // What must never be touched: the person's, and the other daemon's.
    let mut foreign_servers: BTreeSet<String> = BTreeSet::from([human.clone()]);
    let mut foreign_keys: BTreeSet<String> = BTreeSet::from(["human-key".to_owned()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let views = all_instances(&http, &other.base, Some("active")).await;
        if views.len() == other_ids.len() {
            foreign_servers.extend(
                views
                    .iter()
                    .map(|v| v["server_id"].as_str().unwrap().to_owned()),
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other daemon never got going"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let state = sim_state(&control).await;
    for (_, _, region) in regions_of(&state) {
        for key in region["keypairs"].as_array().unwrap() {
            let key = key.as_str().unwrap();
            if key.starts_with(&their_keys) {
                foreign_keys.insert(key.to_owned());
            }
        }
    }
    assert_eq!(foreign_keys.len(), 1 + other_ids.len(), "{foreign_keys:?}");

    // The checker: every few seconds, and at the end.
    let mut vanished: Vec<(String, Instant)> = Vec::new();
    let peak_rss = Arc::new(AtomicUsize::new(0));
    let checker = {
        let (ledger, stop, http, daemon, control) = (
            ledger.clone(),
            stop.clone(),
            http.clone(),
            daemon.clone(),
            control.clone(),
        );
        let (foreign_servers, foreign_keys, their_tag, their_keys) = (
            foreign_servers.clone(),
            foreign_keys.clone(),
            their_tag.clone(),
            their_keys.clone(),
        );
        let peak_rss = peak_rss.clone();
        let our_tag = our_tag.clone();
        tokio::spawn(async move {
            let mut unaccounted: HashMap<String, Instant> = HashMap::new();
            let mut last_lines = (Instant::now(), 0usize);
            let mut worst_rate = 0.0f64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let (base, pid, count) = {
                    let d = daemon.read().unwrap();
                    (
                        d.base.clone(),
                        d.proc.as_ref().map(|p| p.0.id()),
                        d.lines.load(Ordering::Relaxed),
                    )
                };
                let state = sim_state(&control).await;
                foreign_untouched(
                    &ledger,
                    &state,
                    &foreign_servers,
                    &foreign_keys,
                    &their_tag,
                    &their_keys,
                );
                // Log lines per second, between checks.
                let rate = (count - last_lines.1) as f64 / last_lines.0.elapsed().as_secs_f64();
                last_lines = (Instant::now(), count);
                worst_rate = worst_rate.max(rate);
                ledger.check("log lines per second < 100", rate < 100.0, || {
                    format!("{rate:.0} lines/s")
                });
                ledger.worst("log lines per second < 100", format!("{worst_rate:.1}/s"));
                if let Some(rss) = pid.and_then(rss_mib) {
                    peak_rss.fetch_max(rss as usize, Ordering::Relaxed);
                    ledger.check("RSS < 400 MiB", rss < 400, || format!("{rss} MiB"));
                    ledger.worst(
                        "RSS < 400 MiB",
                        format!("{} MiB", peak_rss.load(Ordering::Relaxed)),
                    );
                }
                // Ours and unaccounted for, for longer than collection takes.
                // The daemon may be restarting: skip this round then.
                let Some(views) = try_all_instances(&http, &base).await else {
                    continue;
                };
                let live: BTreeSet<String> = views
                    .iter()
                    .filter(|v| {
                        !matches!(v["status"].as_str(), Some("deleted" | "failed" | "lost"))
                    })
                    .map(|v| v["id"].as_str().unwrap().to_owned())
                    .collect();
                let mut seen_now = BTreeSet::new();
                for (_, _, region) in regions_of(&state) {
                    for server in region["servers"].as_array().unwrap() {
                        let tags: Vec<&str> = server["tags"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter_map(Value::as_str)
                            .collect();
                        if !tags.contains(&our_tag.as_str()) {
                            continue;
                        }
                        let owner = server["metadata"]["oms-instance"].as_str().unwrap_or("");
                        if !live.contains(owner) && server["status"] != "DELETING" {
                            seen_now.insert(server["id"].as_str().unwrap().to_owned());
                        }
                    }
                }
                unaccounted.retain(|id, _| seen_now.contains(id));
                for id in seen_now {
                    let since = *unaccounted.entry(id.clone()).or_insert_with(Instant::now);
                    let age = since.elapsed();
                    ledger.check(
                        "our servers belong to a live instance (30 s grace)",
                        age < Duration::from_secs(30),
                        || format!("server {id} unaccounted for {age:?}"),
                    );
                }
            }
        })
    };

    // The schedule.
    let total = soak_secs();
    let at = |fraction: f64| Duration::from_secs_f64(total as f64 * fraction);
    let began = Instant::now();
    let until = |fraction: f64| {
        let wait = at(fraction).saturating_sub(began.elapsed());
        tokio::time::sleep(wait)
    };
    let fault = |provider: &str, region: Option<&str>, faults: Value| {
        let url = match region {
            Some(r) => format!("{control}/_sim/providers/{provider}/regions/{r}/faults"),
            None => format!("{control}/_sim/providers/{provider}/faults"),
        };
        let http = http.clone();
        async move {
            let response = http.put(url).json(&faults).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
        }
    };
    until(0.10).await;
    fault("alpha", Some("alpha-1"), json!({"outage": "maintenance"})).await;
    until(0.20).await;
    fault("alpha", Some("alpha-1"), json!({})).await;
    fault("beta", None, json!({"rate_limit_per_sec": 3.0})).await;
    until(0.30).await;
    fault("beta", None, json!({})).await;
    fault("gamma", Some("gamma-1"), json!({"build_error_rate": 0.5})).await;
    fault("delta", None, json!({"list_lag_secs": 2.0})).await;
    until(0.40).await;
    let revoked = http
        .delete(format!("{control}/_sim/providers/alpha/tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 204);

    // Servers deleted behind the daemon's back, by a person.
    until(0.45).await;
    let active = all_instances(&http, &base(), Some("active")).await;
    for view in active.iter().take(2) {
        let id = view["id"].as_str().unwrap().to_owned();
        let provider = view["provider"].as_str().unwrap();
        let region = view["region"].as_str().unwrap();
        let url = &auth_urls[PROVIDERS.iter().position(|p| *p == provider).unwrap()];
        let server = view["server_id"].as_str().unwrap();
        nova(url, "person", region)
            .await
            .delete_server(server)
            .await
            .unwrap();
        vanished.push((id, Instant::now()));
    }
    let mut noticed = Vec::new();
    for (id, when) in vanished.clone() {
        let limit = Duration::from_secs_f64(2.0 * POLL_SECS + 1.0);
        let took = loop {
            let status = api(
                &http,
                reqwest::Method::GET,
                format!("{}/v1/instances/{id}", base()),
                ADMIN,
                None,
            )
            .await
            .map(|(_, v)| v["status"].as_str().unwrap_or("").to_owned());
            // Lost, or already placed again (replace_lost).
            if status.as_deref().is_some_and(|s| s != "active") {
                break when.elapsed();
            }
            if when.elapsed() > Duration::from_secs(30) {
                break when.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        noticed.push(took);
        ledger.check(
            "a vanished server's instance leaves active within 2 polls",
            took <= limit,
            || format!("instance {id} took {took:?} (limit {limit:?})"),
        );
    }
    ledger.worst(
        "a vanished server's instance leaves active within 2 polls",
        format!("{:?}", noticed.iter().max()),
    );

    // A second account on a registered project.
    until(0.50).await;
    let (status, body) = api(
        &http,
        reqwest::Method::POST,
        format!("{}/v1/accounts", base()),
        ADMIN,
        Some(
            json!({"name": "alpha-again", "auth_url": format!("{}/", auth_urls[0]),
                    "user": {"name": "person", "domain": "Default"},
                    "project": {"name": "demo", "domain": "Default"}, "password": "secret"}),
        ),
    )
    .await
    .unwrap();
    ledger.check(
        "a second account on a project is refused",
        status == 409,
        || format!("{status}: {body}"),
    );

    // Two SIGKILLs, each followed by a restart on the same state.
    for fraction in [0.55, 0.75] {
        until(fraction).await;
        let old = daemon.write().unwrap().proc.take();
        if let Some(mut proc) = old {
            let _ = Command::new("kill")
                .args(["-KILL", &proc.0.id().to_string()])
                .status();
            let _ = proc.0.wait();
        }
        let restarted = serve_counted(&config, lines.clone());
        *daemon.write().unwrap() = restarted;
    }
    until(0.90).await;
    fault("gamma", Some("gamma-1"), json!({})).await;
    fault("delta", None, json!({})).await;
    until(1.0).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    checker.await.unwrap();

    // The end: everything settles, then the strict checks.
    let settled = tokio::time::Instant::now() + Duration::from_secs(90);
    let (views, busy) = loop {
        let views = all_instances(&http, &base(), None).await;
        let busy = views.iter().any(|v| {
            matches!(
                v["status"].as_str(),
                Some("pending" | "scheduled" | "building" | "deleting")
            )
        });
        if !busy || tokio::time::Instant::now() > settled {
            break (views, busy);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for v in &views {
        *by_status
            .entry(v["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    ledger.check("everything settles within 90 s", !busy, || {
        format!("still busy: {by_status:?}")
    });
    ledger.worst("everything settles within 90 s", format!("{by_status:?}"));
    let active: BTreeMap<String, String> = views
        .iter()
        .filter(|v| v["status"] == "active")
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_owned(),
                v["server_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Leak collection and deletions finish within their grace.
    let mut strays = Vec::new();
    let mut not_one: Vec<String> = Vec::new();
    for _ in 0..40 {
        let state = sim_state(&control).await;
        strays.clear();
        let mut active_servers: HashMap<String, usize> = HashMap::new();
        for (_, _, region) in regions_of(&state) {
            for server in region["servers"].as_array().unwrap() {
                let owner = server["metadata"]["oms-instance"].as_str().unwrap_or("");
                let tags = server["tags"].to_string();
                if !tags.contains(&format!("\"{our_tag}\"")) {
                    continue;
                }
                if server["status"] == "ACTIVE" && active.contains_key(owner) {
                    *active_servers.entry(owner.to_owned()).or_default() += 1;
                } else {
                    strays.push(format!("server {} ({})", server["id"], server["status"]));
                }
            }
            for key in region["keypairs"].as_array().unwrap() {
                let key = key.as_str().unwrap();
                let used = region["servers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["key_name"] == key);
                if key.starts_with(&our_keys) && !used {
                    strays.push(format!("key pair {key}"));
                }
            }
        }
        not_one = active
            .keys()
            .filter(|id| active_servers.get(*id).copied() != Some(1))
            .map(|id| format!("{id}: {:?}", active_servers.get(id)))
            .collect();
        if strays.is_empty() && not_one.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ledger.check(
        "every active instance has exactly one ACTIVE server of ours",
        not_one.is_empty(),
        || not_one.join(", "),
    );
    ledger.check(
        "every server and key pair of ours belongs to an active instance",
        strays.is_empty(),
        || strays.join(", "),
    );
    let state = sim_state(&control).await;
    let alive: BTreeSet<String> = regions_of(&state)
        .iter()
        .flat_map(|(_, _, r)| {
            r["servers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["status"] == "ACTIVE")
                .map(|s| s["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    for (id, server) in &active {
        ledger.check(
            "every active instance has its ACTIVE server",
            alive.contains(server),
            || format!("instance {id}: server {server} not ACTIVE"),
        );
    }
    foreign_untouched(
        &ledger,
        &state,
        &foreign_servers,
        &foreign_keys,
        &their_tag,
        &their_keys,
    );
    for (id, _) in &vanished {
        let (_, view) = api(
            &http,
            reqwest::Method::GET,
            format!("{}/v1/instances/{id}", base()),
            ADMIN,
            None,
        )
        .await
        .unwrap();
        let said = view["events"].to_string();
        // Unless its client deleted it in the same moment (the delete
        // then finds the server gone, which is what it wanted).
        ledger.check(
            "a vanished server is reported as such",
            said.contains("vanished") || said.contains("delete requested"),
            || format!("instance {id}: {said}"),
        );
    }
    let mut most_events = 0;
    for v in &views {
        let id = v["id"].as_str().unwrap();
        let (_, view) = api(
            &http,
            reqwest::Method::GET,
            format!("{}/v1/instances/{id}", base()),
            ADMIN,
            None,
        )
        .await
        .unwrap();
        let events = view["events"].as_array().map_or(0, Vec::len);
        most_events = most_events.max(events);
        ledger.check("events per instance < 50", events < 50, || {
            format!("instance {id}: {events} events")
        });
    }
    ledger.worst("events per instance < 50", most_events.to_string());

    let (table, violations) = ledger.report();
    eprintln!(
        "chaos soak: {total} s, {} launches, {} instances {by_status:?}, {} log lines\n{table}",
        launches.load(Ordering::Relaxed),
        views.len(),
        lines.load(Ordering::Relaxed)
    );
    assert_eq!(violations, 0, "invariants violated:\n{table}");
    drop(other);
}

/// Every instance, or `None` while the daemon does not answer.
async fn try_all_instances(http: &reqwest::Client, base: &str) -> Option<Vec<Value>> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = api(
            http,
            reqwest::Method::GET,
            format!("{base}/v1/instances?limit=500{cursor}"),
            ADMIN,
            None,
        )
        .await?;
        if status != 200 {
            return None;
        }
        all.extend(page["instances"].as_array()?.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return Some(all),
        }
    }
}

/// Nothing of the person's or of the other daemon's was deleted, by
/// anyone, and all of it is still there.
fn foreign_untouched(
    ledger: &Ledger,
    state: &Value,
    servers: &BTreeSet<String>,
    keys: &BTreeSet<String>,
    their_tag: &str,
    their_keys: &str,
) {
    let mut present_servers = BTreeSet::new();
    let mut present_keys = BTreeSet::new();
    for (_, _, region) in regions_of(state) {
        for deletion in region["deletions"].as_array().unwrap() {
            let id = deletion["id"].as_str().unwrap_or("");
            let tags = deletion["tags"].to_string();
            let foreign = servers.contains(id)
                || keys.contains(id)
                || tags.contains(&format!("\"{their_tag}\""))
                || id.starts_with(their_keys);
            ledger.check("no foreign server or key pair deleted", !foreign, || {
                format!("{deletion}")
            });
        }
        for server in region["servers"].as_array().unwrap() {
            present_servers.insert(server["id"].as_str().unwrap().to_owned());
        }
        for key in region["keypairs"].as_array().unwrap() {
            present_keys.insert(key.as_str().unwrap().to_owned());
        }
    }
    let missing: Vec<&String> = servers
        .iter()
        .chain(keys)
        .filter(|x| !present_servers.contains(*x) && !present_keys.contains(*x))
        .collect();
    ledger.check(
        "foreign servers and key pairs are all still there",
        missing.is_empty(),
        || format!("missing: {missing:?}"),
    );
}
