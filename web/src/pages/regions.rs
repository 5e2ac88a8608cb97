//! `/regions/{account}/{region}`: one region's state now and its history
//! of the last hours (launches, failures by class, latency, quota used)
//! as server-drawn charts, to tell a region failing for a minute from one
//! failing for an hour.

use serde_json::json;
use warp::http::StatusCode;

use super::charts;
use super::overview::{region_href, rfc3339};
use super::{Page, message, render};

/// `GET /regions/{account_id}/{region}` (the region's name encoded).
pub(crate) fn show(page: &Page<'_>, account_id: &str, encoded: &str) -> warp::reply::Response {
    let Some(status) = page.api.fleet.regions().into_iter().find(|r| {
        r.account_id == account_id
            && region_href(account_id, &r.region).ends_with(&format!("/{encoded}"))
    }) else {
        return message(page, StatusCode::NOT_FOUND, "Not found", "No such region.");
    };
    let samples = page.api.fleet.region_history(account_id, &status.region);
    let interval = page.api.fleet.history_interval();
    let span = samples
        .first()
        .map(|s| rfc3339(s.at - chrono::Duration::from_std(interval).unwrap_or_default()));
    let launches: Vec<Vec<(&str, u64)>> = samples
        .iter()
        .map(|s| vec![("launches", s.launches)])
        .collect();
    let failures: Vec<Vec<(&str, u64)>> = samples
        .iter()
        .map(|s| s.failures.iter().map(|(class, n)| (*class, *n)).collect())
        .collect();
    let mut classes: Vec<&str> = samples
        .iter()
        .flat_map(|s| s.failures.keys().copied())
        .collect();
    classes.sort_unstable();
    classes.dedup();
    let latency: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
    let used: Vec<f64> = samples.iter().map(|s| s.used as f64).collect();
    let limit = status.limit.map(|l| l.instances);
    let healths: Vec<&str> = samples.iter().map(|s| s.health.as_str()).collect();
    let data = json!({
        "title": format!("{} / {}", status.account, status.region), "nav_dashboard": true, "live": true,
        "account": status.account, "region": status.region,
        "health": status.health.as_str(), "health_word": status.health.as_str().replace('_', " "),
        "breaker": serde_json::to_value(status.breaker).ok(),
        "failing_since": status.failing_since.map(rfc3339),
        "used": status.used.instances,
        "limit": match limit { Some(max) if max < 0 => "unlimited".to_owned(), Some(max) => max.to_string(), None => "not known yet".to_owned() },
        "quota_bar": charts::quota_bar(status.used.instances, limit),
        "building": status.building, "creating": status.creating,
        "latency": format!("{:.0}", status.latency_ms),
        "error_rate": format!("{:.0}", status.error_rate * 100.0),
        "last_error": status.last_error, "last_error_at": status.last_error_at.map(rfc3339),
        "conflict": status.conflict,
        "since": span, "samples": samples.len(),
        "every": if interval.as_secs() >= 1 { format!("{} s", interval.as_secs()) } else { format!("{} ms", interval.as_millis()) },
        "totals": {
            "launches": samples.iter().map(|s| s.launches).sum::<u64>(),
            "failures": samples.iter().flat_map(|s| s.failures.values()).sum::<u64>(),
            "latency_top": charts::amount(latency.iter().copied().fold(0.0, f64::max), "ms"),
            "used_top": used.iter().copied().fold(0.0, f64::max),
        },
        "charts": {
            "health": charts::health_strip("health per interval", &healths),
            "launches": charts::stacked_bars("launches per interval", &launches, 1.0),
            "failures": charts::stacked_bars("failed provider calls per interval, by class", &failures, 1.0),
            "latency": charts::line("provider call latency", &latency, 10.0, "ms"),
            "used": charts::line("instances used", &used, limit.filter(|l| *l > 0).map_or(1.0, |l| l as f64), ""),
        },
        "classes": classes,
    });
    if page.fragment() {
        return render(page, "region_live", data);
    }
    render(page, "region", data)
}
