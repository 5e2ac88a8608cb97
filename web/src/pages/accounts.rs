//! `/accounts`: list with enable/disable/drain/delete, and the
//! registration form with field-level errors and a connection test. The
//! form goes through the same validation as `POST /v1/accounts`.

use oms_actors::FleetError;
use serde_json::{Value, json};
use warp::http::StatusCode;

use super::{Page, message, redirect, render};
use crate::accounts::{CreateBody, build};
use crate::views;

/// `GET /accounts`.
pub(crate) fn list(page: &Page<'_>) -> warp::reply::Response {
    let accounts = page.api.fleet.accounts().unwrap_or_default();
    let statuses = page.api.fleet.account_statuses_of(&accounts);
    let accounts: Vec<Value> = accounts
        .iter()
        .map(|a| {
            let mut view = json!(crate::accounts::with_status(views::account(a), &statuses));
            let mut actions = vec![
                if a.enabled { json!({"action": "disable", "label": "Disable"}) } else { json!({"action": "enable", "label": "Enable"}) },
                if a.drain { json!({"action": "undrain", "label": "Stop draining"}) } else { json!({"action": "drain", "label": "Drain"}) },
            ];
            actions.push(json!({"action": "delete", "label": "Delete", "confirm": format!("Delete account {}?", a.name)}));
            view["actions"] = Value::Array(actions);
            // Who and where, to spot one cloud registered twice.
            view["user_word"] = json!(named_word(&view["user"])
                .or_else(|| named_word(&view["application_credential"]["user"]))
                .or_else(|| view["application_credential"]["id"].as_str().map(|id| format!("credential {id}"))));
            view["project_word"] = json!(named_word(&view["project"]));
            view["health_word"] = json!(view["status"]["health"].as_str().unwrap_or("").replace('_', " "));
            view
        })
        .collect();
    render(
        page,
        "accounts",
        json!({"title": "Accounts", "nav_accounts": true, "accounts": accounts}),
    )
}

/// A user or project as a word: its name (with a domain other than the
/// default), or its id.
fn named_word(named: &Value) -> Option<String> {
    match (named["name"].as_str(), named["id"].as_str()) {
        (Some(name), _) => Some(
            match named["domain"].as_str().or(named["domain_id"].as_str()) {
                Some(domain) if !domain.eq_ignore_ascii_case("default") => {
                    format!("{name} ({domain})")
                }
                _ => name.to_owned(),
            },
        ),
        (None, Some(id)) => Some(id.to_owned()),
        _ => None,
    }
}

/// The registration form, with what was typed (never the secrets) and
/// errors by field.
pub(crate) fn form(
    page: &Page<'_>,
    form: Value,
    error: Option<String>,
    errors: Value,
) -> warp::reply::Response {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let tested = form.get("tested").cloned();
    let mut response = render(
        page,
        "account_form",
        json!({"title": "Register an account", "nav_accounts": true, "form": form,
               "error": error, "errors": errors, "tested": tested}),
    );
    *response.status_mut() = status;
    response
}

fn field_of(message: &str) -> &'static str {
    let lower = message.to_lowercase();
    if lower.starts_with("name") || lower.contains("named") {
        "name"
    } else if lower.starts_with("auth_url") {
        "auth_url"
    } else if lower.starts_with("limits") {
        "limits"
    } else {
        "auth"
    }
}

