//! Manage: the enrollment's settings, hierarchy, people and audit log, one
//! file each. Its read-write enterprise administrators change them
//! ([`Page::can_manage`]); read-only enterprise administrators see the same
//! pages without a form ([`Page::sees_manage`]), and every change they post
//! is a 403 (design §5: "only read-write manages users, keys, settings").
//! Everyone else gets a 403 page for every page and form here, and no tab.
//!
//! Two extractors hold the checks, so no handler repeats them: [`Manager`]
//! for the pages (an enterprise administrator of the path's enrollment) and
//! [`AdminForm`] for every form (the session's CSRF token, checked first,
//! then a read-write enterprise administrator). What a form changes is done
//! by the use-case layer ([`meterbook_app::Admin`]), which also writes the
//! audit log (`setting-changed`, `hierarchy-changed`, `user-invited`,
//! `role-changed`, `role-removed`). The answer to a form is the section's
//! page with what happened (or why not) on top, so a one-time set-password
//! link is shown once and never stored.

mod audit;
pub(crate) mod budgets;
mod exports;
mod hierarchy;
mod settings;
mod users;

use super::{Page, PageError, Viewer};
use crate::{ApiError, AppState};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use meterbook_app::{Admin, AppResult, Enterprise};
use serde::de::DeserializeOwned;

pub use meterbook_app::users::INVITE_DAYS;

/// Audit entries shown.
pub const AUDIT_LIMIT: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/e/{n}/manage", get(settings::page))
        .route("/portal/e/{n}/manage/settings", post(settings::post))
        .route("/portal/e/{n}/manage/hierarchy", get(hierarchy::page))
        .route(
            "/portal/e/{n}/manage/hierarchy/subscription",
            post(hierarchy::add_subscription),
        )
        .route(
            "/portal/e/{n}/manage/hierarchy/department",
            post(hierarchy::edit_department),
        )
        .route(
            "/portal/e/{n}/manage/hierarchy/account",
            post(hierarchy::edit_account),
        )
        .route(
            "/portal/e/{n}/manage/hierarchy/rename",
            post(hierarchy::rename_subscription),
        )
        .route(
            "/portal/e/{n}/manage/hierarchy/move",
            post(hierarchy::move_subscription),
        )
        .route(
            "/portal/e/{n}/manage/hierarchy/rename-unit",
            post(hierarchy::rename_unit),
        )
        .route("/portal/e/{n}/manage/users", get(users::page))
        .route("/portal/e/{n}/manage/users/invite", post(users::invite))
        .route("/portal/e/{n}/manage/users/role", post(users::change_role))
        .route(
            "/portal/e/{n}/manage/users/remove",
            post(users::remove_role),
        )
        .route("/portal/e/{n}/manage/audit", get(audit::page))
        .route("/portal/e/{n}/manage/budgets", get(budgets::page))
        .route("/portal/e/{n}/manage/budgets/create", post(budgets::create))
        .route("/portal/e/{n}/manage/budgets/delete", post(budgets::delete))
        .route(
            "/portal/e/{n}/manage/budgets/channels/add",
            post(budgets::add_channel),
        )
        .route(
            "/portal/e/{n}/manage/budgets/channels/remove",
            post(budgets::remove_channel),
        )
        .route(
            "/portal/e/{n}/manage/exports",
            get(exports::page).post(exports::create),
        )
        .route("/portal/e/{n}/manage/exports/run", post(exports::run_now))
        .route("/portal/e/{n}/manage/exports/delete", post(exports::delete))
}

/// A Manage page's viewer: an enterprise administrator, read-only or not, of
/// the path's enrollment (the pages hide their forms from read-only ones);
/// the sign-in page when signed out, a 404 page without a role there, a 403
/// page for any other role.
pub struct Manager(pub Page);

impl FromRequestParts<AppState> for Manager {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Manager, Response> {
        let viewer = Viewer::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Path(n) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let page = Page::load(state, viewer, &n).await.map_err(refused)?;
        if !page.sees_manage() {
            return Err(refused(ApiError::Forbidden(
                "managing this enrollment is for its enterprise administrators".into(),
            )));
        }
        Ok(Manager(page))
    }
}

/// A form that carries the session's CSRF token.
pub trait CsrfForm {
    fn csrf(&self) -> &str;
}

macro_rules! csrf_form {
    ($($form:ty),* $(,)?) => {
        $(impl $crate::portal::manage::CsrfForm for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
use csrf_form;

/// A Manage form, accepted: its CSRF token is the session's (checked first,
/// a 403 page otherwise), and its sender is a read-write enterprise
/// administrator of the path's enrollment (a 403 page for read-only ones and
/// every other role, a 404 page without a role there, the sign-in page when
/// signed out).
pub struct AdminForm<T> {
    pub page: Page,
    pub form: T,
}

impl<T> FromRequest<AppState> for AdminForm<T>
where
    T: DeserializeOwned + CsrfForm + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<AdminForm<T>, Response> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Path(n) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        viewer.check_csrf(form.csrf()).map_err(refused)?;
        let page = Page::load(state, viewer, &n).await.map_err(refused)?;
        if page.access.admin().is_err() {
            return Err(refused(ApiError::Forbidden(
                "managing this enrollment is for its read-write enterprise administrators".into(),
            )));
        }
        Ok(AdminForm { page, form })
    }
}

fn refused(e: ApiError) -> Response {
    PageError(e).into_response()
}

/// Runs `f` as the page's read-write enterprise administrator, on the
/// blocking pool.
async fn as_admin<T, F>(state: &AppState, page: &Page, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'a> FnOnce(Admin<'a>) -> AppResult<T> + Send + 'static,
{
    let access = page.access.clone();
    state.run(move |_| f(access.admin()?)).await
}

/// Runs `f` as the page's enterprise administrator (read-only ones too).
async fn as_enterprise<T, F>(state: &AppState, page: &Page, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'a> FnOnce(Enterprise<'a>) -> AppResult<T> + Send + 'static,
{
    let access = page.access.clone();
    state.run(move |_| f(access.enterprise()?)).await
}

/// What a form did, shown on top of the page.
pub struct Notice {
    pub ok: bool,
    pub text: String,
}

/// A form's outcome as a notice and the page's status; internal errors become
/// the error page (their cause goes to the log, not to the page).
fn outcome(r: Result<String, ApiError>) -> Result<(Notice, StatusCode), PageError> {
    match r {
        Ok(text) => Ok((Notice { ok: true, text }, StatusCode::OK)),
        Err(e) => {
            let status = match &e {
                ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
                ApiError::NotFound(_) => StatusCode::NOT_FOUND,
                ApiError::Conflict(_) => StatusCode::CONFLICT,
                ApiError::Forbidden(_) | ApiError::ForbiddenCode { .. } => StatusCode::FORBIDDEN,
                _ => return Err(PageError(e)),
            };
            Ok((
                Notice {
                    ok: false,
                    text: e.to_string(),
                },
                status,
            ))
        }
    }
}

fn with_status(mut r: Response, status: StatusCode) -> Response {
    *r.status_mut() = status;
    r
}

/// An option of a `<select>`.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn opts(items: &[(String, String)], selected: &str) -> Vec<Opt> {
    items
        .iter()
        .map(|(v, l)| Opt {
            value: v.clone(),
            label: l.clone(),
            selected: v == selected,
        })
        .collect()
}

/// A row id a form names: one that is no row's (0) when it is not a number,
/// so the layer answers that there is no such row.
fn id(v: &str) -> i64 {
    v.trim().parse().unwrap_or(0)
}
