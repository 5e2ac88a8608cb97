//! What the API refuses, and how: the auth matrix on every route, bad
//! input on every write route (with the store left exactly as it was),
//! unknown routes and methods, rate limits, and the OpenAPI document kept
//! true to the routes.

use std::time::Duration;

use crate::support::api::{Harness, start};
use oms_actors::model::Role;
use oms_web::ApiConfig;
use oms_web::router::{Access, ROUTES};
use serde_json::{Value, json};

/// A concrete path for a route template.
fn concrete(path: &str) -> String {
    path.replace("{id}", "00000000000000000000000000000000")
        .replace("{name}", "absent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_matrix_holds_on_every_route() {
    let h = start(ApiConfig::default()).await;
    let client = h.token("ci", Role::Client, None).await;
    let revoked = h.token("gone", Role::Client, None).await;
    let mut gone = h
        .store
        .list_tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.name == "gone")
        .unwrap();
    gone.revoked = true;
    h.store.put_token(&gone).unwrap();

    for route in ROUTES {
        let path = concrete(route.path);
        let label = format!("{} {}", route.method, route.path);
        if route.access == Access::Public {
            let answer = h.call(route.method, &path, None, None).await;
            assert!(answer.status < 400, "{label}: {}", answer.status);
            continue;
        }
        let none = h.raw(route.method, &path, None, None, None, &[]).await;
        assert_eq!(none.status, 401, "{label} without a token");
        assert!(none.headers.contains_key("www-authenticate"), "{label}");
        assert_eq!(none.body["error"]["code"], "unauthorized");
        let malformed = h
            .raw(
                route.method,
                &path,
                None,
                None,
                None,
                &[("Authorization", "Bearer not-a-token")],
            )
            .await;
        assert_eq!(malformed.status, 401, "{label} with a malformed token");
        let basic = h
            .raw(
                route.method,
                &path,
                None,
                None,
                None,
                &[("Authorization", "Basic YWRtaW46YWRtaW4=")],
            )
            .await;
        assert_eq!(basic.status, 401, "{label} with basic auth");
        assert_eq!(
            h.call(route.method, &path, Some(&revoked), None)
                .await
                .status,
            401,
            "{label} revoked"
        );
        let as_client = h.call(route.method, &path, Some(&client), None).await;
        if route.access == Access::Admin {
            assert_eq!(as_client.status, 403, "{label} as a client");
        } else {
            assert!(
                ![401, 403].contains(&as_client.status),
                "{label} as a client: {}",
                as_client.status
            );
        }
        let as_admin = h.call(route.method, &path, Some(&h.admin), None).await;
        assert!(
            ![401, 403].contains(&as_admin.status),
            "{label} as admin: {}",
            as_admin.status
        );
    }
}

async fn expect_refused(
    h: &Harness,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    status: u16,
) {
    let before = (h.census(), h.settings());
    let answer = h
        .raw(
            method,
            path,
            Some(&h.admin),
            content_type,
            Some(body.to_vec()),
            &[],
        )
        .await;
    assert_eq!(
        answer.status,
        status,
        "{method} {path} {:?}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)]),
        answer.text
    );
    assert!(answer.body["error"]["code"].is_string(), "{}", answer.text);
    assert!(
        answer.body["error"]["message"].is_string(),
        "{}",
        answer.text
    );
    assert_eq!(
        (h.census(), h.settings()),
        before,
        "{method} {path} changed the store"
    );
    // Nothing long is echoed back.
    assert!(answer.text.len() < 600, "{method} {path}: {}", answer.text);
}

