//! Reading JSON request bodies: 415 unless `application/json`, 400 for
//! JSON that does not parse or that names a key twice (parsers disagree
//! on which one wins, so a body could mean one thing to a proxy and
//! another to us), or has a NUL in a string; 422 for JSON of the wrong
//! shape. Error messages never echo the values a client sent (they may be
//! secrets).

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

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
    strict(&call.body)
}

/// Parses JSON, refusing duplicate keys and NUL characters (400).
pub(crate) fn strict(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice::<Strict>(bytes)
        .map(|s| s.0)
        .map_err(|e| {
            let at = format!("at line {} column {}", e.line(), e.column());
            if e.is_data() {
                // Our own refusals; the message names a key, never a value.
                let why = e.to_string();
                let why = why.split(" at line ").next().unwrap_or_default();
                ApiError::bad_request(format!("{why} {at}"))
            } else {
                ApiError::bad_request(format!("malformed JSON {at}"))
            }
        })
}

/// A JSON value read strictly.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

fn no_nul<E: de::Error>(text: &str) -> Result<(), E> {
    if text.contains('\0') {
        return Err(E::custom("strings must not contain NUL"));
    }
    Ok(())
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        no_nul(v)?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        no_nul(&v)?;
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            no_nul(&key)?;
            if object.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!("duplicate key `{shown}`")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
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
                // After "field", a key the client sent; after "expected",
                // "of", "or" or a comma, one of ours; anything else (an
                // "unknown variant", a string) is a value.
                let before = out.trim_end();
                let names_a_key = ["field", "expected", "of", "or", ","]
                    .iter()
                    .any(|w| before.ends_with(w));
                if names_a_key {
                    out.push(close);
                    out.extend(inner.chars().take(64));
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
    use super::{redact, strict};

    #[test]
    fn duplicate_keys_and_nul_are_refused_at_any_depth() {
        for bad in [
            r#"{"role":"client","role":"admin"}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#"[{"x":1},{"y":1,"y":1}]"#,
            r#"{"name":"a\u0000b"}"#,
            r#"{"na\u0000me":"x"}"#,
        ] {
            let error = strict(bad.as_bytes()).unwrap_err();
            assert_eq!(error.status, 400, "{bad}");
            assert!(!error.message.contains("admin"), "{}", error.message);
        }
        assert!(
            strict(br#"{"role":"client","role":"admin"}"#)
                .unwrap_err()
                .message
                .starts_with("duplicate key `role`")
        );
        let fine = strict(br#"{"a":[1,-2,3.5,true,null,"\u00e9"],"b":{"a":1}}"#).unwrap();
        assert_eq!(fine["a"][5], "é");
        assert_eq!(
            strict(b"{").unwrap_err().message,
            "malformed JSON at line 1 column 1"
        );
    }

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
        assert_eq!(
            redact("unknown variant `superuser`, expected `admin` or `client`"),
            "unknown variant, expected `admin` or `client`"
        );
        let long = format!("unknown field `{}`, expected `name`", "k".repeat(10_000));
        assert!(redact(&long).len() < 120);
    }
}
