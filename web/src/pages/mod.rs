//! Operator pages: server-rendered handlebars, embedded in the binary.
//! Every page but the sign-in form needs an admin session; every form
//! carries the session's CSRF token; every value is escaped by `{{x}}`.

mod accounts;
mod charts;
mod instances;
mod overview;
mod regions;
pub mod session;

use std::sync::LazyLock;

use bytes::Bytes;
use handlebars::Handlebars;
use oms_actors::model::Role;
use rust_embed::RustEmbed;
use serde_json::{Value, json};
use warp::http::{HeaderMap, Method, StatusCode};

use crate::Api;
use crate::auth::authenticate;
use session::Session;

#[derive(RustEmbed)]
#[folder = "../templates"]
struct Templates;

static PAGES: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(false);
    registry.register_helper("when", Box::new(when));
    registry
        .register_embed_templates_with_extension::<Templates>(".hbs")
        .expect("embedded templates are valid");
    registry
});

/// A page request.
pub(crate) struct Page<'a> {
    pub api: &'a Api,
    pub method: Method,
    pub segments: Vec<&'a str>,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub session: Option<Session>,
    pub secure: bool,
}

impl Page<'_> {
    /// A query or form field.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A form field.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether only the live part is asked for (self-refresh).
    pub fn fragment(&self) -> bool {
        self.query("fragment") == Some("1")
    }

    fn csrf(&self) -> String {
        self.session
            .as_ref()
            .map(|s| s.csrf.clone())
            .unwrap_or_default()
    }
}

/// `{{when at}}`: an RFC 3339 time as people read it ("4 min ago", "in
/// 2 h", a date when older than a day), the exact UTC time on hover and
/// in `datetime`. Anything else is `-`: what is written is always ours.
fn when(
    helper: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let at = helper
        .param(0)
        .and_then(|p| p.value().as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    match at {
        Some(at) => out.write(&time_element(
            at.with_timezone(&chrono::Utc),
            chrono::Utc::now(),
        ))?,
        None => out.write("-")?,
    }
    Ok(())
}

/// A `<time>` saying `at` relative to `now`.
pub(crate) fn time_element(
    at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let iso = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let seconds = (now - at).num_seconds();
    let (ago, n) = (seconds >= 0, seconds.unsigned_abs());
    let span = match n {
        0..=59 => format!("{n} s"),
        60..=3_599 => format!("{} min", n / 60),
        3_600..=86_399 => format!("{} h {} min", n / 3600, n % 3600 / 60),
        _ => String::new(),
    };
    let text = if span.is_empty() {
        at.format("%Y-%m-%d %H:%M").to_string()
    } else if ago {
        format!("{span} ago")
    } else {
        format!("in {span}")
    };
    format!("<time datetime=\"{iso}\" title=\"{iso}\">{text}</time>")
}

/// Renders `template` in the layout with `data` plus the session's fields.
pub(crate) fn render(page: &Page<'_>, template: &str, mut data: Value) -> warp::reply::Response {
    if let Some(map) = data.as_object_mut() {
        map.insert("csrf".into(), json!(page.csrf()));
        let admin = page.session.as_ref().and_then(|s| s.admin.as_ref());
        map.insert("signed_in".into(), json!(admin.is_some()));
        map.insert("signed_in_as".into(), json!(admin.map(|a| &a.name)));
        map.insert("refresh_ms".into(), json!(3000));
        // Forms post here, where sessions live; on a follower the store
        // refuses writes: say where they are made.
        if let Some(cluster) = page.api.fleet.cluster()
            && !cluster.leads()
        {
            map.insert("follower".into(), json!(true));
            map.insert("leader_url".into(), json!(cluster.leader_url()));
        }
    }
    match PAGES.render(template, &data) {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(error) => {
            tracing::error!(%error, template, "page could not be rendered");
            html_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "page could not be rendered".into(),
            )
        }
    }
}

/// A message page with a status (refusals, missing things).
pub(crate) fn message(
    page: &Page<'_>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> warp::reply::Response {
    let mut response = render(page, "message", json!({"title": title, "message": text}));
    *response.status_mut() = status;
    response
}

/// Scripts and styles only from our own static files: no inline script,
/// no inline style, no framing, forms only to ourselves.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

fn html_response(status: StatusCode, html: String) -> warp::reply::Response {
    let mut response = warp::reply::Response::new(html.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        "Cache-Control",
        warp::http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        "Content-Security-Policy",
        warp::http::HeaderValue::from_static(PAGE_POLICY),
    );
    response
}

/// A 303 to `location`, optionally setting a cookie.
pub(crate) fn redirect(location: &str, cookie: Option<String>) -> warp::reply::Response {
    let mut response = warp::reply::Response::new(Vec::<u8>::new().into());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = warp::http::HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(warp::http::header::LOCATION, value);
    }
    if let Some(cookie) = cookie.and_then(|c| warp::http::HeaderValue::from_str(&c).ok()) {
        response
            .headers_mut()
            .insert(warp::http::header::SET_COOKIE, cookie);
    }
    response
}

fn static_file(name: &str) -> Option<warp::reply::Response> {
    let file = Templates::get(&format!("static/{name}"))?;
    let content_type = if name.ends_with(".css") {
        "text/css; charset=utf-8"
    } else if name.ends_with(".js") {
        "text/javascript; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let mut response = warp::reply::Response::new(file.data.into_owned().into());
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static(content_type),
    );
    Some(response)
}

