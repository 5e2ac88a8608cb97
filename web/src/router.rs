//! The route table and the dispatcher. The table is the single source of
//! truth: requests are matched against it and the OpenAPI document is
//! generated from it.

use bytes::Bytes;
use warp::http::{HeaderMap, Method, StatusCode};

use crate::auth::{Principal, authenticate};
use crate::error::ApiError;
use crate::{Api, accounts, instances, openapi, profiles, regions, tokens, views};
use oms_actors::cluster_view::ClusterStatus;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// Any valid token.
    Client,
    /// Admin tokens only.
    Admin,
}

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Liveness.
    Healthz,
    /// Readiness.
    Readyz,
    /// The OpenAPI document.
    OpenApi,
    /// Prometheus metrics.
    Metrics,
    /// Launch instances.
    LaunchInstances,
    /// List instances.
    ListInstances,
    /// One instance with its events.
    GetInstance,
    /// Delete an instance.
    DeleteInstance,
    /// List accounts.
    ListAccounts,
    /// Register an account.
    CreateAccount,
    /// One account.
    GetAccount,
    /// Change an account.
    PatchAccount,
    /// Remove an account.
    DeleteAccount,
    /// Every account-region's health.
    ListRegions,
    /// List profiles.
    ListProfiles,
    /// One profile.
    GetProfile,
    /// Create a profile.
    CreateProfile,
    /// Create or replace a profile by name.
    PutProfile,
    /// Delete a profile.
    DeleteProfile,
    /// List tokens.
    ListTokens,
    /// Create a token.
    CreateToken,
    /// Revoke a token.
    RevokeToken,
    /// The cluster's members and leader.
    ClusterStatus,
}

/// A schema of a body or an answer, generated from the type the handler
/// uses, so the document cannot drift from the code.
pub type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// The schema of `T` (a reference into the document's components).
pub fn schema<T: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    generator.subschema_for::<T>()
}

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Its schema.
    pub schema: SchemaFn,
}

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path with `{param}` segments.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What it does.
    pub op: Op,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Success status.
    pub success: u16,
    /// The request body, for routes that take one.
    pub body: Option<SchemaFn>,
    /// The success answer, for routes that answer JSON.
    pub answer: Option<SchemaFn>,
    /// Query parameters.
    pub query: &'static [Param],
    /// Statuses this route answers besides the ones every route of its
    /// kind does (see `openapi`), with why.
    pub also: &'static [(u16, &'static str)],
}

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    op: Op,
    success: u16,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        access,
        op,
        summary,
        success,
        body: None,
        answer: None,
        query: &[],
        also: &[],
    }
}

impl Route {
    const fn body(mut self, body: SchemaFn) -> Route {
        self.body = Some(body);
        self
    }

    const fn answer(mut self, answer: SchemaFn) -> Route {
        self.answer = Some(answer);
        self
    }

    const fn query(mut self, query: &'static [Param]) -> Route {
        self.query = query;
        self
    }

    const fn also(mut self, also: &'static [(u16, &'static str)]) -> Route {
        self.also = also;
        self
    }
}

const CONFLICT: (u16, &str) = (409, "conflicts with the current state");
const UNAVAILABLE: (u16, &str) = (503, "the actor tree is not running");

/// Filters and pagination of `GET /v1/instances`.
const INSTANCE_QUERY: &[Param] = &[
    Param {
        name: "status",
        description: "Only instances in these states, comma-separated (`active,building`).",
        schema: schema::<String>,
    },
    Param {
        name: "request",
        description: "Only the instances of this launch request.",
        schema: schema::<String>,
    },
    Param {
        name: "provider",
        description: "Only instances on the account of this name.",
        schema: schema::<String>,
    },
    Param {
        name: "region",
        description: "Only instances in this region.",
        schema: schema::<String>,
    },
    Param {
        name: "profile",
        description: "Only instances of this profile.",
        schema: schema::<String>,
    },
    Param {
        name: "name",
        description: "Only instances whose name contains this.",
        schema: schema::<String>,
    },
    Param {
        name: "client",
        description: "Only this client's instances (admins; clients see only their own).",
        schema: schema::<String>,
    },
    Param {
        name: "limit",
        description: "Page size, 1 to the configured largest page (500 by default); 50 when absent.",
        schema: page_size,
    },
    Param {
        name: "cursor",
        description: "`next_cursor` of the previous page.",
        schema: schema::<String>,
    },
];

