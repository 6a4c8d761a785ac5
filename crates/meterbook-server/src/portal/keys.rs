//! API access keys: the primary and secondary key of every scope the viewer
//! covers, with generate, regenerate and disable (the API's rules: a key only
//! for a scope its maker covers, none from a read-only role). A new key is
//! shown once; only its hash is kept.
//!
//! Generating is post/redirect/get: the POST makes the key, keeps what the
//! page shows in a one-time flash held against the session (in the store's
//! shared state, so any node may serve the next page; the PostgreSQL store
//! keeps it sealed), and answers 303 to `keys/new`, which shows it and
//! forgets it. A reload of
//! that page shows no secret and changes nothing (re-posting the form made a
//! second key and silently killed the one just copied).

use super::{render, Nav, Page, PageResult, Tab, Viewer};
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use meterbook_app::credentials::PREFIX;
use meterbook_core::access::{KeyRecord, Scope, Slot};
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::jobs::{parse_scope_text, scope_text};
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/e/{n}/keys", get(keys_page))
        .route("/portal/e/{n}/keys/generate", post(generate))
        .route("/portal/e/{n}/keys/new", get(new_key_page))
        .route("/portal/e/{n}/keys/disable", post(disable))
}

/// Keys expiring within this many days carry a warning.
const WARN_DAYS: i64 = 30;
const DAY: i64 = 86_400;

