//! Tokens on the API: a token's name is its client's identity, so a name
//! belongs to one line of tokens and a stranger cannot take it over.

use crate::support::api::start;
use oms_actors::model::Role;
use oms_web::ApiConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_name_cannot_be_taken_by_a_second_token() {
    let h = start(ApiConfig::default()).await;
    let admin = Some(h.admin.as_str());
    let created = h
        .call(
            "POST",
            "/v1/tokens",
            admin,
            Some(json!({"name": "ci", "role": "client"})),
        )
        .await;
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
    let again = h
        .call(
            "POST",
            "/v1/tokens",
            admin,
            Some(json!({"name": "ci", "role": "client"})),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.body["error"]["code"], "conflict");
    assert!(again.text.contains(&ci_id), "names the token that holds it");
    assert_eq!(h.census(), before, "nothing stored");
    let revoked = h
        .call("DELETE", &format!("/v1/tokens/{ci_id}"), admin, None)
        .await;
    assert_eq!(revoked.status, 204);
    let after_revoke = h
        .call(
            "POST",
            "/v1/tokens",
            admin,
            Some(json!({"name": "ci", "role": "client"})),
        )
        .await;
    assert_eq!(after_revoke.status, 409, "{}", after_revoke.text);

    // Rotation names the token it continues, and keeps the instances.
    let wrong_role = h
        .call(
            "POST",
            "/v1/tokens",
            admin,
            Some(json!({"name": "ci", "role": "admin", "continues": ci_id})),
        )
        .await;
    assert_eq!(wrong_role.status, 422, "{}", wrong_role.text);
    let rotated = h
        .call(
            "POST",
            "/v1/tokens",
            admin,
            Some(json!({"name": "ci", "role": "client", "continues": ci_id})),
        )
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let new_ci = rotated.body["token"].as_str().unwrap();
    let seen = h
        .call(
            "GET",
            &format!("/v1/instances/{instance}"),
            Some(new_ci),
            None,
        )
        .await;
    assert_eq!(seen.status, 200, "the rotated token is the same client");

    // A token of another name sees nothing of ci's.
    let other = h.token("other", Role::Client, None).await;
    let hidden = h
        .call(
            "GET",
            &format!("/v1/instances/{instance}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(hidden.status, 404);
}
