//! The dashboard and the tokens page.

use oms_actors::FleetError;
use oms_actors::model::{InstanceState, Role};
use oms_actors::status::RegionHealth;
use oms_actors::store::InstanceFilter;
use oms_actors::tokens::NewToken;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use warp::http::StatusCode;

use super::{Page, message, redirect, render};
use crate::views;

/// `/`: every account-region, totals, and the queue.
pub(crate) fn dashboard(page: &Page<'_>) -> warp::reply::Response {
    let regions = page.api.fleet.regions();
    // One pass over the live instances for every total.
    let live = page
        .api
        .fleet
        .instances(&InstanceFilter {
            states: vec![
                InstanceState::Active,
                InstanceState::Building,
                InstanceState::Scheduled,
                InstanceState::Pending,
            ],
            ..InstanceFilter::default()
        })
        .unwrap_or_default();
    let count =
        |states: &[InstanceState]| live.iter().filter(|i| states.contains(&i.state)).count();
    let pending = page
        .api
        .fleet
        .instances(&InstanceFilter {
            states: vec![InstanceState::Pending],
            limit: 20,
            ..InstanceFilter::default()
        })
        .unwrap_or_default();
    let queue: Vec<Value> = pending
        .iter()
        .map(|i| {
            let last = page
                .api
                .fleet
                .instance(&i.id)
                .ok()
                .flatten()
                .and_then(|(_, mut events)| events.pop());
            json!({"id": i.id, "name": i.name, "client": i.client, "profile": i.profile,
                   "created_at": rfc3339(i.created_at),
                   "why": last.as_ref().map(|e| e.message.clone()),
                   "why_detail": last.and_then(|e| e.detail)})
        })
        .collect();
    let (mut used, mut limit, mut healthy) = (0i64, 0i64, 0usize);
    let rows: Vec<Value> = regions
        .iter()
        .map(|r| {
            let max = r.limit.map_or(0, |l| l.instances);
            // A region whose project another account holds would count
            // the same quota twice.
            if r.conflict.is_none() {
                used += r.used.instances;
                limit += max.max(0);
            }
            healthy += usize::from(r.health == RegionHealth::Healthy);
            let history = page.api.fleet.region_history(&r.account_id, &r.region);
            let healths: Vec<&str> = history.iter().map(|s| s.health.as_str()).collect();
            json!({
                "account": r.account, "region": r.region, "enabled": r.enabled, "drain": r.drain,
                "href": region_href(&r.account_id, &r.region),
                "health": r.health.as_str(),
                "health_word": r.health.as_str().replace('_', " "),
                "health_detail": format!(
                    "breaker {}; {:.0}% of recent calls failed; {:.0} ms",
                    serde_json::to_value(r.breaker).ok().and_then(|b| b.as_str().map(str::to_owned)).unwrap_or_default(),
                    r.error_rate * 100.0,
                    r.latency_ms
                ),
                "failing_since": r.failing_since.map(rfc3339),
                "last_error_at": r.last_error_at.map(rfc3339),
                "used": r.used.instances, "limit": if max < 0 { "∞".to_owned() } else { max.to_string() },
                "quota_bar": super::charts::quota_bar(r.used.instances, r.limit.map(|l| l.instances)),
                "history": super::charts::health_strip("health over the last hours", &healths),
                "reserved": r.reserved,
                "in_flight": r.creating as usize + r.building,
                "error_rate": format!("{:.0}", r.error_rate * 100.0),
                "latency": format!("{:.0}", r.latency_ms),
                "last_error": r.last_error, "conflict": r.conflict,
            })
        })
        .collect();
    // Accounts without running regions (failing authentication, no
    // compute region) would otherwise be missing from every total.
    let accounts_down: Vec<Value> = page
        .api
        .fleet
        .account_statuses()
        .unwrap_or_default()
        .iter()
        .filter(|s| !s.health.is_up())
        .map(|s| {
            let mut view = json!(views::account_status(s));
            view["health_word"] = json!(view["health"].as_str().unwrap_or("").replace('_', " "));
            view
        })
        .collect();
    let data = json!({
        "title": "Dashboard", "nav_dashboard": true, "live": true,
        "regions": rows, "queue": queue, "accounts_down": accounts_down,
        "totals": {"active": count(&[InstanceState::Active]), "building": count(&[InstanceState::Building, InstanceState::Scheduled]),
                   "pending": count(&[InstanceState::Pending]), "used": used, "limit": limit,
                   "healthy": healthy, "regions": regions.len(), "accounts_down": accounts_down.len()},
    });
    if page.fragment() {
        return render(page, "dashboard_live", data);
    }
    render(page, "dashboard", data)
}

/// `/tokens`.
pub(crate) fn tokens(
    page: &Page<'_>,
    created: Option<Value>,
    error: Option<String>,
) -> warp::reply::Response {
    let tokens: Vec<Value> = page
        .api
        .fleet
        .tokens()
        .unwrap_or_default()
        .iter()
        .map(|t| json!(views::token(t)))
        .collect();
    render(
        page,
        "tokens",
        json!({"title": "Tokens", "nav_tokens": true, "tokens": tokens, "created": created, "error": error}),
    )
}

/// `POST /tokens`.
pub(crate) async fn create_token(page: &Page<'_>) -> warp::reply::Response {
    let name = page.field("name").unwrap_or_default().trim().to_owned();
    let role = if page.field("role") == Some("admin") {
        Role::Admin
    } else {
        Role::Client
    };
    let limit = match page
        .field("instance_limit")
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        Some(text) => match text.parse::<u32>() {
            Ok(limit) => Some(limit),
            Err(_) => {
                return tokens(
                    page,
                    None,
                    Some("Instance limit must be a whole number.".into()),
                );
            }
        },
        None => None,
    };
    let continues = page
        .field("continues")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let new = NewToken {
        name: name.clone(),
        role,
        instance_limit: limit,
        continues,
    };
    match page.api.fleet.issue_token(new).await {
        Ok((_, value)) => tokens(
            page,
            Some(json!({"name": name, "value": value.expose_secret()})),
            None,
        ),
        Err(FleetError::Invalid(why) | FleetError::Conflict(why)) => tokens(page, None, Some(why)),
        Err(_) => message(
            page,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "The token could not be stored.",
        ),
    }
}

/// `POST /tokens/{id}/revoke`.
pub(crate) async fn revoke_token(page: &Page<'_>, id: &str) -> warp::reply::Response {
    match page.api.fleet.revoke_token(id).await {
        Ok(_) => {}
        Err(FleetError::NotFound(_)) => {
            return message(page, StatusCode::NOT_FOUND, "Not found", "No such token.");
        }
        Err(_) => {
            return message(
                page,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "The token could not be revoked.",
            );
        }
    }
    redirect("/tokens", None)
}

/// The region page's address; a region's name is the provider's, so it
/// is encoded.
pub(crate) fn region_href(account_id: &str, region: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(region.as_bytes()).collect();
    format!("/regions/{account_id}/{encoded}")
}

/// A time as the `when` helper reads it.
pub(crate) fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
