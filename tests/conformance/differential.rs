//! The same calls against the simulator and against real Nova: status
//! codes, JSON key sets and error shapes must agree. A difference is
//! either fixed in the simulator or listed in `ACCEPTED` with why (and in
//! the README's table of simulator differences).

use std::collections::BTreeSet;
use std::time::Duration;

use oms_sim::{ProviderConfig, RegionConfig, SimConfig, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

use super::cloud::{REGIONS, Scoped, auth_url, login_at};
use crate::support::eventually;

/// The microversion the daemon negotiates against Nova 34 (max 2.104).
const DAEMON_MV: &str = "2.100";

/// Differences that stay, as (step, what differs), with the reason in
/// the README.
const ACCEPTED: &[(&str, &str)] = &[];

/// What one call showed.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    keys: BTreeSet<String>,
    error: Option<String>,
    /// Statuses of the servers of a listing, sorted.
    servers: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real OpenStack: run conformance/run"]
async fn the_simulator_answers_as_real_nova_does() {
    let real_demo = login_at(&auth_url(), "demo").await;
    let real_admin = login_at(&auth_url(), "admin").await;
    real_demo.wipe().await;

    let mut provider = ProviderConfig::named("mini");
    provider.regions = REGIONS
        .iter()
        .map(|name| RegionConfig {
            build_secs: 2.0,
            delete_secs: 1.0,
            images: vec!["cirros-fake".into()],
            flavors: RegionConfig::named(name)
                .flavors
                .into_iter()
                .take(2)
                .collect(),
            ..RegionConfig::named(name)
        })
        .collect();
    let sim = Simulator::start(SimConfig {
        providers: vec![provider],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let sim_url = sim.providers()[0].auth_url.clone();
    let sim_demo = login_at(&sim_url, "demo").await;
    let sim_admin = login_at(&sim_url, "admin").await;

    let (real, simulated) = tokio::join!(
        script(&real_demo, &real_admin),
        script(&sim_demo, &sim_admin)
    );
    real_demo.wipe().await;
    for region in REGIONS {
        real_admin
            .instance_quota(region, &real_demo.project_id, None)
            .await;
    }

    let mut differences = Vec::new();
    for ((step, real), (_, simulated)) in real.iter().zip(&simulated) {
        let mut note = |what: &str, detail: String| {
            if !ACCEPTED.contains(&(step.as_str(), what)) {
                differences.push(format!("{step}: {what}: {detail}"));
            }
        };
        if real.status != simulated.status {
            note(
                "status",
                format!("real {} sim {}", real.status, simulated.status),
            );
        }
        let missing: Vec<_> = real.keys.difference(&simulated.keys).collect();
        if !missing.is_empty() {
            note("keys missing in the simulator", format!("{missing:?}"));
        }
        let extra: Vec<_> = simulated.keys.difference(&real.keys).collect();
        if !extra.is_empty() {
            note("keys only in the simulator", format!("{extra:?}"));
        }
        if real.servers != simulated.servers {
            note(
                "servers listed",
                format!("real {:?} sim {:?}", real.servers, simulated.servers),
            );
        }
        if real.error != simulated.error {
            note(
                "error",
                format!("real {:?} sim {:?}", real.error, simulated.error),
            );
        }
    }
    sim.shutdown().await;
    assert!(
        differences.is_empty(),
        "the simulator differs from Nova:\n{}",
        differences.join("\n")
    );
}

/// The calls, in order, against one cloud; (step, what it showed).
async fn script(demo: &Scoped, admin: &Scoped) -> Vec<(String, Seen)> {
    let mut seen = Vec::new();
    let r1 = REGIONS[0];
    let r2 = REGIONS[1];
    let mv = Some(DAEMON_MV);
    let mut step = async |name: &str,
                          who: &Scoped,
                          region: &str,
                          method: Method,
                          path: &str,
                          body: Option<Value>,
                          mv: Option<&str>| {
        let (status, answer) = who.nova(region, method, path, body, mv).await;
        seen.push((name.to_owned(), observe(status, &answer)));
        answer
    };

    step("versions", demo, r1, Method::GET, "/", None, None).await;
    step(
        "flavors",
        demo,
        r1,
        Method::GET,
        "/flavors/detail",
        None,
        mv,
    )
    .await;
    step(
        "flavors at 2.1",
        demo,
        r1,
        Method::GET,
        "/flavors/detail",
        None,
        None,
    )
    .await;
    step("limits", demo, r1, Method::GET, "/limits", None, mv).await;
    step(
        "keypair generated at 2.91",
        demo,
        r1,
        Method::POST,
        "/os-keypairs",
        Some(json!({"keypair": {"name": "diff-gen"}})),
        Some("2.91"),
    )
    .await;
    step(
        "keypair generated at 2.100",
        demo,
        r1,
        Method::POST,
        "/os-keypairs",
        Some(json!({"keypair": {"name": "diff-gen2"}})),
        mv,
    )
    .await;
    let public =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpDFr+8I0HQV9icG0+dBIJHThN1YYprA6OMhadAwztn diff";
    step(
        "keypair imported",
        demo,
        r1,
        Method::POST,
        "/os-keypairs",
        Some(json!({"keypair": {"name": "diff-imp", "public_key": public}})),
        mv,
    )
    .await;
    step("keypairs", demo, r1, Method::GET, "/os-keypairs", None, mv).await;

    let image = demo.image_id("cirros-fake").await;
    let boot = |name: &str, key: &str| {
        json!({"server": {"name": name, "flavorRef": "1", "imageRef": image, "networks": "auto",
            "key_name": key, "metadata": {"oms-attempt": "diff"}, "tags": ["oms-diff"],
            "user_data": "I2Nsb3VkLWNvbmZpZwo="}})
    };
    let created = step(
        "server create",
        demo,
        r1,
        Method::POST,
        "/servers",
        Some(boot("diff-1", "diff-imp")),
        mv,
    )
    .await;
    let id = created["server"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    wait_server(demo, r1, &id, Some("ACTIVE")).await;
    step(
        "server show",
        demo,
        r1,
        Method::GET,
        &format!("/servers/{id}"),
        None,
        mv,
    )
    .await;
    step(
        "server show at 2.1",
        demo,
        r1,
        Method::GET,
        &format!("/servers/{id}"),
        None,
        None,
    )
    .await;
    step(
        "servers detail",
        demo,
        r1,
        Method::GET,
        "/servers/detail",
        None,
        mv,
    )
    .await;
    step(
        "servers by tag",
        demo,
        r1,
        Method::GET,
        "/servers/detail?tags=oms-diff",
        None,
        mv,
    )
    .await;
    step(
        "servers by name",
        demo,
        r1,
        Method::GET,
        "/servers?name=diff-",
        None,
        mv,
    )
    .await;
    step(
        "servers by metadata (ignored)",
        demo,
        r1,
        Method::GET,
        "/servers?metadata=%7B%22a%22%3A%22b%22%7D",
        None,
        mv,
    )
    .await;
    step(
        "servers by metadata as admin",
        admin,
        r1,
        Method::GET,
        "/servers?all_tenants=1&metadata=%7B%22a%22%3A%22b%22%7D",
        None,
        mv,
    )
    .await;
    step(
        "tag added",
        demo,
        r1,
        Method::PUT,
        &format!("/servers/{id}/tags/oms-more"),
        None,
        mv,
    )
    .await;
    step(
        "missing server",
        demo,
        r1,
        Method::GET,
        "/servers/8b8a8e5e-0000-4000-8000-000000000000",
        None,
        mv,
    )
    .await;
    let bad = |patch: Value| {
        let mut body = boot("diff-bad", "diff-imp");
        for (k, v) in patch.as_object().unwrap() {
            body["server"][k] = v.clone();
        }
        Some(body)
    };
    step(
        "bad flavor",
        demo,
        r1,
        Method::POST,
        "/servers",
        bad(json!({"flavorRef": "no-such-flavor"})),
        mv,
    )
    .await;
    step(
        "bad image",
        demo,
        r1,
        Method::POST,
        "/servers",
        bad(json!({"imageRef": "8b8a8e5e-0000-4000-8000-000000000001"})),
        mv,
    )
    .await;
    step(
        "unknown key",
        demo,
        r1,
        Method::POST,
        "/servers",
        bad(json!({"key_name": "no-such-key"})),
        mv,
    )
    .await;
    step(
        "key of another region",
        demo,
        r2,
        Method::POST,
        "/servers",
        bad(json!({})),
        mv,
    )
    .await;
    step(
        "microversion 2.999",
        demo,
        r1,
        Method::GET,
        "/flavors",
        None,
        Some("2.999"),
    )
    .await;
    let bogus = demo.with_token("gAAAAABbogus");
    step(
        "invalid token",
        &bogus,
        r1,
        Method::GET,
        "/servers",
        None,
        mv,
    )
    .await;

    // Quota: 2 instances; the second fits, the third is refused.
    admin.instance_quota(r1, &demo.project_id, Some(2)).await;
    step(
        "quota detail",
        admin,
        r1,
        Method::GET,
        &format!("/os-quota-sets/{}/detail", demo.project_id),
        None,
        mv,
    )
    .await;
    let second = step(
        "server create within quota",
        demo,
        r1,
        Method::POST,
        "/servers",
        Some(boot("diff-2", "diff-imp")),
        mv,
    )
    .await;
    let second_id = second["server"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Real Nova counts a server only once the conductor made it: a create
    // sent right after another may still pass (see the README).
    wait_server(demo, r1, &second_id, Some("ACTIVE")).await;
    step(
        "server create over quota",
        demo,
        r1,
        Method::POST,
        "/servers",
        Some(boot("diff-3", "diff-imp")),
        mv,
    )
    .await;
    step(
        "limits at quota",
        demo,
        r1,
        Method::GET,
        "/limits",
        None,
        mv,
    )
    .await;
    admin.instance_quota(r1, &demo.project_id, None).await;

    // Both servers changed after this (Nova keeps `updated` to the second).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    step(
        "server delete",
        demo,
        r1,
        Method::DELETE,
        &format!("/servers/{id}"),
        None,
        mv,
    )
    .await;
    step(
        "server delete 2",
        demo,
        r1,
        Method::DELETE,
        &format!("/servers/{second_id}"),
        None,
        mv,
    )
    .await;
    wait_server(demo, r1, &id, None).await;
    wait_server(demo, r1, &second_id, None).await;
    let rfc3339 = since.format("%Y-%m-%dT%H:%M:%SZ");
    step(
        "changes-since shows deleted servers",
        demo,
        r1,
        Method::GET,
        &format!("/servers/detail?changes-since={rfc3339}"),
        None,
        mv,
    )
    .await;
    step(
        "changes-since with a tag: deleted servers lost their tags",
        demo,
        r1,
        Method::GET,
        &format!("/servers/detail?changes-since={rfc3339}&tags=oms-diff"),
        None,
        mv,
    )
    .await;
    step(
        "changes-since without an offset",
        demo,
        r1,
        Method::GET,
        &format!(
            "/servers?changes-since={}",
            since.format("%Y-%m-%dT%H:%M:%S")
        ),
        None,
        mv,
    )
    .await;
    step(
        "changes-since malformed",
        demo,
        r1,
        Method::GET,
        "/servers/detail?changes-since=yesterday",
        None,
        mv,
    )
    .await;
    step(
        "deleted server",
        demo,
        r1,
        Method::GET,
        &format!("/servers/{id}"),
        None,
        mv,
    )
    .await;
    step(
        "server in the other region",
        demo,
        r2,
        Method::GET,
        &format!("/servers/{second_id}"),
        None,
        mv,
    )
    .await;
    for name in ["diff-gen", "diff-gen2", "diff-imp"] {
        step(
            &format!("keypair delete {name}"),
            demo,
            r1,
            Method::DELETE,
            &format!("/os-keypairs/{name}"),
            None,
            mv,
        )
        .await;
    }
    step(
        "missing keypair delete",
        demo,
        r1,
        Method::DELETE,
        "/os-keypairs/diff-imp",
        None,
        mv,
    )
    .await;
    seen
}

/// Status, the set of key paths of the body, and for errors the wrapper,
/// code and message with ids masked.
fn observe(status: u16, body: &Value) -> Seen {
    let mut keys = BTreeSet::new();
    paths(body, String::new(), &mut keys);
    let error = (status >= 400).then(|| {
        let text = body.to_string();
        mask(&text)
    });
    let mut servers: Vec<String> = body["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["status"].as_str().unwrap_or("-").to_owned())
        .collect();
    servers.sort();
    Seen {
        status,
        keys,
        error,
        servers,
    }
}

fn paths(value: &Value, at: String, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let here = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                into.insert(here.clone());
                paths(inner, here, into);
            }
        }
        Value::Array(items) => {
            for inner in items {
                paths(inner, format!("{at}[]"), into);
            }
        }
        _ => {}
    }
}

/// Error text with UUIDs and other long hexadecimal ids replaced.
fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit() || **c == '-')
            .count();
        let hex = bytes[i..i + run]
            .iter()
            .filter(|c| c.is_ascii_hexdigit())
            .count();
        if run >= 32 && hex >= 32 {
            out.push_str("<id>");
            i += run;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Waits until `id` shows `status` (or, with `None`, is gone: 404).
async fn wait_server(who: &Scoped, region: &str, id: &str, status: Option<&str>) {
    let what = format!("{id} to be {}", status.unwrap_or("gone"));
    eventually(Duration::from_secs(120), &what, || async {
        let (code, body) = who.server(region, id).await;
        let done = match status {
            Some(status) => body["server"]["status"] == status,
            None => code == 404,
        };
        done.then_some(())
    })
    .await;
}
