//! What the API shows of the model: no secret ever, account names instead
//! of ids where people read them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use oms_actors::model::{Account, AccountAuth, ApiToken, Event, Instance};
use oms_actors::status::AccountStatus;
use serde::Serialize;
use serde_json::{Value, json};

/// The id of the account named `name`, for filters by provider. An
/// unknown name gives an id no instance has: it matches nothing rather
/// than everything.
pub(crate) fn account_id_named(names: &HashMap<String, String>, name: &str) -> String {
    names
        .iter()
        .find(|(_, n)| *n == name)
        .map_or_else(|| "-unknown-".to_owned(), |(id, _)| id.clone())
}

/// An instance as clients see it. Typed rather than a `Value`: listings
/// render thousands of these, and a map per instance was most of their
/// cost.
#[derive(Debug, Serialize)]
pub(crate) struct InstanceView<'a> {
    id: &'a str,
    request_id: &'a str,
    client: &'a str,
    name: &'a str,
    profile: &'a str,
    status: &'static str,
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
        status: i.state.as_str(),
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
pub(crate) fn event(e: &Event) -> Value {
    json!({"at": e.at, "status": e.state.as_str(), "where": e.account_region, "message": e.message,
           "detail": e.detail, "repeated": e.repeated, "last_at": e.last_at})
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
pub(crate) fn account(a: &Account) -> Value {
    let method = match &a.auth {
        AccountAuth::Password { .. } => "password",
        AccountAuth::ApplicationCredential { .. } => "application_credential",
    };
    let mut auth = serde_json::to_value(&a.auth).unwrap_or(Value::Null);
    if let Some(obj) = auth.as_object_mut() {
        obj.remove("method");
    }
    json!({
        "id": a.id,
        "name": a.name,
        "auth_url": without_credentials(&a.auth_url),
        "identity_version": a.identity_version,
        "interface": a.interface,
        "auth_method": method,
        "auth": auth,
        "secret_set": !secrecy::ExposeSecret::expose_secret(&a.secret).is_empty(),
        "regions": a.regions,
        "networks": a.networks,
        "enabled": a.enabled,
        "drain": a.drain,
        "priority": a.priority,
        "limits": a.limits,
        "pins": a.pins,
        "created_at": a.created_at,
    })
}

/// How an account stands: what its supervisor last found.
pub(crate) fn account_status(s: &AccountStatus) -> Value {
    json!({
        "account": s.account, "health": s.health, "reason": s.reason, "since": s.since,
        "project_id": s.project_id, "regions": s.regions,
    })
}

/// A token without its hash.
pub(crate) fn token(t: &ApiToken) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "instance_limit": t.instance_limit,
        "revoked": t.revoked,
        "created_at": t.created_at,
    })
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
