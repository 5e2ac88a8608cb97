//! The OpenStack client against the simulator: every call, every error
//! class, token renewal, 401 re-auth, microversions, v2.0 and v3 catalogs.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{compute, demo_session, eventually, password, session, sim_with};
use oms_actors::openstack::{
    ApplicationCredentialRef, Class, ComputeClient, CreateServer, Credentials, IdentityVersion,
    ImageClient, Interface, Microversion, Networks, Observation, ProviderError, ServerFilter,
    classify,
};
use oms_sim::{AppCredentialConfig, Faults, Outage};
use secrecy::SecretString;

const ED25519: &str = crate::support::PUBLIC_KEY;

/// The id of the `cirros-fake` image in `region`.
async fn cirros(sim: &oms_sim::Simulator, region: &str) -> String {
    ImageClient::connect(demo_session(sim), region)
        .await
        .unwrap()
        .active_images(Some("cirros-fake"))
        .await
        .unwrap()[0]
        .id
        .clone()
}

/// A minimal create request for `region`.
async fn tiny(sim: &oms_sim::Simulator, region: &str, name: &str) -> CreateServer {
    CreateServer {
        name: name.into(),
        flavor_ref: "1".into(),
        image_ref: cirros(sim, region).await,
        ..CreateServer::default()
    }
}

