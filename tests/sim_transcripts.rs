//! The simulator against the real services: every captured exchange in
//! `tests/transcripts` is replayed, in order, against oms-sim, and the
//! answer must have the same status, the same JSON keys (recursively), the
//! same protocol headers and, for errors, the very same body once ids are
//! mapped. Ids the real services made (tokens, servers, images, projects)
//! are learned from each answer and substituted into later requests.
//!
//! Neutron (009, 049) is not simulated: OpenMultiStack never calls it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use oms_sim::{FlavorConfig, ProviderConfig, QuotaConfig, RegionConfig, SimConfig, Simulator};
use serde_json::Value;

/// Exchanges the simulator deliberately does not serve, with why.
const NOT_SIMULATED: &[(&str, &str)] = &[
    ("009", "neutron is not simulated; the client never calls it"),
    ("049", "neutron is not simulated; the client never calls it"),
];

/// One captured exchange.
#[derive(Debug)]
struct Exchange {
    number: String,
    method: String,
    url: String,
    request_headers: Vec<(String, String)>,
    request_body: String,
    status: u16,
    response_headers: Vec<(String, String)>,
    response_body: String,
}

fn parse(path: &Path) -> Exchange {
    let text = std::fs::read_to_string(path).unwrap();
    let number = path.file_name().unwrap().to_string_lossy()[..3].to_owned();
    let (method, url) = text
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("# "))
        .and_then(|l| l.split_once(' '))
        .map(|(m, u)| (m.to_owned(), u.to_owned()))
        .unwrap();
    let request = section(&text, "## Request");
    let response = section(&text, "## Response");
    let (request_head, request_body) = split_head(&request);
    let (response_head, response_body) = split_head(&response);
    let status = response_head[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    Exchange {
        number,
        method,
        url,
        request_headers: headers(&request_head[1..]),
        request_body,
        status,
        response_headers: headers(&response_head[1..]),
        response_body,
    }
}

