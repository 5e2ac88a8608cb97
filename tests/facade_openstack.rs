//! The OpenStack façade driven by the real `openstack` command line
//! (python-openstackclient from PyPI, in the venv `.ci/run` makes): a
//! clouds.yaml pointed at the daemon, and nothing else changed.
//!
//! The venv is `$OPENSTACK_CLIENTS_VENV` (default `/opt/oms-clients/venv`);
//! without it these tests say so and pass, unless
//! `REQUIRE_OPENSTACK_CLIENTS` is set, as CI sets it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::api::{Harness, start};
use oms_actors::model::Role;
use oms_web::ApiConfig;
use serde_json::{Value, json};

/// The `openstack` executable, if installed.
fn openstack_cli() -> Option<PathBuf> {
    let venv = std::env::var_os("OPENSTACK_CLIENTS_VENV")
        .map_or_else(|| PathBuf::from("/opt/oms-clients/venv"), PathBuf::from);
    let cli = venv.join("bin/openstack");
    if cli.exists() {
        return Some(cli);
    }
    assert!(
        std::env::var_os("REQUIRE_OPENSTACK_CLIENTS").is_none(),
        "no {} (REQUIRE_OPENSTACK_CLIENTS is set)",
        cli.display()
    );
    eprintln!("skipped: no {}", cli.display());
    None
}

/// A clouds.yaml with one cloud per auth type, for the client `name`.
fn clouds_yaml(dir: &Path, h: &Harness, name: &str, secret: &str) -> PathBuf {
    let id = h
        .store
        .list_tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap()
        .id;
    let auth_url = format!("{}/identity", h.base);
    let file = dir.join("clouds.yaml");
    std::fs::write(
        &file,
        format!(
            "clouds:\n  oms:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {auth_url}\n      \
             application_credential_id: {id}\n      application_credential_secret: {secret}\n    \
             region_name: oms\n    identity_api_version: 3\n  \
             oms-password:\n    auth:\n      auth_url: {auth_url}\n      username: {name}\n      password: {secret}\n      \
             project_name: {name}\n      user_domain_name: Default\n      project_domain_name: Default\n    \
             region_name: oms\n    identity_api_version: 3\n"
        ),
    )
    .unwrap();
    file
}

