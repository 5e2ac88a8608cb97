//! What the API shows of the model: no secret ever, account names instead
//! of ids where people read them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use oms_actors::model::{
    Account, AccountAuth, ApiToken, Event, Instance, InstanceState, Pin, Profile, RegionLimits,
    Role,
};
use oms_actors::openstack::{ApplicationCredentialRef, Domain, IdentityVersion, Interface, Named};
use oms_actors::status::{AccountHealth, AccountStatus, RegionStatus};
use schemars::JsonSchema;
use serde::Serialize;

/// The id of the account named `name`, for filters by provider. An
/// unknown name gives an id no instance has: it matches nothing rather
/// than everything.
pub(crate) fn account_id_named(names: &HashMap<String, String>, name: &str) -> String {
    names
        .iter()
        .find(|(_, n)| *n == name)
        .map_or_else(|| "-unknown-".to_owned(), |(id, _)| id.clone())
}

// Typed rather than a `Value`: listings render thousands of these, and a
// map per instance was most of their cost.
/// An instance: where it stands and where it runs.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "Instance")]
pub(crate) struct InstanceView<'a> {
    id: &'a str,
    request_id: &'a str,
    client: &'a str,
    name: &'a str,
    profile: &'a str,
    status: InstanceState,
    provider: Option<&'a str>,
    region: Option<&'a str>,
    server_id: Option<&'a str>,
    address: Option<&'a str>,
    /// The server's status at the provider when it is not what `status`
    /// says (SHUTOFF, ERROR after active).
    provider_status: Option<&'a str>,
    attempts: u32,
    /// Servers that vanished and were replaced.
    replaced: u32,
    failure: Option<&'a str>,
    #[serde(serialize_with = "rfc3339_opt")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    updated_at: DateTime<Utc>,
}

/// A time as chrono's own serializer writes it, but in one piece: chrono
/// writes it a few digits at a time, and JSON escapes every piece (a
/// tenth of serving a listing).
fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

fn rfc3339_opt<S: serde::Serializer>(at: &Option<DateTime<Utc>>, to: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, to),
        None => to.serialize_none(),
    }
}

/// An instance as clients see it.
pub(crate) fn instance<'a>(
    i: &'a Instance,
    names: &'a HashMap<String, String>,
) -> InstanceView<'a> {
    let attempt = i.attempt.as_ref();
    InstanceView {
        id: &i.id,
        request_id: &i.request_id,
        client: &i.client,
        name: &i.name,
        profile: &i.profile,
        status: i.state,
        provider: attempt.map(|a| {
            names
                .get(&a.account_id)
                .map_or(a.account_id.as_str(), String::as_str)
        }),
        region: attempt.map(|a| a.region.as_str()),
        server_id: attempt.and_then(|a| a.server_id.as_deref()),
        address: i.address.as_deref(),
        provider_status: i.provider_status.as_deref(),
        attempts: i.attempts,
        replaced: i.replaced,
        failure: i.failure.as_deref(),
        expires_at: i.expires_at,
        created_at: i.created_at,
        updated_at: i.updated_at,
    }
}

/// One event of a timeline.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "Event")]
pub(crate) struct EventView<'a> {
    at: DateTime<Utc>,
    status: InstanceState,
    /// `account/region`, when the event happened in one.
    #[serde(rename = "where")]
    place: Option<&'a str>,
    message: &'a str,
    detail: Option<&'a str>,
    /// How many more times the same happened since `at`.
    repeated: u32,
    /// Whether it tells of a failure (a failed or refused attempt, a
    /// failed or lost instance).
    failure: bool,
    last_at: Option<DateTime<Utc>>,
}

/// One event of a timeline.
pub(crate) fn event(e: &Event) -> EventView<'_> {
    EventView {
        at: e.at,
        status: e.state,
        place: e.account_region.as_deref(),
        message: &e.message,
        detail: e.detail.as_deref(),
        failure: e.is_failure(),
        repeated: e.repeated,
        last_at: e.last_at,
    }
}

/// An instance with its timeline.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "InstanceDetail")]
pub(crate) struct InstanceDetail<'a> {
    #[serde(flatten)]
    pub instance: InstanceView<'a>,
    pub events: Vec<EventView<'a>>,
}

/// A page of instances.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "InstancePage")]
pub(crate) struct InstancePage<'a> {
    pub instances: Vec<InstanceView<'a>>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// What an accepted launch answers.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Launched<'a> {
    pub request: RequestView<'a>,
    pub instances: Vec<InstanceView<'a>>,
    /// True when this answers a repeated `Idempotency-Key`.
    pub replayed: bool,
    /// The generated key pair's private half, when the launch gave no
    /// `public_key`; shown in this answer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<&'a str>,
}

/// A launch request.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "LaunchRequest")]
pub(crate) struct RequestView<'a> {
    pub id: &'a str,
    pub profile: &'a str,
    pub count: u32,
    pub deadline: DateTime<Utc>,
    pub replace_lost: bool,
    pub created_at: DateTime<Utc>,
}

