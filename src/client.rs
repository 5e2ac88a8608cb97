//! A small client of the REST API for the command line: `oms launch`,
//! `list`, `show`, `delete`, `regions`, `profile ...`, `account ...`. The
//! URL and token come from `--url` and `--token`, or `OMS_URL` and
//! `OMS_TOKEN`; what is printed, from `-f`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::output::{Format, cell, emit, table, time};

/// The API's address and a token.
pub struct ApiClient {
    url: String,
    token: String,
    http: reqwest::Client,
}

/// Why a call to the API failed, when that decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No token, or the API refused it (401, 403): exit 3.
    Unauthorized,
    /// The API knows no such thing (404): exit 4.
    NotFound,
    /// The API could not be reached or failed (5xx): exit 5.
    Unavailable,
}

impl Failure {
    /// The exit code (documented in `oms --help` and the README).
    pub fn exit_code(self) -> u8 {
        match self {
            Failure::Unauthorized => 3,
            Failure::NotFound => 4,
            Failure::Unavailable => 5,
        }
    }
}

/// A failed call, classified.
#[derive(Debug)]
pub struct ApiFailure {
    /// Which kind.
    pub class: Failure,
    /// What the API or the connection said.
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiFailure {}

fn failure(class: Failure, message: String) -> anyhow::Error {
    ApiFailure { class, message }.into()
}

impl ApiClient {
    /// A client of the API at `url` with `token` (from `--url`/`OMS_URL`
    /// and `--token`/`OMS_TOKEN`).
    pub fn new(url: &str, token: Option<&str>) -> anyhow::Result<ApiClient> {
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
            failure(
                Failure::Unauthorized,
                "no API token: set OMS_TOKEN or pass --token".into(),
            )
        })?;
        Ok(ApiClient {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            let cause =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
            failure(
                Failure::Unavailable,
                format!("cannot reach {}: {cause}", self.url),
            )
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() && status.as_u16() != 204 {
            let message = body["error"]["message"].as_str().unwrap_or("no message");
            let said = format!("{status}: {message}");
            return Err(match status.as_u16() {
                401 | 403 => failure(Failure::Unauthorized, said),
                404 => failure(Failure::NotFound, said),
                500..=599 => failure(Failure::Unavailable, said),
                _ => anyhow::anyhow!(said),
            });
        }
        Ok(body)
    }
}

/// What `oms launch` asks for.
pub struct Launch<'a> {
    /// Profile name.
    pub profile: &'a str,
    /// How many.
    pub count: u32,
    /// Prefix of instance names.
    pub name_prefix: Option<&'a str>,
    /// The user's own public key.
    pub public_key_file: Option<&'a Path>,
    /// Where a generated private key goes (else `oms-<request>.key`).
    pub key_out: Option<&'a Path>,
    /// Boot without any key.
    pub no_key: bool,
    /// Attempts per instance.
    pub max_attempts: Option<u32>,
    /// Seconds until instances not yet active fail.
    pub deadline: Option<u64>,
    /// Wait until every instance is active or failed.
    pub wait: bool,
}

/// Statuses an instance does not leave on its own.
const SETTLED: [&str; 4] = ["active", "failed", "lost", "deleted"];

