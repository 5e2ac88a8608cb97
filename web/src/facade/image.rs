//! Glance v2, read-only: the images our profiles name, with ids stable
//! across restarts (derived from the names), filterable by name.

use serde_json::{Value, json};
use warp::http::{Method, StatusCode};

use super::{Call, answer, stable_id};

fn image(name: &str) -> Value {
    let id = stable_id("image", name);
    json!({
        "id": id, "name": name, "status": "active", "visibility": "public", "protected": false,
        "os_hidden": false, "disk_format": "qcow2", "container_format": "bare",
        "min_disk": 0, "min_ram": 0, "size": null, "virtual_size": null, "checksum": null,
        "owner": null, "tags": [], "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "self": format!("/v2/images/{id}"), "file": format!("/v2/images/{id}/file"),
        "schema": "/v2/schemas/image",
        "description": "the image of this name at every provider",
    })
}

/// The images our profiles name, sorted, once each.
pub(super) fn names(call: &Call<'_>) -> Vec<String> {
    let mut names: Vec<String> = call
        .api
        .fleet
        .profiles()
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.image)
        .collect();
    names.sort();
    names.dedup();
    names
}

pub(super) fn handle(call: &Call<'_>) -> warp::reply::Response {
    let versions = || {
        json!({"versions": [{"id": "v2.16", "status": "CURRENT",
            "links": [{"rel": "self", "href": format!("{}/image/v2/", call.base)}]}]})
    };
    match (&call.method, call.segments.as_slice()) {
        (&Method::GET, []) => return answer(StatusCode::MULTIPLE_CHOICES, &versions()),
        (&Method::GET, ["versions"]) => return answer(StatusCode::OK, &versions()),
        _ => {}
    }
    if call.principal().is_none() {
        return answer(
            StatusCode::UNAUTHORIZED,
            &json!({"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}),
        );
    }
    match (&call.method, call.segments.as_slice()) {
        (&Method::GET, ["v2", "images"]) => {
            let wanted = call.query("name");
            let listed: Vec<Value> = names(call)
                .iter()
                .filter(|n| wanted.is_none_or(|w| w == n.as_str()))
                .map(|n| image(n))
                .collect();
            answer(
                StatusCode::OK,
                &json!({"images": listed, "first": "/v2/images", "schema": "/v2/schemas/images"}),
            )
        }
        (&Method::GET, ["v2", "images", id]) => {
            match names(call).iter().find(|n| stable_id("image", n) == *id) {
                Some(name) => answer(StatusCode::OK, &image(name)),
                None => answer(
                    StatusCode::NOT_FOUND,
                    &json!({"message": format!("No image found with ID {id}"), "code": "404 Not Found", "title": "Not Found"}),
                ),
            }
        }
        (&Method::GET, ["v2", "schemas", ..]) => {
            answer(StatusCode::OK, &json!({"name": "image", "properties": {}}))
        }
        (&Method::GET, _) => answer(
            StatusCode::NOT_FOUND,
            &json!({"message": "The resource could not be found.", "code": "404 Not Found", "title": "Not Found"}),
        ),
        _ => answer(
            StatusCode::NOT_IMPLEMENTED,
            &json!({"message": "OpenMultiStack's images are read-only: see the compatibility matrix in its README.",
                    "code": "501 Not Implemented", "title": "Not Implemented"}),
        ),
    }
}
