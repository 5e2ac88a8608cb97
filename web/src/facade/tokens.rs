//! Façade tokens: what Keystone's `X-Subject-Token` is to OpenStack
//! clients. Each is bound to one of our API tokens and lives while that
//! token does (revoking ours ends every façade token made from it), at
//! most `LIFETIME`. Kept in memory: after a restart clients authenticate
//! again, as keystoneauth does on a 401.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use oms_actors::Fleet;
use rand::RngCore;

use crate::auth::Principal;

/// How long a façade token lives (Keystone's default is one hour; a
/// longer one saves re-authentications and is bounded by ours anyway).
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// Most façade tokens held at once; the oldest go first.
const MAX_TOKENS: usize = 100_000;

/// One façade token.
#[derive(Debug, Clone)]
struct Issued {
    token_id: String,
    expires: DateTime<Utc>,
}

/// Every live façade token, by its value's digest.
#[derive(Debug, Clone, Default)]
pub struct FacadeTokens {
    inner: Arc<Mutex<HashMap<[u8; 32], Issued>>>,
}

fn digest(value: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(value.as_bytes()).into()
}

impl FacadeTokens {
    /// A new façade token for `principal`, expiring after `LIFETIME` or
    /// at `until` if sooner (a token made from a token keeps its expiry,
    /// as Keystone's do): its value and when it expires.
    pub fn issue(
        &self,
        principal: &Principal,
        until: Option<DateTime<Utc>>,
    ) -> (String, DateTime<Utc>) {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let value = format!(
            "omsf_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let expires = until.map_or(Utc::now() + LIFETIME, |u| u.min(Utc::now() + LIFETIME));
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Utc::now();
        map.retain(|_, t| t.expires > now);
        if map.len() >= MAX_TOKENS
            && let Some(oldest) = map.iter().min_by_key(|(_, t)| t.expires).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            digest(&value),
            Issued {
                token_id: principal.token_id.clone(),
                expires,
            },
        );
        (value, expires)
    }

    /// Who `value` speaks for, while it and the API token behind it live.
    pub fn principal(&self, fleet: &Fleet, value: &str) -> Option<Principal> {
        let issued = {
            let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&digest(value)).cloned()?
        };
        if issued.expires <= Utc::now() {
            return None;
        }
        let token = fleet.token(&issued.token_id).ok()??;
        if token.revoked {
            return None;
        }
        Some(token.into())
    }

    /// When `value` expires, if it is live.
    pub fn expires(&self, value: &str) -> Option<DateTime<Utc>> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&digest(value)).map(|t| t.expires)
    }

    /// Ends `value`.
    pub fn revoke(&self, value: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&digest(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal {
            token_id: "t1".into(),
            name: "ci".into(),
            role: oms_actors::model::Role::Client,
            instance_limit: None,
        }
    }

    #[test]
    fn a_token_lives_its_lifetime_or_less_and_ends_when_revoked() {
        let tokens = FacadeTokens::default();
        let (value, expires) = tokens.issue(&principal(), None);
        assert!(value.starts_with("omsf_") && value.len() > 40);
        let lifetime = expires - Utc::now();
        assert!(
            lifetime > LIFETIME - chrono::Duration::minutes(1),
            "{lifetime}"
        );
        // Made from another token: that token's expiry, not a new one.
        let soon = Utc::now() + chrono::Duration::minutes(5);
        let (rescoped, expires) = tokens.issue(&principal(), Some(soon));
        assert_eq!(expires, soon);
        assert_eq!(tokens.expires(&rescoped), Some(soon));
        // Never longer than the lifetime, whatever is asked.
        let (_, capped) = tokens.issue(&principal(), Some(Utc::now() + LIFETIME * 10));
        assert!(capped <= Utc::now() + LIFETIME);
        tokens.revoke(&value);
        assert_eq!(tokens.expires(&value), None);
        assert!(tokens.expires(&rescoped).is_some());
    }
}
