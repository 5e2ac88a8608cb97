//! One account's authenticated session: a token reused until shortly before
//! it expires, renewed by one caller while the others wait, and replaced once
//! when a service answers 401.

use std::sync::Arc;

use reqwest::RequestBuilder;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::debug;

use super::catalog::Catalog;
use super::credentials::AuthSpec;
use super::error::ProviderError;
use super::http::{Answer, Client};
use super::keystone::{Token, authenticate};

/// An account's authenticated view of its provider.
#[derive(Debug)]
pub struct Session {
    client: Client,
    spec: AuthSpec,
    token: Mutex<Option<Arc<Token>>>,
}

impl Session {
    /// A session that authenticates on first use.
    pub fn new(client: Client, spec: AuthSpec) -> Arc<Session> {
        Arc::new(Session {
            client,
            spec,
            token: Mutex::new(None),
        })
    }

    /// The account's authentication settings.
    pub fn spec(&self) -> &AuthSpec {
        &self.spec
    }

    /// The shared HTTP client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A valid token, authenticating or renewing first if needed.
    pub async fn token(&self) -> Result<Arc<Token>, ProviderError> {
        let mut current = self.token.lock().await;
        if let Some(token) = current.as_ref()
            && !token.needs_renewal(Instant::now())
        {
            return Ok(token.clone());
        }
        let renewing = current.is_some();
        let token = Arc::new(authenticate(&self.client, &self.spec).await?);
        debug!(auth_url = %self.spec.auth_url, renewing, "token obtained");
        *current = Some(token.clone());
        Ok(token)
    }

    /// Drops `stale` if it is still the current token, so the next call
    /// authenticates again; a token already replaced by another caller is
    /// kept.
    pub async fn invalidate(&self, stale: &Arc<Token>) {
        let mut current = self.token.lock().await;
        if current.as_ref().is_some_and(|t| Arc::ptr_eq(t, stale)) {
            *current = None;
        }
    }

    /// The catalog of the current token.
    pub async fn catalog(&self) -> Result<Catalog, ProviderError> {
        Ok(self.token().await?.catalog.clone())
    }

    /// Sends an authenticated request built by `build`; on 401 it
    /// authenticates once more and repeats the request once.
    pub(crate) async fn send<F>(&self, build: F) -> Result<Answer, ProviderError>
    where
        F: Fn(&Token) -> RequestBuilder,
    {
        let token = self.token().await?;
        let answer = self
            .client
            .execute(with_token(build(&token), &token))
            .await?;
        if answer.status != 401 {
            return answer.success();
        }
        debug!(auth_url = %self.spec.auth_url, "401 from a service, authenticating again");
        self.invalidate(&token).await;
        let token = self.token().await?;
        self.client
            .execute(with_token(build(&token), &token))
            .await?
            .success()
    }
}

fn with_token(request: RequestBuilder, token: &Token) -> RequestBuilder {
    use secrecy::ExposeSecret;
    let mut value = reqwest::header::HeaderValue::from_str(token.value.expose_secret())
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
    value.set_sensitive(true);
    request.header("X-Auth-Token", value)
}
