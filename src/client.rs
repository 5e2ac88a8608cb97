//! A small client of the REST API for the command line: `oms launch`,
//! `oms list`, `oms delete`, `oms account ...`. The URL and token come
//! from `--url` and `--token`, or `OMS_URL` and `OMS_TOKEN`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

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

/// `oms launch`.
pub async fn launch(
    client: &ApiClient,
    profile: &str,
    count: u32,
    name_prefix: Option<&str>,
    public_key_file: Option<&Path>,
    key_out: Option<&Path>,
) -> anyhow::Result<()> {
    let mut body = json!({"profile": profile, "count": count});
    if let Some(prefix) = name_prefix {
        body["name_prefix"] = json!(prefix);
    }
    if let Some(file) = public_key_file {
        let key = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        body["public_key"] = json!(key.trim());
    }
    let answer = client
        .send(reqwest::Method::POST, "/v1/instances", Some(&body))
        .await?;
    for instance in answer["instances"].as_array().into_iter().flatten() {
        println!(
            "{}  {}  {}",
            instance["id"].as_str().unwrap_or("?"),
            instance["name"].as_str().unwrap_or("?"),
            instance["status"].as_str().unwrap_or("?")
        );
    }
    if let Some(private) = answer["private_key"].as_str() {
        match key_out {
            Some(path) => {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                file.write_all(private.as_bytes())?;
                eprintln!(
                    "private key written to {} (it is not kept anywhere else)",
                    path.display()
                );
            }
            None => eprintln!(
                "a key pair was generated; pass --key-out FILE to keep its private key, or --public-key-file to use yours"
            ),
        }
    }
    Ok(())
}

/// `oms list`.
pub async fn list(client: &ApiClient, status: Option<&str>) -> anyhow::Result<()> {
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/instances?limit=200".to_owned();
        if let Some(status) = status {
            path.push_str(&format!("&status={status}"));
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = client.send(reqwest::Method::GET, &path, None).await?;
        for i in page["instances"].as_array().into_iter().flatten() {
            let text = |k: &str| i[k].as_str().unwrap_or("-").to_owned();
            println!(
                "{}  {:<20} {:<9} {:<12} {:<12} {}",
                text("id"),
                text("name"),
                text("status"),
                text("provider"),
                text("region"),
                text("address")
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(()),
        }
    }
}

/// `oms delete ID...`.
pub async fn delete(client: &ApiClient, ids: &[String]) -> anyhow::Result<()> {
    for id in ids {
        let answer = client
            .send(
                reqwest::Method::DELETE,
                &format!("/v1/instances/{id}"),
                None,
            )
            .await?;
        println!("{id}  {}", answer["status"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// `oms account list`.
pub async fn accounts(client: &ApiClient) -> anyhow::Result<()> {
    let answer = client
        .send(reqwest::Method::GET, "/v1/accounts", None)
        .await?;
    for a in answer["accounts"].as_array().into_iter().flatten() {
        println!(
            "{}  {:<16} {}  enabled={} drain={} priority={}",
            a["id"].as_str().unwrap_or("?"),
            a["name"].as_str().unwrap_or("?"),
            a["auth_url"].as_str().unwrap_or("?"),
            a["enabled"],
            a["drain"],
            a["priority"]
        );
    }
    Ok(())
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