fn page_size(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "integer", "minimum": 1})
}

/// Every route the API answers.
pub const ROUTES: &[Route] = &[
    route(
        "GET",
        "/healthz",
        Access::Public,
        Op::Healthz,
        200,
        "The process is up.",
    )
    .answer(schema::<views::Health>),
    route(
        "GET",
        "/readyz",
        Access::Public,
        Op::Readyz,
        200,
        "The store is open and the actor tree runs.",
    )
    .answer(schema::<views::Health>)
    .also(&[UNAVAILABLE]),
    route(
        "GET",
        "/metrics",
        Access::Public,
        Op::Metrics,
        200,
        "Prometheus metrics: OpenMetrics when the Accept header asks for it (Prometheus does), the classic text format otherwise.",
    ),
    route(
        "GET",
        "/v1/openapi.json",
        Access::Public,
        Op::OpenApi,
        200,
        "This document.",
    )
    .answer(schema::<serde_json::Value>),
    route(
        "POST",
        "/v1/instances",
        Access::Client,
        Op::LaunchInstances,
        202,
        "Launch instances of a profile.",
    )
    .body(schema::<crate::instances::LaunchBody>)
    .answer(schema::<views::Launched<'static>>)
    .also(&[(409, "the Idempotency-Key was used with another body, or the client's instance limit is reached"), UNAVAILABLE]),
    route(
        "GET",
        "/v1/instances",
        Access::Client,
        Op::ListInstances,
        200,
        "List instances (own ones for clients), filtered and paginated.",
    )
    .answer(schema::<views::InstancePage<'static>>)
    .query(INSTANCE_QUERY),
    route(
        "GET",
        "/v1/instances/{id}",
        Access::Client,
        Op::GetInstance,
        200,
        "One instance with its event timeline.",
    )
    .answer(schema::<views::InstanceDetail<'static>>),
    route(
        "DELETE",
        "/v1/instances/{id}",
        Access::Client,
        Op::DeleteInstance,
        202,
        "Delete an instance.",
    )
    .answer(schema::<views::InstanceView<'static>>)
    .also(&[UNAVAILABLE]),
    route(
        "GET",
        "/v1/accounts",
        Access::Admin,
        Op::ListAccounts,
        200,
        "List provider accounts (secrets never shown).",
    )
    .answer(schema::<views::Accounts<'static>>),
    route(
        "POST",
        "/v1/accounts",
        Access::Admin,
        Op::CreateAccount,
        201,
        "Register a provider account, optionally testing the connection first.",
    )
    .body(schema::<crate::accounts::CreateBody>)
    .answer(schema::<views::AccountView<'static>>)
    .also(&[(200, "checked, not registered (`dry_run`)"), (409, "an account of that name, or on that project, exists")]),
    route(
        "GET",
        "/v1/accounts/{id}",
        Access::Admin,
        Op::GetAccount,
        200,
        "One account.",
    )
    .answer(schema::<views::AccountView<'static>>),
    route(
        "PATCH",
        "/v1/accounts/{id}",
        Access::Admin,
        Op::PatchAccount,
        200,
        "Change an account (enabled, drain, priority, limits, secret, ...).",
    )
    .body(schema::<crate::accounts::PatchBody>)
    .answer(schema::<views::AccountView<'static>>)
    .also(&[CONFLICT]),
    route(
        "DELETE",
        "/v1/accounts/{id}",
        Access::Admin,
        Op::DeleteAccount,
        204,
        "Remove an account that holds no instances.",
    )
    .also(&[(409, "the account still holds instances")]),
    route(
        "GET",
        "/v1/regions",
        Access::Client,
        Op::ListRegions,
        200,
        "Every account-region: health, breaker, limits, usage, in flight, latency, last error.",
    )
    .answer(schema::<views::Regions<'static>>),
    route(
        "GET",
        "/v1/profiles",
        Access::Client,
        Op::ListProfiles,
        200,
        "List profiles.",
    )
    .answer(schema::<views::Profiles>),
    route(
        "POST",
        "/v1/profiles",
        Access::Admin,
        Op::CreateProfile,
        201,
        "Create a profile (a name that exists is a conflict: PUT replaces).",
    )
    .body(schema::<crate::profiles::ProfileBody>)
    .answer(schema::<oms_actors::model::Profile>)
    .also(&[(409, "a profile of that name exists")]),
    route(
        "GET",
        "/v1/profiles/{name}",
        Access::Client,
        Op::GetProfile,
        200,
        "One profile.",
    )
    .answer(schema::<oms_actors::model::Profile>),
    route(
        "PUT",
        "/v1/profiles/{name}",
        Access::Admin,
        Op::PutProfile,
        200,
        "Create or replace a profile (201 when it is new).",
    )
    .body(schema::<crate::profiles::ProfileBody>)
    .answer(schema::<oms_actors::model::Profile>)
    .also(&[(201, "created")]),
    route(
        "DELETE",
        "/v1/profiles/{name}",
        Access::Admin,
        Op::DeleteProfile,
        204,
        "Delete a profile no unfinished instance uses.",
    )
    .also(&[(409, "unfinished instances use the profile")]),
    route(
        "GET",
        "/v1/tokens",
        Access::Admin,
        Op::ListTokens,
        200,
        "List API tokens (values never shown).",
    )
    .answer(schema::<views::Tokens<'static>>),
    route(
        "POST",
        "/v1/tokens",
        Access::Admin,
        Op::CreateToken,
        201,
        "Create an API token; its value is shown once.",
    )
    .body(schema::<crate::tokens::TokenBody>)
    .answer(schema::<views::TokenView<'static>>)
    .also(&[(409, "the name belongs to another token")]),
    route(
        "DELETE",
        "/v1/tokens/{id}",
        Access::Admin,
        Op::RevokeToken,
        204,
        "Revoke a token.",
    ),
    route(
        "GET",
        "/v1/cluster",
        Access::Admin,
        Op::ClusterStatus,
        200,
        "The cluster's members, its leader and the leader's lease (etcd store only).",
    )
    .answer(schema::<ClusterStatus>)
    .also(&[(404, "this daemon runs alone (sled store)"), (503, "etcd cannot be read")]),
];

/// A request matched to its route.
pub(crate) struct Call<'a> {
    pub api: Api,
    pub principal: Option<Principal>,
    pub params: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

impl Call<'_> {
    /// The authenticated caller (routes that are not public have one).
    pub fn principal(&self) -> &Principal {
        self.principal.as_ref().expect("authenticated route")
    }

    /// A query parameter.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn matches(template: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut wanted = template.split('/');
    let mut given = path.trim_end_matches('/').split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => params.push(g.to_owned()),
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

fn decode_query(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Longest id a path may carry: longer ones are refused before any
/// lookup, and never echoed back.
pub const MAX_ID: usize = 64;

/// A 204 to `OPTIONS`, saying which methods the path takes.
fn options(allowed: &str) -> warp::reply::Response {
    let mut response = crate::no_content();
    if let Ok(value) = warp::http::HeaderValue::from_str(allowed) {
        response
            .headers_mut()
            .insert(warp::http::header::ALLOW, value);
    }
    response
}

/// Matches, authenticates, authorizes, rate-limits and runs a request.
pub(crate) async fn dispatch(
    api: Api,
    method: Method,
    path: &str,
    query: &str,
    headers: HeaderMap,
    body: Bytes,
) -> warp::reply::Response {
    let started = std::time::Instant::now();
    if let Some(response) =
        crate::forward::to_leader(&api, &method, path, query, &headers, &body).await
    {
        api.metrics
            .request("forwarded", method.as_str(), response.status().as_u16());
        return response;
    }
    let mut response = answer(api.clone(), method, path, query, &headers, body, started).await;
    crate::forward::mark_revision(&api, &headers, &mut response);
    response
}

/// Answers a request this daemon answers itself.
async fn answer(
    api: Api,
    method: Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
    started: std::time::Instant,
) -> warp::reply::Response {
    if let Some(response) =
        crate::facade::dispatch(&api, &method, path, query, headers, &body).await
    {
        return response;
    }
    if !path.starts_with("/v1/")
        && let Some(response) =
            crate::pages::dispatch(&api, method.clone(), path, query, headers, &body).await
    {
        return response;
    }
    let candidates: Vec<(&Route, Vec<String>)> = ROUTES
        .iter()
        .filter_map(|r| matches(r.path, path).map(|p| (r, p)))
        .collect();
    // HEAD is GET without the body (hyper leaves the body out).
    let wanted = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let found = candidates.iter().find(|(r, _)| r.method == wanted);
    let route_label = found.map_or("unmatched", |(r, _)| r.path);
    let metrics = api.metrics.clone();
    let allowed = || {
        let mut methods: Vec<&str> = candidates.iter().map(|(r, _)| r.method).collect();
        if methods.contains(&"GET") {
            methods.push("HEAD");
        }
        methods.push("OPTIONS");
        methods.join(", ")
    };
    let result = match found {
        None if candidates.is_empty() => Err(ApiError::not_found("no such route")),
        None if method == Method::OPTIONS => Ok(options(&allowed())),
        None => Err(ApiError::method_not_allowed(&allowed())),
        Some((_, params)) if params.iter().any(|p| p.len() > MAX_ID) => Err(ApiError::not_found(
            format!("no such id (ids are at most {MAX_ID} characters)"),
        )),
        Some((route, params)) => run(api, route, params.clone(), query, headers, body).await,
    };
    let response = result.unwrap_or_else(ApiError::into_response);
    metrics.request(route_label, method.as_str(), response.status().as_u16());
    tracing::debug!(%method, path, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "api request");
    response
}

async fn run(
    api: Api,
    route: &Route,
    params: Vec<String>,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let principal = match route.access {
        Access::Public => None,
        Access::Client | Access::Admin => {
            // Two credentials are ambiguous: refuse rather than pick one.
            let mut given = headers.get_all(warp::http::header::AUTHORIZATION).iter();
            let header = given.next().and_then(|v| v.to_str().ok());
            if given.next().is_some() {
                return Err(ApiError::bad_request("more than one Authorization header"));
            }
            let principal = authenticate(&api.fleet, header)?;
            if route.access == Access::Admin && !principal.is_admin() {
                return Err(ApiError::forbidden("this route needs an admin token"));
            }
            api.limiter.check(&principal)?;
            Some(principal)
        }
    };
    let call = Call {
        api,
        principal,
        params,
        query: decode_query(query),
        headers,
        body,
    };
    match route.op {
        Op::Healthz => Ok(crate::json_response(
            StatusCode::OK,
            &crate::views::Health { status: "ok" },
        )),
        Op::Readyz => regions::ready(&call).await,
        Op::OpenApi => Ok(crate::json_response(StatusCode::OK, openapi::document())),
        Op::Metrics => {
            let text = call.api.metrics.render(&call.api.fleet);
            let accept = call
                .headers
                .get(warp::http::header::ACCEPT)
                .and_then(|a| a.to_str().ok());
            let (text, kind) = if crate::metrics::wants_openmetrics(accept) {
                (text, crate::metrics::OPENMETRICS)
            } else {
                (crate::metrics::to_text_format(&text), crate::metrics::TEXT)
            };
            let mut response = warp::reply::Response::new(text.into());
            response.headers_mut().insert(
                warp::http::header::CONTENT_TYPE,
                warp::http::HeaderValue::from_static(kind),
            );
            response.headers_mut().insert(
                warp::http::header::VARY,
                warp::http::HeaderValue::from_static("Accept"),
            );
            Ok(response)
        }
        Op::LaunchInstances => instances::launch(&call).await,
        Op::ListInstances => instances::list(&call),
        Op::GetInstance => instances::get(&call),
        Op::DeleteInstance => instances::delete(&call).await,
        Op::ListAccounts => accounts::list(&call),
        Op::CreateAccount => accounts::create(&call).await,
        Op::GetAccount => accounts::get(&call),
        Op::PatchAccount => accounts::patch(&call).await,
        Op::DeleteAccount => accounts::delete(&call).await,
        Op::ListRegions => regions::list(&call),
        Op::ListProfiles => profiles::list(&call),
        Op::GetProfile => profiles::get(&call),
        Op::CreateProfile => profiles::create(&call).await,
        Op::PutProfile => profiles::put(&call).await,
        Op::DeleteProfile => profiles::delete(&call).await,
        Op::ListTokens => tokens::list(&call),
        Op::CreateToken => tokens::create(&call).await,
        Op::RevokeToken => tokens::revoke(&call).await,
        Op::ClusterStatus => crate::cluster::status(&call).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_with_params() {
        assert_eq!(
            matches("/v1/instances/{id}", "/v1/instances/abc"),
            Some(vec!["abc".into()])
        );
        assert_eq!(matches("/v1/instances", "/v1/instances/"), Some(vec![]));
        assert_eq!(matches("/v1/instances/{id}", "/v1/instances/"), None);
        assert_eq!(matches("/v1/instances", "/v1/instancesx"), None);
    }

    #[test]
    fn every_method_and_path_pair_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method,
                    a.path
                );
            }
        }
    }
}
