//! The REST API end to end against oms-sim: launch → active → delete →
//! deleted, generated keys, idempotency, ownership, instance limits.

use std::time::Duration;

use crate::support::api::start;
use crate::support::eventually;
use oms_actors::model::Role;
use oms_web::ApiConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_to_active_to_deleted_over_http() {
    let h = start(ApiConfig::default()).await;
    let client = h.token("ci", Role::Client, None).await;
    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&client),
            Some(json!({"profile": "small", "count": 2, "name_prefix": "web",
                        "user_data": "#cloud-config\n", "metadata": {"team": "qa"}})),
        )
        .await;
    assert_eq!(launched.status, 202, "{}", launched.text);
    let private_key = launched.body["private_key"].as_str().unwrap();
    assert!(ssh_key::PrivateKey::from_openssh(private_key).is_ok());
    let ids: Vec<String> = launched.body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);

    for id in &ids {
        let path = format!("/v1/instances/{id}");
        let active = eventually(Duration::from_secs(30), "active", || async {
            let got = h.call("GET", &path, Some(&client), None).await;
            (got.body["status"] == "active").then_some(got.body)
        })
        .await;
        assert!(active["address"].is_string());
        assert!(active["provider"].is_string() && active["region"].is_string());
        let events = active["events"].as_array().unwrap();
        assert!(
            events
                .iter()
                .any(|e| e["message"].as_str().unwrap().contains("scheduled"))
        );
        assert!(active.get("private_key").is_none());
    }
    let listed = h
        .call("GET", "/v1/instances?status=active", Some(&client), None)
        .await;
    assert_eq!(listed.body["instances"].as_array().unwrap().len(), 2);

    for id in &ids {
        let deleted = h
            .call(
                "DELETE",
                &format!("/v1/instances/{id}"),
                Some(&client),
                None,
            )
            .await;
        assert_eq!(deleted.status, 202);
        assert_eq!(deleted.body["status"], "deleting");
    }
    for id in &ids {
        let path = format!("/v1/instances/{id}");
        eventually(Duration::from_secs(30), "deleted", || async {
            (h.call("GET", &path, Some(&client), None).await.body["status"] == "deleted")
                .then_some(())
        })
        .await;
    }
    assert_eq!(crate::support::fleet::sim_servers(&h.sim), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_posts_with_one_key_make_one_launch() {
    let h = std::sync::Arc::new(start(ApiConfig::default()).await);
    let client = h.token("ci", Role::Client, None).await;
    let body = json!({"profile": "small", "count": 1});
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let h = h.clone();
        let client = client.clone();
        let body = serde_json::to_vec(&body).unwrap();
        tasks.push(tokio::spawn(async move {
            h.raw(
                "POST",
                "/v1/instances",
                Some(&client),
                Some("application/json"),
                Some(body),
                &[("Idempotency-Key", "same-key")],
            )
            .await
        }));
    }
    let mut request_ids = std::collections::BTreeSet::new();
    let mut with_key = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, 202, "{}", answer.text);
        request_ids.insert(answer.body["request"]["id"].as_str().unwrap().to_owned());
        with_key += usize::from(answer.body.get("private_key").is_some());
    }
    assert_eq!(request_ids.len(), 1);
    assert_eq!(with_key, 1, "the private key is returned once");
    assert_eq!(h.store.list_requests().unwrap().len(), 1);

    let other = h
        .raw(
            "POST",
            "/v1/instances",
            Some(&client),
            Some("application/json"),
            Some(serde_json::to_vec(&json!({"profile": "small", "count": 2})).unwrap()),
            &[("Idempotency-Key", "same-key")],
        )
        .await;
    assert_eq!(other.status, 409);
    assert_eq!(h.store.list_requests().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_see_only_their_own_instances() {
    let h = start(ApiConfig::default()).await;
    let alice = h.token("alice", Role::Client, None).await;
    let bob = h.token("bob", Role::Client, None).await;
    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&alice),
            Some(json!({"profile": "small"})),
        )
        .await;
    let id = launched.body["instances"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/instances/{id}");
    assert_eq!(h.call("GET", &path, Some(&bob), None).await.status, 404);
    assert_eq!(h.call("DELETE", &path, Some(&bob), None).await.status, 404);
    assert_eq!(
        h.call("GET", "/v1/instances", Some(&bob), None).await.body["instances"],
        json!([])
    );
    assert_eq!(h.call("GET", &path, Some(&alice), None).await.status, 200);
    assert_eq!(h.call("GET", &path, Some(&h.admin), None).await.status, 200);
    let all = h
        .call("GET", "/v1/instances?client=alice", Some(&h.admin), None)
        .await;
    assert_eq!(all.body["instances"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_limit_refuses_launches_beyond_it() {
    let h = start(ApiConfig::default()).await;
    let client = h.token("small-team", Role::Client, Some(3)).await;
    let first = h
        .call(
            "POST",
            "/v1/instances",
            Some(&client),
            Some(json!({"profile": "small", "count": 2})),
        )
        .await;
    assert_eq!(first.status, 202);
    let before = h.census();
    let second = h
        .call(
            "POST",
            "/v1/instances",
            Some(&client),
            Some(json!({"profile": "small", "count": 2})),
        )
        .await;
    assert_eq!(second.status, 409, "{}", second.text);
    assert_eq!(second.body["error"]["code"], "conflict");
    assert_eq!(h.census(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_instance_once() {
    let h = start(ApiConfig::default()).await;
    let client = h.token("pager", Role::Client, None).await;
    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&client),
            Some(json!({"profile": "small", "count": 7, "deadline": 1})),
        )
        .await;
    assert_eq!(launched.status, 202);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/instances?limit=3&cursor={c}"),
            None => "/v1/instances?limit=3".to_owned(),
        };
        let page = h.call("GET", &path, Some(&client), None).await;
        for i in page.body["instances"].as_array().unwrap() {
            seen.push(i["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_launches_requests_and_regions() {
    let h = start(ApiConfig::default()).await;
    let client = h.token("ci", Role::Client, None).await;
    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&client),
            Some(json!({"profile": "small", "count": 3})),
        )
        .await;
    let request = launched.body["request"]["id"].as_str().unwrap().to_owned();
    crate::support::fleet::all_reach(
        &h.store,
        &request,
        oms_actors::model::InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    // Prometheus asks for OpenMetrics and gets it, said so.
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let open = h
        .raw(
            "GET",
            "/metrics",
            None,
            None,
            None,
            &[("accept", prometheus_accept)],
        )
        .await;
    assert_eq!(
        open.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(open.text.ends_with("# EOF\n"), "{}", open.text);
    assert!(open.text.contains("# TYPE oms_api_requests counter"));
    // Anyone else gets the classic text format, which promtool checks.
    let metrics = h.raw("GET", "/metrics", None, None, None, &[]).await;
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let head = h.raw("HEAD", "/metrics", None, None, None, &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.text.is_empty());
    let text = metrics.text;
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains("# TYPE oms_api_requests_total counter"),
        "{text}"
    );
    crate::support::promtool::check(&["check", "metrics"], Some(&text));
    // Base units, the breaker in its three states, the waiting queue,
    // reroutes and the build.
    assert!(text.contains("oms_region_latency_seconds{"), "{text}");
    assert!(!text.contains("milliseconds"), "{text}");
    for (state, value) in [("closed", 1), ("open", 0), ("half_open", 0)] {
        let series = format!(
            "oms_region_breaker_state{{account=\"north\",region=\"north-1\",state=\"{state}\"}} {value}"
        );
        assert!(text.contains(&series), "{series} in {text}");
    }
    assert!(text.contains("oms_queue_depth 0"), "{text}");
    assert!(text.contains("oms_queue_oldest_seconds 0"), "{text}");
    assert!(text.contains("oms_reroutes_total 0"), "{text}");
    assert!(
        text.contains(&format!(
            "oms_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(
        text.contains("oms_instances_finished_total{outcome=\"active\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("oms_time_to_active_seconds_count 3"),
        "{text}"
    );
    assert!(
        text.contains(
            "oms_api_requests_total{route=\"/v1/instances\",method=\"POST\",status=\"202\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("oms_region_healthy{account=\"north\",region=\"north-1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("oms_region_instances_limit{account=\"south\",region=\"south-2\"} 20"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holding_instances_cannot_be_deleted_until_they_are_gone() {
    let h = start(ApiConfig::default()).await;
    let accounts = h.call("GET", "/v1/accounts", Some(&h.admin), None).await;
    let north = accounts.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "north")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let only_north =
        json!({"profile": "small", "count": 2, "placement": {"allow_providers": ["north"]}});
    let launched = h
        .call("POST", "/v1/instances", Some(&h.admin), Some(only_north))
        .await;
    let request = launched.body["request"]["id"].as_str().unwrap().to_owned();
    let active = crate::support::fleet::all_reach(
        &h.store,
        &request,
        oms_actors::model::InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    let path = format!("/v1/accounts/{north}");
    let drained = h
        .call("PATCH", &path, Some(&h.admin), Some(json!({"drain": true})))
        .await;
    assert_eq!(drained.body["drain"], true);
    let refused = h.call("DELETE", &path, Some(&h.admin), None).await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    for instance in &active {
        h.call(
            "DELETE",
            &format!("/v1/instances/{}", instance.id),
            Some(&h.admin),
            None,
        )
        .await;
    }
    crate::support::fleet::all_reach(
        &h.store,
        &request,
        oms_actors::model::InstanceState::Deleted,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        h.call("DELETE", &path, Some(&h.admin), None).await.status,
        204
    );
    assert_eq!(h.call("GET", &path, Some(&h.admin), None).await.status, 404);
}
