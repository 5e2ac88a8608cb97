//! Secrets never leave: account passwords, application-credential
//! secrets, API tokens and generated private keys appear in no response
//! (beyond the one that hands them out) and in no log line, with every
//! route driven and logging at its most verbose.

use std::time::Duration;

use crate::support::api::start_with;
use crate::support::pages::Browser;
use crate::support::{Captured, eventually};
use oms_sim::AppCredentialConfig;
use oms_web::ApiConfig;
use oms_web::router::ROUTES;
use serde_json::json;

const PASSWORD: &str = "Pw-7f3a9c1e-provider-password";
const APP_SECRET: &str = "Ac-52d0e8b4-application-secret";
const PAGE_PASSWORD: &str = "Pp-3e8c71a0-typed-on-a-page";
const ROTATED: &str = "Rt-9b1f6a2d-rotated-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_responses_or_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    // The daemon's own filter, at its most verbose.
    tracing_subscriber::fmt()
        .with_env_filter(openmultistack::telemetry::filter("trace"))
        .with_writer(move || writer.clone())
        .init();

    let h = start_with(ApiConfig::default(), |p| {
        p.users[0].password = PASSWORD.into();
        p.application_credentials.push(AppCredentialConfig {
            id: "ac-1".into(),
            name: "ci".into(),
            secret: APP_SECRET.into(),
            user: "demo".into(),
        });
    })
    .await;
    let mut responses = String::new();
    let mut record = |answer: &crate::support::api::Answer| responses.push_str(&answer.text);

    let auth_url = h.sim.providers()[0].auth_url.clone();
    let created = h
        .call(
            "POST",
            "/v1/accounts",
            Some(&h.admin),
            Some(json!({"name": "with-app-credential", "auth_url": auth_url,
                        "application_credential": {"id": "ac-1", "secret": APP_SECRET},
                        "test_connection": true})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    record(&created);
    let account_id = created.body["id"].as_str().unwrap().to_owned();

    let token = h
        .call(
            "POST",
            "/v1/tokens",
            Some(&h.admin),
            Some(json!({"name": "ci", "role": "client"})),
        )
        .await;
    let client = token.body["token"].as_str().unwrap().to_owned();

    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&client),
            Some(json!({"profile": "small", "count": 2})),
        )
        .await;
    assert_eq!(launched.status, 202);
    let private_key = launched.body["private_key"].as_str().unwrap().to_owned();
    let key_body: String = private_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let instance = launched.body["instances"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(Duration::from_secs(30), "active", || async {
        let got = h
            .call(
                "GET",
                &format!("/v1/instances/{instance}"),
                Some(&client),
                None,
            )
            .await;
        (got.body["status"] == "active").then_some(())
    })
    .await;

    let rotated = h
        .call(
            "PATCH",
            &format!("/v1/accounts/{account_id}"),
            Some(&h.admin),
            Some(json!({"secret": ROTATED})),
        )
        .await;
    assert_eq!(rotated.status, 200);
    record(&rotated);

    for route in ROUTES.iter().filter(|r| r.method == "GET") {
        let path = route.path.replace(
            "{id}",
            if route.path.contains("instances") {
                &instance
            } else {
                &account_id
            },
        );
        for token in [&h.admin, &client] {
            let answer = h.call("GET", &path, Some(token), None).await;
            record(&answer);
        }
    }
    // Bad input that carries a secret is not echoed back.
    let echoed = h
        .call(
            "PATCH",
            &format!("/v1/accounts/{account_id}"),
            Some(&h.admin),
            Some(json!({"secret": 12345, "drain": PASSWORD})),
        )
        .await;
    assert_eq!(echoed.status, 422);
    record(&echoed);
    h.call(
        "DELETE",
        &format!("/v1/instances/{instance}"),
        Some(&client),
        None,
    )
    .await;

    // The pages: sign in, create a token, register an account with a
    // password, and read every page.
    let b = Browser::new(&h);
    b.sign_in().await;
    let csrf = b.csrf("/tokens").await;
    let made = b
        .post(
            "/tokens",
            &[("csrf", &csrf), ("name", "paged"), ("role", "client")],
        )
        .await;
    let marker = "copy it now, it is not shown again: <code>";
    let at = made.body.find(marker).expect("the new token is shown once") + marker.len();
    let paged = made.body[at..at + made.body[at..].find('<').unwrap()].to_owned();
    assert!(paged.starts_with("oms_"), "{paged}");
    let csrf = b.csrf("/accounts/new").await;
    let auth_url = h.sim.providers()[1].auth_url.clone();
    b.post(
        "/accounts/new",
        &[
            ("csrf", &csrf),
            ("name", "paged-account"),
            ("auth_url", &auth_url),
            ("username", "demo"),
            ("password", PAGE_PASSWORD),
            ("domain", "Default"),
            ("project_name", "demo"),
        ],
    )
    .await;
    let mut pages = String::new();
    for path in [
        "/",
        "/instances",
        &format!("/instances/{instance}"),
        "/accounts",
        "/tokens",
    ] {
        pages.push_str(&b.get(path).await.body);
        pages.push_str(&b.get(&format!("{path}?fragment=1")).await.body);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let logs = logs.text();
    assert!(logs.len() > 1000, "the logs were not captured");
    assert!(
        logs.contains("TRACE") && logs.contains("DEBUG"),
        "the logs were not at their most verbose"
    );
    for (what, secret) in [
        ("token made on the tokens page", paged.as_str()),
        ("password typed on the registration page", PAGE_PASSWORD),
        ("provider password", PASSWORD),
        ("application credential secret", APP_SECRET),
        ("rotated password", ROTATED),
        ("admin token", h.admin.as_str()),
        ("client token", client.as_str()),
        ("private key", key_body.as_str()),
    ] {
        assert!(!responses.contains(secret), "{what} in a response");
        assert!(!logs.contains(secret), "{what} in the logs");
        assert!(!pages.contains(secret), "{what} on a page");
    }
    assert!(!responses.contains("12345"), "a rejected value was echoed");
}