/// Runs `openstack args` against `cloud`; (success, stdout, stderr).
async fn run(cli: &Path, clouds: &Path, cloud: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(cli);
    // The cloud is the clouds.yaml's alone: no OS_* of the environment
    // may point the client elsewhere.
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("OS_")) {
        command.env_remove(name);
    }
    command
        .args(args)
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .env("OS_CLOUD", cloud);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Like [`run`], which must succeed; its stdout as JSON (`-f json`).
async fn json_of(cli: &Path, clouds: &Path, cloud: &str, args: &[&str]) -> Value {
    let (ok, out, err) = run(cli, clouds, cloud, args).await;
    assert!(ok, "openstack {args:?} failed:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|_| panic!("openstack {args:?}: not JSON: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openstack_cli_lists_creates_shows_and_deletes_through_the_facade() {
    let Some(cli) = openstack_cli() else {
        return;
    };
    let h = start(ApiConfig::default()).await;
    let secret = h.token("ci", Role::Client, Some(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let clouds = clouds_yaml(dir.path(), &h, "ci", &secret);
    let (cli, clouds) = (cli.as_path(), clouds.as_path());

    let flavors = json_of(cli, clouds, "oms", &["flavor", "list", "-f", "json"]).await;
    assert!(
        flavors
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["Name"] == "small"),
        "{flavors}"
    );
    let images = json_of(cli, clouds, "oms", &["image", "list", "-f", "json"]).await;
    assert!(
        images
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["Name"] == "cirros-fake"),
        "{images}"
    );
    let networks = json_of(cli, clouds, "oms", &["network", "list", "-f", "json"]).await;
    assert_eq!(networks[0]["Name"], "oms", "{networks}");

    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let public = dir.path().join("k.pub");
    std::fs::write(&public, key.public_key().to_openssh().unwrap()).unwrap();
    let created = json_of(
        cli,
        clouds,
        "oms",
        &[
            "keypair",
            "create",
            "--public-key",
            public.to_str().unwrap(),
            "k",
            "-f",
            "json",
        ],
    )
    .await;
    assert_eq!(created["name"], "k", "{created}");

    let server = json_of(
        cli,
        clouds,
        "oms",
        &[
            "server",
            "create",
            "--flavor",
            "small",
            "--image",
            "cirros-fake",
            "--key-name",
            "k",
            "--network",
            "oms",
            "--property",
            "job=42",
            "--wait",
            "one",
            "-f",
            "json",
        ],
    )
    .await;
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let id = server["id"].as_str().unwrap().to_owned();
    // The same instance through our API, with its public key from "k".
    let instance = h
        .call("GET", &format!("/v1/instances/{id}"), Some(&secret), None)
        .await;
    assert_eq!(instance.body["status"], "active", "{}", instance.text);
    assert_eq!(instance.body["name"], "one");

    let listed = json_of(cli, clouds, "oms", &["server", "list", "-f", "json"]).await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["ID"] == id.as_str()),
        "{listed}"
    );
    let shown = json_of(
        cli,
        clouds,
        "oms-password",
        &["server", "show", "one", "-f", "json"],
    )
    .await;
    assert_eq!(shown["id"], id.as_str(), "{shown}");
    assert_eq!(shown["key_name"], "k", "{shown}");
    assert!(shown["properties"].to_string().contains("42"), "{shown}");
    assert!(shown["addresses"].to_string().contains("oms"), "{shown}");

    let limits = json_of(
        cli,
        clouds,
        "oms",
        &["limits", "show", "--absolute", "-f", "json"],
    )
    .await;
    let absolute = |name: &str| {
        limits
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["Name"] == name)
            .map(|l| l["Value"].clone())
    };
    assert_eq!(absolute("instances"), Some(json!(10)), "{limits}");
    assert_eq!(absolute("instances_used"), Some(json!(1)), "{limits}");

    let zones = json_of(
        cli,
        clouds,
        "oms",
        &["availability", "zone", "list", "--compute", "-f", "json"],
    )
    .await;
    assert!(zones.to_string().contains("south/south-1"), "{zones}");
    let pinned = json_of(
        cli,
        clouds,
        "oms",
        &[
            "server",
            "create",
            "--flavor",
            "small",
            "--image",
            "cirros-fake",
            "--availability-zone",
            "south/south-1",
            "--wait",
            "pinned",
            "-f",
            "json",
        ],
    )
    .await;
    assert_eq!(
        pinned["OS-EXT-AZ:availability_zone"], "south/south-1",
        "{pinned}"
    );

    for name in ["one", "pinned"] {
        let (ok, out, err) = run(cli, clouds, "oms", &["server", "delete", "--wait", name]).await;
        assert!(ok, "{out}\n{err}");
    }
    let (gone, _, _) = run(cli, clouds, "oms", &["server", "show", &id]).await;
    assert!(!gone, "a deleted server is not found");
    // ... but is listed DELETED to whoever asks what changed since.
    let changed = json_of(
        cli,
        clouds,
        "oms",
        &[
            "server",
            "list",
            "--changes-since",
            "2020-01-01T00:00:00Z",
            "-f",
            "json",
        ],
    )
    .await;
    assert!(
        changed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["ID"] == id.as_str() && s["Status"] == "DELETED"),
        "{changed}"
    );
    let (ok, out, err) = run(cli, clouds, "oms", &["keypair", "delete", "k"]).await;
    assert!(ok, "{out}\n{err}");
}