/// `POST /accounts/new`.
pub(crate) async fn create(page: &Page<'_>) -> warp::reply::Response {
    let text = |k: &str| page.field(k).map(str::trim).unwrap_or_default().to_owned();
    let typed = json!({
        "name": text("name"), "auth_url": text("auth_url"), "v2": text("identity_version") == "v2.0",
        "username": text("username"), "project_name": text("project_name"), "domain": text("domain"),
        "application_credential_id": text("application_credential_id"), "regions": text("regions"),
        "priority": text("priority"), "mutating_per_sec": text("mutating_per_sec"),
        "mutating_burst": text("mutating_burst"),
        "read_per_sec": text("read_per_sec"), "max_concurrent_creates": text("max_concurrent_creates"),
    });
    let fail = |message: String| {
        let field = field_of(&message);
        form(
            page,
            typed.clone(),
            Some(message.clone()),
            json!({ field: message }),
        )
    };
    let domain = if text("domain").is_empty() {
        "Default".to_owned()
    } else {
        text("domain")
    };
    let mut body = json!({
        "name": text("name"), "auth_url": text("auth_url"),
        "identity_version": if text("identity_version") == "v2.0" { "v2.0" } else { "v3" },
        "regions": text("regions").split(',').map(str::trim).filter(|r| !r.is_empty()).collect::<Vec<_>>(),
        "test_connection": page.field("test_connection").is_some(),
    });
    // Where a tested secret may go: the same Keystone, identity version,
    // user, project and credential as when it was tested.
    let held_for = [
        "auth_url",
        "identity_version",
        "username",
        "project_name",
        "domain",
        "application_credential_id",
    ]
    .map(text)
    .join("\n");
    let mut password = page.field("password").unwrap_or_default().to_owned();
    let mut app_secret = page
        .field("application_credential_secret")
        .unwrap_or_default()
        .to_owned();
    if password.is_empty()
        && app_secret.is_empty()
        && let Some(session) = &page.session
        && let Some(held) = page.api.sessions.take_held(session, &held_for)
    {
        let held = secrecy::ExposeSecret::expose_secret(&held).to_owned();
        if text("username").is_empty() {
            app_secret = held;
        } else {
            password = held;
        }
    }
    if !password.trim().is_empty() {
        body["password"] = json!(password);
        body["user"] = json!({"name": text("username"), "domain": domain});
        body["project"] = json!({"name": text("project_name"), "domain": domain});
    }
    if !app_secret.trim().is_empty() {
        body["application_credential"] = json!({"id": text("application_credential_id"),
                                                "secret": app_secret});
    }
    if !text("priority").is_empty() {
        match text("priority").parse::<i32>() {
            Ok(p) => body["priority"] = json!(p),
            Err(_) => return fail("priority must be a whole number".into()),
        }
    }
    let number = |k: &str| text(k).parse::<f64>().ok();
    if [
        "mutating_per_sec",
        "mutating_burst",
        "read_per_sec",
        "max_concurrent_creates",
    ]
    .iter()
    .any(|k| !text(k).is_empty())
    {
        let defaults = oms_actors::model::RegionLimits::default();
        body["limits"] = json!({
            "mutating_per_sec": number("mutating_per_sec").unwrap_or(defaults.mutating_per_sec),
            "mutating_burst": number("mutating_burst").map_or(defaults.mutating_burst, |n| n as u32),
            "read_per_sec": number("read_per_sec").unwrap_or(defaults.read_per_sec),
            "max_concurrent_creates": number("max_concurrent_creates").map_or(defaults.max_concurrent_creates, |n| n as u32),
        });
    }
    let parsed: CreateBody = match crate::body::shape(body) {
        Ok(parsed) => parsed,
        Err(error) => return fail(error.message),
    };
    let (account, test) = match build(parsed) {
        Ok(built) => built,
        Err(error) => return fail(error.message),
    };
    let fleet = &page.api.fleet;
    if fleet
        .accounts()
        .unwrap_or_default()
        .iter()
        .any(|a| a.name == account.name)
    {
        return fail(format!("an account named {} exists", account.name));
    }
    if let Err(error) = fleet.check_account(&account) {
        return fail(error.to_string());
    }
    if page.field("intent") == Some("test") {
        return match page.api.fleet.test_connection(&account).await {
            Ok(regions) => {
                if let Some(session) = &page.session {
                    page.api
                        .sessions
                        .hold(session, held_for, account.secret.clone());
                }
                let mut shown = typed.clone();
                shown["tested"] = json!(regions.join(", "));
                form(page, shown, None, json!({}))
            }
            Err(error) => fail(error.to_string()),
        };
    }
    if test && let Err(error) = page.api.fleet.test_connection(&account).await {
        return fail(error.to_string());
    }
    match fleet.put_account(account).await {
        Ok(_) => redirect("/", None),
        Err(error) => message(
            page,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            &error.to_string(),
        ),
    }
}

