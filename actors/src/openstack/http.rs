//! One HTTP call with the limits every provider call obeys: a connect
//! timeout, a total timeout, and a cap on the size of the answer.
//!
//! No retries happen here: whether to retry is the caller's decision, made
//! from the error's class.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use super::error::{Class, Observation, ProviderError, TransportFailure, classify};

/// Limits of every call to a provider.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for a whole call, body included.
    pub request_timeout: Duration,
    /// Largest answer accepted; a provider sending more is misbehaving.
    pub max_body_bytes: usize,
    /// `User-Agent` sent to providers, so their operators can find us.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 8 * 1024 * 1024,
            user_agent: concat!("openmultistack/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The HTTP client shared by every account and region: one connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    fence: crate::fence::Fence,
}

/// A received answer, status not yet judged.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Client {
    /// Builds the shared client; fails only if the TLS stack cannot start.
    pub fn new(config: ClientConfig) -> Result<Client, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProviderError::local(Class::Transport, format!("http client: {e}")))?;
        Ok(Client {
            http,
            config: Arc::new(config),
            fence: crate::fence::Fence::open(),
        })
    }

    /// This client sends nothing once `fence` no longer holds.
    pub fn fenced(mut self, fence: crate::fence::Fence) -> Client {
        self.fence = fence;
        self
    }

    /// The limits this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        url: url::Url,
    ) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends the request and reads the whole answer within the limits.
    pub(crate) async fn execute(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        // The total timeout is also enforced here, so a body that trickles
        // forever cannot hold the caller past it.
        let deadline = self.config.request_timeout + Duration::from_millis(100);
        match tokio::time::timeout(deadline, self.execute_inner(request)).await {
            Ok(result) => result,
            Err(_) => Err(transport_error(TransportFailure::Timeout, None)),
        }
    }

    async fn execute_inner(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        let request = request.build().map_err(from_reqwest)?;
        // Checked last, right before the call leaves: a leader whose
        // lease may have ended sends nothing.
        if !self.fence.holds() {
            return Err(ProviderError::local(
                Class::Transport,
                "fenced: this daemon's cluster lease may have ended; nothing sent",
            ));
        }
        // Every call at DEBUG, for an operator tracing what went where and
        // when: the path only (queries can carry names), never headers.
        let (method, host, port, path) = (
            request.method().clone(),
            request.url().host_str().unwrap_or_default().to_owned(),
            request.url().port_or_known_default().unwrap_or_default(),
            request.url().path().to_owned(),
        );
        let started = std::time::Instant::now();
        let sent = self.http.execute(request).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let mut response = match sent {
            Ok(response) => {
                tracing::debug!(%method, %host, port, %path, status = response.status().as_u16(), elapsed_ms, "provider call");
                response
            }
            Err(e) => {
                let error = from_reqwest(e);
                tracing::debug!(%method, %host, port, %path, %error, elapsed_ms, "provider call failed");
                return Err(error);
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let limit = self.config.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len as usize > limit)
        {
            return Err(oversized(&headers));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(from_reqwest)? {
            if body.len() + chunk.len() > limit {
                return Err(oversized(&headers));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body: body.freeze(),
        })
    }
}

impl Answer {
    /// The provider's request id, for errors and logs.
    pub fn request_id(&self) -> Option<String> {
        request_id(&self.headers)
    }

    /// Passes a 2xx answer through and turns anything else into its error.
    pub fn success(self) -> Result<Answer, ProviderError> {
        let observation = Observation::Http {
            status: self.status,
            retry_after: retry_after(&self.headers),
            body: &self.body,
        };
        if classify(&observation) == Class::Ok {
            Ok(self)
        } else {
            Err(ProviderError::from_observation(
                &observation,
                self.request_id(),
            ))
        }
    }

    /// Decodes a JSON body; an undecodable one is the provider's fault.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ProviderError::from_observation(&Observation::UndecodableBody, self.request_id())
                .with_message(format!("answer could not be decoded: {e}"))
        })
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-openstack-request-id")
        .or_else(|| headers.get("x-compute-request-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

fn oversized(headers: &HeaderMap) -> ProviderError {
    ProviderError::from_observation(&Observation::OversizedBody, request_id(headers))
}

fn transport_error(kind: TransportFailure, detail: Option<String>) -> ProviderError {
    let error = ProviderError::from_observation(&Observation::Transport(kind), None);
    match detail {
        Some(detail) => {
            let message = format!("{}: {detail}", error.message);
            error.with_message(message)
        }
        None => error,
    }
}

fn from_reqwest(error: reqwest::Error) -> ProviderError {
    let kind = if error.is_timeout() {
        TransportFailure::Timeout
    } else if error.is_connect() {
        TransportFailure::Connect
    } else if error.is_body() || error.is_decode() {
        TransportFailure::Interrupted
    } else {
        TransportFailure::Other
    };
    // The innermost cause says what happened (refused, reset, certificate);
    // reqwest's own text repeats the URL, which the caller already knows.
    let mut cause: &dyn std::error::Error = &error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    transport_error(kind, Some(cause.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_in_seconds_and_as_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