/// Servers still come up with a provider in maintenance; a revoked token
/// ends the façade's tokens made from it; one client's servers are
/// another's 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facade_reroutes_revokes_and_keeps_clients_apart() {
    let Some(cli) = openstack_cli() else {
        return;
    };
    let h = start(ApiConfig::default()).await;
    for region in ["north-1", "north-2"] {
        h.sim
            .set_faults(
                "north",
                Some(region),
                oms_sim::Faults {
                    outage: Some(oms_sim::Outage::Maintenance),
                    ..oms_sim::Faults::default()
                },
            )
            .unwrap();
    }
    let secret = h.token("ci", Role::Client, None).await;
    let dir = tempfile::tempdir().unwrap();
    let clouds = clouds_yaml(dir.path(), &h, "ci", &secret);
    let (cli, clouds) = (cli.as_path(), clouds.as_path());
    let server = json_of(
        cli,
        clouds,
        "oms",
        &[
            "server",
            "create",
            "--flavor",
            "small",
            "--image",
            "cirros-fake",
            "--min",
            "2",
            "--max",
            "2",
            "--tag",
            "batch",
            "--wait",
            "through",
            "-f",
            "json",
        ],
    )
    .await;
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let listed = json_of(
        cli,
        clouds,
        "oms",
        &["server", "list", "--long", "-f", "json"],
    )
    .await;
    let servers = listed.as_array().unwrap();
    assert_eq!(servers.len(), 2, "{listed}");
    let id = servers[0]["ID"].as_str().unwrap().to_owned();
    // Tags (microversion 2.52, negotiated by the client) filter listings.
    let tagged = json_of(
        cli,
        clouds,
        "oms",
        &["server", "list", "--tags", "batch", "-f", "json"],
    )
    .await;
    assert_eq!(tagged.as_array().unwrap().len(), 2, "{tagged}");
    let untagged = json_of(
        cli,
        clouds,
        "oms",
        &["server", "list", "--tags", "other", "-f", "json"],
    )
    .await;
    assert_eq!(untagged, json!([]));
    for s in servers {
        assert!(
            s["Availability Zone"]
                .as_str()
                .unwrap()
                .starts_with("south/"),
            "{listed}"
        );
    }

    // Another client: the same id is not found; its list is empty.
    let other = h.token("other", Role::Client, None).await;
    let auth = json!({"auth": {"identity": {"methods": ["password"],
        "password": {"user": {"name": "other", "domain": {"name": "Default"}, "password": other}}}}});
    let http = reqwest::Client::new();
    let issued = http
        .post(format!("{}/identity/v3/auth/tokens", h.base))
        .json(&auth)
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status().as_u16(), 201);
    let facade_token = issued.headers()["X-Subject-Token"]
        .to_str()
        .unwrap()
        .to_owned();
    let shown = http
        .get(format!("{}/compute/v2.1/servers/{id}", h.base))
        .header("X-Auth-Token", &facade_token)
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status().as_u16(), 404);
    let body: Value = shown.json().await.unwrap();
    assert!(body["itemNotFound"]["message"].is_string(), "{body}");
    let theirs: Value = http
        .get(format!("{}/compute/v2.1/servers", h.base))
        .header("X-Auth-Token", &facade_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["servers"], json!([]));

    // Revoking our token ends the façade token made from it.
    let token_id = h
        .store
        .list_tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.name == "other")
        .unwrap()
        .id;
    let revoked = h
        .call(
            "DELETE",
            &format!("/v1/tokens/{token_id}"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    let after = http
        .get(format!("{}/compute/v2.1/servers", h.base))
        .header("X-Auth-Token", &facade_token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status().as_u16(), 401);
    // A wrong secret gets Keystone's 401.
    let wrong = http
        .post(format!("{}/identity/v3/auth/tokens", h.base))
        .json(
            &json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": token_id, "secret": "oms_wrong"}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    let (ok, out, err) = run(cli, clouds, "oms", &["server", "delete", "--wait", &id]).await;
    assert!(ok, "{out}\n{err}");
}

/// What an openstacksdk script does, as users write them.
const SDK_SCRIPT: &str = r#"
import json, sys
import openstack
conn = openstack.connect(cloud=sys.argv[1])
name = sys.argv[2]
created = conn.create_server(name, image="cirros-fake", flavor="small", network="oms", wait=True, timeout=120)
assert created.status == "ACTIVE", created.status
address = created.private_v4
server = conn.compute.wait_for_server(conn.compute.get_server(created.id), status="ACTIVE", wait=60)
listed = [s.name for s in conn.list_servers()]
assert name in listed, listed
assert conn.delete_server(server.id, wait=True, timeout=120)
assert conn.get_server(server.id) is None
print(json.dumps({"id": server.id, "address": address, "addresses": server.addresses}))
"#;

/// openstacksdk's `create_server(wait=True)`, `wait_for_server`,
/// `list_servers` and `delete_server(wait=True)`, with the
/// `v3applicationcredential` and the `token` auth types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstacksdk_creates_waits_lists_and_deletes_with_either_auth_type() {
    let Some(cli) = openstack_cli() else {
        return;
    };
    let python = cli.with_file_name("python");
    let h = start(ApiConfig::default()).await;
    let secret = h.token("sdk", Role::Client, None).await;
    let dir = tempfile::tempdir().unwrap();
    let clouds = clouds_yaml(dir.path(), &h, "sdk", &secret);
    // A token cloud: a façade token from the application credential.
    let issued = reqwest::Client::new()
        .post(format!("{}/identity/v3/auth/tokens", h.base))
        .json(&json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"name": "sdk", "domain": {"name": "Default"}, "password": secret}}}}}))
        .send()
        .await
        .unwrap();
    let token = issued.headers()["X-Subject-Token"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut text = std::fs::read_to_string(&clouds).unwrap();
    text.push_str(&format!(
        "  oms-token:\n    auth_type: token\n    auth:\n      auth_url: {}/identity\n      token: {token}\n      \
         project_name: sdk\n      project_domain_name: Default\n    region_name: oms\n    identity_api_version: 3\n",
        h.base
    ));
    std::fs::write(&clouds, text).unwrap();
    let script = dir.path().join("sdk.py");
    std::fs::write(&script, SDK_SCRIPT).unwrap();
    for (cloud, name) in [("oms", "sdk-app"), ("oms-token", "sdk-token")] {
        let mut command = Command::new(&python);
        command
            .arg(&script)
            .args([cloud, name])
            .env("OS_CLIENT_CONFIG_FILE", &clouds);
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{cloud}:\n{out}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let result: Value = serde_json::from_str(out.trim()).unwrap();
        assert!(
            result["address"].as_str().is_some_and(|a| !a.is_empty()),
            "{result}"
        );
        let instance = h
            .call(
                "GET",
                &format!("/v1/instances/{}", result["id"].as_str().unwrap()),
                Some(&secret),
                None,
            )
            .await;
        assert_eq!(instance.body["name"], name);
        assert!(
            ["deleting", "deleted"].contains(&instance.body["status"].as_str().unwrap_or("")),
            "{}",
            instance.text
        );
    }
}

