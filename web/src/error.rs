//! Every rejection is `{"error": {"code": "...", "message": "..."}}` with
//! the status that says what went wrong.

use oms_actors::FleetError;
use oms_actors::store::StoreError;
use serde_json::json;
use warp::http::StatusCode;

/// An API error: status, a stable code clients can switch on, a message
/// for humans. Messages never carry secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
    /// The methods the path takes, for 405.
    pub allow: Option<String>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
        }
    }

    /// 400: the body is not JSON, or a header is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no valid token (the reply carries `WWW-Authenticate`).
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the token's role may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: nothing there (or nothing this client may see).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405: the path exists, not with this method (the reply carries
    /// `Allow`).
    pub fn method_not_allowed(allowed: &str) -> ApiError {
        ApiError {
            allow: Some(allowed.to_owned()),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("method not allowed here; allowed: {allowed}"),
            )
        }
    }

    /// 414: the request target is longer than we read.
    pub fn uri_too_long(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the path and query are longer than {limit} bytes"),
        )
    }

    /// 409: conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: the body is larger than allowed.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body larger than {limit} bytes"),
        )
    }

    /// 415: the body is not `application/json`.
    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request body must be application/json",
        )
    }

    /// 422: well-formed JSON that does not make a valid request.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 429: too many requests; retry after `seconds`.
    pub fn too_many(seconds: u64) -> ApiError {
        ApiError {
            retry_after: Some(seconds.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests",
            )
        }
    }

    /// 500: our fault; details are logged, not returned.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 503: not ready.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// The JSON reply.
    pub fn into_response(self) -> warp::reply::Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = crate::json_response(self.status, &body);
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                "WWW-Authenticate",
                warp::http::HeaderValue::from_static("Bearer realm=\"openmultistack\""),
            );
        }
        if let Some(value) = self
            .allow
            .as_deref()
            .and_then(|a| warp::http::HeaderValue::from_str(a).ok())
        {
            headers.insert(warp::http::header::ALLOW, value);
        }
        if let Some(seconds) = self.retry_after
            && let Ok(value) = warp::http::HeaderValue::from_str(&seconds.to_string())
        {
            headers.insert("Retry-After", value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            // The shared store cannot commit now (no quorum, or this
            // daemon lost its lead): the client may retry, with the same
            // idempotency key.
            StoreError::Unavailable(why) => {
                tracing::warn!(%why, "store unavailable");
                let mut error = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!(
                        "the store cannot take writes now ({why}); retry with the same Idempotency-Key"
                    ),
                );
                error.retry_after = Some(1);
                error
            }
            error => {
                tracing::error!(%error, "store error");
                ApiError::internal("storage error")
            }
        }
    }
}

impl From<FleetError> for ApiError {
    fn from(error: FleetError) -> ApiError {
        match error {
            FleetError::Store(e) => e.into(),
            FleetError::Invalid(message) => ApiError::invalid(message),
            FleetError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            FleetError::IdempotencyConflict => ApiError::conflict(
                "this Idempotency-Key was already used with a different request body",
            ),
            FleetError::Unavailable(why) => ApiError::unavailable(why),
            FleetError::LimitReached(why) | FleetError::Conflict(why) => ApiError::conflict(why),
        }
    }
}
