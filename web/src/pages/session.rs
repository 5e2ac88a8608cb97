//! Operator sessions: a random id in an HttpOnly, SameSite=Strict cookie,
//! a CSRF token per session, expiry. Signing in replaces the session id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

/// Name of the session cookie.
pub const COOKIE: &str = "oms_session";
/// How long a session lives without use.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// How long a sign-in form stays valid.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// One browser's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Cookie value.
    pub id: String,
    /// Token every form must carry.
    pub csrf: String,
    /// Signed in as this admin token's name.
    pub admin: Option<String>,
    expires: Instant,
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Every live session.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session named by the cookie header, if live; its expiry slides.
    pub fn find(&self, cookie_header: Option<&str>) -> Option<Session> {
        let id = cookie_header?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value.to_owned())?;
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, s| s.expires > now);
        let session = map.get_mut(&id)?;
        if session.admin.is_some() {
            session.expires = now + IDLE;
        }
        Some(session.clone())
    }

    /// A new anonymous session (for the sign-in form); short-lived, and
    /// expired ones are dropped first so unauthenticated visitors cannot
    /// grow the table for long.
    pub fn start(&self) -> Session {
        let now = Instant::now();
        let session = Session {
            id: random(),
            csrf: random(),
            admin: None,
            expires: now + SIGN_IN_WINDOW,
        };
        let mut map = self.map();
        map.retain(|_, s| s.expires > now);
        map.insert(session.id.clone(), session.clone());
        session
    }

    /// Signs in: the old id is dropped and a new one issued.
    pub fn sign_in(&self, old: &Session, admin: String) -> Session {
        let mut map = self.map();
        map.remove(&old.id);
        let session = Session {
            id: random(),
            csrf: random(),
            admin: Some(admin),
            expires: Instant::now() + IDLE,
        };
        map.insert(session.id.clone(), session.clone());
        session
    }

    /// Ends a session.
    pub fn end(&self, session: &Session) {
        self.map().remove(&session.id);
    }
}

impl Session {
    /// Whether `token` is this session's CSRF token.
    pub fn csrf_ok(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| bool::from(t.as_bytes().ct_eq(self.csrf.as_bytes())))
    }

    /// The `Set-Cookie` value for this session.
    pub fn cookie(&self, secure: bool) -> String {
        let secure = if secure { "; Secure" } else { "" };
        format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            self.id,
            IDLE.as_secs()
        )
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}
