//! Registration through the API with Keystone v3 password auth, regions
//! discovered from the real catalog, the profile resolved to the real
//! flavor and image; then launch → ACTIVE with an address → delete → gone
//! in both regions, with a generated and an imported key, user_data and
//! metadata as sent.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::cloud::{REGIONS, auth_url, login};
use super::daemon::{Daemon, Options};

const IMPORTED: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpDFr+8I0HQV9icG0+dBIJHThN1YYprA6OMhadAwztn conformance";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real OpenStack: run conformance/run"]
async fn register_discover_launch_and_delete_in_both_regions() {
    let demo = login("demo").await;
    let admin = login("admin").await;
    demo.wipe().await;
    let daemon = Daemon::start(
        "lifecycle",
        Options {
            with_account: false,
            ..Options::default()
        },
    );

    // Registration, tested against the real Keystone before it is saved.
    let (status, account) = daemon
        .call(
            reqwest::Method::POST,
            "/v1/accounts",
            Some(json!({
                "name": "mini", "auth_url": auth_url(),
                "user": {"name": "demo", "domain": "Default"},
                "project": {"name": "demo", "domain": "Default"},
                "password": "secret", "test_connection": true,
                "limits": {"mutating_per_sec": 10.0, "read_per_sec": 20.0, "max_concurrent_creates": 4}
            })),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let mut found: Vec<&str> = account["regions_found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, REGIONS, "regions from the real catalog");
    assert!(
        !account.to_string().contains("secret\""),
        "the password came back: {account}"
    );

    // Both regions come up with the profile resolved to m1.tiny and the image.
    for region in REGIONS {
        let status = daemon
            .wait_region(region, Duration::from_secs(90), |r| {
                r["connected"] == true && r["profiles"]["tiny"]["fit"] == "fits"
            })
            .await;
        assert_eq!(status["breaker"], "closed");
        assert_eq!(status["profiles"]["tiny"]["flavor"], "m1.tiny", "{status}");
        assert_eq!(
            status["profiles"]["tiny"]["image"], "cirros-fake",
            "{status}"
        );
        assert!(
            status["limit"].is_object(),
            "limits read from Nova: {status}"
        );
    }

    for region in REGIONS {
        // A generated key: its private half comes back once.
        let generated = daemon
            .launch(json!({
                "profile": "tiny", "count": 1, "name_prefix": "conf-gen",
                "user_data": "#cloud-config\nruncmd: [echo generated]\n",
                "metadata": {"job": "conformance", "region": region},
                "placement": {"allow_regions": [region]}
            }))
            .await;
        let private = generated["private_key"]
            .as_str()
            .expect("a generated key")
            .to_owned();
        let imported = daemon
            .launch(json!({
                "profile": "tiny", "count": 1, "name_prefix": "conf-imp",
                "public_key": IMPORTED, "placement": {"allow_regions": [region]}
            }))
            .await;
        let ids: Vec<String> = [&generated, &imported]
            .iter()
            .flat_map(|a| Daemon::ids(a))
            .collect();
        let views = daemon
            .wait_for(&ids, "active", Duration::from_secs(180))
            .await;
        for view in &views {
            assert_eq!(view["region"], region, "{view}");
            assert_eq!(view["provider"], "mini");
            assert!(
                view["address"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("192.0.2.")),
                "{view}"
            );
        }

        // What Nova holds is what was sent.
        let server_id = views[0]["server_id"].as_str().unwrap();
        let (status, server) = admin.server(region, server_id).await;
        assert_eq!(status, 200, "{server}");
        let server = &server["server"];
        assert_eq!(server["status"], "ACTIVE");
        assert!(
            server["addresses"]["private"][0]["addr"].is_string(),
            "{server}"
        );
        assert_eq!(server["metadata"]["job"], "conformance");
        assert_eq!(server["metadata"]["region"], region);
        assert!(server["metadata"]["oms-attempt"].is_string(), "{server}");
        let user_data = base64::engine::general_purpose::STANDARD
            .decode(
                server["OS-EXT-SRV-ATTR:user_data"]
                    .as_str()
                    .expect("user_data kept"),
            )
            .unwrap();
        assert_eq!(user_data, b"#cloud-config\nruncmd: [echo generated]\n");
        let tags: Vec<&str> = server["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(tags.iter().any(|t| t.starts_with("oms-")), "tags {tags:?}");

        // The generated key's public half is the key pair the server got.
        let key = ssh_key::PrivateKey::from_openssh(&private).unwrap();
        let generated_public = key.public_key().to_openssh().unwrap();
        assert_eq!(
            key_material(&public_of(&demo, region, server).await),
            key_material(&generated_public)
        );
        let imported_id = views[1]["server_id"].as_str().unwrap();
        let (_, imported_server) = demo.server(region, imported_id).await;
        let imported_public = public_of(&demo, region, &imported_server["server"]).await;
        assert_eq!(key_material(&imported_public), key_material(IMPORTED));

        daemon.delete(&ids).await;
        for view in &views {
            let (status, _) = demo
                .server(region, view["server_id"].as_str().unwrap())
                .await;
            assert_eq!(status, 404, "the server is gone from Nova");
        }
    }
    demo.wait_empty(Duration::from_secs(60)).await;
    // Key pairs go with their servers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(demo.our_keypairs().await, Vec::<String>::new());
}

/// The public key of the key pair a server was booted with.
async fn public_of(demo: &super::cloud::Scoped, region: &str, server: &Value) -> String {
    let name = server["key_name"].as_str().expect("booted with a key");
    assert!(
        name.starts_with("oms-"),
        "key pair {name} is named for its attempt"
    );
    let (status, body) = demo
        .nova(
            region,
            reqwest::Method::GET,
            &format!("/os-keypairs/{name}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["keypair"]["public_key"]
        .as_str()
        .unwrap()
        .trim()
        .to_owned()
}

/// An OpenSSH public key without its comment.
fn key_material(key: &str) -> String {
    key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}
