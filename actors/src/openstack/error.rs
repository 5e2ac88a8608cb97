//! The one classification of OpenStack call outcomes.
//!
//! Every call to a provider ends in exactly one [`Class`]; the class decides
//! what the region and the request do next (DESIGN.md, "Failure semantics").
//! [`classify`] is the only place that maps what was observed to a class, so
//! the policy can be read and tested in one file.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Outcome class of one call; the rows of the failure table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// 2xx: success recorded, the request goes on.
    Ok,
    /// 401 (after one re-auth) or a policy refusal: the account cannot act here.
    Unauthorized,
    /// The project's quota is exhausted: the region is healthy but full.
    Quota,
    /// 429, or 413 with Retry-After: slow down and retry here.
    RateLimited,
    /// 4xx other than the above: this request cannot succeed in this region.
    BadRequest,
    /// 5xx or an answer that cannot be understood: counts against the breaker.
    ServerError,
    /// Connect refused, TLS failure, timeout: counts against the breaker.
    Transport,
    /// The server went to ERROR (for example "No valid host was found").
    BuildFailed,
    /// The server did not become ACTIVE within the boot timeout.
    BuildTimeout,
}

impl Class {
    /// Stable lowercase name used in logs, events and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Unauthorized => "unauthorized",
            Class::Quota => "quota",
            Class::RateLimited => "rate_limited",
            Class::BadRequest => "bad_request",
            Class::ServerError => "server_error",
            Class::Transport => "transport",
            Class::BuildFailed => "build_failed",
            Class::BuildTimeout => "build_timeout",
        }
    }

    /// Whether this class should count against the region's circuit breaker.
    pub fn counts_against_health(self) -> bool {
        matches!(
            self,
            Class::ServerError | Class::Transport | Class::BuildFailed | Class::BuildTimeout
        )
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a call failed before any HTTP status was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// Nothing listened, or the connection was reset while connecting.
    Connect,
    /// No complete answer within the configured time.
    Timeout,
    /// The connection closed or broke while the answer was read.
    Interrupted,
    /// Anything else below HTTP (TLS, DNS, malformed HTTP).
    Other,
}

/// Everything the classifier may be shown about a finished call.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    /// An HTTP answer with its status, `Retry-After` and body.
    Http {
        /// HTTP status code.
        status: u16,
        /// Parsed `Retry-After`, if the provider sent one.
        retry_after: Option<Duration>,
        /// The raw body (possibly HTML, empty or truncated).
        body: &'a [u8],
    },
    /// A 2xx answer whose body could not be decoded as the expected JSON.
    UndecodableBody,
    /// An answer larger than the configured limit.
    OversizedBody,
    /// The call failed below HTTP.
    Transport(TransportFailure),
    /// A server reached `status` (with the fault message Nova gave, if any).
    ServerStatus {
        /// Nova's `status` field (`BUILD`, `ACTIVE`, `ERROR`, ...).
        status: &'a str,
    },
    /// A server was not ACTIVE when its boot timeout passed.
    BootDeadlinePassed,
}

/// The single classification function of the failure table.
pub fn classify(observation: &Observation<'_>) -> Class {
    match *observation {
        Observation::Http {
            status,
            retry_after,
            body,
        } => classify_http(status, retry_after, body),
        Observation::UndecodableBody | Observation::OversizedBody => Class::ServerError,
        Observation::Transport(_) => Class::Transport,
        Observation::ServerStatus { status } => match status {
            "ERROR" => Class::BuildFailed,
            _ => Class::Ok,
        },
        Observation::BootDeadlinePassed => Class::BuildTimeout,
    }
}

fn classify_http(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Class {
    match status {
        200..=299 => Class::Ok,
        401 => Class::Unauthorized,
        403 => {
            let fault = ErrorBody::parse(body);
            if fault.kind.as_deref() == Some("overLimit") || mentions_quota(&fault.message) {
                Class::Quota
            } else {
                Class::Unauthorized
            }
        }
        413 if retry_after.is_some() => Class::RateLimited,
        413 => Class::Quota,
        429 => Class::RateLimited,
        400..=499 => Class::BadRequest,
        _ => Class::ServerError,
    }
}

fn mentions_quota(message: &str) -> bool {
    message.to_ascii_lowercase().contains("quota")
}

/// The error every OpenStack call returns: a class and what explains it.
///
/// It never holds request headers or bodies that were sent, so it is safe to
/// log and to show to operators.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ProviderError {
    /// The row of the failure table this error belongs to (never `Ok`).
    pub class: Class,
    /// HTTP status, when one was received.
    pub status: Option<u16>,
    /// The provider's own message, or a description of what went wrong.
    pub message: String,
    /// How long the provider asked us to wait, if it said.
    pub retry_after: Option<Duration>,
    /// `x-openstack-request-id` of the answer, for the provider's support.
    pub request_id: Option<String>,
    /// Nothing listened (connection refused or reset while connecting):
    /// the service is down, not slow, and the next call will fare no
    /// better.
    pub unreachable: bool,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} ({status}): {}", self.class, self.message),
            None => write!(f, "{}: {}", self.class, self.message),
        }
    }
}

