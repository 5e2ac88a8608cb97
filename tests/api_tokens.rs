//! Tokens on the API: a token's name is its client's identity, so a name
//! belongs to one line of tokens and a stranger cannot take it over.

use crate::support::api::{Answer, Harness, start};
use oms_actors::model::Role;
use oms_web::ApiConfig;
use serde_json::{Value, json};

async fn create(h: &Harness, body: Value) -> Answer {
    h.call("POST", "/v1/tokens", Some(&h.admin), Some(body))
        .await
}

async fn sees(h: &Harness, token: &str, instance: &str) -> u16 {
    let path = format!("/v1/instances/{instance}");
    h.call("GET", &path, Some(token), None).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_name_cannot_be_taken_by_a_second_token() {
    let h = start(ApiConfig::default()).await;
    let ci_body = json!({"name": "ci", "role": "client"});
    let created = create(&h, ci_body.clone()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let ci = created.body["token"].as_str().unwrap().to_owned();
    let ci_id = created.body["id"].as_str().unwrap().to_owned();
    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&ci),
            Some(json!({"profile": "small"})),
        )
        .await;
    assert_eq!(launched.status, 202, "{}", launched.text);
    let instance = launched.body["instances"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The same name again, while the first lives, or after it was revoked.
    let before = h.census();
    let again = create(&h, ci_body.clone()).await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.body["error"]["code"], "conflict");
    assert!(again.text.contains(&ci_id), "names the token that holds it");
    assert_eq!(h.census(), before, "nothing stored");
    let path = format!("/v1/tokens/{ci_id}");
    let revoked = h.call("DELETE", &path, Some(&h.admin), None).await;
    assert_eq!(revoked.status, 204);
    let after_revoke = create(&h, ci_body).await;
    assert_eq!(after_revoke.status, 409, "{}", after_revoke.text);

    // Rotation names the token it continues, and keeps the instances.
    let wrong_role = create(
        &h,
        json!({"name": "ci", "role": "admin", "continues": ci_id}),
    )
    .await;
    assert_eq!(wrong_role.status, 422, "{}", wrong_role.text);
    let rotated = create(
        &h,
        json!({"name": "ci", "role": "client", "continues": ci_id}),
    )
    .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let new_ci = rotated.body["token"].as_str().unwrap();
    assert_eq!(sees(&h, new_ci, &instance).await, 200, "the same client");

    // A token of another name sees nothing of ci's.
    let other = h.token("other", Role::Client, None).await;
    assert_eq!(sees(&h, &other, &instance).await, 404);
}
