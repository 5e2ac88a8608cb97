//! Every JSON answer the API tests receive is checked against the served
//! OpenAPI document: its status must be documented for the operation,
//! and its body must match the schema given there. The document cannot
//! drift from the code without this failing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

/// The document and the validators compiled from it.
pub struct Contract {
    document: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

static CONTRACT: OnceLock<Contract> = OnceLock::new();

/// The contract of the API at `base`, fetched once per test process.
pub async fn of(base: &str) -> &'static Contract {
    if let Some(contract) = CONTRACT.get() {
        return contract;
    }
    let document: Value = reqwest::get(format!("{base}/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    CONTRACT.get_or_init(|| Contract {
        document,
        validators: Mutex::default(),
    })
}

fn matches(template: &str, path: &str) -> bool {
    let wanted: Vec<&str> = template.split('/').collect();
    let given: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    wanted.len() == given.len()
        && wanted
            .iter()
            .zip(&given)
            .all(|(w, g)| w == g || (w.starts_with('{') && !g.is_empty()))
}

impl Contract {
    fn validator(&self, key: &str, schema: &Value) -> Arc<jsonschema::Validator> {
        let mut validators = self.validators.lock().unwrap();
        validators
            .entry(key.to_owned())
            .or_insert_with(|| {
                // The schema refers into the document's components.
                let root = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "allOf": [schema],
                    "components": self.document["components"],
                });
                Arc::new(
                    jsonschema::options()
                        .should_validate_formats(true)
                        .build(&root)
                        .unwrap_or_else(|e| panic!("{key}: the schema does not compile: {e}")),
                )
            })
            .clone()
    }

    /// Panics unless `status` and `text` are what the document says
    /// `method path` answers.
    pub fn check(&self, method: &str, path: &str, status: u16, text: &str) {
        let path = path.split('?').next().unwrap_or_default();
        let api = path.starts_with("/v1/") || matches!(path, "/healthz" | "/readyz");
        if !api || matches!(method, "HEAD" | "OPTIONS") || status == 414 {
            // Pages, HEAD and OPTIONS answer no JSON; a 414 is decided
            // before any route (checked as an error below all the same).
            if api && status == 414 {
                self.body_matches("414", &self.error_schema(), text);
            }
            return;
        }
        let operation = self.document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(template, _)| matches(template, path))
            .and_then(|(_, item)| item.get(method.to_lowercase()));
        let Some(operation) = operation else {
            // No such route or method: the error shape all the same.
            assert!(
                matches!(status, 404 | 405),
                "{method} {path} is not documented but answered {status}"
            );
            self.body_matches(
                &format!("{method} {path} {status}"),
                &self.error_schema(),
                text,
            );
            return;
        };
        let response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which its operation does not document: {}",
            &text[..text.len().min(300)]
        );
        if let Some(schema) = response["content"]["application/json"].get("schema") {
            let key = format!("{} {status}", operation["operationId"]);
            let validator = self.validator(&key, schema);
            let body: Value = serde_json::from_str(text).unwrap_or_else(|_| {
                panic!(
                    "{method} {path} {status}: not JSON: {}",
                    &text[..text.len().min(300)]
                )
            });
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .take(5)
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {path} {status} does not match the document: {errors:#?}"
            );
        }
    }

    fn error_schema(&self) -> Value {
        json!({"$ref": "#/components/schemas/Error"})
    }

    fn body_matches(&self, key: &str, schema: &Value, text: &str) {
        let validator = self.validator(&format!("error {key}"), schema);
        let body: Value = serde_json::from_str(text)
            .unwrap_or_else(|_| panic!("{key}: not JSON: {}", &text[..text.len().min(300)]));
        assert!(
            validator.is_valid(&body),
            "{key}: not the error shape: {body}"
        );
    }
}