/// Longest provider message kept in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 512;

impl ProviderError {
    /// Builds the error for an observation the classifier said was not `Ok`.
    pub fn from_observation(observation: &Observation<'_>, request_id: Option<String>) -> Self {
        let class = classify(observation);
        let (status, retry_after, message) = match *observation {
            Observation::Http {
                status,
                retry_after,
                body,
            } => (Some(status), retry_after, ErrorBody::parse(body).message),
            Observation::UndecodableBody => (None, None, "answer could not be decoded".into()),
            Observation::OversizedBody => (None, None, "answer exceeds the size limit".into()),
            Observation::Transport(kind) => (None, None, transport_message(kind).into()),
            Observation::ServerStatus { status } => (None, None, format!("server is {status}")),
            Observation::BootDeadlinePassed => (
                None,
                None,
                "server not active within the boot timeout".into(),
            ),
        };
        ProviderError {
            class,
            status,
            message,
            retry_after,
            request_id,
            unreachable: matches!(
                observation,
                Observation::Transport(TransportFailure::Connect)
            ),
        }
    }

    /// A failure of this client's own making (bad input before any call).
    pub fn local(class: Class, message: impl Into<String>) -> Self {
        ProviderError {
            class,
            status: None,
            message: message.into(),
            retry_after: None,
            request_id: None,
            unreachable: false,
        }
    }

    /// Replaces the message, keeping the class (for transport details).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = truncate(message.into());
        self
    }

    /// Whether the provider said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
}

fn transport_message(kind: TransportFailure) -> &'static str {
    match kind {
        TransportFailure::Connect => "could not connect",
        TransportFailure::Timeout => "no answer within the timeout",
        TransportFailure::Interrupted => "connection broke while reading the answer",
        TransportFailure::Other => "transport failure",
    }
}

/// What an OpenStack error body says, whatever shape it came in.
///
/// Nova: `{"forbidden": {"code": 403, "message": ...}}`; Keystone and
/// keystonemiddleware: `{"error": {"code", "title", "message"}}`; proxies and
/// Flask: an HTML page; sometimes nothing at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// The outer key of a JSON fault (`forbidden`, `itemNotFound`, ...).
    pub kind: Option<String>,
    /// The human message, truncated.
    pub message: String,
}

impl ErrorBody {
    /// Reads any body; never fails.
    pub fn parse(body: &[u8]) -> ErrorBody {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
            for (kind, inner) in &map {
                let message = inner
                    .get("message")
                    .or_else(|| inner.get("description"))
                    .and_then(|m| m.as_str());
                if let Some(message) = message {
                    return ErrorBody {
                        kind: Some(kind.clone()),
                        message: truncate(message.trim().to_owned()),
                    };
                }
            }
            if let Some(message) = map.get("message").and_then(|m| m.as_str()) {
                return ErrorBody {
                    kind: None,
                    message: truncate(message.to_owned()),
                };
            }
        }
        let text = String::from_utf8_lossy(body);
        let text = if text.trim_start().starts_with('<') {
            strip_html(&text)
        } else {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        let message = if text.is_empty() {
            "empty answer".to_owned()
        } else {
            text
        };
        ErrorBody {
            kind: None,
            message: truncate(message),
        }
    }
}

