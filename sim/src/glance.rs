//! Glance v2 image listing for one region (transcript 008).

use serde_json::{Value, json};
use warp::http::Method;

use crate::Sim;
use crate::http::{Reply, Request};
use crate::keystone;

/// Answers one request under `/image` of region `r` of provider `p`.
pub fn handle(sim: &Sim, p: usize, r: usize, request: &Request, rest: &[&str]) -> Reply {
    let world = sim.world();
    let provider = &world.providers[p];
    let region = &provider.regions[r];
    let token = request.header("X-Auth-Token").unwrap_or_default();
    if provider.validate(token).is_none() {
        return keystone::unauthorized(provider.keystone_url.trim_end_matches("/v3"));
    }
    if request.method != Method::GET || rest != ["v2", "images"] {
        return Reply::html(
            404,
            "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  The resource could not be found.<br /><br />\n\n\n\n </body>\n</html>",
        );
    }
    let query = request.query_pairs();
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let limit: usize = get("limit").and_then(|l| l.parse().ok()).unwrap_or(25);
    let mut images: Vec<&(String, String)> = region
        .images
        .iter()
        .filter(|(_, name)| get("name").is_none_or(|wanted| wanted == name))
        .filter(|_| get("status").is_none_or(|s| s == "active"))
        .collect();
    if let Some(marker) = get("marker") {
        match images.iter().position(|(id, _)| id == marker) {
            Some(i) => {
                images.drain(..=i);
            }
            None => {
                return Reply::html(
                    400,
                    "<html><body><h1>400 Bad Request</h1>marker not found</body></html>",
                );
            }
        }
    }
    let more = images.len() > limit;
    images.truncate(limit);
    let rendered: Vec<Value> = images
        .iter()
        .map(|(id, name)| {
            json!({"name": name, "disk_format": "raw", "container_format": "bare",
                "visibility": "public", "size": 1_048_576, "virtual_size": 1_048_576,
                "status": "active", "checksum": "b6d81b360a5672d80c27430f39153e2c",
                "protected": false, "min_ram": 0, "min_disk": 0,
                "owner": "deeec5dd1d244ce593b24894ba0e012f", "os_hidden": false,
                "os_hash_algo": "sha512", "os_hash_value": "0".repeat(128), "id": id,
                "created_at": "2026-11-25T08:48:49Z", "updated_at": "2026-11-25T08:48:49Z",
                "tags": [], "self": format!("/v2/images/{id}"),
                "file": format!("/v2/images/{id}/file"), "schema": "/v2/schemas/image",
                "stores": "fs"})
        })
        .collect();
    let mut body =
        json!({"images": rendered, "first": "/v2/images", "schema": "/v2/schemas/images"});
    if more && let Some((last, _)) = images.last() {
        body["next"] = json!(format!("/v2/images?limit={limit}&marker={last}"));
    }
    Reply::json(200, &body)
}
