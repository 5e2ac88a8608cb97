//! What the daemon says is what Nova holds: a server deleted with Nova's
//! own API behind the daemon's back makes its instance `lost` (and takes
//! its key pair along); a server stopped with `os-stop` shows SHUTOFF; a
//! second account on the demo project is refused.

use std::time::Duration;

use serde_json::json;

use super::cloud::{REGIONS, auth_url, login};
use super::daemon::{Daemon, Options, messages};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpDFr+8I0HQV9icG0+dBIJHThN1YYprA6OMhadAwztn conformance";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real OpenStack: run conformance/run"]
async fn a_server_deleted_behind_the_daemons_back_makes_its_instance_lost() {
    let demo = login("demo").await;
    demo.wipe().await;
    let daemon = Daemon::start("lost", Options::default());
    let region = REGIONS[0];
    daemon
        .wait_region(region, Duration::from_secs(90), |r| {
            r["profiles"]["tiny"]["fit"] == "fits"
        })
        .await;

    // The demo project is account `mini`'s: a second account on it (the
    // same Keystone written another way, the project by id, as Keystone
    // scoped mini's token) is refused, and nothing is registered.
    let project_id = demo.project_id.clone();
    for project in [
        json!({"name": "demo", "domain": "Default"}),
        json!({"id": project_id}),
    ] {
        let (status, body) = daemon
            .call(
                reqwest::Method::POST,
                "/v1/accounts",
                Some(json!({
                    "name": "mini-again", "auth_url": format!("{}/", auth_url()),
                    "user": {"name": "demo", "domain": "Default"},
                    "project": project, "password": "secret",
                })),
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("same project as account mini")),
            "{body}"
        );
    }
    let (_, accounts) = daemon
        .call(reqwest::Method::GET, "/v1/accounts", None)
        .await;
    assert_eq!(accounts["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(accounts["accounts"][0]["status"]["health"], "connected");
    let ids = Daemon::ids(
        &daemon
            .launch(json!({
                "profile": "tiny", "count": 2, "public_key": KEY,
                "placement": {"allow_regions": [region]}
            }))
            .await,
    );
    let views = daemon
        .wait_for(&ids, "active", Duration::from_secs(180))
        .await;
    let gone = views[0]["server_id"].as_str().unwrap().to_owned();
    let stopped = views[1]["server_id"].as_str().unwrap().to_owned();
    assert_eq!(demo.our_keypairs().await.len(), 2);

    // A person deletes one with Nova's API, and stops the other.
    let (status, body) = demo
        .nova(
            region,
            reqwest::Method::DELETE,
            &format!("/servers/{gone}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = demo
        .nova(
            region,
            reqwest::Method::POST,
            &format!("/servers/{stopped}/action"),
            Some(json!({"os-stop": null})),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");

    let lost = daemon
        .wait_for(&ids[..1], "lost", Duration::from_secs(60))
        .await
        .remove(0);
    assert!(lost["address"].is_null(), "{lost}");
    let said = messages(&lost).join("\n");
    assert!(said.contains("vanished"), "{said}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let view = daemon.instance(&ids[1]).await;
        if view["provider_status"] == "SHUTOFF" {
            assert_eq!(view["status"], "active", "{view}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "SHUTOFF never shown: {view}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The lost instance's key pair went with it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while demo.our_keypairs().await.len() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "key pairs: {:?}",
            demo.our_keypairs().await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    daemon.delete(&ids[1..]).await;
    demo.wait_empty(Duration::from_secs(120)).await;
    assert!(demo.our_keypairs().await.is_empty());
}
