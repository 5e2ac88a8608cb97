//! Reading JSON request bodies: 415 unless `application/json`, 400 for
//! JSON that does not parse, 422 for JSON of the wrong shape. Error
//! messages never echo the values a client sent (they may be secrets).

use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::router::Call;

/// Parses the body of `call` as `T`.
pub(crate) fn json<T: DeserializeOwned>(call: &Call<'_>) -> Result<T, ApiError> {
    shape(value(call)?)
}

/// Turns parsed JSON into `T`; 422 with a redacted message if it does not
/// fit.
pub(crate) fn shape<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::invalid(redact(&e.to_string())))
}

/// The body of `call` as JSON of any shape.
pub(crate) fn value(call: &Call<'_>) -> Result<serde_json::Value, ApiError> {
    let content_type = call
        .headers
        .get(warp::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::unsupported_media_type());
    }
    serde_json::from_slice(&call.body).map_err(|e| {
        ApiError::bad_request(format!(
            "malformed JSON at line {} column {}",
            e.line(),
            e.column()
        ))
    })
}

/// Drops quoted or backquoted values from a serde message, keeping field
/// names and expectations: `invalid type: string "x", expected u32`
/// becomes `invalid type: string, expected u32`.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' => {
                let close = c;
                // Field names in serde messages are backquoted after
                // "field"; keep those, drop values.
                let mut inner = String::new();
                for d in chars.by_ref() {
                    if d == close {
                        break;
                    }
                    inner.push(d);
                }
                let before = out.trim_end();
                let names_a_key = ["field", "variant", "of", ","]
                    .iter()
                    .any(|w| before.ends_with(w));
                if names_a_key {
                    out.push(close);
                    out.push_str(&inner);
                    out.push(close);
                } else if out.ends_with(' ') {
                    out.pop();
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn values_are_dropped_field_names_kept() {
        assert_eq!(
            redact("invalid type: string \"hunter2\", expected u32 at line 1 column 9"),
            "invalid type: string, expected u32 at line 1 column 9"
        );
        assert_eq!(redact("missing field `profile`"), "missing field `profile`");
        assert_eq!(
            redact("invalid value: integer `-1`, expected u32"),
            "invalid value: integer, expected u32"
        );
        assert_eq!(
            redact("unknown field `pasword`, expected one of `name`, `secret`"),
            "unknown field `pasword`, expected one of `name`, `secret`"
        );
    }
}