/// Keeps the words of an HTML page, dropping tags and what scripts and
/// style sheets say: a proxy's maintenance page becomes its title and
/// text, not its CSS.
fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(1024));
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let tag = &rest[open..];
        let Some(close) = tag.find('>') else {
            rest = "";
            break;
        };
        let name: String = tag[1..close]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        rest = &tag[close + 1..];
        if name == "script" || name == "style" {
            // Skip to the matching end tag (ASCII, so byte offsets agree).
            let end = format!("</{name}");
            rest = match rest.to_ascii_lowercase().find(&end) {
                Some(at) => &rest[at..],
                None => "",
            };
        }
        if out.len() > MAX_MESSAGE_CHARS * 4 {
            rest = "";
            break;
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(mut message: String) -> String {
    if let Some((index, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(index);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, body: &str) -> Class {
        classify(&Observation::Http {
            status,
            retry_after: None,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn quota_refusal_from_nova_is_quota() {
        let body = include_str!("../../tests/fixtures/035-quota-exceeded.json");
        assert_eq!(http(403, body), Class::Quota);
        assert_eq!(
            ErrorBody::parse(body.as_bytes()).message,
            "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
        );
    }

    #[test]
    fn forbidden_by_policy_is_unauthorized() {
        let body = r#"{"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:servers:create to be performed."}}"#;
        assert_eq!(http(403, body), Class::Unauthorized);
    }

    #[test]
    fn invalid_token_is_unauthorized() {
        let body = include_str!("../../tests/fixtures/037-invalid-token.json");
        assert_eq!(http(401, body), Class::Unauthorized);
        assert_eq!(
            ErrorBody::parse(body.as_bytes()).kind.as_deref(),
            Some("error")
        );
    }

    #[test]
    fn bad_flavor_image_key_and_microversion_are_bad_request() {
        for (status, body) in [
            (
                400,
                include_str!("../../tests/fixtures/039-bad-flavor.json"),
            ),
            (400, include_str!("../../tests/fixtures/040-bad-image.json")),
            (
                400,
                include_str!("../../tests/fixtures/041-unknown-keypair.json"),
            ),
            (
                406,
                include_str!("../../tests/fixtures/042-unsupported-microversion.json"),
            ),
            (
                404,
                include_str!("../../tests/fixtures/038-server-not-found.json"),
            ),
            (
                400,
                include_str!("../../tests/fixtures/029-metadata-filter-admin.json"),
            ),
        ] {
            assert_eq!(http(status, body), Class::BadRequest, "{body}");
        }
    }

    #[test]
    fn keystone_v2_html_404_is_bad_request_with_readable_message() {
        let body = include_str!("../../tests/fixtures/002-keystone-v2-404.html");
        assert_eq!(http(404, body), Class::BadRequest);
        let message = ErrorBody::parse(body.as_bytes()).message;
        assert!(message.starts_with("404 Not Found Not Found"), "{message}");
    }

    #[test]
    fn maintenance_pages_read_as_their_words_not_their_styles_or_scripts() {
        let page = "<!DOCTYPE html><html><head><title>Down for maintenance</title>\
            <style>body { font: 12px sans-serif } .x{color:red}</style>\
            <SCRIPT type=\"text/javascript\">var tracker = 'abc';</SCRIPT></head>\
            <body><h1>We&#39;ll be back</h1><p>Planned work until 14:00 UTC.</p></body></html>";
        let message = ErrorBody::parse(page.as_bytes()).message;
        assert!(message.starts_with("Down for maintenance"), "{message}");
        assert!(
            message.contains("Planned work until 14:00 UTC."),
            "{message}"
        );
        for noise in ["font", "color", "tracker", "<", ">"] {
            assert!(!message.contains(noise), "{noise} in {message}");
        }
        let huge = format!("<html><body>{}</body></html>", "word ".repeat(100_000));
        assert!(ErrorBody::parse(huge.as_bytes()).message.chars().count() <= MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn over_limit_413_depends_on_retry_after() {
        let body = br#"{"overLimit": {"code": 413, "message": "Quota exceeded for instances"}}"#;
        let without = Observation::Http {
            status: 413,
            retry_after: None,
            body,
        };
        let with = Observation::Http {
            status: 413,
            retry_after: Some(Duration::from_secs(3)),
            body,
        };
        assert_eq!(classify(&without), Class::Quota);
        assert_eq!(classify(&with), Class::RateLimited);
        assert_eq!(http(429, ""), Class::RateLimited);
    }

    #[test]
    fn server_errors_and_maintenance_pages_are_server_error() {
        assert_eq!(
            http(
                500,
                "{\"computeFault\": {\"code\": 500, \"message\": \"Unexpected API Error.\"}}"
            ),
            Class::ServerError
        );
        assert_eq!(
            http(
                503,
                "<html><body><h1>503 Service Unavailable</h1></body></html>"
            ),
            Class::ServerError
        );
        assert_eq!(http(502, ""), Class::ServerError);
        assert_eq!(classify(&Observation::UndecodableBody), Class::ServerError);
        assert_eq!(classify(&Observation::OversizedBody), Class::ServerError);
    }

    #[test]
    fn transport_build_and_timeout_classes() {
        for kind in [
            TransportFailure::Connect,
            TransportFailure::Timeout,
            TransportFailure::Interrupted,
            TransportFailure::Other,
        ] {
            assert_eq!(classify(&Observation::Transport(kind)), Class::Transport);
        }
        assert_eq!(
            classify(&Observation::ServerStatus { status: "ERROR" }),
            Class::BuildFailed
        );
        assert_eq!(
            classify(&Observation::ServerStatus { status: "ACTIVE" }),
            Class::Ok
        );
        assert_eq!(
            classify(&Observation::BootDeadlinePassed),
            Class::BuildTimeout
        );
    }

    #[test]
    fn success_is_ok() {
        assert_eq!(http(200, "{}"), Class::Ok);
        assert_eq!(http(202, ""), Class::Ok);
        assert_eq!(http(204, ""), Class::Ok);
    }

    #[test]
    fn empty_and_long_bodies_give_bounded_messages() {
        assert_eq!(ErrorBody::parse(b"").message, "empty answer");
        let long = "x".repeat(10_000);
        let message = ErrorBody::parse(long.as_bytes()).message;
        assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn only_breaker_classes_count_against_health() {
        assert!(Class::ServerError.counts_against_health());
        assert!(Class::BuildTimeout.counts_against_health());
        assert!(!Class::Quota.counts_against_health());
        assert!(!Class::RateLimited.counts_against_health());
    }
}
