//! `/v1/accounts` (admin): register with validation and an optional
//! connection test, list, show, change, remove. Secrets are write-only.

use std::collections::BTreeMap;

use chrono::Utc;
use oms_actors::model::{Account, AccountAuth, Pin, RegionLimits};
use oms_actors::openstack::{ApplicationCredentialRef, Domain, IdentityVersion, Interface, Named};
use secrecy::SecretString;
use serde::Deserialize;
use warp::http::StatusCode;

use crate::body;
use crate::error::ApiError;
use crate::router::Call;
use crate::views;

/// A user or project: `{"id": ...}` or `{"name": ..., "domain": ...}`
/// (domain by name, or `domain_id`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamedBody {
    id: Option<String>,
    name: Option<String>,
    domain: Option<String>,
    domain_id: Option<String>,
}

impl NamedBody {
    fn into_named(self, what: &str) -> Result<Named, ApiError> {
        match (self.id, self.name) {
            (Some(id), None) if !id.is_empty() => Ok(Named::Id(id)),
            (None, Some(name)) if !name.is_empty() => {
                let domain = match (self.domain_id, self.domain) {
                    (Some(id), None) => Domain::Id(id),
                    (None, Some(name)) => Domain::Name(name),
                    (None, None) => Domain::Id("default".into()),
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "{what}: give domain or domain_id, not both"
                        )));
                    }
                };
                Ok(Named::Name { name, domain })
            }
            _ => Err(ApiError::invalid(format!("{what}: give either id or name"))),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppCredentialBody {
    id: Option<String>,
    name: Option<String>,
    user: Option<NamedBody>,
    secret: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    auth_url: String,
    #[serde(default)]
    identity_version: IdentityVersion,
    #[serde(default)]
    interface: Interface,
    user: Option<NamedBody>,
    project: Option<NamedBody>,
    password: Option<String>,
    application_credential: Option<AppCredentialBody>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    drain: bool,
    #[serde(default)]
    priority: i32,
    limits: Option<RegionLimits>,
    #[serde(default)]
    pins: BTreeMap<String, Pin>,
    #[serde(default)]
    test_connection: bool,
    /// Validate (and test, when asked) without registering.
    #[serde(default)]
    dry_run: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBody {
    enabled: Option<bool>,
    drain: Option<bool>,
    priority: Option<i32>,
    limits: Option<RegionLimits>,
    regions: Option<Vec<String>>,
    networks: Option<Vec<String>>,
    pins: Option<BTreeMap<String, Pin>>,
    /// A new password or application-credential secret.
    secret: Option<String>,
}

/// Validates a registration into an account (and whether to test it).
pub(crate) fn build(body: CreateBody) -> Result<(Account, bool), ApiError> {
    let auth_url: url::Url = body
        .auth_url
        .parse()
        .map_err(|_| ApiError::invalid("auth_url: an http or https URL with a host"))?;
    let (auth, secret) = match (body.password, body.application_credential) {
        (Some(password), None) => {
            let user = body
                .user
                .ok_or_else(|| ApiError::invalid("user is required with a password"))?
                .into_named("user")?;
            let project = body
                .project
                .ok_or_else(|| ApiError::invalid("project is required with a password"))?
                .into_named("project")?;
            if body.identity_version == IdentityVersion::V2 && matches!(user, Named::Id(_)) {
                return Err(ApiError::invalid("keystone v2.0 needs the user by name"));
            }
            (AccountAuth::Password { user, project }, password)
        }
        (None, Some(credential)) => {
            if body.identity_version == IdentityVersion::V2 {
                return Err(ApiError::invalid(
                    "application credentials need keystone v3",
                ));
            }
            let reference = match (credential.id, credential.name, credential.user) {
                (Some(id), None, None) => ApplicationCredentialRef::Id(id),
                (None, Some(name), Some(user)) => ApplicationCredentialRef::Name {
                    name,
                    user: user.into_named("application_credential.user")?,
                },
                _ => {
                    return Err(ApiError::invalid(
                        "application_credential: give id, or name with user",
                    ));
                }
            };
            (
                AccountAuth::ApplicationCredential {
                    credential: reference,
                },
                credential.secret,
            )
        }
        _ => {
            return Err(ApiError::invalid(
                "give either password or application_credential",
            ));
        }
    };
    let limits = body.limits.unwrap_or_default();
    let account = Account {
        id: String::new(),
        name: body.name,
        auth_url,
        identity_version: body.identity_version,
        interface: body.interface,
        auth,
        secret: SecretString::from(secret),
        regions: body.regions,
        networks: body.networks,
        enabled: body.enabled,
        drain: body.drain,
        priority: body.priority,
        limits,
        pins: body.pins,
        created_at: Utc::now(),
    };
    account.check_bounds().map_err(ApiError::invalid)?;
    Ok((account, body.test_connection))
}

/// An account from a `POST /v1/accounts` body, or why not: what a client
/// checks a batch with before it registers any of it.
pub fn account_from_body(body: serde_json::Value) -> Result<Account, String> {
    let body: CreateBody = body::shape(body).map_err(|e| e.message)?;
    build(body)
        .map(|(account, _)| account)
        .map_err(|e| e.message)
}

/// `GET /v1/accounts`.
pub(crate) fn list(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let accounts = call.api.fleet.accounts()?;
    let statuses = call.api.fleet.account_statuses_of(&accounts);
    let accounts = views::Accounts {
        accounts: accounts
            .iter()
            .map(|a| with_status(views::account(a), &statuses))
            .collect(),
    };
    Ok(crate::json_response(StatusCode::OK, &accounts))
}

/// An account's view with how it stands (`status`).
pub(crate) fn with_status<'a>(
    mut view: views::AccountView<'a>,
    statuses: &'a [oms_actors::status::AccountStatus],
) -> views::AccountView<'a> {
    view.status = statuses
        .iter()
        .find(|s| s.account_id == view.id)
        .map(views::account_status);
    view
}

