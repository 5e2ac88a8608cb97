//! Keystone v3, the part clients use to get a token and a catalog: version
//! discovery, `POST /v3/auth/tokens` with the `application_credential`
//! method (id: our token's id, secret: its value), `password` (user: the
//! token's name, password: its value) and `token`; validation, revocation,
//! the catalog and the one project (the client).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use warp::http::StatusCode;

use super::{Call, answer, stable_id};
use crate::auth::Principal;

fn unauthorized() -> warp::reply::Response {
    let mut response = answer(
        StatusCode::UNAUTHORIZED,
        &json!({"error": {"code": 401, "title": "Unauthorized",
                "message": "The request you have made requires authentication."}}),
    );
    response.headers_mut().insert(
        "WWW-Authenticate",
        warp::http::HeaderValue::from_static("Keystone uri=\"/identity\""),
    );
    response
}

fn bad_request(message: &str) -> warp::reply::Response {
    answer(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"code": 400, "title": "Bad Request", "message": message}}),
    )
}

fn not_found() -> warp::reply::Response {
    answer(
        StatusCode::NOT_FOUND,
        &json!({"error": {"code": 404, "title": "Not Found",
                "message": "The resource could not be found."}}),
    )
}

fn v3(call: &Call<'_>) -> Value {
    json!({
        "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/identity/v3/", call.base)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

pub(super) async fn handle(call: &Call<'_>) -> warp::reply::Response {
    use warp::http::Method;
    match (&call.method, call.segments.as_slice()) {
        (&Method::GET, []) => {
            let mut response = answer(
                StatusCode::MULTIPLE_CHOICES,
                &json!({"versions": {"values": [v3(call)]}}),
            );
            if let Ok(location) =
                warp::http::HeaderValue::from_str(&format!("{}/identity/v3/", call.base))
            {
                response
                    .headers_mut()
                    .insert(warp::http::header::LOCATION, location);
            }
            response
        }
        (&Method::GET, ["v3"]) => answer(StatusCode::OK, &json!({"version": v3(call)})),
        (&Method::POST, ["v3", "auth", "tokens"]) => issue(call),
        (&Method::GET | &Method::HEAD, ["v3", "auth", "tokens"]) => validate(call),
        (&Method::DELETE, ["v3", "auth", "tokens"]) => {
            let Some(_) = call.principal() else {
                return unauthorized();
            };
            match call
                .headers
                .get("X-Subject-Token")
                .and_then(|v| v.to_str().ok())
            {
                Some(subject) => {
                    call.api.facade_tokens.revoke(subject);
                    crate::no_content()
                }
                None => not_found(),
            }
        }
        (&Method::GET, ["v3", "auth", "catalog"]) => match call.principal() {
            Some(_) => answer(StatusCode::OK, &json!({"catalog": catalog(call)})),
            None => unauthorized(),
        },
        (&Method::GET, ["v3", "auth", "projects"]) => match call.principal() {
            Some(principal) => answer(StatusCode::OK, &json!({"projects": [project(&principal)]})),
            None => unauthorized(),
        },
        _ => not_found(),
    }
}

/// The principal a `POST /v3/auth/tokens` body proves.
fn prove(call: &Call<'_>, body: &Value) -> Option<Principal> {
    let identity = &body["auth"]["identity"];
    let method = identity["methods"].as_array()?.first()?.as_str()?;
    let fleet = &call.api.fleet;
    let ours = |value: &str| -> Option<Principal> { Some(fleet.authenticate(value).ok()??.into()) };
    match method {
        "application_credential" => {
            let credential = &identity["application_credential"];
            let principal = ours(credential["secret"].as_str()?)?;
            let named = match (credential["id"].as_str(), credential["name"].as_str()) {
                (Some(id), _) => id == principal.token_id,
                (None, Some(name)) => name == principal.name,
                _ => false,
            };
            named.then_some(principal)
        }
        "password" => {
            let user = &identity["password"]["user"];
            let principal = ours(user["password"].as_str()?)?;
            let named = match (user["name"].as_str(), user["id"].as_str()) {
                (Some(name), _) => name == principal.name,
                (None, Some(id)) => id == principal.token_id || id == user_id(&principal),
                _ => false,
            };
            named.then_some(principal)
        }
        "token" => {
            let value = identity["token"]["id"].as_str()?;
            call.api.facade_tokens.principal(&call.api.fleet, value)
        }
        _ => None,
    }
}

fn issue(call: &Call<'_>) -> warp::reply::Response {
    let Some(body) = call.json() else {
        return bad_request("Expecting to find valid JSON in request body.");
    };
    if !body["auth"]["identity"]["methods"].is_array() {
        return bad_request("'methods' is a required property");
    }
    let Some(principal) = prove(call, &body) else {
        return unauthorized();
    };
    // A token made with the token method keeps that token's expiry.
    let until = body["auth"]["identity"]["token"]["id"]
        .as_str()
        .and_then(|value| call.api.facade_tokens.expires(value));
    let (value, expires) = call.api.facade_tokens.issue(&principal, until);
    let method = body["auth"]["identity"]["methods"][0].clone();
    let mut response = answer(
        StatusCode::CREATED,
        &json!({"token": token_body(call, &principal, method, expires)}),
    );
    if let Ok(header) = warp::http::HeaderValue::from_str(&value) {
        response.headers_mut().insert("X-Subject-Token", header);
    }
    response
}

fn validate(call: &Call<'_>) -> warp::reply::Response {
    if call.principal().is_none() {
        return unauthorized();
    }
    let subject = call
        .headers
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match (
        call.api.facade_tokens.principal(&call.api.fleet, subject),
        call.api.facade_tokens.expires(subject),
    ) {
        (Some(principal), Some(expires)) => {
            let mut response = answer(
                StatusCode::OK,
                &json!({"token": token_body(call, &principal, json!("token"), expires)}),
            );
            if let Ok(header) = warp::http::HeaderValue::from_str(subject) {
                response.headers_mut().insert("X-Subject-Token", header);
            }
            response
        }
        _ => not_found(),
    }
}

/// The client's user id: stable, derived from its name.
pub(super) fn user_id(principal: &Principal) -> String {
    stable_id("user", &principal.name).replace('-', "")
}

/// The client is the project.
pub(super) fn project(principal: &Principal) -> Value {
    json!({"id": project_id(principal), "name": principal.name,
           "domain_id": "default", "domain": {"id": "default", "name": "Default"},
           "enabled": true, "is_domain": false, "parent_id": "default", "description": "",
           "tags": [], "options": {}, "links": {}})
}

/// The client's project id: stable, derived from its name.
pub(super) fn project_id(principal: &Principal) -> String {
    stable_id("project", &principal.name).replace('-', "")
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn token_body(
    call: &Call<'_>,
    principal: &Principal,
    method: Value,
    expires: DateTime<Utc>,
) -> Value {
    let domain = json!({"id": "default", "name": "Default"});
    let mut roles = vec![
        json!({"id": stable_id("role", "member").replace('-', ""), "name": "member"}),
        json!({"id": stable_id("role", "reader").replace('-', ""), "name": "reader"}),
    ];
    if principal.is_admin() {
        roles.push(json!({"id": stable_id("role", "admin").replace('-', ""), "name": "admin"}));
    }
    json!({
        "methods": [method],
        "user": {"domain": domain, "id": user_id(principal), "name": principal.name,
                 "password_expires_at": null},
        "audit_ids": [stable_id("audit", &format!("{}{}", principal.token_id, expires))[..22].to_owned()],
        "expires_at": time(expires),
        "issued_at": time(Utc::now()),
        "project": {"domain": domain, "id": project_id(principal), "name": principal.name},
        "is_domain": false,
        "roles": roles,
        "catalog": catalog(call),
    })
}

/// Compute, image, network and identity, in one region.
fn catalog(call: &Call<'_>) -> Value {
    let services = [
        ("compute", "nova", format!("{}/compute/v2.1", call.base)),
        ("image", "glance", format!("{}/image", call.base)),
        ("network", "neutron", format!("{}/network", call.base)),
        ("identity", "keystone", format!("{}/identity", call.base)),
    ];
    services
        .iter()
        .map(|(kind, name, url)| {
            let endpoints: Vec<Value> = ["public", "internal", "admin"]
                .iter()
                .map(|interface| {
                    json!({"id": stable_id("endpoint", &format!("{kind}{interface}")).replace('-', ""),
                           "interface": interface, "region_id": call.region(), "region": call.region(), "url": url})
                })
                .collect();
            json!({"endpoints": endpoints, "id": stable_id("service", kind).replace('-', ""),
                   "type": kind, "name": name})
        })
        .collect()
}
