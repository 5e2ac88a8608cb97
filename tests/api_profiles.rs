//! `/v1/profiles`: a create never replaces (the README's tour once
//! silently replaced the demo's profile); PUT to the profile's path does;
//! a profile unfinished instances use cannot be deleted.

use crate::support::api::start;
use oms_actors::model::Role;
use oms_web::ApiConfig;
use serde_json::json;

fn body(name: &str, ram: u64) -> serde_json::Value {
    json!({"name": name, "min_vcpus": 1, "min_ram_mb": ram, "min_disk_gb": 1, "image": "cirros"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_a_taken_name_put_replaces_delete_refuses_one_in_use() {
    let h = start(ApiConfig::default()).await;
    let admin = Some(h.admin.as_str());
    let before = h.store.get_profile("small").unwrap().unwrap();

    let taken = h
        .call("POST", "/v1/profiles", admin, Some(body("small", 64)))
        .await;
    assert_eq!(taken.status, 409, "{}", taken.text);
    assert!(
        taken.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PUT /v1/profiles/small")
    );
    assert_eq!(h.store.get_profile("small").unwrap().unwrap(), before);

    let created = h
        .call("POST", "/v1/profiles", admin, Some(body("tiny", 64)))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let replaced = h
        .call("PUT", "/v1/profiles/tiny", admin, Some(body("tiny", 128)))
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    let shown = h.call("GET", "/v1/profiles/tiny", admin, None).await;
    assert_eq!(shown.body["min_ram_mb"], 128);
    let new = h
        .call("PUT", "/v1/profiles/wee", admin, Some(body("wee", 64)))
        .await;
    assert_eq!(new.status, 201, "{}", new.text);
    let mismatch = h
        .call("PUT", "/v1/profiles/wee", admin, Some(body("other", 64)))
        .await;
    assert_eq!(mismatch.status, 422, "{}", mismatch.text);
    assert!(h.store.get_profile("other").unwrap().is_none());

    // A client may read, not write.
    let client = h.token("ci", Role::Client, None).await;
    assert_eq!(
        h.call("GET", "/v1/profiles/tiny", Some(&client), None)
            .await
            .status,
        200
    );
    assert_eq!(
        h.call("DELETE", "/v1/profiles/tiny", Some(&client), None)
            .await
            .status,
        403
    );

    // In use by a launch that is not finished: refused, kept.
    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&client),
            Some(json!({"profile": "small", "count": 1})),
        )
        .await;
    assert_eq!(launched.status, 202, "{}", launched.text);
    let in_use = h.call("DELETE", "/v1/profiles/small", admin, None).await;
    assert_eq!(in_use.status, 409, "{}", in_use.text);
    assert!(h.store.get_profile("small").unwrap().is_some());

    let deleted = h.call("DELETE", "/v1/profiles/tiny", admin, None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(
        h.call("GET", "/v1/profiles/tiny", admin, None).await.status,
        404
    );
    assert_eq!(
        h.call("DELETE", "/v1/profiles/tiny", admin, None)
            .await
            .status,
        404
    );
}