fn decode(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Answers a page request; `None` if `path` is not a page.
pub(crate) async fn dispatch(
    api: &Api,
    method: Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<warp::reply::Response> {
    // HEAD is GET without the body (hyper leaves the body out).
    let method = if method == Method::HEAD {
        Method::GET
    } else {
        method
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let ["static", name] = segments.as_slice() {
        return static_file(name);
    }
    let known = matches!(
        segments.first().copied(),
        None | Some("login" | "logout" | "instances" | "accounts" | "tokens" | "regions")
    );
    if !known {
        return None;
    }
    let cookie = headers
        .get(warp::http::header::COOKIE)
        .and_then(|v| v.to_str().ok());
    let forwarded_https = headers
        .get("X-Forwarded-Proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let form = if method == Method::POST {
        decode(&String::from_utf8_lossy(body))
    } else {
        Vec::new()
    };
    let mut page = Page {
        api,
        method,
        segments,
        query: decode(query),
        form,
        session: api
            .sessions
            .find(cookie, |id| api.fleet.token_live(id).unwrap_or(false)),
        secure: forwarded_https || api.config.secure_cookies == crate::SecureCookies::Always,
    };
    Some(route(&mut page).await)
}

async fn route(page: &mut Page<'_>) -> warp::reply::Response {
    if page.segments.first() == Some(&"login") {
        return login(page).await;
    }
    let signed_in = page.session.as_ref().is_some_and(|s| s.admin.is_some());
    if !signed_in {
        return redirect("/login", None);
    }
    if page.method == Method::POST
        && !page
            .session
            .as_ref()
            .is_some_and(|s| s.csrf_ok(page.field("csrf")))
    {
        return message(
            page,
            StatusCode::FORBIDDEN,
            "Refused",
            "The form's security token is missing or stale; reload the page and try again.",
        );
    }
    let segments = page.segments.clone();
    match (page.method.clone(), segments.as_slice()) {
        (Method::POST, ["logout"]) => {
            if let Some(session) = &page.session {
                page.api.sessions.end(session);
            }
            redirect("/login", Some(session::clear_cookie()))
        }
        (Method::GET, []) => overview::dashboard(page),
        (Method::GET, ["instances"]) => instances::list(page),
        (Method::GET, ["instances", id]) => instances::show(page, id),
        (Method::POST, ["instances", id, "delete"]) => instances::delete(page, id).await,
        (Method::GET, ["regions", account, region]) => regions::show(page, account, region),
        (Method::GET, ["accounts"]) => accounts::list(page),
        (Method::GET, ["accounts", "new"]) => {
            accounts::form(page, json!({"domain": "Default"}), None, json!({}))
        }
        (Method::POST, ["accounts", "new"]) => accounts::create(page).await,
        (Method::GET, ["accounts", id, "edit"]) => accounts::edit_form(page, id, None),
        (Method::POST, ["accounts", id, "edit"]) => accounts::edit(page, id).await,
        (Method::POST, ["accounts", id, action]) => accounts::act(page, id, action).await,
        (Method::GET, ["tokens"]) => overview::tokens(page, None, None),
        (Method::POST, ["tokens"]) => overview::create_token(page).await,
        (Method::POST, ["tokens", id, "revoke"]) => overview::revoke_token(page, id).await,
        _ => message(
            page,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such page.",
        ),
    }
}

async fn login(page: &mut Page<'_>) -> warp::reply::Response {
    if page.method == Method::GET {
        if page.session.as_ref().is_some_and(|s| s.admin.is_some()) {
            return redirect("/", None);
        }
        let session = match &page.session {
            Some(session) => session.clone(),
            None => page.api.sessions.start(),
        };
        let cookie = session.cookie(page.secure);
        page.session = Some(session);
        let mut response = render(page, "login", json!({"title": "Sign in"}));
        if let Ok(value) = warp::http::HeaderValue::from_str(&cookie) {
            response
                .headers_mut()
                .insert(warp::http::header::SET_COOKIE, value);
        }
        return response;
    }
    let Some(session) = page
        .session
        .clone()
        .filter(|s| s.csrf_ok(page.field("csrf")))
    else {
        return message(
            page,
            StatusCode::FORBIDDEN,
            "Refused",
            "The sign-in form expired; reload it and try again.",
        );
    };
    let token = page.field("token").unwrap_or_default().trim().to_owned();
    let header = format!("Bearer {token}");
    match authenticate(&page.api.fleet, Some(&header)) {
        Ok(principal) if principal.role == Role::Admin => {
            let signed = page.api.sessions.sign_in(
                &session,
                session::SignedIn {
                    token_id: principal.token_id,
                    name: principal.name,
                },
            );
            redirect("/", Some(signed.cookie(page.secure)))
        }
        _ => {
            let mut response = render(
                page,
                "login",
                json!({"title": "Sign in", "error": "That is not a valid admin token."}),
            );
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_say_them_with_the_exact_time_on_hover() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let at = |secs: i64| time_element(now - chrono::Duration::seconds(secs), now);
        assert!(at(5).contains(">5 s ago<"), "{}", at(5));
        assert!(at(240).contains(">4 min ago<"));
        assert!(at(3 * 3600 + 120).contains(">3 h 2 min ago<"));
        assert!(at(-600).contains(">in 10 min<"));
        assert!(at(3 * 86_400).contains(">2026-11-30 12:00<"));
        assert!(at(5).contains("title=\"2026-12-03T11:59:55Z\""));
        let rendered = PAGES
            .render_template(
                "{{when a}} {{when b}}",
                &json!({"a": "<script>", "b": null}),
            )
            .unwrap();
        assert_eq!(rendered, "- -");
    }
}
