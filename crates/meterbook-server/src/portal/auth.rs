//! Signing in and out, and setting a password from a one-time link. Failed
//! sign-ins are throttled (see [`super::throttle`]) per account and address
//! pair, per address, and with a much higher ceiling per account, and answered
//! more slowly as an account's failures grow; every failure reads the same
//! whether or not the e-mail is known, and takes as long. The address is the
//! client's as [`crate::client_addr`] resolves it behind trusted proxies.

use super::session::{self, Viewer};
use super::{render, PageResult};
use crate::client_addr::ClientAddr;
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/{tab}", get(tab_shortcut))
        .route("/portal/sign-in", get(sign_in_page).post(sign_in))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/sign-out-everywhere", post(sign_out_everywhere))
        .route(
            "/portal/set-password",
            get(set_password_page).post(set_password),
        )
}

#[derive(Template)]
#[template(path = "portal/sign_in.html")]
struct SignInPage {
    email: String,
    message: Option<String>,
    csrf: String,
}

/// The sign-in form's own CSRF token (there is no session yet): a random
/// value in a short-lived cookie and in the form; the POST must carry both,
/// equal, so another site cannot sign a browser in to an account of its choosing.
const SIGN_IN_COOKIE: &str = "mb_signin";

fn sign_in_form(
    settings: &super::PortalSettings,
    headers: &HeaderMap,
    email: &str,
    message: Option<String>,
) -> Response {
    let token = session::random_token();
    let mut r = render(&SignInPage {
        email: email.to_string(),
        message,
        csrf: token.clone(),
    });
    let secure = if session::is_secure(settings, headers) {
        "; Secure"
    } else {
        ""
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
        "{SIGN_IN_COOKIE}={token}; Path=/portal; HttpOnly; SameSite=Lax; Max-Age=3600{secure}"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn sign_in_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SIGN_IN_COOKIE)
        .map(|(_, v)| v.to_string())
}

async fn home(viewer: Result<Viewer, session::SignedOut>) -> Response {
    match viewer {
        Ok(v) => match v.roles.first() {
            Some(r) => Redirect::to(&format!("/portal/e/{}", r.enrollment)).into_response(),
            None => super::error_page(ApiError::Forbidden(
                "your account has no role in any enrollment yet; ask an enterprise administrator"
                    .into(),
            )),
        },
        Err(_) => Redirect::to("/portal/sign-in").into_response(),
    }
}

/// `/portal/usage` and the other tabs without an enrollment: the tab of the
/// viewer's first enrollment, as `/portal` lands on its overview; any other
/// name is the portal's 404 page.
async fn tab_shortcut(
    axum::extract::Path(tab): axum::extract::Path<String>,
    viewer: Result<Viewer, session::SignedOut>,
) -> Response {
    if !["usage", "reports", "keys", "manage"].contains(&tab.as_str()) {
        return super::error_page(ApiError::NotFound(format!("no portal page /portal/{tab}")));
    }
    match viewer {
        Ok(v) => match v.roles.first() {
            Some(r) => Redirect::to(&format!("/portal/e/{}/{tab}", r.enrollment)).into_response(),
            None => home(Ok(v)).await,
        },
        Err(_) => Redirect::to("/portal/sign-in").into_response(),
    }
}

async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    sign_in_form(&state.settings().portal, &headers, "", None)
}

/// The throttle's keys for one sign-in.
struct SignInKeys {
    pair: String,
    account: String,
    address: String,
}

