//! The OpenStack façade: the whole pool answered as one OpenStack cloud,
//! so unmodified `openstack`, openstacksdk and Ansible work against it.
//! Served on the API's listener under DevStack's prefixes (`/identity`,
//! `/compute`, `/image`, `/network`). Every call authenticates with a
//! façade token bound to one of our API tokens and goes through the same
//! Fleet as the REST API.

mod compute;
mod identity;
mod image;
mod network;
pub(crate) mod tokens;

use bytes::Bytes;
use serde_json::{Value, json};
use warp::http::{HeaderMap, Method, StatusCode};

use crate::Api;
use crate::auth::Principal;

/// The one network the façade shows.
pub const NETWORK: &str = "oms";

/// A façade request.
pub(crate) struct Call<'a> {
    pub api: &'a Api,
    pub method: Method,
    /// The path below the service's prefix, split.
    pub segments: Vec<&'a str>,
    pub query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    /// `http://host[:port]` as the client reached us.
    pub base: String,
    /// Who `X-Auth-Token` speaks for, if anyone.
    principal: Option<Principal>,
}

impl Call<'_> {
    /// A query parameter.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The caller, from `X-Auth-Token` (`None`: the service's 401).
    pub fn principal(&self) -> Option<Principal> {
        self.principal.clone()
    }

    /// The region the catalog names.
    pub fn region(&self) -> &str {
        &self.api.config.facade_region
    }

    /// The body as JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(self.body).ok()
    }
}

/// A JSON answer: the services answer JSON as the REST API does.
pub(crate) fn answer(status: StatusCode, body: &Value) -> warp::reply::Response {
    crate::json_response(status, body)
}

/// Whether `path` is the façade's (its first segment names a service).
pub(crate) fn is_facade(path: &str) -> bool {
    let service = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    matches!(service, "identity" | "compute" | "image" | "network")
}

/// Answers a façade request; `None` when `path` is not the façade's.
pub(crate) async fn dispatch(
    api: &Api,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<warp::reply::Response> {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next()?;
    if !api.config.facade || !is_facade(path) {
        return None;
    }
    let rest = parts.next().unwrap_or("");
    let forwarded_https = headers
        .get("X-Forwarded-Proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let host = headers
        .get(warp::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("127.0.0.1");
    let scheme = if forwarded_https { "https" } else { "http" };
    let principal = headers
        .get("X-Auth-Token")
        .and_then(|v| v.to_str().ok())
        .and_then(|value| api.facade_tokens.principal(&api.fleet, value));
    // The same per-token rate as the REST API, in Nova's words.
    if let Some(principal) = &principal
        && let Err(error) = api.limiter.check(principal)
    {
        let mut response = answer(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"overLimit": {"code": 429, "message": error.message}}),
        );
        if let Some(wait) = error.retry_after
            && let Ok(value) = warp::http::HeaderValue::from_str(&wait.to_string())
        {
            response.headers_mut().insert("Retry-After", value);
        }
        return Some(response);
    }
    let call = Call {
        api,
        method: if method == Method::HEAD {
            Method::GET
        } else {
            method.clone()
        },
        segments: rest.split('/').filter(|s| !s.is_empty()).collect(),
        query: url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        headers,
        body,
        base: format!("{scheme}://{host}"),
        principal,
    };
    let response = match service {
        "identity" => identity::handle(&call).await,
        "compute" => compute::handle(&call).await,
        "image" => image::handle(&call),
        _ => network::handle(&call),
    };
    let route = format!("/{service}");
    api.metrics
        .request(&route, method.as_str(), response.status().as_u16());
    Some(response)
}

/// A stable UUID-shaped id for a name (images, the network): the same
/// name, the same id, across restarts and daemons.
pub(crate) fn stable_id(kind: &str, name: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{kind}\0{name}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Nova's and Neutron's error body.
pub(crate) fn nova_error(status: StatusCode, kind: &str, message: &str) -> warp::reply::Response {
    answer(
        status,
        &json!({ kind: {"code": status.as_u16(), "message": message} }),
    )
}
