//! `/instances`: list with filters and pagination; one instance with its
//! timeline and a delete button.

use oms_actors::model::InstanceState;
use oms_actors::store::InstanceFilter;
use serde_json::json;
use warp::http::StatusCode;

use super::{Page, message, redirect, render};
use crate::views;

const PAGE_SIZE: usize = 50;
const STATES: [&str; 8] = [
    "pending",
    "scheduled",
    "building",
    "active",
    "deleting",
    "deleted",
    "failed",
    "lost",
];

/// `GET /instances`.
pub(crate) fn list(page: &Page<'_>) -> warp::reply::Response {
    let fleet = &page.api.fleet;
    let names = fleet.account_names().unwrap_or_default();
    let status = page.query("status").filter(|s| STATES.contains(s));
    let states: Vec<InstanceState> = status
        .and_then(|s| serde_json::from_value(json!(s)).ok())
        .into_iter()
        .collect();
    let account_id = page
        .query("provider")
        .map(|name| views::account_id_named(&names, name));
    let filter = InstanceFilter {
        client: page.query("client").map(str::to_owned),
        states,
        account_id,
        region: page.query("region").map(str::to_owned),
        profile: page.query("profile").map(str::to_owned),
        request_id: page.query("request").map(str::to_owned),
        name_contains: page.query("name").map(str::to_owned),
        after: page.query("cursor").map(str::to_owned),
        limit: PAGE_SIZE + 1,
    };
    let mut instances = fleet.instances(&filter).unwrap_or_default();
    let more = instances.len() > PAGE_SIZE;
    instances.truncate(PAGE_SIZE);
    let next = more.then(|| {
        let mut query: Vec<(String, String)> = page
            .query
            .iter()
            .filter(|(k, _)| k != "cursor" && k != "fragment")
            .cloned()
            .collect();
        if let Some(last) = instances.last() {
            query.push(("cursor".into(), last.id.clone()));
        }
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish()
    });
    let rows: Vec<views::InstanceView<'_>> = instances
        .iter()
        .map(|i| views::instance(i, &names))
        .collect();
    let data = json!({
        "title": "Instances", "nav_instances": true, "live": true,
        "instances": rows, "next": next,
        "statuses": STATES.iter().map(|s| json!({"value": s, "selected": Some(*s) == status})).collect::<Vec<_>>(),
        "filter": {"provider": page.query("provider"), "region": page.query("region"), "client": page.query("client"),
                   "profile": page.query("profile"), "name": page.query("name")},
    });
    if page.fragment() {
        return render(page, "instances_live", data);
    }
    render(page, "instances", data)
}

/// `GET /instances/{id}`.
pub(crate) fn show(page: &Page<'_>, id: &str) -> warp::reply::Response {
    let fleet = &page.api.fleet;
    let Some((instance, events)) = fleet.instance(id).ok().flatten() else {
        return message(
            page,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such instance.",
        );
    };
    let names = fleet.account_names().unwrap_or_default();
    // The API's own view of each event: the page shows what clients see.
    let events: Vec<views::EventView<'_>> = events.iter().map(views::event).collect();
    let data = json!({
        "title": instance.name, "nav_instances": true, "live": true,
        "instance": views::instance(&instance, &names), "events": events,
        "deletable": !instance.state.is_terminal() && instance.state != InstanceState::Deleting,
    });
    if page.fragment() {
        return render(page, "instance_live", data);
    }
    render(page, "instance", data)
}

/// `POST /instances/{id}/delete`.
pub(crate) async fn delete(page: &Page<'_>, id: &str) -> warp::reply::Response {
    match page.api.fleet.delete(id).await {
        Ok(_) => redirect(&format!("/instances/{id}"), None),
        Err(error) => message(
            page,
            StatusCode::CONFLICT,
            "Not deleted",
            &error.to_string(),
        ),
    }
}
