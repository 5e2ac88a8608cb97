//! The OpenAPI 3.1 document, generated from the route table so that what
//! is documented is what is served.

use serde_json::{Map, Value, json};

use crate::router::{Access, ROUTES};

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path item is an object");
        let mut responses = Map::new();
        let media = if route.path == "/metrics" {
            "text/plain"
        } else {
            "application/json"
        };
        responses.insert(
            route.success.to_string(),
            json!({"description": "success", "content": {media: {}}}),
        );
        if route.access != Access::Public {
            responses.insert(
                "401".into(),
                error_response("missing, malformed or revoked token"),
            );
            responses.insert(
                "429".into(),
                error_response("too many requests; see Retry-After"),
            );
        }
        if route.access == Access::Admin {
            responses.insert("403".into(), error_response("needs an admin token"));
        }
        if route.path.contains('{') {
            responses.insert("404".into(), error_response("not found (or not yours)"));
        }
        if matches!(route.method, "POST" | "PATCH") {
            for (code, why) in [
                ("400", "malformed JSON"),
                ("409", "conflicts with the current state"),
                ("413", "body too large"),
                ("415", "not application/json"),
                ("422", "valid JSON, invalid request"),
            ] {
                responses.insert(code.into(), error_response(why));
            }
        }
        let parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut operation = json!({
            "summary": route.summary,
            "operationId": format!("{:?}", route.op),
            "parameters": parameters,
            "responses": responses,
        });
        if route.access != Access::Public {
            operation["security"] = json!([{"bearer": []}]);
        }
        if route.method == "POST" && route.path == "/v1/instances" {
            operation["parameters"]
                .as_array_mut()
                .expect("array")
                .push(json!({"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string", "maxLength": 255}}));
        }
        item.insert(route.method.to_lowercase(), operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "OpenMultiStack", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Pools many OpenStack accounts into one source of compute."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an `oms_` API token"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}
        }
    })
}