/// A URL as it may be shown: an account stored before URLs with
/// credentials were refused keeps them out of answers and pages.
fn without_credentials(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// An account without its secret.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "Account")]
pub(crate) struct AccountView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub auth_url: String,
    /// The Keystone's host (and port, when the URL gives one): which
    /// provider this is, to spot one registered twice.
    pub keystone: String,
    pub identity_version: IdentityVersion,
    pub interface: Interface,
    pub auth_method: &'static str,
    /// The user, in the shape a registration gives it (password accounts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<NamedView<'a>>,
    /// The project, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<NamedView<'a>>,
    /// The application credential without its secret, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_credential: Option<AppCredentialView<'a>>,
    /// Whether a password or secret is stored (it is never shown).
    pub secret_set: bool,
    pub regions: &'a [String],
    pub networks: &'a [String],
    pub enabled: bool,
    pub drain: bool,
    pub priority: i32,
    pub limits: RegionLimits,
    pub pins: &'a std::collections::BTreeMap<String, Pin>,
    pub created_at: DateTime<Utc>,
    /// How it stands (listings and single reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AccountStatusView<'a>>,
    /// Compute regions the connection test found, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions_found: Option<Vec<String>>,
    /// Set when the registration was only checked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// A user or project as `POST /v1/accounts` takes it: `{"id"}` or
/// `{"name", "domain" | "domain_id"}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct NamedView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain_id: Option<&'a str>,
}

fn named(n: &Named) -> NamedView<'_> {
    match n {
        Named::Id(id) => NamedView {
            id: Some(id),
            name: None,
            domain: None,
            domain_id: None,
        },
        Named::Name { name, domain } => NamedView {
            id: None,
            name: Some(name),
            domain: match domain {
                Domain::Name(d) => Some(d),
                Domain::Id(_) => None,
            },
            domain_id: match domain {
                Domain::Id(d) => Some(d),
                Domain::Name(_) => None,
            },
        },
    }
}

/// An application credential as `POST /v1/accounts` takes it, without
/// the secret.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct AppCredentialView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<NamedView<'a>>,
}

/// An account without its secret.
pub(crate) fn account(a: &Account) -> AccountView<'_> {
    let (user, project, application_credential) = match &a.auth {
        AccountAuth::Password { user, project } => (Some(named(user)), Some(named(project)), None),
        AccountAuth::ApplicationCredential { credential } => {
            let view = match credential {
                ApplicationCredentialRef::Id(id) => AppCredentialView {
                    id: Some(id),
                    name: None,
                    user: None,
                },
                ApplicationCredentialRef::Name { name, user } => AppCredentialView {
                    id: None,
                    name: Some(name),
                    user: Some(named(user)),
                },
            };
            (None, None, Some(view))
        }
    };
    AccountView {
        id: &a.id,
        name: &a.name,
        auth_url: without_credentials(&a.auth_url),
        keystone: a
            .auth_url
            .host_str()
            .map(|h| {
                a.auth_url
                    .port()
                    .map_or(h.to_owned(), |p| format!("{h}:{p}"))
            })
            .unwrap_or_default(),
        identity_version: a.identity_version,
        interface: a.interface,
        auth_method: match &a.auth {
            AccountAuth::Password { .. } => "password",
            AccountAuth::ApplicationCredential { .. } => "application_credential",
        },
        user,
        project,
        application_credential,
        secret_set: !secrecy::ExposeSecret::expose_secret(&a.secret).is_empty(),
        regions: &a.regions,
        networks: &a.networks,
        enabled: a.enabled,
        drain: a.drain,
        priority: a.priority,
        limits: a.limits,
        pins: &a.pins,
        created_at: a.created_at,
        status: None,
        regions_found: None,
        dry_run: false,
    }
}

/// How an account stands: what its supervisor last found.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "AccountStatus")]
pub(crate) struct AccountStatusView<'a> {
    pub account: &'a str,
    pub health: AccountHealth,
    pub reason: Option<&'a str>,
    pub since: DateTime<Utc>,
    pub project_id: Option<&'a str>,
    pub regions: &'a [String],
}

/// How an account stands.
pub(crate) fn account_status(s: &AccountStatus) -> AccountStatusView<'_> {
    AccountStatusView {
        account: &s.account,
        health: s.health,
        reason: s.reason.as_deref(),
        since: s.since,
        project_id: s.project_id.as_deref(),
        regions: &s.regions,
    }
}

/// A token without its hash.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "Token")]
pub(crate) struct TokenView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub instance_limit: Option<u32>,
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
    /// The token's value: in the answer that creates it, and never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
}

/// A token without its hash.
pub(crate) fn token(t: &ApiToken) -> TokenView<'_> {
    TokenView {
        id: &t.id,
        name: &t.name,
        role: t.role,
        instance_limit: t.instance_limit,
        revoked: t.revoked,
        created_at: t.created_at,
        token: None,
    }
}

/// `{"instances": ...}`-style envelopes of the listings.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Accounts<'a> {
    pub accounts: Vec<AccountView<'a>>,
}

/// Every token.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Tokens<'a> {
    pub tokens: Vec<TokenView<'a>>,
}

/// Every profile.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Profiles {
    pub profiles: Vec<Profile>,
}

/// Every account-region and every account.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Regions<'a> {
    pub regions: Vec<RegionStatus>,
    pub accounts: Vec<AccountStatusView<'a>>,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Health {
    /// `ok` or `ready`.
    pub status: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_exactly_as_chrono_writes_them() {
        #[derive(Serialize)]
        struct Ours(#[serde(serialize_with = "rfc3339")] DateTime<Utc>);
        for text in [
            "2026-12-01T07:23:27Z",
            "2026-12-01T07:23:27.300Z",
            "2026-12-01T07:23:27.301151Z",
            "2026-12-01T07:23:27.301151956Z",
            "1999-01-02T03:04:05.000000001Z",
        ] {
            let at = DateTime::parse_from_rfc3339(text).unwrap().to_utc();
            assert_eq!(
                serde_json::to_string(&Ours(at)).unwrap(),
                serde_json::to_string(&at).unwrap()
            );
        }
    }
}
