//! Getting a token from Keystone (v3 or v2.0) and reading what it holds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;
use tokio::time::Instant;

use super::catalog::Catalog;
use super::credentials::{AuthSpec, IdentityVersion};
use super::error::{Class, Observation, ProviderError};
use super::http::Client;

/// A token with its catalog. `Debug` redacts the token itself.
#[derive(Debug, Clone)]
pub struct Token {
    /// The `X-Auth-Token` value.
    pub value: SecretString,
    /// The project the token is scoped to, when Keystone says.
    pub project_id: Option<String>,
    /// The user the token belongs to.
    pub user_id: Option<String>,
    /// When Keystone says the token expires.
    pub expires_at: DateTime<Utc>,
    /// Local instant after which the token is renewed rather than used.
    pub renew_after: Instant,
    /// The service catalog that came with the token.
    pub catalog: Catalog,
}

impl Token {
    /// Whether the token is close enough to expiry to be renewed first.
    pub fn needs_renewal(&self, now: Instant) -> bool {
        now >= self.renew_after
    }
}

/// Longest margin kept before expiry; short-lived tokens get a fifth of
/// their lifetime instead.
const MAX_RENEWAL_MARGIN: Duration = Duration::from_secs(300);

/// Local deadline for renewal, computed from the token's own lifetime so a
/// skewed clock on either side does not matter.
fn renew_after(
    received: Instant,
    issued_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
) -> Instant {
    let lifetime = match issued_at {
        Some(issued) => (expires_at - issued).to_std().unwrap_or(Duration::ZERO),
        None => (expires_at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
    };
    let margin = MAX_RENEWAL_MARGIN.min(lifetime / 5);
    received + lifetime.saturating_sub(margin)
}

#[derive(Deserialize)]
struct V3Body {
    token: V3Token,
}

#[derive(Deserialize)]
struct V3Token {
    expires_at: DateTime<Utc>,
    #[serde(default)]
    issued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    project: Option<IdOnly>,
    #[serde(default)]
    user: Option<IdOnly>,
    #[serde(default)]
    catalog: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct V2Body {
    access: V2Access,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Access {
    token: V2Token,
    #[serde(default)]
    service_catalog: Option<serde_json::Value>,
    #[serde(default)]
    user: Option<IdOnly>,
}

#[derive(Deserialize)]
struct V2Token {
    id: String,
    expires: DateTime<Utc>,
    #[serde(default)]
    issued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    tenant: Option<IdOnly>,
}

/// Authenticates once. Errors are classified like any other call: a wrong
/// password is `unauthorized`, Keystone down is `server_error`/`transport`.
pub async fn authenticate(client: &Client, spec: &AuthSpec) -> Result<Token, ProviderError> {
    let body = spec
        .token_request_body()
        .map_err(|why| ProviderError::local(Class::BadRequest, why))?;
    let request = client.request(Method::POST, spec.token_url()).json(&body);
    let answer = client.execute(request).await?.success()?;
    let received = Instant::now();
    let undecodable = |why: String| {
        ProviderError::from_observation(&Observation::UndecodableBody, answer.request_id())
            .with_message(why)
    };
    match spec.identity_version {
        IdentityVersion::V3 => {
            let value = answer
                .headers
                .get("x-subject-token")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| undecodable("token answer without X-Subject-Token".into()))?
                .to_owned();
            let body: V3Body = answer.json()?;
            let catalog = match &body.token.catalog {
                Some(catalog) => Catalog::from_v3(catalog)
                    .map_err(|e| undecodable(format!("catalog could not be read: {e}")))?,
                None => Catalog::default(),
            };
            Ok(Token {
                value: SecretString::from(value),
                project_id: body.token.project.map(|p| p.id),
                user_id: body.token.user.map(|u| u.id),
                expires_at: body.token.expires_at,
                renew_after: renew_after(received, body.token.issued_at, body.token.expires_at),
                catalog,
            })
        }
        IdentityVersion::V2 => {
            let body: V2Body = answer.json()?;
            let catalog = match &body.access.service_catalog {
                Some(catalog) => Catalog::from_v2(catalog)
                    .map_err(|e| undecodable(format!("catalog could not be read: {e}")))?,
                None => Catalog::default(),
            };
            let token = body.access.token;
            Ok(Token {
                value: SecretString::from(token.id),
                project_id: token.tenant.map(|t| t.id),
                user_id: body.access.user.map(|u| u.id),
                expires_at: token.expires,
                renew_after: renew_after(received, token.issued_at, token.expires),
                catalog,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_token_body_parses() {
        let body: V3Body =
            serde_json::from_str(include_str!("../../tests/fixtures/003-token-v3.json")).unwrap();
        assert_eq!(
            body.token.project.unwrap().id,
            "50d69c207eab41bda4a52902a8aff63a"
        );
        let catalog = Catalog::from_v3(&body.token.catalog.unwrap()).unwrap();
        assert_eq!(catalog.regions("compute", Default::default()).len(), 2);
    }

    #[test]
    fn renewal_margin_scales_with_lifetime() {
        let now = Instant::now();
        let issued: DateTime<Utc> = "2026-11-25T08:58:31Z".parse().unwrap();
        let hour = renew_after(now, Some(issued), issued + chrono::Duration::hours(1));
        assert_eq!(hour - now, Duration::from_secs(3300));
        let short = renew_after(now, Some(issued), issued + chrono::Duration::seconds(10));
        assert_eq!(short - now, Duration::from_secs(8));
    }
}
