//! Operator sessions: a random id in an HttpOnly, SameSite=Strict cookie,
//! a CSRF token per session, expiry. Signing in replaces the session id.
//! A session is bound to the admin token it signed in with: revoking the
//! token ends it at the next request, and it ends anyway `ABSOLUTE` after
//! sign-in however busy it is.

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
/// How long a session lives at most, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Most sign-in forms open at once: visitors without a token cannot grow
/// the table past this; the oldest form is dropped first.
pub const MAX_ANONYMOUS: usize = 10_000;
/// How long a sign-in form stays valid.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// One browser's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Cookie value.
    pub id: String,
    /// Token every form must carry.
    pub csrf: String,
    /// The admin token this session signed in with.
    pub admin: Option<SignedIn>,
    expires: Instant,
    /// The end of the absolute lifetime, for signed-in sessions.
    ends: Option<Instant>,
    /// A secret whose connection test passed, held so registering the
    /// account needs no retyping.
    held: Option<Held>,
}

/// A tested secret: usable once, for the account it was tested with, by
/// the session that tested it, within `HOLD`.
#[derive(Debug, Clone)]
struct Held {
    /// Keystone URL, user, project, credential: where the secret may go.
    account: String,
    secret: secrecy::SecretString,
    until: Instant,
}

/// How long a tested secret is held for the registration that follows.
pub const HOLD: Duration = Duration::from_secs(10 * 60);

/// Who a session signed in as.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The token's id: the session lives while the token does.
    pub token_id: String,
    /// The token's name.
    pub name: String,
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

    /// The session named by the cookie header, if live and its token
    /// (`token_live`) still is; its idle expiry slides up to the absolute
    /// end.
    pub fn find(
        &self,
        cookie_header: Option<&str>,
        token_live: impl Fn(&str) -> bool,
    ) -> Option<Session> {
        let id = cookie_header?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value.to_owned())?;
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, s| s.expires > now);
        let session = map.get_mut(&id)?;
        if let Some(admin) = &session.admin {
            if !token_live(&admin.token_id) {
                map.remove(&id);
                return None;
            }
            session.expires = (now + IDLE).min(session.ends.unwrap_or(now));
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
            ends: None,
            held: None,
        };
        let mut map = self.map();
        map.retain(|_, s| s.expires > now);
        let anonymous = map.values().filter(|s| s.admin.is_none()).count();
        if anonymous >= MAX_ANONYMOUS
            && let Some(oldest) = map
                .values()
                .filter(|s| s.admin.is_none())
                .min_by_key(|s| s.expires)
                .map(|s| s.id.clone())
        {
            map.remove(&oldest);
        }
        map.insert(session.id.clone(), session.clone());
        session
    }

    /// Signs in: the old id is dropped and a new one issued.
    pub fn sign_in(&self, old: &Session, admin: SignedIn) -> Session {
        let mut map = self.map();
        map.remove(&old.id);
        let now = Instant::now();
        let session = Session {
            id: random(),
            csrf: random(),
            admin: Some(admin),
            expires: now + IDLE,
            ends: Some(now + ABSOLUTE),
            held: None,
        };
        map.insert(session.id.clone(), session.clone());
        session
    }

    /// Ends a session.
    pub fn end(&self, session: &Session) {
        self.map().remove(&session.id);
    }

    /// Holds `secret`, tested against `account` (its Keystone URL and who
    /// it is), for this session's next registration; replaces any other.
    pub fn hold(&self, session: &Session, account: String, secret: secrecy::SecretString) {
        if let Some(live) = self.map().get_mut(&session.id) {
            live.held = Some(Held {
                account,
                secret,
                until: Instant::now() + HOLD,
            });
        }
    }

    /// The held secret, once, if it was tested against this very account
    /// (a secret never goes to a Keystone it was not tested with).
    pub fn take_held(&self, session: &Session, account: &str) -> Option<secrecy::SecretString> {
        let mut map = self.map();
        let live = map.get_mut(&session.id)?;
        let held = live.held.take()?;
        (held.account == account && held.until > Instant::now()).then_some(held.secret)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_in(sessions: &Sessions) -> (Session, String) {
        let anonymous = sessions.start();
        let session = sessions.sign_in(
            &anonymous,
            SignedIn {
                token_id: "t1".into(),
                name: "root".into(),
            },
        );
        let cookie = format!("{COOKIE}={}", session.id);
        (session, cookie)
    }

    #[tokio::test]
    async fn revoking_the_token_ends_the_session() {
        let sessions = Sessions::default();
        let (_, cookie) = signed_in(&sessions);
        assert!(sessions.find(Some(&cookie), |id| id == "t1").is_some());
        assert!(sessions.find(Some(&cookie), |_| false).is_none());
        // Gone for good, even if the check would pass again.
        assert!(sessions.find(Some(&cookie), |_| true).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn use_does_not_extend_a_session_past_its_absolute_end() {
        let sessions = Sessions::default();
        let (_, cookie) = signed_in(&sessions);
        let step = IDLE / 2;
        let mut waited = Duration::ZERO;
        while waited + step < ABSOLUTE {
            tokio::time::advance(step).await;
            waited += step;
            assert!(
                sessions.find(Some(&cookie), |_| true).is_some(),
                "{waited:?}"
            );
        }
        tokio::time::advance(ABSOLUTE - waited + Duration::from_secs(1)).await;
        assert!(sessions.find(Some(&cookie), |_| true).is_none());
    }

    #[tokio::test]
    async fn sign_in_forms_cannot_grow_the_table_without_bound() {
        let sessions = Sessions::default();
        let (_, cookie) = signed_in(&sessions);
        let first = sessions.start();
        for _ in 0..MAX_ANONYMOUS + 10 {
            sessions.start();
        }
        assert_eq!(sessions.map().len(), MAX_ANONYMOUS + 1);
        let first_cookie = format!("{COOKIE}={}", first.id);
        assert!(
            sessions.find(Some(&first_cookie), |_| true).is_none(),
            "the oldest form went first"
        );
        assert!(
            sessions.find(Some(&cookie), |_| true).is_some(),
            "signed-in sessions stay"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_secret_is_given_once_and_only_for_its_account() {
        use secrecy::ExposeSecret as _;
        let sessions = Sessions::default();
        let (session, _) = signed_in(&sessions);
        let other = sessions.start();
        sessions.hold(&session, "https://k/v3|u|p".into(), "pw".into());
        assert!(sessions.take_held(&other, "https://k/v3|u|p").is_none());
        assert!(
            sessions
                .take_held(&session, "https://evil/v3|u|p")
                .is_none(),
            "another Keystone"
        );
        // Asked for the wrong account, it is gone: a guess does not get
        // a second try.
        assert!(sessions.take_held(&session, "https://k/v3|u|p").is_none());
        sessions.hold(&session, "https://k/v3|u|p".into(), "pw".into());
        let secret = sessions.take_held(&session, "https://k/v3|u|p").unwrap();
        assert_eq!(secret.expose_secret(), "pw");
        assert!(
            sessions.take_held(&session, "https://k/v3|u|p").is_none(),
            "once"
        );
        sessions.hold(&session, "a".into(), "pw".into());
        tokio::time::advance(HOLD + Duration::from_secs(1)).await;
        assert!(sessions.take_held(&session, "a").is_none(), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_expires() {
        let sessions = Sessions::default();
        let (_, cookie) = signed_in(&sessions);
        tokio::time::advance(IDLE + Duration::from_secs(1)).await;
        assert!(sessions.find(Some(&cookie), |_| true).is_none());
    }
}
