//! Keystone: version discovery, v3 password and application-credential
//! tokens, the catalog, and v2.0 tokens for providers configured as old.
//! Shapes follow transcripts 001–004 and 028.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use warp::http::Method;

use crate::Sim;
use crate::http::{Reply, Request};
use crate::world::{Provider, User, hex_id};

/// What Keystone answers a wrong password, an unknown user or a bad token.
pub fn unauthorized(keystone_url: &str) -> Reply {
    Reply::json(
        401,
        &json!({"error": {
            "code": 401,
            "message": "The request you have made requires authentication.",
            "title": "Unauthorized"
        }}),
    )
    .header(
        "WWW-Authenticate",
        format!("Keystone uri=\"{keystone_url}\""),
    )
}

fn not_found() -> Reply {
    Reply::json(
        404,
        &json!({"error": {"code": 404, "message": "The resource could not be found.", "title": "Not Found"}}),
    )
}

fn bad_request(message: &str) -> Reply {
    Reply::json(
        400,
        &json!({"error": {"code": 400, "message": message, "title": "Bad Request"}}),
    )
}

/// Flask's page for a route that does not exist (transcript 002).
const FLASK_NOT_FOUND: &str = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n";

fn timestamp(at: DateTime<Utc>) -> String {
    format!("{}Z", at.format("%Y-%m-%dT%H:%M:%S%.6f"))
}

/// Answers one Keystone request of provider `p`.
pub fn handle(sim: &Sim, p: usize, request: &Request) -> Reply {
    let mut world = sim.world();
    let provider = &mut world.providers[p];
    let segments = request.segments();
    match (&request.method, segments.as_slice()) {
        (&Method::GET, []) => versions(provider),
        (&Method::GET, ["v3"]) => Reply::json(200, &json!({"version": v3_version(provider)})),
        (&Method::POST, ["v3", "auth", "tokens"]) => issue_v3(provider, request),
        (&Method::GET, ["v3", "auth", "catalog"]) => {
            let token = request.header("X-Auth-Token").unwrap_or_default();
            match provider.validate(token) {
                Some(_) => Reply::json(
                    200,
                    &json!({"catalog": catalog_v3(provider),
                        "links": {"self": format!("{}/auth/catalog", provider.keystone_url)}}),
                ),
                None => unauthorized(&provider.keystone_url),
            }
        }
        (&Method::POST, ["v2.0", "tokens"]) if provider.config.identity_v2 => {
            issue_v2(provider, request)
        }
        (_, ["v2.0", ..]) => Reply::html(404, FLASK_NOT_FOUND),
        _ => not_found(),
    }
}

fn root_url(provider: &Provider) -> String {
    provider.keystone_url.trim_end_matches("/v3").to_owned()
}

fn v3_version(provider: &Provider) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/", provider.keystone_url)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
    })
}

fn versions(provider: &Provider) -> Reply {
    let mut values = vec![v3_version(provider)];
    if provider.config.identity_v2 {
        values.push(json!({
            "id": "v2.0",
            "status": "deprecated",
            "updated": "2016-08-04T00:00:00Z",
            "links": [{"rel": "self", "href": format!("{}/v2.0/", root_url(provider))}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v2.0+json"}]
        }));
    }
    Reply::json(300, &json!({"versions": {"values": values}}))
        .header("Location", format!("{}/", provider.keystone_url))
}

/// Finds a user by `{"id"}` or `{"name", "domain": {"id"|"name"}}`.
fn find_user(provider: &Provider, user: &Value) -> Option<usize> {
    provider
        .users
        .iter()
        .position(|u| matches_named(user, &u.id, &u.name, u))
}

fn matches_named(value: &Value, id: &str, name: &str, user: &User) -> bool {
    if let Some(wanted) = value.get("id").and_then(Value::as_str) {
        return wanted == id;
    }
    let Some(wanted) = value.get("name").and_then(Value::as_str) else {
        return false;
    };
    let domain = value.get("domain");
    let domain_ok = match domain {
        Some(d) => {
            d.get("id").and_then(Value::as_str) == Some(&user.domain_id)
                || d.get("name").and_then(Value::as_str) == Some(&user.domain_name)
        }
        None => false,
    };
    wanted == name && domain_ok
}

fn issue_v3(provider: &mut Provider, request: &Request) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return bad_request("Expecting to find valid JSON in request body.");
    };
    let identity = &body["auth"]["identity"];
    let Some(methods) = identity["methods"].as_array() else {
        return bad_request("'methods' is a required property");
    };
    let method = methods.first().and_then(Value::as_str).unwrap_or_default();
    let (user, app_credential) = match method {
        "password" => {
            let user = &identity["password"]["user"];
            let found = find_user(provider, user);
            let password = user["password"].as_str();
            match found {
                Some(i) if password == Some(provider.users[i].password.as_str()) => (i, None),
                _ => return unauthorized(&provider.keystone_url),
            }
        }
        "application_credential" => {
            let wanted = &identity["application_credential"];
            let secret = wanted["secret"].as_str();
            let found = provider.config.application_credentials.iter().find(|c| {
                let named = match wanted.get("id").and_then(Value::as_str) {
                    Some(id) => id == c.id,
                    None => wanted["name"].as_str() == Some(&c.name),
                };
                named && secret == Some(c.secret.as_str())
            });
            let user = found.and_then(|c| provider.users.iter().position(|u| u.name == c.user));
            match (found, user) {
                (Some(credential), Some(user)) => (user, Some(credential.clone())),
                _ => return unauthorized(&provider.keystone_url),
            }
        }
        _ => return unauthorized(&provider.keystone_url),
    };
    let scoped = if app_credential.is_some() {
        true
    } else {
        match body["auth"].get("scope").map(|s| &s["project"]) {
            Some(project) => {
                let u = &provider.users[user];
                if !matches_project(project, u) {
                    return unauthorized(&provider.keystone_url);
                }
                true
            }
            None => false,
        }
    };
    let (value, issued, expires) = provider.issue_token(user);
    let u = provider.users[user].clone();
    let mut token = json!({
        "methods": [method],
        "user": {"domain": {"id": u.domain_id, "name": u.domain_name}, "id": u.id, "name": u.name,
                 "password_expires_at": null},
        "audit_ids": [hex_id()[..22].to_owned()],
        "expires_at": timestamp(expires),
        "issued_at": timestamp(issued),
    });
    if scoped {
        token["project"] = json!({"domain": {"id": u.domain_id, "name": u.domain_name},
                                  "id": u.project_id, "name": u.project_name});
        token["is_domain"] = json!(false);
        token["roles"] = roles(&u);
        token["catalog"] = catalog_v3(provider);
    }
    if let Some(credential) = app_credential {
        token["application_credential"] =
            json!({"id": credential.id, "name": credential.name, "restricted": true});
    }
    Reply::json(201, &json!({"token": token})).header("X-Subject-Token", value)
}