/// One slot (primary or secondary) of a scope.
pub struct SlotRow {
    /// Unique within the page, for form control ids.
    pub key: String,
    pub scope: String,
    pub scope_label: String,
    pub slot: &'static str,
    pub slot_label: &'static str,
    pub exists: bool,
    pub id: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub disabled: bool,
    /// "Active", "Disabled", "Expired", "No key".
    pub status: String,
    /// The status needs attention (expired).
    pub alert: bool,
    /// "Expires in N days" (within 30 days): shown as an alert.
    pub warning: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/keys.html")]
struct KeysPage {
    nav: Nav,
    rows: Vec<SlotRow>,
    can_change: bool,
    default_days: u32,
    max_days: u32,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/keys_new.html")]
struct NewKeyPage {
    nav: Nav,
    key: NewKey,
}

/// What the new-key page shows, once.
#[derive(Clone, Serialize, Deserialize)]
pub struct NewKey {
    token: String,
    id: String,
    scope_label: String,
    slot_label: String,
    expires: String,
    days: u32,
    warning: Option<String>,
}

/// Holds a new key for its page, by session (the SHA-256 of its token) and
/// enrollment, in the store's shared state: the page may be served by
/// another node than the POST. A key not shown within
/// [`meterbook_core::shared::FLASH_SECS`] is never shown, and can be
/// regenerated.
async fn put_flash(
    state: &AppState,
    session: [u8; 32],
    n: &str,
    key: &NewKey,
) -> Result<(), ApiError> {
    let payload = serde_json::to_vec(key)
        .map_err(|e| ApiError::Internal(format!("cannot encode a new key: {e}")))?;
    let (n, now) = (n.to_string(), state.now_unix());
    state
        .run(move |app| Ok(app.shared().put_flash(&session, &n, &payload, now)?))
        .await
}

/// The session's new key, removed: it is shown this once.
async fn take_flash(
    state: &AppState,
    session: [u8; 32],
    n: &str,
) -> Result<Option<NewKey>, ApiError> {
    let (n, now) = (n.to_string(), state.now_unix());
    let payload = state
        .run(move |app| Ok(app.shared().take_flash(&session, &n, now)?))
        .await?;
    payload
        .map(|p| {
            serde_json::from_slice(&p)
                .map_err(|e| ApiError::Internal(format!("a held new key does not decode: {e}")))
        })
        .transpose()
}

fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn date_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// "Expired", or "Expires in N days" within [`WARN_DAYS`].
fn expiry_warning(expires_at: i64, now: i64) -> Option<String> {
    if expires_at <= now {
        return Some("Expired".into());
    }
    let left = expires_at - now;
    if left < WARN_DAYS * DAY {
        let days = (left + DAY - 1) / DAY;
        return Some(if days == 1 {
            "Expires in 1 day".into()
        } else {
            format!("Expires in {days} days")
        });
    }
    None
}

fn slot_label(s: Slot) -> &'static str {
    match s {
        Slot::Primary => "Primary",
        Slot::Secondary => "Secondary",
    }
}

fn scope_label(h: &Hierarchy, n: &str, s: Scope) -> String {
    match s {
        Scope::Enrollment => format!("Enrollment {n}"),
        Scope::Department(d) => h
            .departments
            .get(&d)
            .map_or(format!("Department {d}"), |d| {
                format!("Department {}", d.name)
            }),
        Scope::Account(a) => h
            .accounts
            .get(&a)
            .map_or(format!("Account {a}"), |a| format!("Account {}", a.name)),
    }
}

/// The scopes the viewer covers: the enrollment, departments, accounts (by name).
fn scopes(h: &Hierarchy, viewer: Scope) -> Vec<Scope> {
    let mut out = Vec::new();
    if viewer == Scope::Enrollment {
        out.push(Scope::Enrollment);
    }
    let mut deps: Vec<_> = h
        .departments
        .values()
        .filter(|d| viewer.covers(Scope::Department(d.id), h))
        .collect();
    deps.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(deps.into_iter().map(|d| Scope::Department(d.id)));
    let mut accs: Vec<_> = h
        .accounts
        .values()
        .filter(|a| viewer.covers(Scope::Account(a.id), h))
        .collect();
    accs.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(accs.into_iter().map(|a| Scope::Account(a.id)));
    out
}

fn rows(h: &Hierarchy, n: &str, viewer: Scope, keys: &[KeyRecord], now: i64) -> Vec<SlotRow> {
    let mut out = Vec::new();
    for (i, scope) in scopes(h, viewer).into_iter().enumerate() {
        for slot in [Slot::Primary, Slot::Secondary] {
            let k = keys.iter().find(|k| k.scope == scope && k.slot == slot);
            let (status, warning) = match k {
                None => ("No key".to_string(), None),
                Some(k) if k.disabled => ("Disabled".to_string(), None),
                Some(k) => {
                    let w = expiry_warning(k.expires_at, now);
                    let status = if k.expires_at <= now {
                        "Expired"
                    } else {
                        "Active"
                    };
                    (status.to_string(), w.filter(|w| w != "Expired"))
                }
            };
            out.push(SlotRow {
                key: format!("s{i}-{}", slot.as_str()),
                scope: scope_text(scope),
                scope_label: scope_label(h, n, scope),
                slot: slot.as_str(),
                slot_label: slot_label(slot),
                exists: k.is_some(),
                id: k.map_or(String::new(), |k| format!("{PREFIX}{}", k.id)),
                created: k.map_or(String::new(), |k| date(k.created_at)),
                expires: k.map_or(String::new(), |k| date(k.expires_at)),
                last_used: k
                    .and_then(|k| k.last_used_at)
                    .map_or("Never".to_string(), date_time),
                disabled: k.is_some_and(|k| k.disabled),
                alert: status == "Expired",
                status,
                warning,
            });
        }
    }
    out
}

/// Read-write roles manage keys; read-only roles only see them.
fn can_change(page: &Page) -> bool {
    page.access.writer().is_ok()
}

#[derive(Deserialize, Default)]
pub struct KeysQ {
    done: Option<String>,
}

async fn keys_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Query(q): Query<KeysQ>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let a = page.access.clone();
    let (h, all) = state.run(move |_| a.keys()).await?;
    let settings = state.settings();
    Ok(render(&KeysPage {
        nav: page.nav(Tab::Keys),
        rows: rows(&h, page.n.as_str(), page.scope(), &all, state.now_unix()),
        can_change: can_change(&page),
        default_days: settings.key_default_days.min(settings.key_max_days),
        max_days: settings.key_max_days,
        notice: match q.done.as_deref() {
            Some("disabled") => Some("The key is disabled: requests with it are refused.".into()),
            Some("shown") => Some(
                "A new key is shown only once, right after it is made; it is not shown again. \
                 If it was not copied, generate a new one."
                    .into(),
            ),
            _ => None,
        },
    }))
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    slot: String,
    #[serde(default)]
    days: String,
}

