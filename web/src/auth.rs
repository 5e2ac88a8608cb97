//! Client authentication: bearer tokens of 256 random bits with an `oms_`
//! prefix, shown once, stored as their SHA-256, compared in constant time;
//! roles; a per-client request rate limit.

use std::num::NonZeroU32;
use std::sync::Arc;

use base64::Engine as _;
use chrono::Utc;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use oms_actors::model::{ApiToken, Role, new_id};
use oms_actors::store::{Store, StoreResult};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Prefix of every token, so leaked tokens are easy to scan for.
pub const TOKEN_PREFIX: &str = "oms_";

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

impl Principal {
    /// Whether this is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Hex SHA-256 of a token value.
pub fn hash_token(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token value.
pub fn generate_token() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    SecretString::from(format!("{TOKEN_PREFIX}{encoded}"))
}

/// Creates and stores a token; returns it with its value, which exists
/// nowhere else afterwards.
pub async fn create_token(
    store: &dyn Store,
    name: &str,
    role: Role,
    instance_limit: Option<u32>,
) -> StoreResult<(ApiToken, SecretString)> {
    let value = generate_token();
    let token = ApiToken {
        id: new_id(),
        name: name.to_owned(),
        role,
        hash: hash_token(value.expose_secret()),
        instance_limit,
        revoked: false,
        created_at: Utc::now(),
    };
    store.put_token(&token)?;
    store.flush().await?;
    Ok((token, value))
}

/// Resolves an `Authorization` header to a principal.
pub fn authenticate(store: &dyn Store, header: Option<&str>) -> Result<Principal, ApiError> {
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
    let hash = hash_token(value);
    let token = store
        .token_by_hash(&hash)?
        .filter(|t| bool::from(t.hash.as_bytes().ct_eq(hash.as_bytes())))
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    if token.revoked {
        return Err(ApiError::unauthorized("unknown or revoked token"));
    }
    Ok(Principal {
        token_id: token.id,
        name: token.name,
        role: token.role,
        instance_limit: token.instance_limit,
    })
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
    use oms_actors::store::MemoryStore;

    #[tokio::test]
    async fn tokens_authenticate_until_revoked() {
        let store = MemoryStore::new();
        let (mut token, value) = create_token(&store, "ci", Role::Client, Some(5))
            .await
            .unwrap();
        assert!(value.expose_secret().starts_with("oms_"));
        assert_eq!(value.expose_secret().len(), 4 + 43);
        let header = format!("Bearer {}", value.expose_secret());
        let principal = authenticate(&store, Some(&header)).unwrap();
        assert_eq!(principal.name, "ci");
        for scheme in ["bearer", "BEARER", "BeArEr"] {
            let header = format!("{scheme} {}", value.expose_secret());
            assert_eq!(authenticate(&store, Some(&header)).unwrap().name, "ci");
        }
        assert!(!token.hash.contains(value.expose_secret()));
        token.revoked = true;
        store.put_token(&token).unwrap();
        assert_eq!(authenticate(&store, Some(&header)).unwrap_err().status, 401);
    }

    #[test]
    fn missing_and_malformed_headers_are_401() {
        let store = MemoryStore::new();
        for header in [
            None,
            Some("Basic abc"),
            Some("Bearer"),
            Some("Bearers oms_abc"),
            Some("Bearer oms_"),
            Some("Bearer xyz"),
        ] {
            assert_eq!(
                authenticate(&store, header).unwrap_err().status,
                401,
                "{header:?}"
            );
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