fn section(text: &str, title: &str) -> String {
    let start = text.find(title).unwrap() + title.len() + 1;
    let rest = &text[start..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

fn split_head(block: &str) -> (Vec<String>, String) {
    let (head, body) = block.split_once("\n\n").unwrap_or((block, ""));
    (
        head.lines().map(str::to_owned).collect(),
        body.trim().to_owned(),
    )
}

fn headers(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The simulator configured like the captured cloud.
async fn devstack() -> Simulator {
    let region = |name: &str| RegionConfig {
        quota: QuotaConfig {
            instances: 10,
            cores: 20,
            ram: 51200,
            key_pairs: 100,
        },
        images: vec!["cirros-fake".into()],
        flavors: vec![
            FlavorConfig {
                id: "1".into(),
                name: "m1.tiny".into(),
                vcpus: 1,
                ram: 512,
                disk: 1,
            },
            FlavorConfig {
                id: "2".into(),
                name: "m1.small".into(),
                vcpus: 1,
                ram: 2048,
                disk: 20,
            },
        ],
        build_secs: 2.0,
        delete_secs: 1.0,
        ..RegionConfig::named(name)
    };
    let mut provider = ProviderConfig::named("devstack");
    provider.regions = vec![region("RegionOne"), region("RegionTwo")];
    Simulator::start(SimConfig {
        providers: vec![provider],
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// Maps the real service's address to the simulator's.
fn sim_url(real: &str, sim: &serde_json::Value) -> Option<String> {
    let url = url::Url::parse(real).unwrap();
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let provider = &sim["providers"][0];
    let keystone = provider["auth_url"]
        .as_str()?
        .trim_end_matches("/v3")
        .to_owned();
    let region = |i: usize| provider["regions"][i]["url"].as_str().map(str::to_owned);
    Some(match url.port()? {
        5000 => format!("{keystone}{path_and_query}"),
        8774 => format!("{}/compute{path_and_query}", region(0)?),
        18774 => format!("{}/compute{path_and_query}", region(1)?),
        9292 => format!("{}/image{path_and_query}", region(0)?),
        _ => return None,
    })
}

/// Real ids → simulator ids.
#[derive(Default)]
struct Ids(BTreeMap<String, String>);

impl Ids {
    fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (real, sim) in &self.0 {
            out = out.replace(real, sim);
        }
        out
    }

    /// Learns every `id` that differs between the two answers, in parallel.
    fn learn(&mut self, real: &Value, sim: &Value) {
        match (real, sim) {
            (Value::Object(r), Value::Object(s)) => {
                for (key, rv) in r {
                    if let Some(sv) = s.get(key) {
                        if key == "id"
                            && let (Some(a), Some(b)) = (rv.as_str(), sv.as_str())
                            && a != b
                            && a.len() >= 8
                        {
                            self.0.insert(a.to_owned(), b.to_owned());
                        }
                        self.learn(rv, sv);
                    }
                }
            }
            (Value::Array(r), Value::Array(s)) => {
                for (rv, sv) in r.iter().zip(s) {
                    self.learn(rv, sv);
                }
            }
            _ => {}
        }
    }
}

/// Arrays whose length must match (listings); other arrays (catalog,
/// roles, links) are compared by their first element's shape only.
const COUNTED: &[&str] = &[
    "servers",
    "keypairs",
    "flavors",
    "images",
    "addresses",
    "private",
];

fn shape_differences(path: &str, real: &Value, sim: &Value, out: &mut Vec<String>) {
    match (real, sim) {
        (Value::Object(r), Value::Object(s)) => {
            for key in r.keys().filter(|k| !s.contains_key(*k)) {
                out.push(format!("{path}.{key} missing"));
            }
            for key in s.keys().filter(|k| !r.contains_key(*k)) {
                out.push(format!("{path}.{key} extra"));
            }
            for (key, rv) in r {
                if let Some(sv) = s.get(key) {
                    shape_differences(&format!("{path}.{key}"), rv, sv, out);
                }
            }
        }
        (Value::Array(r), Value::Array(s)) => {
            let last = path.rsplit('.').next().unwrap_or_default();
            if COUNTED.contains(&last) && r.len() != s.len() {
                out.push(format!(
                    "{path}: {} items, simulator has {}",
                    r.len(),
                    s.len()
                ));
            }
            if let (Some(rv), Some(sv)) = (r.first(), s.first()) {
                shape_differences(&format!("{path}[0]"), rv, sv, out);
            }
        }
        (Value::Null, _) | (_, Value::Null) => {}
        (r, s) if std::mem::discriminant(r) != std::mem::discriminant(s) => {
            out.push(format!("{path}: {r} vs {s}"));
        }
        _ => {}
    }
}

/// Protocol headers the simulator must send whenever the real service did.
const HEADERS: &[&str] = &[
    "openstack-api-version",
    "x-openstack-nova-api-version",
    "location",
    "x-subject-token",
    "www-authenticate",
];

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

async fn send(http: &reqwest::Client, exchange: &Exchange, url: &str, ids: &Ids) -> Answer {
    let method = reqwest::Method::from_bytes(exchange.method.as_bytes()).unwrap();
    let mut request = http.request(method, ids.apply(url));
    for (name, value) in &exchange.request_headers {
        if ["host", "content-length", "user-agent", "accept"].contains(&name.as_str()) {
            continue;
        }
        request = request.header(name, ids.apply(value));
    }
    if !exchange.request_body.is_empty() {
        let body: Value = serde_json::from_str(&ids.apply(&exchange.request_body)).unwrap();
        request = request.body(serde_json::to_vec(&body).unwrap());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = response.text().await.unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

/// Differences between the real answer and the simulator's.
fn compare(exchange: &Exchange, answer: &Answer, ids: &Ids) -> Vec<String> {
    let mut out = Vec::new();
    if exchange.status != answer.status {
        out.push(format!("status {} vs {}", exchange.status, answer.status));
        return out;
    }
    for name in HEADERS {
        if let Some(real) = header(&exchange.response_headers, name) {
            match header(&answer.headers, name) {
                None => out.push(format!("header {name} missing")),
                Some(sim) if name.contains("version") && sim != real => {
                    out.push(format!("header {name}: {real} vs {sim}"))
                }
                Some(_) => {}
            }
        }
    }
    let real_type = header(&exchange.response_headers, "content-type").unwrap_or_default();
    let sim_type = header(&answer.headers, "content-type").unwrap_or_default();
    if real_type.contains("json") != sim_type.contains("json") {
        out.push(format!("content-type {real_type} vs {sim_type}"));
    }
    if exchange.response_body.is_empty() {
        if !answer.body.is_empty() {
            out.push(format!("body should be empty, is {}", answer.body));
        }
        return out;
    }
    match serde_json::from_str::<Value>(&exchange.response_body) {
        Ok(real) => {
            let Ok(sim) = serde_json::from_str::<Value>(&answer.body) else {
                out.push(format!("body is not JSON: {}", answer.body));
                return out;
            };
            if exchange.status >= 400 {
                let expected: Value =
                    serde_json::from_str(&ids.apply(&exchange.response_body)).unwrap();
                if expected != sim {
                    out.push(format!("error body {expected} vs {sim}"));
                }
            } else {
                shape_differences("$", &real, &sim, &mut out);
                // A server poll must be in the same state.
                for pointer in ["/server/status", "/server/OS-EXT-STS:task_state"] {
                    if real.pointer(pointer) != sim.pointer(pointer) {
                        out.push(format!(
                            "{pointer}: {:?} vs {:?}",
                            real.pointer(pointer),
                            sim.pointer(pointer)
                        ));
                    }
                }
            }
        }
        Err(_) => {
            if exchange.response_body.trim() != answer.body.trim() {
                out.push(format!(
                    "body {:?} vs {:?}",
                    exchange.response_body, answer.body
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn simulator_answers_like_the_real_services() {
    let sim = devstack().await;
    let state = sim.state();
    let http = reqwest::Client::new();
    let mut ids = Ids::default();
    let mut files: Vec<_> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
    files.sort();
    assert_eq!(files.len(), 64, "every transcript is replayed");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for file in &files {
        let exchange = parse(file);
        if NOT_SIMULATED.iter().any(|(n, _)| *n == exchange.number) {
            continue;
        }
        let url = sim_url(&exchange.url, &state)
            .unwrap_or_else(|| panic!("{}: unmapped url", exchange.number));
        // Polls may need the simulated clock to catch up with the real one.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let (answer, differences) = loop {
            let answer = send(&http, &exchange, &url, &ids).await;
            let differences = compare(&exchange, &answer, &ids);
            let retry = exchange.method == "GET"
                && !differences.is_empty()
                && tokio::time::Instant::now() < deadline;
            if !retry {
                break (answer, differences);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if let (Ok(real), Ok(simulated)) = (
            serde_json::from_str::<Value>(&exchange.response_body),
            serde_json::from_str::<Value>(&answer.body),
        ) {
            ids.learn(&real, &simulated);
        }
        if let (Some(real), Some(simulated)) = (
            header(&exchange.response_headers, "x-subject-token"),
            header(&answer.headers, "x-subject-token"),
        ) {
            ids.0.insert(real.to_owned(), simulated.to_owned());
        }
        replayed += 1;
        if !differences.is_empty() {
            failures.push(format!(
                "{} {} {}:\n  {}",
                exchange.number,
                exchange.method,
                exchange.url,
                differences.join("\n  ")
            ));
        }
    }
    assert_eq!(replayed, 64 - NOT_SIMULATED.len());
    assert!(
        failures.is_empty(),
        "{} of {replayed} exchanges differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