/// `POST /accounts/{id}/{enable|disable|drain|undrain|delete}`.
pub(crate) async fn act(page: &Page<'_>, id: &str, action: &str) -> warp::reply::Response {
    let fleet = &page.api.fleet;
    let Some(mut account) = fleet.account(id).ok().flatten() else {
        return message(page, StatusCode::NOT_FOUND, "Not found", "No such account.");
    };
    match action {
        "enable" => account.enabled = true,
        "disable" => account.enabled = false,
        "drain" => account.drain = true,
        "undrain" => account.drain = false,
        "delete" => {
            return match fleet.remove_account(id).await {
                Ok(()) => redirect("/accounts", None),
                Err(FleetError::Conflict(why)) => {
                    message(page, StatusCode::CONFLICT, "Not deleted", &why)
                }
                Err(error) => message(
                    page,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    &error.to_string(),
                ),
            };
        }
        _ => return message(page, StatusCode::NOT_FOUND, "Not found", "No such action."),
    }
    match fleet.put_account(account).await {
        Ok(_) => redirect("/accounts", None),
        Err(error) => message(
            page,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            &error.to_string(),
        ),
    }
}

/// `GET /accounts/{id}/edit`.
pub(crate) fn edit_form(page: &Page<'_>, id: &str, error: Option<String>) -> warp::reply::Response {
    let Some(account) = page.api.fleet.account(id).ok().flatten() else {
        return message(page, StatusCode::NOT_FOUND, "Not found", "No such account.");
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut response = render(
        page,
        "account_edit",
        json!({"title": format!("Edit {}", account.name), "nav_accounts": true, "account": views::account(&account),
               "regions": account.regions.join(", "), "error": error}),
    );
    *response.status_mut() = status;
    response
}

/// `POST /accounts/{id}/edit`.
pub(crate) async fn edit(page: &Page<'_>, id: &str) -> warp::reply::Response {
    let fleet = &page.api.fleet;
    let Some(mut account) = fleet.account(id).ok().flatten() else {
        return message(page, StatusCode::NOT_FOUND, "Not found", "No such account.");
    };
    let text = |k: &str| page.field(k).map(str::trim).unwrap_or_default().to_owned();
    let Ok(priority) = text("priority").parse::<i32>() else {
        return edit_form(page, id, Some("priority must be a whole number".into()));
    };
    let limits = oms_actors::model::RegionLimits {
        mutating_per_sec: text("mutating_per_sec").parse().unwrap_or(f64::NAN),
        // A form from before the field existed keeps the account's own.
        mutating_burst: match text("mutating_burst").as_str() {
            "" => account.limits.mutating_burst,
            burst => burst.parse().unwrap_or(0),
        },
        read_per_sec: text("read_per_sec").parse().unwrap_or(f64::NAN),
        max_concurrent_creates: text("max_concurrent_creates").parse().unwrap_or(0),
    };
    if let Err(message) = limits.check_bounds() {
        return edit_form(page, id, Some(message));
    }
    account.priority = priority;
    account.limits = limits;
    account.regions = text("regions")
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(secret) = page.field("secret").filter(|s| !s.is_empty()) {
        account.secret = secrecy::SecretString::from(secret.to_owned());
    }
    match fleet.put_account(account).await {
        Ok(_) => redirect("/accounts", None),
        Err(error) => message(
            page,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            &error.to_string(),
        ),
    }
}