/// `oms launch`: the generated private key goes to a file created 0600
/// before the request is sent (so a key is never answered with nowhere
/// to go), then renamed after the request it belongs to.
pub async fn launch(client: &ApiClient, ask: Launch<'_>, format: Format) -> anyhow::Result<()> {
    let mut body = json!({"profile": ask.profile, "count": ask.count});
    if let Some(prefix) = ask.name_prefix {
        body["name_prefix"] = json!(prefix);
    }
    if let Some(attempts) = ask.max_attempts {
        body["max_attempts"] = json!(attempts);
    }
    if let Some(deadline) = ask.deadline {
        body["deadline"] = json!(deadline);
    }
    let mut key_file = None;
    if let Some(file) = ask.public_key_file {
        let key = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        body["public_key"] = json!(key.trim());
    } else if ask.no_key {
        body["generate_key"] = json!(false);
    } else {
        key_file = Some(KeyFile::create(ask.key_out)?);
    }
    let mut answer = match client
        .send(reqwest::Method::POST, "/v1/instances", Some(&body))
        .await
    {
        Ok(answer) => answer,
        Err(error) => {
            if let Some(file) = key_file {
                file.discard();
            }
            return Err(error);
        }
    };
    let request_id = answer["request"]["id"]
        .as_str()
        .unwrap_or("request")
        .to_owned();
    if let Some(file) = key_file {
        // Never printed: it would land in terminals' scrollback and logs.
        let private = answer
            .as_object_mut()
            .and_then(|o| o.remove("private_key"))
            .and_then(|k| k.as_str().map(str::to_owned));
        match private {
            Some(private) => {
                let path = file.keep(&private, &request_id)?;
                eprintln!(
                    "private key written to {} (mode 0600; it is kept nowhere else): ssh -i {} ...",
                    path.display(),
                    path.display()
                );
            }
            None => file.discard(),
        }
    }
    let instances = answer["instances"].as_array().cloned().unwrap_or_default();
    if !ask.wait {
        return emit(format, &answer, || instance_table(&instances));
    }
    let settled = wait_for(client, &request_id, instances.len()).await?;
    emit(format, &Value::Array(settled.clone()), || {
        instance_table(&settled)
    })?;
    let failed = settled
        .iter()
        .filter(|i| matches!(i["status"].as_str(), Some("failed" | "lost")))
        .count();
    if failed > 0 {
        bail!("{failed} of {} instance(s) failed", settled.len());
    }
    Ok(())
}

/// The file a generated private key goes to.
struct KeyFile {
    /// Where it is while the request is sent.
    path: std::path::PathBuf,
    /// Whether it gets the request's name once known.
    rename: bool,
    file: std::fs::File,
}