impl SignInKeys {
    fn new(email: &str, addr: &str) -> SignInKeys {
        SignInKeys {
            pair: format!("account-address:{email}|{addr}"),
            account: format!("account:{email}"),
            address: format!("address:{addr}"),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SignInForm {
    email: String,
    password: String,
    csrf: String,
}

async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    let settings = state.settings().portal.clone();
    let cookie = sign_in_cookie(&headers).unwrap_or_default();
    let same: bool = subtle::ConstantTimeEq::ct_eq(cookie.as_bytes(), f.csrf.as_bytes()).into();
    if cookie.is_empty() || !same {
        let mut r = sign_in_form(
            &settings,
            &headers,
            &f.email,
            Some("This sign-in form has expired or did not come from this site. Please sign in again.".into()),
        );
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let now = state.app().clock().now_unix();
    let window = settings.throttle_window.as_secs() as i64;
    let email = f.email.trim().to_ascii_lowercase();
    let keys = SignInKeys::new(&email, &addr);
    let counted = super::throttle::attempt(
        &state,
        vec![
            (keys.pair.clone(), settings.max_failures_per_account),
            (
                keys.account.clone(),
                settings.max_failures_per_account_total,
            ),
            (keys.address.clone(), settings.max_failures_per_address),
        ],
        window,
        now,
    )
    .await;
    let counted = match counted {
        Ok(c) => c,
        Err(e) => return super::error_page(e),
    };
    let account_failures = match counted {
        // This attempt is counted; the ones before it are the failures so far.
        Ok(counts) => counts[1].saturating_sub(1),
        Err(secs) => {
            let mut r = sign_in_form(
                &settings,
                &headers,
                &f.email,
                Some(format!(
                    "Too many failed sign-ins. Try again in {} minute(s).",
                    (secs + 59) / 60
                )),
            );
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            r.headers_mut()
                .insert(header::RETRY_AFTER, secs.max(1).into());
            return r;
        }
    };
    // Failures beyond what one address may make slow every attempt on the
    // account (a distributed guesser), without locking its owner out.
    let delay = super::throttle::delay(&settings, account_failures);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (lookup, password, from) = (email.clone(), f.password.clone(), format!("from {addr}"));
    let checked = state
        .run(move |app| app.sign_in(&lookup, &password, &from))
        .await;
    let new = match checked {
        Ok(u) => u,
        Err(e) => return super::error_page(e),
    };
    let Some(new) = new else {
        // A known user's failure goes to their enrollments' audit logs, off
        // the response's path (its timing must not tell known e-mails apart).
        let (st, lookup, from) = (state.clone(), email.clone(), format!("from {addr}"));
        tokio::spawn(async move {
            if let Err(e) = st.run(move |app| app.sign_in_failed(&lookup, &from)).await {
                tracing::warn!(error = %e, "cannot record a failed sign-in");
            }
        });
        let mut r = sign_in_form(
            &settings,
            &headers,
            &f.email,
            Some("The e-mail or password is not right.".into()),
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    super::throttle::succeeded(&state, vec![keys.pair, keys.account], keys.address).await;
    let token = new.token;
    let mut res = Redirect::to("/portal").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(&settings, &headers, &token),
    );
    res
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsrfForm {
    csrf: String,
}

async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let signed = viewer.0;
    state.run(move |app| signed.sign_out(app)).await?;
    Ok(signed_out(&state, &headers))
}

async fn sign_out_everywhere(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let signed = viewer.0;
    state
        .run(move |app| signed.sign_out_everywhere(app))
        .await?;
    Ok(signed_out(&state, &headers))
}

fn signed_out(state: &AppState, headers: &HeaderMap) -> Response {
    let mut res = Redirect::to("/portal/sign-in").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(&state.settings().portal, headers),
    );
    res
}

#[derive(Template)]
#[template(path = "portal/set_password.html")]
struct SetPasswordPage {
    token: String,
    message: Option<String>,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

async fn set_password_page(Query(q): Query<TokenQuery>) -> Response {
    render(&SetPasswordPage {
        token: q.token.unwrap_or_default(),
        message: None,
    })
}

#[derive(Deserialize)]
pub struct SetPasswordForm {
    token: String,
    password: String,
    confirm: String,
}

async fn set_password(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<SetPasswordForm>,
) -> Response {
    let again = |msg: &str, status: StatusCode| {
        let mut r = render(&SetPasswordPage {
            token: f.token.clone(),
            message: Some(msg.to_string()),
        });
        *r.status_mut() = status;
        r
    };
    if f.password != f.confirm {
        return again("The two passwords differ.", StatusCode::BAD_REQUEST);
    }
    // Hashing is deliberately costly: attempts per address are throttled
    // like sign-ins, before the hash is computed.
    let settings = state.settings().portal.clone();
    let addr_key = format!("set-password:{addr}");
    let counted = super::throttle::attempt(
        &state,
        vec![(addr_key.clone(), settings.max_failures_per_address)],
        settings.throttle_window.as_secs() as i64,
        state.app().clock().now_unix(),
    )
    .await;
    let counted = match counted {
        Ok(c) => c,
        Err(e) => return super::error_page(e),
    };
    if let Err(secs) = counted {
        let mut r = again(
            &format!(
                "Too many attempts. Try again in {} minute(s).",
                (secs + 59) / 60
            ),
            StatusCode::TOO_MANY_REQUESTS,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, secs.max(1).into());
        return r;
    }
    let (token, password) = (f.token.clone(), f.password.clone());
    let done = state
        .run(move |app| app.set_password(&token, &password))
        .await;
    match done {
        Ok(true) => {
            super::throttle::succeeded(&state, Vec::new(), addr_key).await;
            Redirect::to("/portal/sign-in").into_response()
        }
        Ok(false) => again(
            "This link has expired or was already used; ask your administrator for a new one.",
            StatusCode::BAD_REQUEST,
        ),
        Err(ApiError::BadRequest(m)) => again(&format!("{m}."), StatusCode::BAD_REQUEST),
        Err(e) => super::error_page(e),
    }
}
