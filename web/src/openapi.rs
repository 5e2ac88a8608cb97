//! The OpenAPI 3.1 document, generated from the route table and from the
//! types the handlers read and write (their JSON Schemas, by schemars), so
//! that what is documented is what is served. The test suite validates
//! every answer it receives against it.

use std::sync::LazyLock;

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::router::{Access, Op, ROUTES, Route, schema};

/// The error every refusal carries.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct Error {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// Stable machine-readable code (`not_found`, `invalid`, ...).
    code: String,
    /// For people; never echoes a secret.
    message: String,
}

fn error_response(generator: &mut SchemaGenerator, description: &str) -> Value {
    let schema = schema::<Error>(generator);
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// Statuses every route of a kind answers, with why.
fn common(route: &Route) -> Vec<(u16, &'static str)> {
    let mut statuses = vec![
        (414, "the path and query are too long"),
        (500, "our fault; the details are logged, not returned"),
    ];
    if route.access != Access::Public {
        statuses.extend([
            (400, "malformed request (two Authorization headers, a bad query parameter, malformed JSON, a key named twice)"),
            (401, "missing, malformed or revoked token"),
            (429, "too many requests; see Retry-After"),
        ]);
    }
    if route.access == Access::Admin {
        statuses.push((403, "needs an admin token"));
    }
    if route.path.contains('{') {
        statuses.push((404, "not found (or not yours)"));
    }
    if route.body.is_some() {
        statuses.extend([
            (413, "body too large"),
            (415, "not application/json"),
            (422, "valid JSON, invalid request"),
        ]);
    }
    statuses
}

/// Where a created thing's id is, for the links a stateful client (or a
/// fuzzer) follows from one operation to the next.
fn links(op: Op) -> Value {
    let to = |ops: &[Op], id: &str| -> Value {
        ops.iter()
            .map(|op| {
                (
                    format!("{op:?}"),
                    json!({"operationId": format!("{op:?}"), "parameters": {"id": id}}),
                )
            })
            .collect::<Map<String, Value>>()
            .into()
    };
    match op {
        Op::LaunchInstances => to(
            &[Op::GetInstance, Op::DeleteInstance],
            "$response.body#/instances/0/id",
        ),
        Op::CreateAccount => to(
            &[Op::GetAccount, Op::PatchAccount, Op::DeleteAccount],
            "$response.body#/id",
        ),
        Op::CreateToken => to(&[Op::RevokeToken], "$response.body#/id"),
        _ => Value::Null,
    }
}

fn operation(route: &Route, generator: &mut SchemaGenerator) -> Value {
    let mut responses = Map::new();
    let mut success = json!({"description": route.summary});
    if let Some(answer) = route.answer {
        success["content"] = json!({"application/json": {"schema": answer(generator)}});
    } else if route.op == Op::Metrics {
        success["content"] = json!({"text/plain": {"schema": {"type": "string"}}});
    }
    let links = links(route.op);
    if !links.is_null() {
        success["links"] = links;
    }
    responses.insert(route.success.to_string(), success);
    for (status, why) in common(route).into_iter().chain(route.also.iter().copied()) {
        let response = if status < 300 {
            // Another success with the same answer (a dry run).
            let mut same = responses[&route.success.to_string()].clone();
            same["description"] = json!(why);
            same.as_object_mut().map(|o| o.remove("links"));
            same
        } else {
            error_response(generator, why)
        };
        responses.insert(status.to_string(), response);
    }
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                   "schema": {"type": "string", "maxLength": crate::router::MAX_ID}})
        })
        .collect();
    for param in route.query {
        parameters.push(json!({"name": param.name, "in": "query", "required": false,
                               "description": param.description, "schema": (param.schema)(generator)}));
    }
    if route.op == Op::LaunchInstances {
        parameters.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "description": "The same key with the same body answers the same launch, never a second one.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}}));
    }
    let mut operation = json!({
        "summary": route.summary,
        "operationId": format!("{:?}", route.op),
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(body) = route.body {
        operation["requestBody"] = json!({"required": true,
            "content": {"application/json": {"schema": body(generator)}}});
    }
    if route.access != Access::Public {
        operation["security"] = json!([{"bearer": []}]);
    }
    operation
}

fn build() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path item is an object");
        item.insert(
            route.method.to_lowercase(),
            operation(route, &mut generator),
        );
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "OpenMultiStack", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Pools many OpenStack accounts into one source of compute."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an `oms_` API token"}},
            "schemas": generator.take_definitions(true),
        }
    })
}

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The document (built once).
pub(crate) fn document() -> &'static Value {
    &DOCUMENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_and_answer_is_a_reference_that_resolves() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        let mut seen = 0;
        for (_, item) in document["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                let bodies = op["requestBody"]["content"]["application/json"]["schema"].clone();
                let answers = op["responses"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|r| r["content"]["application/json"]["schema"].clone());
                for schema in std::iter::once(bodies).chain(answers) {
                    if let Some(reference) = schema["$ref"].as_str() {
                        let name = reference.trim_start_matches("#/components/schemas/");
                        assert!(schemas.get(name).is_some(), "{reference}");
                        seen += 1;
                    }
                }
            }
        }
        assert!(seen > 50, "{seen}");
        // Request bodies refuse unknown fields, as the handlers do.
        assert_eq!(schemas["LaunchBody"]["additionalProperties"], false);
    }
}