impl KeyFile {
    fn create(path: Option<&Path>) -> anyhow::Result<KeyFile> {
        let (path, rename) = match path {
            Some(path) => (path.to_path_buf(), false),
            None => (
                std::path::PathBuf::from(format!(".oms-key-{}.partial", std::process::id())),
                true,
            ),
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot create {} for the generated private key (give --key-out FILE, \
                     --public-key-file or --no-key)",
                    path.display()
                )
            })?;
        Ok(KeyFile { path, rename, file })
    }

    fn keep(mut self, private: &str, request_id: &str) -> anyhow::Result<std::path::PathBuf> {
        self.file.write_all(private.as_bytes())?;
        self.file.sync_all()?;
        if !self.rename {
            return Ok(self.path);
        }
        let named = std::path::PathBuf::from(format!("oms-{request_id}.key"));
        std::fs::rename(&self.path, &named)
            .with_context(|| format!("the private key is in {}", self.path.display()))?;
        Ok(named)
    }

    fn discard(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Polls the request's instances until each has settled: a progress bar
/// on a terminal, a line per change otherwise.
async fn wait_for(
    client: &ApiClient,
    request_id: &str,
    count: usize,
) -> anyhow::Result<Vec<Value>> {
    use std::io::IsTerminal as _;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(count as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} settled  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    loop {
        let instances = all_instances(client, &format!("request={request_id}")).await?;
        for i in &instances {
            let id = cell(i, "id");
            let status = cell(i, "status");
            if seen.get(&id) != Some(&status) {
                if bar.is_none() {
                    eprintln!(
                        "{}  {}  {}/{}  {}",
                        cell(i, "name"),
                        status,
                        cell(i, "provider"),
                        cell(i, "region"),
                        cell(i, "address")
                    );
                }
                seen.insert(id, status);
            }
        }
        let by = |wanted: &[&str]| {
            instances
                .iter()
                .filter(|i| wanted.contains(&i["status"].as_str().unwrap_or("")))
                .count()
        };
        let settled = by(&SETTLED);
        if let Some(bar) = &bar {
            bar.set_position(settled as u64);
            bar.set_message(format!(
                "{} active, {} building, {} waiting, {} failed",
                by(&["active"]),
                by(&["scheduled", "building"]),
                by(&["pending"]),
                by(&["failed", "lost"])
            ));
        }
        if settled == instances.len() && !instances.is_empty() {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            return Ok(instances);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Every instance a query selects, over all pages.
async fn all_instances(client: &ApiClient, query: &str) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/instances?limit=200&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = client.send(reqwest::Method::GET, &path, None).await?;
        all.extend(page["instances"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(all),
        }
    }
}

fn instance_table(instances: &[Value]) -> String {
    table(
        &[
            "id", "name", "status", "provider", "region", "address", "created",
        ],
        instances.iter().map(|i| {
            vec![
                cell(i, "id"),
                cell(i, "name"),
                cell(i, "status"),
                cell(i, "provider"),
                cell(i, "region"),
                cell(i, "address"),
                time(i, "created_at"),
            ]
        }),
    )
}

/// `oms list`: every status but `deleted` unless `--all` or `--status`.
pub async fn list(
    client: &ApiClient,
    status: Option<&str>,
    all: bool,
    format: Format,
) -> anyhow::Result<()> {
    let query = match (status, all) {
        (Some(status), _) => format!("status={status}"),
        (None, true) => String::new(),
        (None, false) => "status=pending,scheduled,building,active,deleting,failed,lost".into(),
    };
    let instances = all_instances(client, &query).await?;
    emit(format, &Value::Array(instances.clone()), || {
        instance_table(&instances)
    })
}

/// `oms show ID`: the instance and its timeline.
pub async fn show(client: &ApiClient, id: &str, format: Format) -> anyhow::Result<()> {
    let instance = client
        .send(reqwest::Method::GET, &format!("/v1/instances/{id}"), None)
        .await?;
    emit(format, &instance, || {
        let fields = [
            "id",
            "name",
            "status",
            "client",
            "profile",
            "provider",
            "region",
            "server_id",
            "address",
            "provider_status",
            "attempts",
            "replaced",
            "failure",
            "request_id",
        ];
        let mut text = table(
            &["field", "value"],
            fields
                .iter()
                .map(|f| vec![(*f).to_owned(), cell(&instance, f)])
                .chain([
                    vec!["created".into(), time(&instance, "created_at")],
                    vec!["expires".into(), time(&instance, "expires_at")],
                ]),
        );
        text.push_str("\n\n");
        text.push_str(&table(
            &["time", "status", "where", "event"],
            instance["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let mut event = cell(e, "message");
                    if let Some(detail) = e["detail"].as_str() {
                        event.push_str(&format!(" ({detail})"));
                    }
                    if e["repeated"].as_u64().unwrap_or(0) > 0 {
                        event.push_str(&format!(
                            " ×{} more, last {}",
                            e["repeated"],
                            time(e, "last_at")
                        ));
                    }
                    vec![time(e, "at"), cell(e, "status"), cell(e, "where"), event]
                }),
        ));
        text
    })
}

/// `oms delete ID...`.
pub async fn delete(client: &ApiClient, ids: &[String], format: Format) -> anyhow::Result<()> {
    let mut deleted = Vec::new();
    for id in ids {
        deleted.push(
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/v1/instances/{id}"),
                    None,
                )
                .await?,
        );
    }
    emit(format, &Value::Array(deleted.clone()), || {
        table(
            &["id", "name", "status"],
            deleted
                .iter()
                .map(|i| vec![cell(i, "id"), cell(i, "name"), cell(i, "status")]),
        )
    })
}

/// `oms cluster status`: the members, which one leads, since when, and
/// how long its lease still runs.
pub async fn cluster_status(client: &ApiClient, format: Format) -> anyhow::Result<()> {
    let answer = client
        .send(reqwest::Method::GET, "/v1/cluster", None)
        .await?;
    emit(format, &answer, || {
        let leader = &answer["leader"];
        let leader_name = leader["member"]["name"].as_str().unwrap_or_default();
        let mut text = table(
            &["member", "role", "url", "started", "version"],
            answer["members"].as_array().into_iter().flatten().map(|m| {
                let role = if m["name"].as_str() == Some(leader_name) {
                    "leader"
                } else {
                    "follower"
                };
                vec![
                    cell(m, "name"),
                    role.into(),
                    cell(m, "url"),
                    cell(m, "started_at"),
                    cell(m, "version"),
                ]
            }),
        );
        text.push('\n');
        match leader.as_object() {
            Some(_) => text.push_str(&format!(
                "cluster {}: leader {} since {} (term {}), lease {} s of {} s left; answered by {} at revision {}",
                cell(&answer, "cluster_id"),
                leader_name,
                cell(leader, "since"),
                leader["revision"],
                leader["lease_remaining_secs"],
                leader["lease_ttl_secs"],
                cell(&answer, "member"),
                answer["revision"],
            )),
            None => text.push_str(&format!(
                "cluster {}: no leader now (an election is under way, or etcd has no quorum)",
                cell(&answer, "cluster_id"),
            )),
        }
        text
    })
}

/// `oms regions`: every account-region's health, and the accounts that
/// have no region running.
pub async fn regions(client: &ApiClient, format: Format) -> anyhow::Result<()> {
    let answer = client
        .send(reqwest::Method::GET, "/v1/regions", None)
        .await?;
    emit(format, &answer, || {
        let mut text = table(
            &[
                "provider",
                "region",
                "health",
                "quota",
                "building",
                "latency",
                "last error",
            ],
            answer["regions"].as_array().into_iter().flatten().map(|r| {
                let used = r["used"]["instances"].as_i64().unwrap_or(0);
                let quota = match r["limit"]["instances"].as_i64() {
                    Some(max) if max < 0 => format!("{used}/unlimited"),
                    Some(max) => format!("{used}/{max}"),
                    None => format!("{used}/?"),
                };
                let mut health = cell(r, "health").replace('_', " ");
                if r["drain"] == true {
                    health.push_str(", draining");
                }
                if r["enabled"] == false {
                    health.push_str(", disabled");
                }
                vec![
                    cell(r, "account"),
                    cell(r, "region"),
                    health,
                    quota,
                    r["building"].to_string(),
                    format!("{:.0} ms", r["latency_ms"].as_f64().unwrap_or(0.0)),
                    cell(r, "last_error"),
                ]
            }),
        );
        let down: Vec<Vec<String>> = answer["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["health"] != "connected")
            .map(|a| {
                vec![
                    cell(a, "account"),
                    cell(a, "health").replace('_', " "),
                    time(a, "since"),
                    cell(a, "reason"),
                ]
            })
            .collect();
        if !down.is_empty() {
            text.push_str("\n\n");
            text.push_str(&table(&["account", "state", "since", "why"], down));
        }
        text
    })
}

/// `oms profile list`.
pub async fn profiles(client: &ApiClient, format: Format) -> anyhow::Result<()> {
    let answer = client
        .send(reqwest::Method::GET, "/v1/profiles", None)
        .await?;
    let profiles = answer["profiles"].as_array().cloned().unwrap_or_default();
    emit(format, &Value::Array(profiles.clone()), || {
        profile_table(&profiles)
    })
}

fn profile_table(profiles: &[Value]) -> String {
    table(
        &[
            "name",
            "vcpus",
            "ram mb",
            "disk gb",
            "image",
            "boot timeout s",
        ],
        profiles.iter().map(|p| {
            vec![
                cell(p, "name"),
                cell(p, "min_vcpus"),
                cell(p, "min_ram_mb"),
                cell(p, "min_disk_gb"),
                cell(p, "image"),
                cell(p, "boot_timeout_secs"),
            ]
        }),
    )
}

/// `oms profile add`: a create, or with `replace` a PUT to its path.
pub async fn add_profile(
    client: &ApiClient,
    profile: &Value,
    replace: bool,
    format: Format,
) -> anyhow::Result<()> {
    let name = profile["name"].as_str().unwrap_or_default();
    let answer = if replace {
        client
            .send(
                reqwest::Method::PUT,
                &format!("/v1/profiles/{name}"),
                Some(profile),
            )
            .await?
    } else {
        client
            .send(reqwest::Method::POST, "/v1/profiles", Some(profile))
            .await?
    };
    emit(format, &answer, || {
        profile_table(std::slice::from_ref(&answer))
    })
}

/// `oms profile delete NAME...`.
pub async fn delete_profiles(client: &ApiClient, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        client
            .send(
                reqwest::Method::DELETE,
                &format!("/v1/profiles/{name}"),
                None,
            )
            .await?;
        println!("{name}  deleted");
    }
    Ok(())
}

/// `oms account list`: who each account is, so a cloud registered twice
/// shows.
pub async fn accounts(client: &ApiClient, format: Format) -> anyhow::Result<()> {
    let answer = client
        .send(reqwest::Method::GET, "/v1/accounts", None)
        .await?;
    let accounts = answer["accounts"].as_array().cloned().unwrap_or_default();
    emit(format, &Value::Array(accounts.clone()), || {
        table(
            &[
                "name", "provider", "project", "user", "regions", "status", "priority",
            ],
            accounts.iter().map(|a| {
                let mut status = cell(&a["status"], "health").replace('_', " ");
                if a["enabled"] == false {
                    status = "disabled".into();
                } else if a["drain"] == true {
                    status.push_str(", draining");
                }
                vec![
                    cell(a, "name"),
                    cell(a, "keystone"),
                    named(&a["project"]),
                    named(&a["user"]),
                    cell(&a["status"], "regions"),
                    status,
                    cell(a, "priority"),
                ]
            }),
        )
    })
}

/// A user or project as `name` (or its id) for a table.
fn named(value: &Value) -> String {
    match (value["name"].as_str(), value["id"].as_str()) {
        (Some(name), _) => name.to_owned(),
        (None, Some(id)) => id.to_owned(),
        _ => "-".into(),
    }
}

/// Registers accounts (each body as `POST /v1/accounts` takes it). Every
/// body is checked first (a dry run on the daemon: names taken, projects
/// another account holds, invalid fields; and two bodies on one project):
/// if any is refused, none is registered.
pub async fn register(client: &ApiClient, bodies: &[Value]) -> anyhow::Result<()> {
    let mut refused = Vec::new();
    let mut batch: Vec<oms_actors::model::Account> = Vec::new();
    for body in bodies {
        let name = body["name"].as_str().unwrap_or("?").to_owned();
        let mut dry = body.clone();
        dry["dry_run"] = Value::Bool(true);
        if let Err(error) = client
            .send(reqwest::Method::POST, "/v1/accounts", Some(&dry))
            .await
        {
            refused.push(format!("{name}: {error:#}"));
            continue;
        }
        if let Ok(mut account) = oms_web::account_from_body(body.clone()) {
            account.id = name.clone();
            if let Some(other) = oms_actors::one_project::declared_clash(&account, &batch) {
                refused.push(format!(
                    "{name}: {}",
                    oms_actors::one_project::clash_message(&other.name)
                ));
            }
            batch.push(account);
        }
    }
    if !refused.is_empty() {
        bail!("nothing imported:\n  {}", refused.join("\n  "));
    }
    for body in bodies {
        let answer = client
            .send(reqwest::Method::POST, "/v1/accounts", Some(body))
            .await?;
        println!(
            "{}  {}",
            answer["id"].as_str().unwrap_or("?"),
            answer["name"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
