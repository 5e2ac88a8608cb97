//! HTTP plumbing: one catch-all warp filter per port, served connection by
//! connection so that a region can really refuse connections (its listener
//! closed, its open connections dropped) and come back on the same port.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};

/// A request as the handlers see it.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path without query.
    pub path: String,
    /// Raw query string (may be empty).
    pub query: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Request {
    /// Path segments, empty ones dropped.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// Query parameters, percent-decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url_decode_pairs(&self.query)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An answer: status, headers and body bytes.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A compact JSON answer.
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply::with_type(
            status,
            "application/json",
            serde_json::to_vec(value).unwrap_or_default(),
        )
    }

    /// A JSON fault body, with the `charset` Nova puts on its errors.
    pub fn json_fault(status: u16, value: &Value) -> Reply {
        Reply::with_type(
            status,
            "application/json; charset=UTF-8",
            serde_json::to_vec(value).unwrap_or_default(),
        )
    }

    /// An HTML page.
    pub fn html(status: u16, body: &str) -> Reply {
        Reply::with_type(status, "text/html; charset=utf-8", body.as_bytes().to_vec())
    }

    /// An answer with no body and the given content type.
    pub fn empty(status: u16, content_type: &str) -> Reply {
        Reply::with_type(status, content_type, Vec::new())
    }

    fn with_type(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl warp::Reply for Reply {
    fn into_response(self) -> warp::reply::Response {
        let mut response = warp::reply::Response::new(self.body.into());
        *response.status_mut() = self.status;
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                warp::http::header::HeaderName::from_bytes(name.as_bytes()),
                warp::http::header::HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// Serves `handler` on `listener` until the `down` sender is dropped.
/// While `down` is true the port is closed: the listener is dropped (new
/// connections are refused) and open connections are cut.
pub fn spawn_port<H, Fut>(
    listener: TcpListener,
    handler: H,
    mut down: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>
where
    H: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let filter = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(
            move |method, path: warp::path::FullPath, query, headers, body| {
                let handler = handler.clone();
                async move {
                    handler(Request {
                        method,
                        path: path.as_str().to_owned(),
                        query,
                        headers,
                        body,
                    })
                    .await
                }
            },
        );
    let service = warp::service(filter);
    tokio::spawn(async move {
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let mut listener = Some(listener);
        loop {
            if *down.borrow_and_update() {
                listener = None;
                if down.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let bound = match listener.take() {
                Some(bound) => bound,
                None => match rebind(addr).await {
                    Ok(bound) => bound,
                    Err(error) => {
                        tracing::warn!(%addr, %error, "simulator port could not be reopened");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                },
            };
            tokio::select! {
                accepted = bound.accept() => {
                    listener = Some(bound);
                    let Ok((stream, _)) = accepted else { continue };
                    let service = TowerToHyperService::new(service.clone());
                    let mut cut = down.clone();
                    tokio::spawn(async move {
                        let connection = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::select! {
                            _ = connection => {}
                            _ = wait_down(&mut cut) => {}
                        }
                    });
                }
                changed = down.changed() => {
                    listener = Some(bound);
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Waits until `down` becomes true or its sender is gone.
pub async fn wait_down(down: &mut watch::Receiver<bool>) {
    loop {
        if *down.borrow_and_update() {
            return;
        }
        if down.changed().await.is_err() {
            return;
        }
    }
}

/// Binds `addr`, retrying briefly: a port just closed can take a moment.
async fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}