use crate::support::PUBLIC_KEY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_write_route_is_refused_and_changes_nothing() {
    let h = start(ApiConfig {
        max_count: 10,
        body_limit: 8192,
        ..ApiConfig::default()
    })
    .await;
    let account_id = h.store.list_accounts().unwrap()[0].id.clone();
    let account_path = format!("/v1/accounts/{account_id}");
    let json = Some("application/json");
    let writes: Vec<(&str, &str, Value)> = vec![
        ("POST", "/v1/instances", json!({"profile": "small"})),
        ("POST", "/v1/accounts", json!({"name": "x"})),
        ("PATCH", account_path.as_str(), json!({"priority": 1})),
        ("POST", "/v1/profiles", json!({"name": "p"})),
        ("POST", "/v1/tokens", json!({"name": "t", "role": "client"})),
    ];
    for (method, path, _) in &writes {
        expect_refused(&h, method, path, json, b"{\"profile\": ", 400).await;
        expect_refused(&h, method, path, json, b"not json", 400).await;
        expect_refused(&h, method, path, Some("text/plain"), b"{}", 415).await;
        expect_refused(&h, method, path, None, b"{}", 415).await;
        expect_refused(&h, method, path, json, &vec![b' '; 9000], 413).await;
        expect_refused(&h, method, path, json, b"[]", 422).await;
        expect_refused(&h, method, path, json, b"{\"unexpected\": true}", 422).await;
        // Two keys of one name: parsers disagree on which wins.
        expect_refused(
            &h,
            method,
            path,
            json,
            b"{\"name\": \"a\", \"name\": \"b\"}",
            400,
        )
        .await;
        expect_refused(&h, method, path, json, b"{\"name\": \"a\\u0000b\"}", 400).await;
    }
    // The finding: a duplicate role made an admin token.
    expect_refused(
        &h,
        "POST",
        "/v1/tokens",
        json,
        br#"{"name": "sneaky", "role": "client", "role": "admin"}"#,
        400,
    )
    .await;
    let launch = |body: Value| serde_json::to_vec(&body).unwrap();
    // Over the list bound, under this test's body limit.
    let many_regions: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    for (body, status) in [
        (json!({"profile": "no-such-profile"}), 422),
        (json!({"profile": "small", "count": 0}), 422),
        (json!({"profile": "small", "count": -1}), 422),
        (json!({"profile": "small", "count": 11}), 422),
        (json!({"profile": "small", "count": "two"}), 422),
        (json!({"profile": 7}), 422),
        (json!({"count": 1}), 422),
        (
            json!({"profile": "small", "public_key": "ssh-rsa nonsense"}),
            422,
        ),
        (
            json!({"profile": "small", "metadata": {"oms-attempt": "x"}}),
            422,
        ),
        (json!({"profile": "small", "name_prefix": "Bad Name"}), 422),
        (json!({"profile": "small", "expires_in": 0}), 422),
        (json!({"profile": "small", "expires_in": u64::MAX}), 422),
        (json!({"profile": "small", "deadline": u64::MAX}), 422),
        (json!({"profile": "small", "deadline": 0}), 422),
        (json!({"profile": "small", "max_attempts": 0}), 422),
        (json!({"profile": "small", "max_attempts": 1_000_000}), 422),
        (json!({"profile": "x".repeat(2_000)}), 422),
        (
            json!({"profile": "small", "placement": {"deny_regions": many_regions.clone()}}),
            422,
        ),
        (
            json!({"profile": "small", "placement": {"allow_providers": ["a\nb"]}}),
            422,
        ),
        (
            json!({"profile": "small", "public_key": format!("{PUBLIC_KEY}\n{PUBLIC_KEY}")}),
            422,
        ),
        (
            json!({"profile": "small", "public_key": format!("{PUBLIC_KEY}\rcommand=\"x\"")}),
            422,
        ),
        (
            json!({"flavor": {"min_vcpus": u32::MAX, "min_ram_mb": 1, "min_disk_gb": 1}, "image": "i"}),
            422,
        ),
        (
            json!({"flavor": {"min_vcpus": 1, "min_ram_mb": 1, "min_disk_gb": 1}, "image": "cirros\u{1}"}),
            422,
        ),
        (
            json!({"profile": "small", "flavor": {"min_vcpus": 1, "min_ram_mb": 1, "min_disk_gb": 1}}),
            422,
        ),
    ] {
        expect_refused(&h, "POST", "/v1/instances", json, &launch(body), status).await;
    }
    for body in [
        json!({"name": "bad name!", "auth_url": "http://k/v3", "user": {"name": "u"}, "project": {"name": "p"}, "password": "pw"}),
        json!({"name": "ok", "auth_url": "ftp://k/v3", "user": {"name": "u"}, "project": {"name": "p"}, "password": "pw"}),
        json!({"name": "ok", "auth_url": "http://k/v3", "project": {"name": "p"}, "password": "pw"}),
        json!({"name": "ok", "auth_url": "http://k/v3", "user": {"name": "u"}, "project": {"name": "p"}}),
        json!({"name": "ok", "auth_url": "http://k/v3", "identity_version": "v2.0", "application_credential": {"id": "a", "secret": "s"}}),
        json!({"name": "ok", "auth_url": "http://k/v3", "user": {"name": "u"}, "project": {"name": "p"}, "password": "pw", "limits": {"mutating_per_sec": 0, "read_per_sec": 1, "max_concurrent_creates": 1}}),
        json!({"name": "north", "auth_url": "http://k/v3", "user": {"name": "u"}, "project": {"name": "p"}, "password": "pw"}),
        json!({"name": "ok", "auth_url": "http://u:hunter2@k/v3", "user": {"name": "u"}, "project": {"name": "p"}, "password": "pw"}),
        json!({"name": "ok", "auth_url": "http://k/v3#frag", "user": {"name": "u"}, "project": {"name": "p"}, "password": "pw"}),
        json!({"name": "ok", "auth_url": "http://k/v3", "user": {"name": "u"}, "project": {"name": "p"}, "password": "pw", "regions": many_regions.clone()}),
        json!({"name": "ok", "auth_url": "http://k/v3", "user": {"name": "u\u{7}"}, "project": {"name": "p"}, "password": "pw"}),
        json!({"name": "ok", "auth_url": "http://k/v3", "user": {"name": "u"}, "project": {"name": "p".repeat(300)}, "password": "pw"}),
        json!({"name": "ok", "auth_url": "http://k/v3", "user": {"name": "u"}, "project": {"name": "p"}, "password": "x".repeat(5000)}),
        json!({"name": "ok", "auth_url": "http://127.0.0.1:1/v3", "user": {"name": "u"}, "project": {"name": "p"}, "password": "pw", "test_connection": true}),
    ] {
        let status = if body["name"] == "north" { 409 } else { 422 };
        expect_refused(&h, "POST", "/v1/accounts", json, &launch(body), status).await;
    }
    expect_refused(
        &h,
        "PATCH",
        &account_path,
        json,
        &launch(json!({"priority": "high"})),
        422,
    )
    .await;
    for change in [
        json!({"secret": ""}),
        json!({"regions": many_regions.clone()}),
        json!({"networks": ["net\u{1b}x"]}),
        json!({"pins": {"small": {"flavor": "f".repeat(300)}}}),
    ] {
        expect_refused(&h, "PATCH", &account_path, json, &launch(change), 422).await;
    }
    for token in [
        json!({"name": "t".repeat(100), "role": "client"}),
        json!({"name": "t", "role": "client", "continues": "x".repeat(5_000)}),
    ] {
        expect_refused(&h, "POST", "/v1/tokens", json, &launch(token), 422).await;
    }
    expect_refused(
        &h,
        "POST",
        "/v1/profiles",
        json,
        &launch(
            json!({"name": "p", "min_vcpus": 0, "min_ram_mb": 1, "min_disk_gb": 1, "image": "i"}),
        ),
        422,
    )
    .await;
    expect_refused(
        &h,
        "POST",
        "/v1/tokens",
        json,
        &launch(json!({"name": "t", "role": "root"})),
        422,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_404_and_405() {
    let h = start(ApiConfig::default()).await;
    let missing = h.call("GET", "/v1/nothing", Some(&h.admin), None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "not_found");
    let wrong = h.call("PUT", "/v1/instances", Some(&h.admin), None).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.body["error"]["code"], "method_not_allowed");
    let absent = h
        .call("GET", "/v1/instances/nope", Some(&h.admin), None)
        .await;
    assert_eq!(absent.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_get_429_with_retry_after() {
    let h = start(ApiConfig {
        client_rate_per_sec: 1,
        client_burst: 3,
        ..ApiConfig::default()
    })
    .await;
    let client = h.token("eager", Role::Client, None).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let answer = h.call("GET", "/v1/profiles", Some(&client), None).await;
        if answer.status == 429 {
            assert!(answer.headers.contains_key("retry-after"));
            assert_eq!(answer.body["error"]["code"], "rate_limited");
        }
        statuses.push(answer.status);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    // Another client is not held back by this one.
    let other = h.token("calm", Role::Client, None).await;
    assert_eq!(
        h.call("GET", "/v1/profiles", Some(&other), None)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let h = start(ApiConfig::default()).await;
    let doc = h.call("GET", "/v1/openapi.json", None, None).await.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, ROUTES.len());
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            assert!(operation["responses"].is_object());
            let answer = h
                .call(
                    &method.to_uppercase(),
                    &concrete(path),
                    Some(&h.admin),
                    None,
                )
                .await;
            // Every documented route answers: not "no such route" (an
            // unknown id is a 404 with code not_found, not a missing route).
            assert_ne!(answer.status, 405, "{method} {path}");
            assert!(
                !answer.body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("no route"),
                "{method} {path} is documented but not served"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_is_case_insensitive_and_two_credentials_are_refused() {
    let h = start(ApiConfig::default()).await;
    let client = h.token("ci", Role::Client, None).await;
    for scheme in ["bearer", "BEARER"] {
        let header = format!("{scheme} {client}");
        let answer = h
            .raw(
                "GET",
                "/v1/instances",
                None,
                None,
                None,
                &[("Authorization", header.as_str())],
            )
            .await;
        assert_eq!(answer.status, 200, "{scheme}: {}", answer.text);
    }
    // The client's token and the admin's: ambiguous, so neither is used.
    let before = h.census();
    let admin = format!("Bearer {}", h.admin);
    let answer = h
        .raw(
            "POST",
            "/v1/tokens",
            Some(&client),
            Some("application/json"),
            Some(br#"{"name": "sneaky", "role": "admin"}"#.to_vec()),
            &[("Authorization", admin.as_str())],
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.body["error"]["code"], "bad_request");
    assert_eq!(h.census(), before, "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_answer_carries_the_security_headers() {
    let h = start(ApiConfig::default()).await;
    for (method, path, token) in [
        ("GET", "/healthz", None),
        ("GET", "/v1/instances", Some(h.admin.as_str())),
        ("GET", "/v1/instances", None),
        ("GET", "/v1/nothing-here", None),
        ("PUT", "/v1/instances", Some(h.admin.as_str())),
    ] {
        let answer = h.call(method, path, token, None).await;
        let label = format!("{method} {path} ({})", answer.status);
        assert_eq!(
            answer.headers["x-content-type-options"], "nosniff",
            "{label}"
        );
        assert_eq!(answer.headers["referrer-policy"], "no-referrer", "{label}");
        let csp = answer.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{label}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{label}: {csp}");
    }
}

/// What a client does to its own connection is not a server error.
#[tokio::test]
async fn clients_that_hang_up_or_send_garbage_are_logged_at_debug() {
    use tokio::io::AsyncWriteExt;
    let logs = crate::support::Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // This runtime has one thread, so the server's tasks log here too.
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = start(ApiConfig::default()).await;
    let addr = h.base.trim_start_matches("http://").to_owned();
    for sent in [
        &b"POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro"[..],
        b"GET /v1/regions HTTP/1.1\r\nHost: x\r\n",
        b"\x16\x03\x01 this is not HTTP\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        drop(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The server still answers.
    assert_eq!(h.call("GET", "/healthz", None, None).await.status, 200);
    let text = logs.text();
    assert!(text.contains("connection ended abnormally"), "{text}");
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_options_allow_and_long_targets_follow_http() {
    let h = start(ApiConfig::default()).await;
    let admin = Some(h.admin.as_str());
    for route in ROUTES.iter().filter(|r| r.method == "GET") {
        let path = concrete(route.path);
        let get = h.call("GET", &path, admin, None).await;
        let head = h.call("HEAD", &path, admin, None).await;
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert!(head.text.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            head.headers.get("content-type"),
            get.headers.get("content-type"),
            "HEAD {path}"
        );
    }
    for (path, methods) in [
        ("/v1/instances", "POST, GET, HEAD, OPTIONS"),
        ("/v1/instances/x", "GET, DELETE, HEAD, OPTIONS"),
        ("/v1/tokens/x", "DELETE, OPTIONS"),
    ] {
        let options = h.call("OPTIONS", path, None, None).await;
        assert_eq!(options.status, 204, "OPTIONS {path}");
        assert_eq!(options.headers["allow"], methods, "OPTIONS {path}");
        let refused = h.call("PUT", path, admin, None).await;
        assert_eq!(refused.status, 405, "PUT {path}");
        assert_eq!(refused.headers["allow"], methods, "PUT {path}");
        assert_eq!(refused.body["error"]["code"], "method_not_allowed");
    }
    // A method name nobody knows is not a metrics label.
    let odd = h.call("RND123", "/v1/instances", admin, None).await;
    assert_eq!(odd.status, 405);
    let metrics = h.call("GET", "/metrics", None, None).await.text;
    assert!(!metrics.contains("RND123"));
    assert!(metrics.contains("method=\"other\""), "{metrics}");

    // A long target: JSON 414, not hyper's empty one.
    let long = format!("/v1/instances?name={}", "x".repeat(10_000));
    let answer = h.call("GET", &long, admin, None).await;
    assert_eq!(answer.status, 414);
    assert_eq!(answer.body["error"]["code"], "uri_too_long");
    // A long id is refused before any lookup, and not echoed.
    let id = "y".repeat(5_000);
    for method in ["GET", "DELETE"] {
        let answer = h
            .call(method, &format!("/v1/instances/{id}"), admin, None)
            .await;
        assert_eq!(answer.status, 404, "{method}");
        assert!(answer.text.len() < 200, "{method}: {}", answer.text);
    }
    let nowhere = h.call("GET", &format!("/v1/{id}"), admin, None).await;
    assert_eq!(nowhere.status, 404);
    assert!(nowhere.text.len() < 200, "{}", nowhere.text);
}
