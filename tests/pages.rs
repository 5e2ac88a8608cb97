//! The operator pages over HTTP: sign-in with sessions, CSRF on every
//! form, escaping, registration through the form, the instance timeline
//! and its delete button.

use std::time::Duration;

use crate::support::api::start;
use crate::support::eventually;
use crate::support::pages::Browser;
use oms_web::ApiConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_every_page_redirects_to_sign_in() {
    let h = start(ApiConfig::default()).await;
    let b = Browser::new(&h);
    for path in [
        "/",
        "/instances",
        "/instances/x",
        "/accounts",
        "/accounts/new",
        "/tokens",
    ] {
        let got = b.get(path).await;
        assert_eq!(
            (got.status, got.location.as_deref()),
            (303, Some("/login")),
            "{path}"
        );
    }
    let got = b.post("/tokens", &[("name", "x")]).await;
    assert_eq!(got.location.as_deref(), Some("/login"));
    // A client token does not sign in.
    let client = h.token("ci", oms_actors::model::Role::Client, None).await;
    let csrf = b.csrf("/login").await;
    let refused = b
        .post("/login", &[("csrf", &csrf), ("token", &client)])
        .await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("not a valid admin token"));
    // Static assets need no session.
    assert_eq!(b.get("/static/style.css").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_token_a_session_signed_in_with_ends_the_session() {
    let h = start(ApiConfig::default()).await;
    let ops = h.token("ops", oms_actors::model::Role::Admin, None).await;
    let b = Browser::new(&h);
    b.sign_in_with(&ops).await;
    let dashboard = b.get("/").await;
    assert_eq!(dashboard.status, 200);
    assert!(
        dashboard.body.contains("ops"),
        "the page names who is signed in"
    );
    let id = h
        .store
        .list_tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.name == "ops")
        .unwrap()
        .id;
    let revoked = h
        .call("DELETE", &format!("/v1/tokens/{id}"), Some(&h.admin), None)
        .await;
    assert_eq!(revoked.status, 204);
    for path in ["/", "/tokens"] {
        let got = b.get(path).await;
        assert_eq!(
            (got.status, got.location.as_deref()),
            (303, Some("/login")),
            "{path} after the revocation"
        );
    }
    // Nor can the old session mint a token with a form it loaded before.
    let csrf_field = "csrf";
    let minted = b
        .post("/tokens", &[(csrf_field, "stale"), ("name", "sneaky")])
        .await;
    assert_eq!(minted.location.as_deref(), Some("/login"));
    assert!(
        !h.store
            .list_tokens()
            .unwrap()
            .iter()
            .any(|t| t.name == "sneaky"),
        "no token minted by a dead session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_run_no_inline_script_and_carry_security_headers() {
    let h = start(ApiConfig::default()).await;
    let b = Browser::new(&h);
    b.sign_in().await;
    let cookie = b.cookie.lock().unwrap().clone().unwrap();
    for path in ["/", "/instances", "/accounts", "/tokens", "/login"] {
        let response = b
            .http
            .get(format!("{}{path}", h.base))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        let headers = response.headers().clone();
        let csp = headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("<script>"), "{path} has an inline script");
        assert!(!body.contains("onsubmit="), "{path} has an inline handler");
        assert!(!body.contains("confirm('"), "{path} builds script text");
    }
    for script in ["/static/confirm.js", "/static/live.js"] {
        let got = h.raw("GET", script, None, None, None, &[]).await;
        assert_eq!(got.status, 200, "{script}");
        assert!(
            got.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript"),
            "{script}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_when_configured_or_forwarded_over_https() {
    let plain = start(ApiConfig::default()).await;
    let login = plain.raw("GET", "/login", None, None, None, &[]).await;
    let cookie = login.headers["set-cookie"].to_str().unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    let forwarded = plain
        .raw(
            "GET",
            "/login",
            None,
            None,
            None,
            &[("X-Forwarded-Proto", "https")],
        )
        .await;
    assert!(
        forwarded.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    let always = start(ApiConfig {
        secure_cookies: oms_web::SecureCookies::Always,
        ..ApiConfig::default()
    })
    .await;
    let login = always.raw("GET", "/login", None, None, None, &[]).await;
    assert!(
        login.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_a_valid_csrf_token_change_nothing() {
    let h = start(ApiConfig::default()).await;
    let b = Browser::new(&h);
    b.sign_in().await;
    let before = h.census();
    for form in [
        vec![("name", "sneaky"), ("role", "admin")],
        vec![("name", "sneaky"), ("role", "admin"), ("csrf", "forged")],
    ] {
        let got = b.post("/tokens", &form).await;
        assert_eq!(got.status, 403);
    }
    let account = h.store.list_accounts().unwrap()[0].id.clone();
    assert_eq!(
        b.post(
            &format!("/accounts/{account}/disable"),
            &[("csrf", "forged")]
        )
        .await
        .status,
        403
    );
    assert_eq!(h.census(), before);
    assert!(h.store.get_account(&account).unwrap().unwrap().enabled);
    // With the token, it works.
    let csrf = b.csrf("/tokens").await;
    let created = b
        .post(
            "/tokens",
            &[("csrf", &csrf), ("name", "legit"), ("role", "client")],
        )
        .await;
    assert_eq!(created.status, 200);
    assert!(created.body.contains("oms_"));
    // Signing out ends the session.
    let csrf = b.csrf("/").await;
    assert_eq!(
        b.post("/logout", &[("csrf", &csrf)])
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    assert_eq!(b.get("/").await.location.as_deref(), Some("/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_users_typed_are_shown_as_text() {
    let h = start(ApiConfig::default()).await;
    let mut account = h.store.list_accounts().unwrap()[0].clone();
    account.id = "evil".into();
    account.name = "<script>alert(1)</script>".into();
    account.enabled = false;
    h.store.put_account(&account).unwrap();
    let b = Browser::new(&h);
    b.sign_in().await;
    let page = b.get("/accounts").await;
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_registered_through_the_form_shows_its_regions() {
    let h = start(ApiConfig::default()).await;
    let b = Browser::new(&h);
    b.sign_in().await;
    let auth_url = h.sim.providers()[0].auth_url.clone();
    let csrf = b.csrf("/accounts/new").await;
    let bad = b
        .post(
            "/accounts/new",
            &[
                ("csrf", &csrf),
                ("name", "formed"),
                ("auth_url", "not a url"),
                ("username", "admin"),
                ("project_name", "admin"),
                ("password", "secret"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("field-error"));
    assert!(
        !bad.body.contains("value=\"secret\""),
        "a typed password is never shown back"
    );
    let wrong = b
        .post(
            "/accounts/new",
            &[
                ("csrf", &csrf),
                ("name", "formed"),
                ("auth_url", &auth_url),
                ("username", "admin"),
                ("project_name", "admin"),
                ("password", "wrong"),
                ("test_connection", "1"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("connection test failed"));
    // The demo project is the `north` account's already.
    let twice = b
        .post(
            "/accounts/new",
            &[
                ("csrf", &csrf),
                ("name", "formed"),
                ("auth_url", &auth_url),
                ("username", "demo"),
                ("project_name", "demo"),
                ("password", "secret"),
            ],
        )
        .await;
    assert_eq!(twice.status, 422);
    assert!(
        twice.body.contains("same project as account north"),
        "{}",
        twice.body
    );
    let saved = b
        .post(
            "/accounts/new",
            &[
                ("csrf", &csrf),
                ("name", "formed"),
                ("auth_url", &auth_url),
                ("username", "admin"),
                ("project_name", "admin"),
                ("domain", "Default"),
                ("password", "secret"),
                ("test_connection", "1"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    eventually(
        Duration::from_secs(20),
        "regions of the new account on the dashboard",
        || async {
            let page = b.get("/?fragment=1").await;
            (page.body.matches(">formed").count() == 2).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_page_shows_its_timeline_and_deletes() {
    let h = start(ApiConfig::default()).await;
    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&h.admin),
            Some(serde_json::json!({"profile": "small"})),
        )
        .await;
    let id = launched.body["instances"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = Browser::new(&h);
    b.sign_in().await;
    let path = format!("/instances/{id}");
    eventually(Duration::from_secs(30), "active on the page", || async {
        let page = b.get(&format!("{path}?fragment=1")).await;
        page.body.contains("id=\"status\">active<").then_some(())
    })
    .await;
    let page = b.get(&path).await;
    assert!(page.body.contains("scheduled"));
    assert!(page.body.contains("id=\"delete\""));
    let list = b.get("/instances?status=active").await;
    assert!(list.body.contains(&id));
    let csrf = b.csrf(&path).await;
    let deleted = b.post(&format!("{path}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(deleted.status, 303);
    let state = h.store.get_instance(&id).unwrap().unwrap().state;
    assert!(matches!(
        state,
        oms_actors::model::InstanceState::Deleting | oms_actors::model::InstanceState::Deleted
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_button_and_account_editing() {
    let h = start(ApiConfig::default()).await;
    let b = Browser::new(&h);
    b.sign_in().await;
    let auth_url = h.sim.providers()[1].auth_url.clone();
    let csrf = b.csrf("/accounts/new").await;
    let before = h.census();
    let tested = b
        .post(
            "/accounts/new",
            &[
                ("csrf", &csrf),
                ("intent", "test"),
                ("name", "probe"),
                ("auth_url", &auth_url),
                ("username", "admin"),
                ("project_name", "admin"),
                ("password", "secret"),
            ],
        )
        .await;
    assert_eq!(tested.status, 200);
    assert!(
        tested
            .body
            .contains("Connection works; compute regions: south-1, south-2"),
        "{}",
        tested.body
    );
    assert_eq!(h.census(), before, "testing saves nothing");

    let account = h
        .store
        .list_accounts()
        .unwrap()
        .into_iter()
        .find(|a| a.name == "south")
        .unwrap();
    let path = format!("/accounts/{}/edit", account.id);
    let csrf = b.csrf(&path).await;
    let bad = b
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("priority", "5"),
                ("mutating_per_sec", "0"),
                ("read_per_sec", "10"),
                ("max_concurrent_creates", "4"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    let saved = b
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("priority", "5"),
                ("regions", "south-1"),
                ("mutating_per_sec", "2"),
                ("read_per_sec", "10"),
                ("max_concurrent_creates", "4"),
                ("secret", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, 303);
    let changed = h.store.get_account(&account.id).unwrap().unwrap();
    assert_eq!(
        (
            changed.priority,
            changed.regions.clone(),
            changed.limits.max_concurrent_creates
        ),
        (5, vec!["south-1".to_owned()], 4)
    );
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&changed.secret),
        "secret",
        "an empty secret keeps the old one"
    );
}