/// `POST /v1/accounts`.
pub(crate) async fn create(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let body: CreateBody = body::json(call)?;
    let dry_run = body.dry_run;
    let (account, test) = build(body)?;
    let fleet = &call.api.fleet;
    if fleet.accounts()?.iter().any(|a| a.name == account.name) {
        return Err(ApiError::conflict(format!(
            "an account named {} exists",
            account.name
        )));
    }
    fleet.check_account(&account)?;
    let found = if test {
        Some(fleet.test_connection(&account).await?)
    } else {
        None
    };
    let (status, account) = if dry_run {
        (StatusCode::OK, account)
    } else {
        (StatusCode::CREATED, fleet.put_account(account).await?)
    };
    let mut view = views::account(&account);
    view.regions_found = found;
    view.dry_run = dry_run;
    Ok(crate::json_response(status, &view))
}

fn find(call: &Call<'_>) -> Result<Account, ApiError> {
    let id = &call.params[0];
    call.api
        .fleet
        .account(id)?
        .ok_or_else(|| ApiError::not_found(format!("account {id} not found")))
}

/// `GET /v1/accounts/{id}`.
pub(crate) fn get(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let account = find(call)?;
    let statuses = call
        .api
        .fleet
        .account_statuses_of(std::slice::from_ref(&account));
    Ok(crate::json_response(
        StatusCode::OK,
        &with_status(views::account(&account), &statuses),
    ))
}

/// `PATCH /v1/accounts/{id}`.
pub(crate) async fn patch(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let changes: PatchBody = body::json(call)?;
    let mut account = find(call)?;
    if let Some(limits) = changes.limits {
        account.limits = limits;
    }
    if let Some(secret) = changes.secret {
        account.secret = SecretString::from(secret);
    }
    account.enabled = changes.enabled.unwrap_or(account.enabled);
    account.drain = changes.drain.unwrap_or(account.drain);
    account.priority = changes.priority.unwrap_or(account.priority);
    account.regions = changes.regions.unwrap_or(account.regions);
    account.networks = changes.networks.unwrap_or(account.networks);
    account.pins = changes.pins.unwrap_or(account.pins);
    let account = call.api.fleet.put_account(account).await?;
    Ok(crate::json_response(
        StatusCode::OK,
        &views::account(&account),
    ))
}

/// `DELETE /v1/accounts/{id}`: refused while it holds instances.
pub(crate) async fn delete(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    call.api.fleet.remove_account(&call.params[0]).await?;
    Ok(crate::no_content())
}
