//! The enterprise portal: server-rendered pages (askama templates compiled
//! into the binary) for the people of an enrollment. It works without
//! JavaScript; a small embedded script only refreshes the job list and adds
//! copy buttons. Charts are SVG drawn on the server. Every page and download
//! checks the viewer's role in the enrollment (design §5).

pub mod analysis;
pub mod auth;
pub mod chart;
pub mod format;
pub mod keys;
pub mod manage;
pub mod overview;
pub mod password;
pub mod reports;
pub mod session;
pub mod throttle;
pub mod usage;

use crate::{ApiError, AppState};
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use meterbook_app::Access;
use meterbook_core::access::Scope;
use meterbook_core::users::Role;
use meterbook_core::{Enrollment, EnrollmentNumber};
pub use session::Viewer;
use std::time::Duration;

/// Portal settings (part of [`crate::ServerSettings`]).
#[derive(Clone, Debug)]
pub struct PortalSettings {
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute_timeout: Duration,
    /// Mark cookies Secure even without `X-Forwarded-Proto: https`.
    pub secure_cookies: bool,
    /// Failed sign-ins allowed in `throttle_window` for one account from one
    /// address (see [`throttle`]).
    pub max_failures_per_account: u32,
    /// Failed sign-ins (and set-password attempts) allowed per address.
    pub max_failures_per_address: u32,
    /// Failed sign-ins allowed for one account from all addresses together.
    pub max_failures_per_account_total: u32,
    pub throttle_window: Duration,
    /// Past `max_failures_per_account` failures of an account, each further
    /// failure makes its sign-ins answer this much later, up to the maximum.
    pub failure_delay_step: Duration,
    pub failure_delay_max: Duration,
}

impl Default for PortalSettings {
    fn default() -> Self {
        PortalSettings {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            max_failures_per_account_total: 100,
            throttle_window: Duration::from_secs(15 * 60),
            failure_delay_step: Duration::from_millis(250),
            failure_delay_max: Duration::from_secs(5),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/static/app.css", get(css))
        .route("/portal/static/app.js", get(js))
        .merge(auth::routes())
        .merge(overview::routes())
        .merge(usage::routes())
        .merge(analysis::routes())
        .merge(reports::routes())
        .merge(keys::routes())
        .merge(manage::routes())
}

async fn css() -> Response {
    asset(
        include_str!("../../assets/app.css"),
        "text/css; charset=utf-8",
    )
}

async fn js() -> Response {
    asset(
        include_str!("../../assets/app.js"),
        "text/javascript; charset=utf-8",
    )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Renders a template, or a plain 500 page (the cause goes to the log).
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => {
            let mut r = Html(html).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
                ),
            );
            r.headers_mut().insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A tab of the enrollment's navigation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tab {
    Overview,
    Usage,
    Analysis,
    Reports,
    Keys,
    Manage,
}

/// What every enrollment page's layout shows: who is signed in, which
/// enrollment and role, the tabs the role may use, the CSRF token for forms.
#[derive(Clone, Debug)]
pub struct Nav {
    pub email: String,
    pub csrf: String,
    pub number: String,
    pub enrollment_name: String,
    pub role_title: String,
    pub tab: Tab,
    /// Other enrollments the user holds roles in: (number, name of the role).
    pub switch_to: Vec<(String, String)>,
    pub sees_balance: bool,
    /// The Manage tab is shown (enterprise administrators)...
    pub sees_manage: bool,
    /// ... with its forms (read-write ones only).
    pub can_manage: bool,
}

impl Nav {
    pub fn is(&self, t: &str) -> bool {
        let cur = match self.tab {
            Tab::Overview => "overview",
            Tab::Usage => "usage",
            Tab::Analysis => "analysis",
            Tab::Reports => "reports",
            Tab::Keys => "keys",
            Tab::Manage => "manage",
        };
        cur == t
    }
}

/// An enrollment page's context: the viewer's role in the enrollment of the
/// path (a 404 page when they have none), the enrollment, and the viewer's
/// [`Access`] to it (what the page asks of the use-case layer goes through it).
pub struct Page {
    pub viewer: Viewer,
    pub role: Role,
    pub n: EnrollmentNumber,
    pub e: Enrollment,
    pub access: Access,
    /// The server's clock ("now" for this page).
    pub clock: std::sync::Arc<dyn meterbook_core::clock::Clock>,
}

impl Page {
    pub async fn load(state: &AppState, viewer: Viewer, number: &str) -> Result<Page, ApiError> {
        let (signed, number) = (viewer.0.clone(), number.to_string());
        let access = state.run(move |app| signed.access(app, &number)).await?;
        let role = viewer
            .roles
            .iter()
            .find(|r| &r.enrollment == access.number())
            .cloned()
            .ok_or_else(|| ApiError::Internal("the role vanished".into()))?;
        Ok(Page {
            viewer,
            role,
            n: access.number().clone(),
            e: access.enrollment().clone(),
            access,
            clock: state.clock().clone(),
        })
    }

