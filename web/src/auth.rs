//! Client authentication: `Authorization: Bearer oms_...` resolved to a
//! live token (see `oms_actors::tokens`); roles; a per-client request
//! rate limit.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use oms_actors::Fleet;
use oms_actors::model::Role;
use oms_actors::tokens::TOKEN_PREFIX;

use crate::error::ApiError;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token id.
    pub token_id: String,
    /// Client name (owner of its instances).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Most instances the client may hold.
    pub instance_limit: Option<u32>,
}

impl From<oms_actors::model::ApiToken> for Principal {
    fn from(token: oms_actors::model::ApiToken) -> Principal {
        Principal {
            token_id: token.id,
            name: token.name,
            role: token.role,
            instance_limit: token.instance_limit,
        }
    }
}

impl Principal {
    /// Whether this is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Resolves an `Authorization` header to a principal.
pub fn authenticate(fleet: &Fleet, header: Option<&str>) -> Result<Principal, ApiError> {
    let value = bearer(header)?;
    let token = fleet
        .authenticate(value)?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    Ok(token.into())
}

/// The token value of an `Authorization` header.
fn bearer(header: Option<&str>) -> Result<&str, ApiError> {
    let header = header.ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    // Authentication schemes are case-insensitive (RFC 9110, 11.1).
    let value = header
        .trim_start()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, value)| value.trim())
        .filter(|v| v.starts_with(TOKEN_PREFIX) && v.len() > TOKEN_PREFIX.len())
        .ok_or_else(|| {
            ApiError::unauthorized("malformed Authorization header; expected `Bearer oms_...`")
        })?;
    Ok(value)
}

/// Per-client request rate limits.
#[derive(Debug, Clone)]
pub struct ClientLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl ClientLimiter {
    /// `per_sec` sustained, `burst` at once, per token.
    pub fn new(per_sec: u32, burst: u32) -> ClientLimiter {
        let quota = Quota::per_second(NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        ClientLimiter {
            limiter: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// Counts a request; a 429 with the wait if over the limit.
    pub fn check(&self, principal: &Principal) -> Result<(), ApiError> {
        match self.limiter.check_key(&principal.token_id) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                Err(ApiError::too_many(wait.as_secs_f64().ceil() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_value_an_oms_token() {
        for scheme in ["Bearer", "bearer", "BEARER", "BeArEr"] {
            assert_eq!(
                bearer(Some(&format!("{scheme} oms_abc"))).unwrap(),
                "oms_abc"
            );
        }
        for header in [
            None,
            Some("Basic abc"),
            Some("Bearer"),
            Some("Bearers oms_abc"),
            Some("Bearer oms_"),
            Some("Bearer xyz"),
        ] {
            assert_eq!(bearer(header).unwrap_err().status, 401, "{header:?}");
        }
    }

    #[test]
    fn bursts_beyond_the_limit_get_429_with_a_wait() {
        let limiter = ClientLimiter::new(1, 2);
        let p = Principal {
            token_id: "t".into(),
            name: "c".into(),
            role: Role::Client,
            instance_limit: None,
        };
        assert!(limiter.check(&p).is_ok());
        assert!(limiter.check(&p).is_ok());
        let error = limiter.check(&p).unwrap_err();
        assert_eq!(error.status, 429);
        assert!(error.retry_after.unwrap() >= 1);
    }
}
