//! Forwarding to the leader. In a cluster only the leader writes, so a
//! follower sends on what would write (API calls other than reads, and
//! every call of the OpenStack façade, whose tokens live on the leader)
//! and answers with what the leader answered. Before answering it waits
//! until its replica holds the leader's write, so a client that reads
//! here next sees what it just did. Reads and the pages answer from the
//! follower's own replica.

use std::time::Duration;

use bytes::Bytes;
use warp::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::Api;
use crate::error::ApiError;

/// Marks a forwarded request, so that it is never forwarded twice.
pub(crate) const FORWARDED: &str = "oms-forwarded-by";
/// The leader's store revision after a forwarded request.
pub(crate) const REVISION: &str = "oms-revision";

/// Longest wait for the leader's answer (a launch waits for etcd's commit).
const TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for this replica to hold what the leader answered.
const CATCH_UP: Duration = Duration::from_secs(2);

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// The HTTP client followers forward with.
#[derive(Debug, Clone)]
pub(crate) struct Forwarder {
    http: reqwest::Client,
}

impl Default for Forwarder {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Forwarder { http }
    }
}

/// Whether a request to `path` must be answered by the leader.
pub(crate) fn leader_answers(method: &Method, path: &str) -> bool {
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    crate::facade::is_facade(path) || (path.starts_with("/v1/") && !reads)
}

/// Forwards the request when this daemon follows and the leader must
/// answer it; `None` when this daemon answers itself.
pub(crate) async fn to_leader(
    api: &Api,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<warp::reply::Response> {
    let cluster = api.fleet.cluster()?;
    if cluster.leads() || !leader_answers(method, path) {
        return None;
    }
    if headers.contains_key(FORWARDED) {
        // The sender took this daemon for the leader: it no longer is.
        return Some(no_leader("leadership moved; retry").into_response());
    }
    let Some(leader) = cluster.leader_url() else {
        return Some(
            no_leader("no leader now: one is being elected, or etcd has no quorum; retry")
                .into_response(),
        );
    };
    let mut url = format!("{}{path}", leader.trim_end_matches('/'));
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    let mut request = api.forwarder.http.request(method.clone(), &url);
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            request = request.header(name, value);
        }
    }
    request = request.header(FORWARDED, "follower").body(body.clone());
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(%leader, error = %e, "cannot forward to the leader");
            return Some(no_leader("the leader cannot be reached; retry").into_response());
        }
    };
    let status = answer.status();
    let mut response_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response_headers.append(name.clone(), value.clone());
        }
    }
    let revision = answer
        .headers()
        .get(REVISION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(%leader, error = %e, "the leader's answer broke off");
            return Some(no_leader("the leader's answer broke off; retry").into_response());
        }
    };
    if let Some(revision) = revision
        && !cluster.caught_up(revision, CATCH_UP).await
    {
        tracing::debug!(revision, "replica behind the leader's answer");
    }
    let mut response = warp::reply::Response::new(body.into());
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    Some(response)
}

/// Marks the leader's answer to a forwarded request with its revision.
pub(crate) fn mark_revision(api: &Api, headers: &HeaderMap, response: &mut warp::reply::Response) {
    let Some(cluster) = api.fleet.cluster() else {
        return;
    };
    if headers.contains_key(FORWARDED)
        && let Ok(value) = HeaderValue::from_str(&cluster.revision().to_string())
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REVISION), value);
    }
}

fn no_leader(why: &str) -> ApiError {
    let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", why);
    error.retry_after = Some(1);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_the_facade_go_to_the_leader_reads_stay() {
        assert!(leader_answers(&Method::POST, "/v1/instances"));
        assert!(leader_answers(&Method::DELETE, "/v1/instances/x"));
        assert!(leader_answers(&Method::PATCH, "/v1/accounts/a"));
        assert!(leader_answers(&Method::GET, "/compute/v2.1/servers"));
        assert!(leader_answers(&Method::POST, "/identity/v3/auth/tokens"));
        assert!(!leader_answers(&Method::GET, "/v1/instances"));
        assert!(!leader_answers(&Method::GET, "/v1/regions"));
        assert!(!leader_answers(&Method::POST, "/login"));
        assert!(!leader_answers(&Method::GET, "/computers"));
    }
}