const PLAYBOOK: &str = r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - name: three servers
      openstack.cloud.server:
        cloud: oms
        state: "{{ wanted }}"
        name: "play-{{ item }}"
        image: cirros-fake
        flavor: small
        network: oms
        auto_ip: false
        wait: true
        timeout: 180
      loop: [1, 2, 3]
"#;

/// `changed=N` of a playbook's recap.
fn changed(recap: &str) -> Option<u32> {
    recap
        .split_whitespace()
        .find_map(|w| w.strip_prefix("changed="))
        .and_then(|n| n.parse().ok())
}

/// Ansible's `openstack.cloud.server` (the collection the `ansible`
/// package brings, in its own venv: it needs an openstacksdk before
/// 4.15) creates three servers, changes nothing on a second run, and
/// removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ansible_playbook_creates_three_servers_idempotently_and_removes_them() {
    let venv = std::env::var_os("ANSIBLE_VENV")
        .map_or_else(|| PathBuf::from("/opt/oms-clients/ansible"), PathBuf::from);
    let playbook_cli = venv.join("bin/ansible-playbook");
    if !playbook_cli.exists() {
        assert!(
            std::env::var_os("REQUIRE_OPENSTACK_CLIENTS").is_none(),
            "no {}",
            playbook_cli.display()
        );
        eprintln!("skipped: no {}", playbook_cli.display());
        return;
    }
    let h = start(ApiConfig::default()).await;
    let secret = h.token("ansible", Role::Client, None).await;
    let dir = tempfile::tempdir().unwrap();
    let clouds = clouds_yaml(dir.path(), &h, "ansible", &secret);
    let playbook = dir.path().join("play.yml");
    std::fs::write(&playbook, PLAYBOOK).unwrap();
    let play = |wanted: &'static str| {
        let mut command = Command::new(&playbook_cli);
        command
            .args(["-i", "localhost,", "-c", "local"])
            .arg(&playbook)
            .args(["-e", &format!("wanted={wanted}")])
            .current_dir(dir.path())
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .env("ANSIBLE_PYTHON_INTERPRETER", venv.join("bin/python"))
            .env("ANSIBLE_LOCAL_TEMP", dir.path().join("ansible-tmp"))
            .env("ANSIBLE_NOCOLOR", "1");
        async move {
            let output = tokio::task::spawn_blocking(move || command.output().unwrap())
                .await
                .unwrap();
            let out = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(output.status.success(), "{wanted}:\n{out}");
            let recap = out
                .lines()
                .rev()
                .find(|l| l.contains("changed="))
                .unwrap_or("")
                .to_owned();
            changed(&recap).unwrap_or_else(|| panic!("no recap in {out}"))
        }
    };
    assert_eq!(play("present").await, 1, "the first run creates");
    let live = |h: &Harness| {
        h.store
            .list_instances(&oms_actors::store::InstanceFilter {
                client: Some("ansible".into()),
                states: vec![oms_actors::model::InstanceState::Active],
                ..Default::default()
            })
            .unwrap()
            .len()
    };
    assert_eq!(live(&h), 3);
    assert_eq!(play("present").await, 0, "the second run changes nothing");
    assert_eq!(live(&h), 3, "and creates nothing");
    assert_eq!(play("absent").await, 1, "removal");
    assert_eq!(live(&h), 0);
    assert_eq!(play("absent").await, 0, "removal again changes nothing");
}