#[tokio::test]
async fn full_server_life_in_both_regions() {
    let sim = sim_with(|_| {}).await;
    let session = demo_session(&sim);
    let catalog = session.catalog().await.unwrap();
    assert_eq!(
        catalog.regions("compute", Interface::Public),
        vec!["p-1", "p-2"]
    );

    for region in ["p-1", "p-2"] {
        let compute = ComputeClient::connect(session.clone(), region)
            .await
            .unwrap();
        assert_eq!(compute.microversion(), Microversion::new(2, 100));
        assert!(compute.tags_at_create());

        let images = ImageClient::connect(session.clone(), region).await.unwrap();
        let found = images.active_images(Some("debian-12")).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(images.active_images(None).await.unwrap().len(), 3);

        let flavors = compute.flavors().await.unwrap();
        let tiny = flavors.iter().find(|f| f.name == "m1.tiny").unwrap();
        assert_eq!((tiny.vcpus, tiny.ram, tiny.disk), (1, 512, 1));

        let key = compute.import_keypair("oms-k1", ED25519).await.unwrap();
        assert_eq!(key.fingerprint.split(':').count(), 16);
        assert!(key.private_key.is_none());

        let metadata = BTreeMap::from([("oms-attempt".to_owned(), "a1".to_owned())]);
        let id = compute
            .create_server(&CreateServer {
                name: "oms-a1".into(),
                flavor_ref: tiny.id.clone(),
                image_ref: found[0].id.clone(),
                key_name: Some("oms-k1".into()),
                user_data: Some(b"#cloud-config\n".to_vec()),
                metadata: metadata.clone(),
                networks: Networks::Auto,
                tags: vec!["oms-d1".into(), "oms-a-a1".into()],
            })
            .await
            .unwrap();

        let building = compute.get_server(&id).await.unwrap();
        assert_eq!(building.status, "BUILD");
        let active = eventually(Duration::from_secs(5), "server active", || async {
            let server = compute.get_server(&id).await.unwrap();
            (server.status == "ACTIVE").then_some(server)
        })
        .await;
        assert!(active.primary_address().is_some());
        assert_eq!(active.metadata, metadata);
        assert_eq!(active.key_name.as_deref(), Some("oms-k1"));

        let tagged = compute
            .list_servers(&ServerFilter {
                tags: vec!["oms-a-a1".into()],
                ..ServerFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(tagged.len(), 1);
        assert_eq!(tagged[0].id, id);
        let untagged = compute
            .list_servers(&ServerFilter {
                tags: vec!["oms-a-other".into()],
                ..ServerFilter::default()
            })
            .await
            .unwrap();
        assert!(untagged.is_empty());

        let limits = compute.limits().await.unwrap();
        assert_eq!(limits.max_total_instances, 20);
        assert_eq!(limits.total_instances_used, 1);
        assert_eq!(limits.total_ram_used, 512);

        compute.delete_server(&id).await.unwrap();
        let deleting = compute.get_server(&id).await.unwrap();
        assert_eq!(deleting.task_state.as_deref(), Some("deleting"));
        let gone = eventually(Duration::from_secs(5), "server gone", || async {
            compute.get_server(&id).await.err()
        })
        .await;
        assert!(gone.is_not_found());
        assert_eq!(gone.class, Class::BadRequest);

        assert_eq!(compute.list_keypairs().await.unwrap().len(), 1);
        compute.delete_keypair("oms-k1").await.unwrap();
        assert!(compute.list_keypairs().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn server_ids_belong_to_their_region() {
    let sim = sim_with(|_| {}).await;
    let one = compute(&sim, "p-1").await;
    let two = compute(&sim, "p-2").await;
    let id = one
        .create_server(&tiny(&sim, "p-1", "oms-x").await)
        .await
        .unwrap();
    let error = two.get_server(&id).await.unwrap_err();
    assert!(error.is_not_found());
}

#[tokio::test]
async fn pagination_follows_next_links() {
    let sim = sim_with(|_| {}).await;
    let compute = compute(&sim, "p-1").await;
    let image = cirros(&sim, "p-1").await;
    for i in 0..5 {
        compute
            .create_server(&CreateServer {
                name: format!("oms-page-{i}"),
                flavor_ref: "1".into(),
                image_ref: image.clone(),
                ..CreateServer::default()
            })
            .await
            .unwrap();
    }
    let all = compute
        .list_servers(&ServerFilter {
            limit: Some(2),
            ..ServerFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    let named = compute
        .list_servers(&ServerFilter {
            name: Some("^oms-page-3$".into()),
            ..ServerFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(named.len(), 1);
}

#[tokio::test]
async fn unbounded_listing_comes_in_pages_of_a_thousand() {
    let sim = sim_with(|p| {
        p.regions[0].quota.instances = 2_000;
        p.regions[0].quota.cores = 2_000;
        p.regions[0].quota.ram = 2_000_000;
    })
    .await;
    let compute = compute(&sim, "p-1").await;
    let request = tiny(&sim, "p-1", "oms-many").await;
    for _ in 0..1_001 {
        compute.create_server(&request).await.unwrap();
    }
    let all = compute
        .list_servers(&ServerFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1_001);
    let ids: std::collections::HashSet<_> = all.iter().map(|s| &s.id).collect();
    assert_eq!(ids.len(), 1_001, "pages neither overlap nor skip");
    // Nova's max_limit (1,000): two pages although no limit was asked.
    let listings = &sim.state()["providers"][0]["regions"][0]["calls"]["GET/compute/v2.1/servers/detail"]
        ["count"];
    assert_eq!(listings, 2);
}

#[tokio::test]
async fn changes_since_lists_what_changed_including_deleted_servers() {
    let sim = sim_with(|_| {}).await;
    let compute = compute(&sim, "p-1").await;
    let old = compute
        .create_server(&tiny(&sim, "p-1", "oms-old").await)
        .await
        .unwrap();
    let doomed = compute
        .create_server(&tiny(&sim, "p-1", "oms-doomed").await)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "both active", || async {
        let all = compute.list_servers(&ServerFilter::default()).await.ok()?;
        all.iter().all(|s| s.status == "ACTIVE").then_some(())
    })
    .await;
    // Past the second in which they turned active (Nova keeps seconds).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let before = chrono::Utc::now();
    let listing = compute
        .list_servers_dated(&ServerFilter::default())
        .await
        .unwrap();
    let after = chrono::Utc::now();
    let since = listing.provider_date.expect("the answer carries a Date");
    // The provider's clock while it answered (to the second).
    assert!(
        since >= before - chrono::Duration::seconds(1) && since <= after,
        "Date {since} is outside {before}..{after}"
    );

    let new = compute
        .create_server(&tiny(&sim, "p-1", "oms-new").await)
        .await
        .unwrap();
    compute.delete_server(&doomed).await.unwrap();
    let changed = |filter: ServerFilter| {
        let compute = compute.clone();
        async move {
            let mut servers: Vec<(String, String)> = compute
                .list_servers(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|s| (s.id, s.status))
                .collect();
            servers.sort();
            servers
        }
    };
    let since_filter = ServerFilter {
        changes_since: Some(since),
        ..ServerFilter::default()
    };
    let mut expected = vec![
        (new.clone(), "BUILD".to_owned()),
        (doomed.clone(), "ACTIVE".to_owned()),
    ];
    expected.sort();
    assert_eq!(changed(since_filter.clone()).await, expected);
    // Once gone, the deleted server is still listed to changes-since, as
    // DELETED, and to nothing else.
    eventually(Duration::from_secs(10), "the delete finishes", || async {
        compute
            .get_server(&doomed)
            .await
            .err()
            .filter(|e| e.is_not_found())
    })
    .await;
    let listed = changed(since_filter).await;
    assert!(listed.contains(&(doomed.clone(), "DELETED".to_owned())));
    assert!(listed.iter().any(|(id, _)| *id == new));
    assert!(!listed.iter().any(|(id, _)| *id == old));
    let everything = changed(ServerFilter::default()).await;
    let ids: Vec<&String> = everything.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&&old) && ids.contains(&&new));
}

#[tokio::test]
async fn generated_keypair_comes_with_a_private_key() {
    let sim = sim_with(|_| {}).await;
    let compute = compute(&sim, "p-1").await;
    let generated = compute.create_keypair("oms-gen").await.unwrap();
    assert!(generated.private_key.is_some());
    assert!(generated.public_key.starts_with("ssh-ed25519 "));
    let duplicate = compute
        .import_keypair("oms-gen", ED25519)
        .await
        .unwrap_err();
    assert_eq!(
        (duplicate.class, duplicate.status),
        (Class::BadRequest, Some(409))
    );
}

#[tokio::test]
async fn quota_refusal_is_classified_as_quota() {
    let sim = sim_with(|p| p.regions[0].quota.instances = 1).await;
    let compute = compute(&sim, "p-1").await;
    let image = cirros(&sim, "p-1").await;
    let request = CreateServer {
        name: "oms-q".into(),
        flavor_ref: "1".into(),
        image_ref: image,
        ..CreateServer::default()
    };
    compute.create_server(&request).await.unwrap();
    let refused = compute.create_server(&request).await.unwrap_err();
    assert_eq!(refused.class, Class::Quota);
    assert_eq!(refused.status, Some(403));
    assert_eq!(
        refused.message,
        "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"
    );
    assert_eq!(
        sim.state()["providers"][0]["regions"][0]["creates_refused_quota"],
        1
    );
}

#[tokio::test]
async fn bad_flavor_image_and_key_are_bad_requests() {
    let sim = sim_with(|_| {}).await;
    let compute = compute(&sim, "p-1").await;
    let image = cirros(&sim, "p-1").await;
    let good = CreateServer {
        name: "oms-bad".into(),
        flavor_ref: "1".into(),
        image_ref: image,
        ..CreateServer::default()
    };
    for (request, message) in [
        (
            CreateServer {
                flavor_ref: "no-such-flavor".into(),
                ..good.clone()
            },
            "Flavor no-such-flavor could not be found.",
        ),
        (
            CreateServer {
                image_ref: "11111111-2222-3333-4444-555555555555".into(),
                ..good.clone()
            },
            "Can not find requested image",
        ),
        (
            CreateServer {
                key_name: Some("no-such-key".into()),
                ..good.clone()
            },
            "Invalid key_name provided.",
        ),
    ] {
        let error = compute.create_server(&request).await.unwrap_err();
        assert_eq!(error.class, Class::BadRequest);
        assert_eq!(error.message, message);
    }
}

#[tokio::test]
async fn wrong_password_is_unauthorized() {
    let sim = sim_with(|_| {}).await;
    let session = session(&sim, IdentityVersion::V3, password("demo", "wrong", "demo"));
    let error = session.token().await.unwrap_err();
    assert_eq!(
        (error.class, error.status),
        (Class::Unauthorized, Some(401))
    );
}

#[tokio::test]
async fn application_credentials_authenticate() {
    let sim = sim_with(|p| {
        p.application_credentials.push(AppCredentialConfig {
            id: "ac1".into(),
            name: "ci".into(),
            secret: "appsecret".into(),
            user: "demo".into(),
        })
    })
    .await;
    let credentials = Credentials::ApplicationCredential {
        credential: ApplicationCredentialRef::Id("ac1".into()),
        secret: SecretString::from("appsecret"),
    };
    let session = session(&sim, IdentityVersion::V3, credentials);
    let compute = ComputeClient::connect(session, "p-2").await.unwrap();
    assert!(compute.flavors().await.unwrap().len() >= 4);
}

#[tokio::test]
async fn keystone_v2_catalog_works_for_older_providers() {
    let sim = sim_with(|p| p.identity_v2 = true).await;
    let session = session(
        &sim,
        IdentityVersion::V2,
        password("demo", "secret", "demo"),
    );
    let token = session.token().await.unwrap();
    assert!(token.project_id.is_some());
    assert_eq!(
        token.catalog.regions("compute", Interface::Public),
        vec!["p-1", "p-2"]
    );
    let compute = ComputeClient::connect(session, "p-1").await.unwrap();
    assert!(!compute.flavors().await.unwrap().is_empty());
}

#[tokio::test]
async fn keystone_without_v2_answers_html_404_classified_bad_request() {
    let sim = sim_with(|_| {}).await;
    let session = session(
        &sim,
        IdentityVersion::V2,
        password("demo", "secret", "demo"),
    );
    let error = session.token().await.unwrap_err();
    assert_eq!((error.class, error.status), (Class::BadRequest, Some(404)));
    assert!(error.message.contains("Not Found"), "{}", error.message);
}

#[tokio::test]
async fn token_is_renewed_before_it_expires() {
    let sim = sim_with(|p| p.token_lifetime_secs = 1.5).await;
    let session = demo_session(&sim);
    let first = session.token().await.unwrap();
    let compute = ComputeClient::connect(session.clone(), "p-1")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Within the renewal margin: the next call authenticates again first.
    compute.flavors().await.unwrap();
    let second = session.token().await.unwrap();
    assert!(second.expires_at > first.expires_at);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    compute.limits().await.unwrap();
}

#[tokio::test]
async fn a_401_triggers_exactly_one_reauthentication() {
    let sim = sim_with(|_| {}).await;
    let session = demo_session(&sim);
    let compute = ComputeClient::connect(session.clone(), "p-1")
        .await
        .unwrap();
    let before = session.token().await.unwrap();
    sim.revoke_tokens("p").unwrap();
    compute.flavors().await.unwrap();
    let after = session.token().await.unwrap();
    assert!(!std::sync::Arc::ptr_eq(&before, &after));
}

#[tokio::test]
async fn microversion_is_negotiated_down_to_the_server() {
    let sim = sim_with(|p| {
        p.regions[0].max_microversion = "2.60".into();
        p.regions[1].max_microversion = "2.40".into();
    })
    .await;
    let newer = compute(&sim, "p-1").await;
    assert_eq!(newer.microversion(), Microversion::new(2, 60));
    assert!(newer.tags_at_create());
    let older = compute(&sim, "p-2").await;
    assert_eq!(older.microversion(), Microversion::new(2, 40));
    assert!(!older.tags_at_create());
    let image = cirros(&sim, "p-2").await;
    let id = older
        .create_server(&CreateServer {
            name: "oms-old".into(),
            flavor_ref: "1".into(),
            image_ref: image,
            tags: vec!["oms-a-old".into()],
            ..CreateServer::default()
        })
        .await
        .unwrap();
    older.add_tag(&id, "oms-a-old").await.unwrap();
    let found = older
        .list_servers(&ServerFilter {
            tags: vec!["oms-a-old".into()],
            ..ServerFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
}

async fn class_under(faults: Faults) -> ProviderError {
    let sim = sim_with(|_| {}).await;
    let compute = compute(&sim, "p-1").await;
    sim.set_faults("p", Some("p-1"), faults).unwrap();
    compute.flavors().await.unwrap_err()
}

#[tokio::test]
async fn maintenance_is_a_server_error() {
    let error = class_under(Faults {
        outage: Some(Outage::Maintenance),
        ..Faults::default()
    })
    .await;
    assert_eq!((error.class, error.status), (Class::ServerError, Some(503)));
}

#[tokio::test]
async fn refused_connections_are_transport_errors_and_recover() {
    let sim = sim_with(|_| {}).await;
    let compute = compute(&sim, "p-1").await;
    sim.set_faults(
        "p",
        Some("p-1"),
        Faults {
            outage: Some(Outage::Refused),
            ..Faults::default()
        },
    )
    .unwrap();
    let error = eventually(Duration::from_secs(5), "refusal", || async {
        compute.flavors().await.err()
    })
    .await;
    assert_eq!(error.class, Class::Transport);
    sim.set_faults("p", Some("p-1"), Faults::default()).unwrap();
    eventually(Duration::from_secs(5), "recovery", || async {
        compute.flavors().await.ok()
    })
    .await;
}

#[tokio::test]
async fn random_errors_are_server_errors() {
    let error = class_under(Faults {
        error_rate: 1.0,
        ..Faults::default()
    })
    .await;
    assert_eq!((error.class, error.status), (Class::ServerError, Some(500)));
    assert!(error.message.starts_with("Unexpected API Error."));
}

#[tokio::test]
async fn rate_limiting_gives_retry_after() {
    let error = class_under(Faults {
        rate_limit_per_sec: Some(0.0),
        ..Faults::default()
    })
    .await;
    assert_eq!(error.class, Class::RateLimited);
    assert_eq!(error.retry_after, Some(Duration::from_secs(1)));
}

#[tokio::test]
async fn slow_answers_time_out_as_transport() {
    let error = class_under(Faults {
        latency_ms: 4_000,
        ..Faults::default()
    })
    .await;
    assert_eq!(error.class, Class::Transport);
    assert!(
        error.message.contains("timeout") || error.message.contains("timed out"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn failed_builds_are_classified_build_failed() {
    let sim = sim_with(|p| p.regions[0].faults.build_error_rate = 1.0).await;
    let compute = compute(&sim, "p-1").await;
    let image = cirros(&sim, "p-1").await;
    let id = compute
        .create_server(&CreateServer {
            name: "oms-doomed".into(),
            flavor_ref: "1".into(),
            image_ref: image,
            ..CreateServer::default()
        })
        .await
        .unwrap();
    let server = eventually(Duration::from_secs(5), "server error", || async {
        let server = compute.get_server(&id).await.unwrap();
        (server.status != "BUILD").then_some(server)
    })
    .await;
    assert_eq!(
        classify(&Observation::ServerStatus {
            status: &server.status
        }),
        Class::BuildFailed
    );
    assert!(
        server
            .fault
            .unwrap()
            .message
            .starts_with("No valid host was found")
    );
}

#[tokio::test]
async fn listing_lag_hides_new_servers_for_a_while() {
    let sim = sim_with(|p| p.regions[0].faults.list_lag_secs = 0.5).await;
    let compute = compute(&sim, "p-1").await;
    let image = cirros(&sim, "p-1").await;
    let id = compute
        .create_server(&CreateServer {
            name: "oms-lag".into(),
            flavor_ref: "1".into(),
            image_ref: image,
            ..CreateServer::default()
        })
        .await
        .unwrap();
    assert!(
        compute
            .list_servers(&ServerFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(compute.get_server(&id).await.unwrap().id, id);
    eventually(Duration::from_secs(5), "listing", || async {
        let all = compute
            .list_servers(&ServerFilter::default())
            .await
            .unwrap();
        (all.len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn stale_quota_reports_more_room_than_is_enforced() {
    let sim = sim_with(|p| {
        p.regions[0].quota.instances = 2;
        p.regions[0].faults.stale_quota_extra = 3;
    })
    .await;
    let compute = compute(&sim, "p-1").await;
    assert_eq!(compute.limits().await.unwrap().max_total_instances, 5);
    let request = tiny(&sim, "p-1", "oms-stale").await;
    compute.create_server(&request).await.unwrap();
    compute.create_server(&request).await.unwrap();
    let refused = compute.create_server(&request).await.unwrap_err();
    assert_eq!(refused.class, Class::Quota);
}

#[tokio::test]
async fn refused_deletes_leave_the_server_in_place() {
    let sim = sim_with(|_| {}).await;
    let compute = compute(&sim, "p-1").await;
    let id = compute
        .create_server(&tiny(&sim, "p-1", "oms-stuck").await)
        .await
        .unwrap();
    sim.set_faults(
        "p",
        Some("p-1"),
        Faults {
            delete_error_rate: 1.0,
            ..Faults::default()
        },
    )
    .unwrap();
    let error = compute.delete_server(&id).await.unwrap_err();
    assert_eq!((error.class, error.status), (Class::ServerError, Some(500)));
    let still = compute.get_server(&id).await.unwrap();
    assert_ne!(still.task_state.as_deref(), Some("deleting"));
    sim.set_faults("p", Some("p-1"), Faults::default()).unwrap();
    compute.delete_server(&id).await.unwrap();
}

#[tokio::test]
async fn keystone_in_maintenance_fails_authentication_as_server_error() {
    let sim = sim_with(|p| {
        p.keystone_faults.outage = Some(Outage::Maintenance);
    })
    .await;
    let error = demo_session(&sim).token().await.unwrap_err();
    assert_eq!((error.class, error.status), (Class::ServerError, Some(503)));
}

#[tokio::test]
async fn an_expired_token_gets_keystonemiddlewares_401() {
    let sim = sim_with(|p| p.token_lifetime_secs = 0.3).await;
    let session = demo_session(&sim);
    let token = session.token().await.unwrap();
    let url = token
        .catalog
        .endpoint("compute", "p-1", Interface::Public)
        .unwrap()
        .clone();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let answer = reqwest::Client::new()
        .get(format!("{url}/flavors"))
        .header(
            "X-Auth-Token",
            secrecy::ExposeSecret::expose_secret(&token.value),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["title"], "Unauthorized");
}

#[tokio::test]
async fn debug_output_never_shows_passwords_or_tokens() {
    let sim = sim_with(|_| {}).await;
    let session = session(
        &sim,
        IdentityVersion::V3,
        password("demo", "secret", "demo"),
    );
    let token = session.token().await.unwrap();
    let value = secrecy::ExposeSecret::expose_secret(&token.value).to_owned();
    let shown = format!("{session:?} {token:?}");
    assert!(!shown.contains(&value));
    assert!(!shown.contains("\"secret\""), "{shown}");
    assert!(shown.contains("REDACTED"));
}

#[tokio::test]
async fn a_second_401_is_unauthorized_after_exactly_one_reauthentication() {
    // Tokens that die at once: every service call is a 401.
    let sim = sim_with(|p| p.token_lifetime_secs = 0.0).await;
    let compute = ComputeClient::connect(demo_session(&sim), "p-1")
        .await
        .unwrap();
    let tokens = |state: serde_json::Value| {
        state["providers"][0]["keystone_calls"]["POST/v3/auth/tokens"]["count"]
            .as_u64()
            .unwrap()
    };
    let before = tokens(sim.state());
    let error = compute.flavors().await.unwrap_err();
    assert_eq!(
        (error.class, error.status),
        (Class::Unauthorized, Some(401))
    );
    // The call was sent twice: once, then once more after re-authenticating.
    let state = sim.state();
    let calls = &state["providers"][0]["regions"][0]["calls"];
    assert_eq!(calls["GET/compute/v2.1/flavors/detail"]["count"], 2);
    // Two tokens: the renewal of the dead one before the call, and the one
    // re-authentication after the first 401.
    assert_eq!(tokens(state) - before, 2);
}
