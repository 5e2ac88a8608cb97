//! The OpenStack façade on a daemon whose account is the real Nova, driven
//! by the real `openstack` command line of the conformance venv: a server
//! created through the façade boots in a real Nova region, shows ACTIVE
//! with its real address, and is deleted there.

use std::time::Duration;

use serde_json::{Value, json};

use super::cloud::{REGIONS, login};
use super::daemon::{Daemon, Options};

fn openstack_cli() -> std::path::PathBuf {
    let venv = std::env::var("MOS_VENV").unwrap_or_else(|_| "/opt/oms-conformance/venv".into());
    std::path::Path::new(&venv).join("bin/openstack")
}

async fn openstack(clouds: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut command = std::process::Command::new(openstack_cli());
    // The cloud is the clouds.yaml's alone: no OS_* of the environment
    // (the conformance cloud's own) may point the client elsewhere.
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("OS_")) {
        command.env_remove(name);
    }
    command
        .args(args)
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .env("OS_CLOUD", "oms");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real OpenStack: run conformance/run"]
async fn the_openstack_cli_boots_and_deletes_on_real_nova_through_the_facade() {
    let demo = login("demo").await;
    demo.wipe().await;
    let daemon = Daemon::start("facade", Options::default());
    for region in REGIONS {
        daemon
            .wait_region(region, Duration::from_secs(90), |r| {
                r["connected"] == true && r["profiles"]["tiny"]["fit"] == "fits"
            })
            .await;
    }
    let (status, token) = daemon
        .call(
            reqwest::Method::POST,
            "/v1/tokens",
            Some(json!({"name": "facade", "role": "client"})),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    let clouds = daemon.dir.join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  oms:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {}/identity\n      \
             application_credential_id: {}\n      application_credential_secret: {}\n    region_name: oms\n",
            daemon.base,
            token["id"].as_str().unwrap(),
            token["token"].as_str().unwrap()
        ),
    )
    .unwrap();

    let (ok, out) = openstack(
        &clouds,
        &[
            "server",
            "create",
            "--flavor",
            "tiny",
            "--image",
            "cirros-fake",
            "--network",
            "oms",
            "--availability-zone",
            "mini/RegionTwo",
            "--wait",
            "through-facade",
            "-f",
            "json",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let server: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(server["status"], "ACTIVE", "{server}");
    assert_eq!(server["OS-EXT-AZ:availability_zone"], "mini/RegionTwo");
    let id = server["id"].as_str().unwrap();
    let instance = daemon.instance(id).await;
    let server_id = instance["server_id"].as_str().unwrap().to_owned();
    // The server is Nova's own, in the region the zone named, and its
    // address is the one Nova gave.
    let (status, real) = demo.server("RegionTwo", &server_id).await;
    assert_eq!(status, 200, "{real}");
    assert_eq!(real["server"]["status"], "ACTIVE");
    assert!(
        real["server"]["addresses"]
            .to_string()
            .contains(instance["address"].as_str().unwrap()),
        "{real} / {instance}"
    );

    let (ok, out) = openstack(&clouds, &["server", "delete", "--wait", id]).await;
    assert!(ok, "{out}");
    demo.wait_empty(Duration::from_secs(60)).await;
}