/// A façade token for `name`, by the password method.
async fn facade_token(h: &Harness, name: &str, secret: &str) -> String {
    let issued = reqwest::Client::new()
        .post(format!("{}/identity/v3/auth/tokens", h.base))
        .json(&json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"name": name, "domain": {"name": "Default"}, "password": secret}}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status().as_u16(), 201);
    issued.headers()["X-Subject-Token"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// What no client library shows: Nova's error shapes and statuses, the
/// microversion refused beyond what is served, the per-token rate, and a
/// façade that can be turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facade_refuses_in_novas_shapes() {
    let h = start(ApiConfig {
        client_rate_per_sec: 1,
        client_burst: 8,
        ..ApiConfig::default()
    })
    .await;
    let secret = h.token("shapes", Role::Client, Some(1)).await;
    let token = facade_token(&h, "shapes", &secret).await;
    let http = reqwest::Client::new();
    let compute = |path: &str| format!("{}/compute/v2.1{path}", h.base);
    let send = |request: reqwest::RequestBuilder| async {
        let response = request.header("X-Auth-Token", &token).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let create = |networks: Value| json!({"server": {"name": "s", "flavorRef": "small", "imageRef": "cirros-fake", "networks": networks}});

    let (status, _, body) = send(
        http.post(compute("/servers"))
            .json(&create(json!([{"uuid": "nope"}]))),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["badRequest"]["message"]
            .as_str()
            .unwrap()
            .contains("Network nope"),
        "{body}"
    );
    let (status, _, body) = send(
        http.post(compute("/servers"))
            .json(&json!({"server": {"name": "s", "flavorRef": "huge", "networks": "auto"}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // An image no profile names is not offered; one another profile
    // names boots with this flavor's minima (a client without a limit).
    let images_secret = h.token("images", Role::Client, None).await;
    let images_token = facade_token(&h, "images", &images_secret).await;
    let as_images = |request: reqwest::RequestBuilder| async {
        let response = request
            .header("X-Auth-Token", &images_token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let (status, body) = as_images(http.post(compute("/servers")).json(
        &json!({"server": {"name": "s", "flavorRef": "small", "imageRef": "ubuntu-24.04", "networks": "auto"}}),
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["badRequest"]["message"]
            .as_str()
            .unwrap()
            .contains("Image ubuntu-24.04"),
        "{body}"
    );
    let other = json!({"name": "other", "min_vcpus": 2, "min_ram_mb": 1024, "min_disk_gb": 1, "image": "debian-12"});
    assert_eq!(
        h.call("POST", "/v1/profiles", Some(&h.admin), Some(other))
            .await
            .status,
        201
    );
    let (_, images) =
        as_images(http.get(format!("{}/image/v2/images?name=debian-12", h.base))).await;
    let debian = images["images"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = as_images(http.post(compute("/servers")).json(
        &json!({"server": {"name": "d", "flavorRef": "small", "imageRef": debian, "networks": "auto"}}),
    ))
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().unwrap();
    let launched = h
        .call(
            "GET",
            &format!("/v1/instances/{id}"),
            Some(&images_secret),
            None,
        )
        .await;
    let profile = launched.body["profile"].as_str().unwrap().to_owned();
    let shape = h.store.get_profile(&profile).unwrap().unwrap();
    assert_eq!(
        (shape.image.as_str(), shape.min_vcpus),
        ("debian-12", 1),
        "{shape:?}"
    );

    let (status, headers, body) = send(
        http.get(compute("/servers"))
            .header("OpenStack-API-Version", "compute 2.999"),
    )
    .await;
    assert_eq!(status, 406, "{body}");
    assert!(headers.contains_key("openstack-api-version"));
    let (status, _, body) = send(http.post(compute("/servers")).json(&create(json!("auto")))).await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().unwrap().to_owned();
    // The client's own limit is Nova's "Quota exceeded".
    let (status, _, body) = send(http.post(compute("/servers")).json(&create(json!("none")))).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["forbidden"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Quota exceeded"),
        "{body}"
    );
    let (status, _, body) = send(
        http.post(compute(&format!("/servers/{id}/action")))
            .json(&json!({"reboot": {"type": "SOFT"}})),
    )
    .await;
    assert_eq!(status, 501, "{body}");
    assert!(body["notImplemented"]["message"].is_string(), "{body}");
    let (status, _, body) = send(http.get(compute("/servers/not-one-of-yours"))).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["itemNotFound"]["message"].is_string());
    let (status, _, body) = send(
        http.post(format!("{}/network/v2.0/networks", h.base))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 501, "{body}");
    assert_eq!(body["NeutronError"]["type"], "HTTPNotImplemented");

    // The token's rate, spent by now: Nova's overLimit with Retry-After.
    let mut limited = None;
    for _ in 0..20 {
        let (status, headers, body) = send(http.get(compute("/flavors"))).await;
        if status == 429 {
            limited = Some((headers, body));
            break;
        }
    }
    let (headers, body) = limited.expect("never rate-limited");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(body["overLimit"]["code"], 429, "{body}");

    // Off: the paths are not the façade's.
    let off = start(ApiConfig {
        facade: false,
        ..ApiConfig::default()
    })
    .await;
    let answer = http
        .get(format!("{}/identity/v3", off.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
}
