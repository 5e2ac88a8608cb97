//! The dashboard and the tokens page.

use oms_actors::FleetError;
use oms_actors::breaker::BreakerState;
use oms_actors::model::{InstanceState, Role};
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
            let why = page
                .api
                .fleet
                .instance(&i.id)
                .ok()
                .flatten()
                .and_then(|(_, events)| events.last().map(|e| e.message.clone()))
                .unwrap_or_default();
            json!({"id": i.id, "name": i.name, "client": i.client, "profile": i.profile,
                   "created_at": i.created_at.format("%Y-%m-%d %H:%M:%S").to_string(), "why": why})
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
            let up = r.healthy && r.conflict.is_none();
            healthy += usize::from(up);
            // In words, not breaker states: closed is healthy.
            let health = match r.breaker {
                BreakerState::Open => "down",
                BreakerState::HalfOpen => "probing",
                BreakerState::Closed if up => "healthy",
                BreakerState::Closed if !r.connected => "connecting",
                BreakerState::Closed => "failing",
            };
            let percent = if max > 0 { (r.used.instances * 100 / max).clamp(0, 100) } else { 0 };
            json!({
                "account": r.account, "region": r.region, "enabled": r.enabled, "drain": r.drain,
                "breaker": serde_json::to_value(r.breaker).unwrap_or(Value::Null),
                "health": health,
                "failing_since": r.failing_since.map(|t| t.format("%H:%M:%S").to_string()),
                "last_error_at": r.last_error_at.map(|t| t.format("%H:%M:%S").to_string()),
                "used": r.used.instances, "limit": if max < 0 { "∞".to_owned() } else { max.to_string() },
                "percent": percent, "reserved": r.reserved,
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
        .map(|s| json!(views::account_status(s)))
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
