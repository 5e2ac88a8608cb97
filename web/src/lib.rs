//! The HTTP face of OpenMultiStack: REST API v1 with client
//! authentication, health, and the OpenAPI document.
//!
//! It reaches the actor system only through the `Fleet` facade and the
//! store's read side. Routing is one table (`router::ROUTES`) that the
//! dispatcher and the OpenAPI document both read, so they cannot disagree.

mod accounts;
pub mod auth;
mod body;
mod cluster;
pub mod error;
mod facade;
mod forward;
mod instances;
mod keys;
pub mod metrics;
mod openapi;
mod pages;
mod profiles;
mod regions;
pub mod router;
mod server;
mod tokens;
mod views;

pub use accounts::account_from_body;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oms_actors::Fleet;
use warp::Filter;
use warp::http::StatusCode;

pub use auth::Principal;
pub use error::ApiError;
pub use server::serve;

/// Limits of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest `count` in one launch.
    pub max_count: u32,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Requests per second per token, sustained.
    pub client_rate_per_sec: u32,
    /// Requests at once per token.
    pub client_burst: u32,
    /// Largest page of a listing.
    pub max_page: usize,
    /// When the session cookie is marked `Secure`.
    pub secure_cookies: SecureCookies,
    /// Whether the OpenStack façade answers (`/identity`, `/compute`, ...).
    pub facade: bool,
    /// The region its catalog names.
    pub facade_region: String,
}

/// When the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecureCookies {
    /// When the request came over HTTPS as a TLS terminator says
    /// (`X-Forwarded-Proto: https`).
    #[default]
    Auto,
    /// Always: for deployments behind TLS whose terminator does not say.
    Always,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_count: 100,
            body_limit: 256 * 1024,
            client_rate_per_sec: 20,
            client_burst: 100,
            max_page: 500,
            secure_cookies: SecureCookies::Auto,
            facade: true,
            facade_region: "oms".into(),
        }
    }
}

/// Longest path plus query read; longer targets get a JSON 414 (hyper
/// itself answers only beyond 64 KiB, with an empty body).
pub const MAX_TARGET: usize = 8 * 1024;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct Api {
    /// The fleet.
    pub fleet: Arc<Fleet>,
    /// Limits.
    pub config: Arc<ApiConfig>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Operator sessions of the pages.
    pub(crate) sessions: pages::session::Sessions,
    /// Tokens of the OpenStack façade.
    pub(crate) facade_tokens: facade::tokens::FacadeTokens,
    /// Sends writes on to the leader, in a cluster.
    pub(crate) forwarder: forward::Forwarder,
    limiter: auth::ClientLimiter,
}

impl Api {
    /// An API over `fleet`; must be called within a tokio runtime (it
    /// follows the fleet's events for metrics).
    pub fn new(fleet: Arc<Fleet>, config: ApiConfig) -> Api {
        let limiter = auth::ClientLimiter::new(config.client_rate_per_sec, config.client_burst);
        let metrics = Arc::new(metrics::Metrics::new());
        metrics.follow(&fleet);
        Api {
            fleet,
            config: Arc::new(config),
            metrics,
            sessions: pages::session::Sessions::default(),
            facade_tokens: Default::default(),
            forwarder: Default::default(),
            limiter,
        }
    }
}

/// An empty 204.
pub(crate) fn no_content() -> warp::reply::Response {
    let mut response = warp::reply::Response::new(Vec::<u8>::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// A JSON response.
pub(crate) fn json_response<T: serde::Serialize + ?Sized>(
    status: StatusCode,
    value: &T,
) -> warp::reply::Response {
    let mut body = Vec::with_capacity(4096);
    if serde_json::to_writer(&mut body, value).is_err() {
        body.clear();
    }
    let mut response = warp::reply::Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Reads a body, refusing more than `limit` bytes.
async fn read_body<S, B>(mut stream: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: warp::Buf,
{
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("cannot read body: {e}")))?;
        if body.len() + chunk.remaining() > limit {
            return Err(ApiError::too_large(limit));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            body.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// The whole API as one warp filter.
pub fn filter(
    api: Api,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method, path: warp::path::FullPath, query: String, headers, stream| {
                let api = api.clone();
                async move {
                    let limit = api.config.body_limit;
                    let stream = Box::pin(stream);
                    let target = path.as_str().len() + query.len();
                    let mut response = if target > MAX_TARGET {
                        ApiError::uri_too_long(MAX_TARGET).into_response()
                    } else {
                        match read_body(stream, limit).await {
                            Ok(body) => {
                                router::dispatch(api, method, path.as_str(), &query, headers, body)
                                    .await
                            }
                            Err(error) => error.into_response(),
                        }
                    };
                    security_headers(&mut response);
                    response
                }
            },
        )
}

/// Headers every answer carries, pages and API alike: no MIME sniffing,
/// no referrer, no framing; answers that set no policy of their own (the
/// API's JSON) get one that allows nothing.
pub(crate) fn security_headers(response: &mut warp::reply::Response) {
    use warp::http::HeaderValue;
    let headers = response.headers_mut();
    headers.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("Referrer-Policy", HeaderValue::from_static("no-referrer"));
    headers.insert("X-Frame-Options", HeaderValue::from_static("DENY"));
    headers
        .entry("Content-Security-Policy")
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
}