fn matches_project(project: &Value, user: &User) -> bool {
    if let Some(id) = project.get("id").and_then(Value::as_str) {
        return id == user.project_id;
    }
    let name_ok = project["name"].as_str() == Some(&user.project_name);
    let domain = &project["domain"];
    let domain_ok = domain["id"].as_str() == Some(&user.domain_id)
        || domain["name"].as_str() == Some(&user.domain_name);
    name_ok && domain_ok
}

fn roles(user: &User) -> Value {
    let mut roles = vec![
        json!({"id": "9597c229fb1043e7be97c8f59ad1048d", "name": "member"}),
        json!({"id": "ca3c8052090643a0a81ce2b34548f52b", "name": "reader"}),
    ];
    if user.admin {
        roles.push(json!({"id": "6d6a5f5b3c1b4b2a9a5d3c2b1a0f9e8d", "name": "admin"}));
    }
    Value::Array(roles)
}

/// The provider's catalog in v3 shape: identity, compute and image for
/// every region, each with public, internal and admin interfaces.
fn catalog_v3(provider: &Provider) -> Value {
    let services = service_urls(provider);
    services
        .into_iter()
        .map(|(service_type, name, urls)| {
            let endpoints: Vec<Value> = urls
                .iter()
                .flat_map(|(region, url)| {
                    ["public", "internal", "admin"].map(|interface| {
                        json!({"id": hex_id(), "interface": interface, "region_id": region,
                               "url": url, "region": region})
                    })
                })
                .collect();
            json!({"endpoints": endpoints, "id": hex_id(), "type": service_type, "name": name})
        })
        .collect()
}

/// A catalog service: type, name, and (region, url) pairs.
type Service = (&'static str, &'static str, Vec<(String, String)>);

fn service_urls(provider: &Provider) -> Vec<Service> {
    let per_region = |suffix: &str| -> Vec<(String, String)> {
        provider
            .regions
            .iter()
            .map(|r| (r.config.name.clone(), format!("{}{suffix}", r.base_url)))
            .collect()
    };
    let identity = provider
        .regions
        .iter()
        .map(|r| (r.config.name.clone(), provider.keystone_url.clone()))
        .collect();
    vec![
        ("identity", "keystone", identity),
        ("compute", "nova", per_region("/compute/v2.1")),
        ("image", "glance", per_region("/image")),
    ]
}

fn issue_v2(provider: &mut Provider, request: &Request) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return bad_request("Expecting to find valid JSON in request body.");
    };
    let auth = &body["auth"];
    let credentials = &auth["passwordCredentials"];
    let found = provider.users.iter().position(|u| {
        credentials["username"].as_str() == Some(&u.name)
            && credentials["password"].as_str() == Some(&u.password)
    });
    let Some(user) = found else {
        return unauthorized(&root_url(provider));
    };
    let u = provider.users[user].clone();
    let tenant_ok = match (auth["tenantName"].as_str(), auth["tenantId"].as_str()) {
        (Some(name), _) => name == u.project_name,
        (None, Some(id)) => id == u.project_id,
        (None, None) => true,
    };
    if !tenant_ok {
        return unauthorized(&root_url(provider));
    }
    let (value, issued, expires) = provider.issue_token(user);
    let v2_time = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let catalog: Vec<Value> = service_urls(provider)
        .into_iter()
        .map(|(service_type, name, urls)| {
            let endpoints: Vec<Value> = urls
                .iter()
                .map(|(region, url)| {
                    json!({"adminURL": url, "region": region, "internalURL": url,
                           "id": hex_id(), "publicURL": url})
                })
                .collect();
            json!({"endpoints": endpoints, "endpoints_links": [], "type": service_type, "name": name})
        })
        .collect();
    Reply::json(
        200,
        &json!({"access": {
            "token": {"issued_at": v2_time(issued), "expires": v2_time(expires), "id": value,
                      "tenant": {"description": null, "enabled": true, "id": u.project_id, "name": u.project_name},
                      "audit_ids": [hex_id()[..22].to_owned()]},
            "serviceCatalog": catalog,
            "user": {"username": u.name, "roles_links": [], "id": u.id,
                     "roles": [{"name": "member"}], "name": u.name},
            "metadata": {"is_admin": 0, "roles": []}
        }}),
    )
}
