//! What the API shows of the model: no secret ever, account names instead
//! of ids where people read them.

use std::collections::HashMap;

use oms_actors::model::{Account, AccountAuth, ApiToken, Event, Instance};
use serde_json::{Value, json};

/// Account id → name, for instance views.
pub(crate) fn account_names(accounts: &[Account]) -> HashMap<String, String> {
    accounts
        .iter()
        .map(|a| (a.id.clone(), a.name.clone()))
        .collect()
}

/// An instance as clients see it.
pub(crate) fn instance(i: &Instance, names: &HashMap<String, String>) -> Value {
    let attempt = i.attempt.as_ref();
    json!({
        "id": i.id,
        "request_id": i.request_id,
        "client": i.client,
        "name": i.name,
        "profile": i.profile,
        "status": i.state.as_str(),
        "provider": attempt.map(|a| names.get(&a.account_id).cloned().unwrap_or_else(|| a.account_id.clone())),
        "region": attempt.map(|a| a.region.clone()),
        "server_id": attempt.and_then(|a| a.server_id.clone()),
        "address": i.address,
        "attempts": i.attempts,
        "failure": i.failure,
        "expires_at": i.expires_at,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
    })
}

/// One event of a timeline.
pub(crate) fn event(e: &Event) -> Value {
    json!({"at": e.at, "status": e.state.as_str(), "where": e.account_region, "message": e.message})
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
        "auth_url": a.auth_url,
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
