//! Portal sessions: an opaque random token in an HttpOnly, SameSite=Lax cookie
//! (Secure behind TLS), stored as its SHA-256; idle and absolute timeouts;
//! a per-session CSRF token that every form posts back.

use super::PortalSettings;
use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use meterbook_core::users::{Role, Session, User};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "mb_session";

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The session cookie's value from the request, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Whether the request came over TLS (directly or through a proxy that says so).
pub(crate) fn is_secure(settings: &PortalSettings, headers: &HeaderMap) -> bool {
    settings.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

pub fn set_cookie(settings: &PortalSettings, headers: &HeaderMap, token: &str) -> HeaderValue {
    let v = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        settings.absolute_timeout.as_secs(),
        if is_secure(settings, headers) {
            "; Secure"
        } else {
            ""
        }
    );
    HeaderValue::from_str(&v).expect("cookie is ASCII")
}

pub fn clear_cookie(settings: &PortalSettings, headers: &HeaderMap) -> HeaderValue {
    let v = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if is_secure(settings, headers) {
            "; Secure"
        } else {
            ""
        }
    );
    HeaderValue::from_str(&v).expect("cookie is ASCII")
}

/// A signed-in person: the session, the user and their roles.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub session: Session,
    pub user: User,
    pub roles: Vec<Role>,
}

impl Viewer {
    /// Checks a form's CSRF token against the session's, in constant time.
    pub fn check_csrf(&self, sent: &str) -> Result<(), ApiError> {
        if sent.as_bytes().ct_eq(self.session.csrf.as_bytes()).into() {
            Ok(())
        } else {
            Err(ApiError::ForbiddenCode {
                code: "CsrfRejected",
                message: "this form has expired or did not come from this site; reload the page and try again".into(),
            })
        }
    }
}

/// Why there is no viewer: the page redirects to sign-in.
pub struct SignedOut;

impl axum::response::IntoResponse for SignedOut {
    fn into_response(self) -> axum::response::Response {
        axum::response::Redirect::to("/portal/sign-in").into_response()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = SignedOut;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Viewer, SignedOut> {
        let token = cookie_token(&parts.headers).ok_or(SignedOut)?;
        let hash = token_hash(&token);
        let settings = state.settings().portal.clone();
        let now = state.now_unix();
        let found = state
            .blocking(move |s| {
                let Some(session) = s.session(&hash)? else {
                    return Ok(None);
                };
                let idle = now - session.last_seen_at > settings.idle_timeout.as_secs() as i64;
                let old = now - session.created_at > settings.absolute_timeout.as_secs() as i64;
                if idle || old {
                    s.delete_session(&hash)?;
                    return Ok(None);
                }
                let Some(user) = s.user(session.user_id)?.filter(|u| !u.disabled) else {
                    s.delete_session(&hash)?;
                    return Ok(None);
                };
                // At most one write a minute per session, and often enough
                // that a session in use never looks idle: a quarter of the
                // idle timeout at most.
                let every = (settings.idle_timeout.as_secs() as i64 / 4).min(60);
                if now - session.last_seen_at >= every {
                    s.touch_session(&hash, now)?;
                }
                let roles = s.roles(user.id)?;
                Ok(Some(Viewer {
                    session,
                    user,
                    roles,
                }))
            })
            .await
            .map_err(|_| SignedOut)?;
        found.ok_or(SignedOut)
    }
}