/// What every change checks here: the form's token, a read-write role, a
/// scope and a slot that parse. The use-case layer checks the rest (the
/// scope exists and the viewer covers it). Returns the scope, slot and
/// hierarchy (for labels).
async fn checked(
    state: &AppState,
    page: &Page,
    f: &KeyForm,
) -> Result<(Scope, Slot, Hierarchy), ApiError> {
    page.viewer.check_csrf(&f.csrf)?;
    if !can_change(page) {
        return Err(ApiError::Forbidden(
            "a read-only role cannot manage API access keys".into(),
        ));
    }
    let scope = parse_scope_text(&f.scope).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`{}` is not a key scope",
            meterbook_core::quote::quote(&f.scope)
        ))
    })?;
    let slot = Slot::parse(&f.slot).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "the slot must be primary or secondary, not `{}`",
            meterbook_core::quote::quote(&f.slot)
        ))
    })?;
    let a = page.access.clone();
    let h = state.run(move |_| a.hierarchy()).await?;
    Ok((scope, slot, h))
}

/// `POST .../keys/generate`: a new key in the slot (replacing the one there),
/// then 303 to `keys/new`, which shows it once.
async fn generate(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<KeyForm>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let (scope, slot, h) = checked(&state, &page, &f).await?;
    let settings = state.settings();
    let days = match f.days.trim() {
        "" => settings.key_default_days.min(settings.key_max_days),
        d => match d.parse::<u32>() {
            Ok(d) if d >= 1 && d <= settings.key_max_days => d,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "the lifetime must be a whole number of days from 1 to {}",
                    settings.key_max_days
                ))
                .into())
            }
        },
    };
    let a = page.access.clone();
    let new = state
        .run(move |_| a.writer()?.generate_key(scope, slot, days))
        .await?;
    let (rec, now) = (&new.record, state.now_unix());
    let expires = date(rec.expires_at);
    let label = scope_label(&h, page.n.as_str(), scope);
    let id = format!("{PREFIX}{}", rec.id);
    put_flash(
        &state,
        page.viewer.session.token_hash,
        page.n.as_str(),
        &NewKey {
            token: new.token,
            id,
            scope_label: label,
            slot_label: slot_label(slot).to_string(),
            expires,
            days,
            warning: expiry_warning(rec.expires_at, now),
        },
    )
    .await?;
    Ok(Redirect::to(&format!("/portal/e/{}/keys/new", page.n)).into_response())
}

/// `GET .../keys/new`: the key just generated in this session, once; after
/// that (a reload, a bookmark) back to the keys page, which says why.
async fn new_key_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    match take_flash(&state, page.viewer.session.token_hash, page.n.as_str()).await? {
        Some(key) => Ok(render(&NewKeyPage {
            nav: page.nav(Tab::Keys),
            key,
        })),
        None => Ok(Redirect::to(&format!("/portal/e/{}/keys?done=shown", page.n)).into_response()),
    }
}

/// `POST .../keys/disable`: requests with the slot's key are refused from now on.
async fn disable(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<KeyForm>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let (scope, slot, _) = checked(&state, &page, &f).await?;
    let a = page.access.clone();
    state
        .run(move |_| a.writer()?.set_key_disabled(scope, slot, true))
        .await?;
    Ok(Redirect::to(&format!("/portal/e/{}/keys?done=disabled", page.n)).into_response())
}

#[cfg(test)]
mod tests {
    use super::expiry_warning;

    #[test]
    fn warnings() {
        let now = 1_000_000;
        assert_eq!(expiry_warning(now, now).as_deref(), Some("Expired"));
        assert_eq!(
            expiry_warning(now + 86_400, now).as_deref(),
            Some("Expires in 1 day")
        );
        assert_eq!(
            expiry_warning(now + 86_400 + 1, now).as_deref(),
            Some("Expires in 2 days")
        );
        assert_eq!(
            expiry_warning(now + 29 * 86_400, now).as_deref(),
            Some("Expires in 29 days")
        );
        assert_eq!(expiry_warning(now + 30 * 86_400, now), None);
    }
}
