//! Manage › Users: who holds which role; inviting someone (with a one-time
//! set-password link when they have no password and no role elsewhere),
//! changing and removing roles. The rules are the use-case layer's
//! ([`meterbook_app::users`]).

use super::{
    as_admin, as_enterprise, csrf_form, id, opts, outcome, with_status, AdminForm, Manager, Notice,
    Opt, INVITE_DAYS,
};
use crate::portal::{render, Nav, Page, PageResult, Tab};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use meterbook_app::users::{role_choices, role_label, role_value, MemberStatus};
use serde::Deserialize;

pub struct UserView {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    pub status: String,
    pub role_opts: Vec<Opt>,
    pub is_self: bool,
}

#[derive(Template)]
#[template(path = "portal/manage_users.html")]
struct UsersPage {
    nav: Nav,
    section: &'static str,
    notice: Option<Notice>,
    /// A one-time set-password link, shown once.
    invite_link: Option<String>,
    invite_days: i64,
    users: Vec<UserView>,
    role_opts: Vec<Opt>,
}

async fn render_users(
    state: &AppState,
    page: &Page,
    notice: Option<Notice>,
    invite_link: Option<String>,
    status: StatusCode,
) -> PageResult {
    let (h, people) = as_enterprise(state, page, |en| en.members()).await?;
    let items = role_choices(&h);
    let users = people
        .into_iter()
        .map(|m| UserView {
            id: m.id,
            is_self: m.id == page.viewer.user.id,
            status: match m.status {
                MemberStatus::Disabled => "disabled",
                MemberStatus::Invited => "invited (no password yet)",
                MemberStatus::Active => "active",
            }
            .into(),
            role: role_label(&m.role, &h),
            role_opts: opts(&items, &role_value(&m.role)),
            email: m.email,
            name: m.name,
        })
        .collect();
    Ok(with_status(
        render(&UsersPage {
            nav: page.nav(Tab::Manage),
            section: "users",
            notice,
            invite_link,
            invite_days: INVITE_DAYS,
            users,
            role_opts: opts(&items, ""),
        }),
        status,
    ))
}

pub(super) async fn page(State(state): State<AppState>, Manager(page): Manager) -> PageResult {
    render_users(&state, &page, None, None, StatusCode::OK).await
}

/// The configured public URL, or else `https://host` of the request (for a
/// link the admin passes on).
fn origin(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.settings().public_url {
        return u.to_string();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']'))
        });
    let https = crate::portal::session::is_secure(&state.settings().portal, headers);
    match host {
        Some(h) => format!("{}://{h}", if https { "https" } else { "http" }),
        None => String::new(),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct InviteForm {
    csrf: String,
    email: String,
    name: String,
    role: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RoleForm {
    csrf: String,
    user_id: String,
    role: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RemoveForm {
    csrf: String,
    user_id: String,
}

csrf_form!(InviteForm, RoleForm, RemoveForm);

pub(super) async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    AdminForm { page, form: f }: AdminForm<InviteForm>,
) -> PageResult {
    let done = as_admin(&state, &page, move |admin| {
        admin.invite(&f.email, &f.name, &f.role)
    })
    .await;
    let (notice, status, link) = match done {
        Ok(inv) => {
            let mut text = match (&inv.previous, inv.created) {
                (_, true) => format!("Invited {} as {}", inv.email, inv.role),
                (Some(b), false) => format!(
                    "{} already had a role here ({b}): now {}",
                    inv.email, inv.role
                ),
                (None, false) => format!(
                    "{} already has an account: now {} here",
                    inv.email, inv.role
                ),
            };
            if inv.disabled {
                text.push_str(" (note: this user is disabled and cannot sign in)");
            }
            let link = inv
                .token
                .map(|t| format!("{}/portal/set-password?token={t}", origin(&state, &headers)));
            let text = if link.is_some() {
                format!("{text}. Send them the link below: it works once, for {INVITE_DAYS} days, and is not shown again.")
            } else {
                format!("{text}. They sign in with their password.")
            };
            (Notice { ok: true, text }, StatusCode::OK, link)
        }
        Err(e) => {
            let (n, s) = outcome(Err(e))?;
            (n, s, None)
        }
    };
    render_users(&state, &page, Some(notice), link, status).await
}

pub(super) async fn change_role(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<RoleForm>,
) -> PageResult {
    let done = as_admin(&state, &page, move |admin| {
        admin.change_role(id(&f.user_id), &f.role)
    })
    .await;
    let (notice, status) = outcome(done.map(|d| format!("Role changed: {d}.")))?;
    render_users(&state, &page, Some(notice), None, status).await
}

pub(super) async fn remove_role(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<RemoveForm>,
) -> PageResult {
    let done = as_admin(&state, &page, move |admin| {
        admin.remove_role(id(&f.user_id))
    })
    .await;
    let (notice, status) = outcome(done.map(|d| format!("Role removed: {d}.")))?;
    render_users(&state, &page, Some(notice), None, status).await
}