    pub fn scope(&self) -> Scope {
        self.access.scope()
    }

    /// The rights below are the use-case layer's: pages only show or hide
    /// what the layer would allow or refuse anyway.
    pub fn sees_costs(&self) -> bool {
        self.access.sees_charges()
    }

    /// Read-write enterprise administrators manage users, settings and the hierarchy.
    pub fn can_manage(&self) -> bool {
        self.access.admin().is_ok()
    }

    /// Enterprise administrators, read-only ones included, see Manage.
    pub fn sees_manage(&self) -> bool {
        self.access.enterprise().is_ok()
    }

    pub fn nav(&self, tab: Tab) -> Nav {
        Nav {
            email: self.viewer.user.email.clone(),
            csrf: self.viewer.session.csrf.clone(),
            number: self.n.to_string(),
            enrollment_name: self.e.name.clone(),
            role_title: self.role.title(),
            tab,
            switch_to: self
                .viewer
                .roles
                .iter()
                .filter(|r| r.enrollment != self.n)
                .map(|r| (r.enrollment.to_string(), r.title()))
                .collect(),
            sees_balance: self.access.sees_balance(),
            sees_manage: self.sees_manage(),
            can_manage: self.can_manage(),
        }
    }

    /// Records an audit entry as this viewer (failures are logged, not shown).
    pub async fn audit(&self, state: &AppState, action: &str, detail: String) {
        let (access, action) = (self.access.clone(), action.to_string());
        if let Err(err) = state
            .run(move |_| {
                access.audit(&action, detail);
                Ok(())
            })
            .await
        {
            tracing::warn!(error = %err, "cannot write the audit log");
        }
    }
}

/// An error as a page (the API's JSON errors stay on the API).
#[derive(Template)]
#[template(path = "portal/error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub message: String,
}

pub fn error_page(e: ApiError) -> Response {
    let status = e.status_and_code().0;
    let retry = e.retry_after();
    let title = match &e {
        ApiError::NotFound(_) => "Not found",
        ApiError::Forbidden(_) | ApiError::ForbiddenCode { .. } => "Not allowed",
        ApiError::BadRequest(_) => "Check the form",
        ApiError::Conflict(_) => "Conflict",
        ApiError::TooManyRequests(_) => "Too many attempts",
        ApiError::TooManyReports { .. } => "Too many reports",
        ApiError::Gone(_) => "No longer available",
        ApiError::RangeNotSatisfiable(_) => "Range outside the file",
        ApiError::PayloadTooLarge(_) => "Too large",
        ApiError::UriTooLong(_) | ApiError::HeadersTooLarge(_) => "Request too large",
        ApiError::RequestTimeout(_) | ApiError::Timeout(_) => "Took too long",
        ApiError::MethodNotAllowed => "Not allowed here",
        ApiError::Unauthorized { .. } => "Sign in",
        ApiError::NotReady(_) | ApiError::Internal(_) => "Something went wrong",
    };
    let message = match &e {
        ApiError::Internal(cause) => {
            tracing::error!(%cause, "portal request failed");
            "An internal error occurred; the cause is in the server log.".to_string()
        }
        other => other.to_string(),
    };
    let mut r = render(&ErrorPage {
        status: status.as_u16(),
        title: title.to_string(),
        message,
    });
    *r.status_mut() = status;
    if let Some(secs) = retry {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    r
}

/// Handlers return this: a page, or an error page.
pub type PageResult = Result<Response, PageError>;

pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<meterbook_app::AppError> for PageError {
    fn from(e: meterbook_app::AppError) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.0)
    }
}
