//! Routes, grouped by resource; shared response helpers.

mod analysis;
mod budgets;
mod exports;
mod files;
pub(crate) mod forecast;
mod health;
mod jobs;
mod keys;
mod legacy;
mod operator;
mod reports;
mod usage;

use crate::auth::Caller;
use crate::params::Params;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use meterbook_app::{Access, Span};
use meterbook_core::quote::quote;
use meterbook_core::{Day, Enrollment, EnrollmentNumber, Period};
use sha2::{Digest, Sha256};

/// Every route. All but the operator uploads answer within
/// `request_timeout` (to their response's headers); uploads are bounded by
/// their size and body idle timeout instead, as their ingest may take minutes.
pub fn routes(limits: &crate::Limits) -> Router<AppState> {
    let v3 = "/v3/enrollments/{n}";
    let uploads = Router::new()
        .route(
            "/operator/enrollments/{n}/hierarchy",
            post(operator::hierarchy),
        )
        .route(
            "/operator/enrollments/{n}/prices/{p}",
            axum::routing::put(operator::prices),
        )
        .route("/operator/enrollments/{n}/usage", post(operator::usage));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(crate::openapi::spec()) }),
        )
        .route(
            "/docs",
            get(|| async { axum::response::Html(crate::openapi::docs_html()) }),
        )
        .route(
            &format!("{v3}/billingperiods"),
            get(reports::billing_periods),
        )
        .route(
            &format!("{v3}/balancesummary"),
            get(reports::balance_current),
        )
        .route(
            &format!("{v3}/billingperiods/{{p}}/balancesummary"),
            get(reports::balance_period),
        )
        .route(&format!("{v3}/forecast"), get(forecast::forecast))
        .route(&format!("{v3}/pricesheet"), get(reports::prices_current))
        .route(
            &format!("{v3}/billingperiods/{{p}}/pricesheet"),
            get(reports::prices_period),
        )
        .route(&format!("{v3}/usagedetails"), get(usage::details_current))
        .route(
            &format!("{v3}/billingperiods/{{p}}/usagedetails"),
            get(usage::details_period),
        )
        .route(
            &format!("{v3}/usagedetailsbycustomdate"),
            get(usage::details_custom),
        )
        .route(&format!("{v3}/usagedetails/download"), get(usage::download))
        .route(&format!("{v3}/usagedetails/submit"), post(jobs::submit))
        .route(&format!("{v3}/reports"), get(jobs::list).post(jobs::create))
        .route(
            &format!("{v3}/exports"),
            get(exports::list).post(exports::create),
        )
        .route(
            &format!("{v3}/exports/{{id}}"),
            axum::routing::delete(exports::delete),
        )
        .route(&format!("{v3}/exports/{{id}}/runs"), get(exports::runs))
        .route(&format!("{v3}/exports/{{id}}/run"), post(exports::run_now))
        .route(
            &format!("{v3}/reports/{{id}}"),
            get(jobs::get_job).delete(jobs::cancel),
        )
        .route(&format!("{v3}/reports/{{id}}/link"), post(jobs::link))
        .route(
            &format!("{v3}/reports/{{id}}/download"),
            get(jobs::download_keyed),
        )
        .route("/downloads/{id}", get(jobs::download_signed))
        .route(
            &format!("{v3}/marketplacecharges"),
            get(usage::marketplace_current),
        )
        .route(
            &format!("{v3}/billingperiods/{{p}}/marketplacecharges"),
            get(usage::marketplace_period),
        )
        .route(
            &format!("{v3}/marketplacechargesbycustomdate"),
            get(usage::marketplace_custom),
        )
        .route(&format!("{v3}/costanalysis"), get(analysis::cost_analysis))
        .route(
            &format!("{v3}/costanalysis/download"),
            get(analysis::download),
        )
        .route(&format!("{v3}/keys"), get(keys::list).post(keys::generate))
        .route(&format!("{v3}/keys/disable"), post(keys::disable))
        .route(
            &format!("{v3}/budgets"),
            get(budgets::list).post(budgets::create),
        )
        .route(
            &format!("{v3}/budgets/{{id}}"),
            get(budgets::get_one).delete(budgets::delete),
        )
        .route(
            &format!("{v3}/notifications/channels"),
            get(budgets::channels).post(budgets::add_channel),
        )
        .route(
            &format!("{v3}/notifications/channels/{{id}}"),
            axum::routing::delete(budgets::remove_channel),
        )
        .route(&format!("{v3}/notifications/events"), get(budgets::events))
        .route(
            &format!("{v3}/notifications/deliveries"),
            get(budgets::deliveries),
        )
        .route("/rest/{n}/usage-report", get(legacy::usage_report))
        .route("/operator/enrollments", post(operator::create_enrollment))
        .route(
            "/operator/enrollments/{n}/settings",
            axum::routing::put(operator::settings),
        )
        .route(
            "/operator/enrollments/{n}/purchases",
            post(operator::purchase),
        )
        .route(
            "/operator/enrollments/{n}/adjustments",
            post(operator::adjustment),
        )
        .route(
            "/operator/enrollments/{n}/watermark",
            axum::routing::put(operator::watermark),
        )
        .route(
            "/operator/enrollments/{n}/periods/{p}/close",
            post(operator::close_period),
        )
        .route(
            "/operator/enrollments/{n}/keys",
            post(operator::enterprise_key),
        )
        .route("/", get(root))
        .merge(crate::portal::routes())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .merge(uploads)
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// `/`: a browser goes to the portal, an API client to the API's description.
async fn root(headers: HeaderMap) -> Response {
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    axum::response::Redirect::to(if browser { "/portal" } else { "/docs" }).into_response()
}

/// An unknown path: the portal's 404 page under `/portal`, JSON elsewhere.
async fn not_found(uri: Uri) -> Response {
    let e = ApiError::NotFound("no such endpoint".into());
    if uri.path().starts_with("/portal/") {
        crate::portal::error_page(e)
    } else {
        e.into_response()
    }
}

/// What every report handler starts with: the caller's enrollment, loaded.
/// A Reporting API request's context: the caller's access to the path's
/// enrollment, and the ETag of what it may see now.
pub(crate) struct Ctx {
    pub a: Access,
    pub n: EnrollmentNumber,
    pub e: Enrollment,
    pub etag: String,
}

impl Ctx {
    pub fn load(caller: &Caller, path_n: &str, uri: &Uri) -> Result<Ctx, ApiError> {
        let a = caller.access(path_n)?.clone();
        let e = a.enrollment().clone();
        let mut h = Sha256::new();
        h.update(uri.to_string().as_bytes());
        h.update(
            format!(
                "{:?}|{}|{}",
                a.scope(),
                e.data_version,
                e.visibility.department_admins_view_charges as u8 * 2
                    + e.visibility.account_owners_view_charges as u8
            )
            .as_bytes(),
        );
        let digest = h.finalize();
        let etag = format!(
            "\"{}-{}\"",
            e.data_version,
            digest[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Ok(Ctx {
            n: e.number.clone(),
            a,
            e,
            etag,
        })
    }

    pub fn not_modified(&self, headers: &HeaderMap) -> Option<Response> {
        let inm = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
        let hit = inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == self.etag || t == "*");
        hit.then(|| self.decorate(StatusCode::NOT_MODIFIED.into_response()))
    }

    /// Adds ETag and the watermark header.
    pub fn decorate(&self, mut res: Response) -> Response {
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            h.insert(header::ETAG, v);
        }
        let wm = self
            .e
            .watermark
            .map_or("none".to_string(), |d| d.to_string());
        if let Ok(v) = HeaderValue::from_str(&wm) {
            h.insert("x-usage-complete-through", v);
        }
        res
    }

    pub fn watermark_json(&self) -> String {
        match self.e.watermark {
            Some(d) => format!("\"{d}\""),
            None => "null".into(),
        }
    }

    /// The period containing today, kept inside the term.
    pub fn current_period(&self) -> Period {
        self.a.current_period()
    }

    pub fn period(&self, s: &str) -> Result<Period, ApiError> {
        Ok(self.a.period(s)?)
    }

    /// `startTime` and `endTime`: a range of usage dates inside the term.
    pub fn range(&self, q: &Params) -> Result<Span, ApiError> {
        let day = |name: &str| -> Result<Day, ApiError> {
            let v = q.get(&name.to_ascii_lowercase()).ok_or_else(|| {
                ApiError::BadRequest(format!("`{name}` is required (YYYY-MM-DD)"))
            })?;
            parse_day_or_time(v).map_err(|e| ApiError::BadRequest(format!("`{name}`: {e}")))
        };
        let (from, to) = (day("startTime")?, day("endTime")?);
        Ok(self.a.range(from, to, ("startTime", "endTime"))?)
    }

    pub fn json(&self, body: String) -> Response {
        self.decorate(
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                Body::from(body),
            )
                .into_response(),
        )
    }
}

/// Where absolute links point: the configured public URL, or else
/// `http://host` of the request.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.settings().public_url {
        return u.to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A date (`2025-11-01`) or an ISO 8601 date-time (`2025-11-01T00:00:00Z`,
/// with an offset converted to UTC); anything else is refused.
pub fn parse_day_or_time(v: &str) -> Result<Day, String> {
    if v.len() == 10 {
        return v.parse::<Day>().map_err(|e| e.0);
    }
    let utc = chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&chrono::Utc).naive_utc())
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| {
            format!(
                "`{}` is not a date (YYYY-MM-DD) or an ISO 8601 date-time",
                quote(v)
            )
        })?;
    Day::from_ymd(
        chrono::Datelike::year(&utc),
        chrono::Datelike::month(&utc),
        chrono::Datelike::day(&utc),
    )
    .ok_or_else(|| format!("`{}` is out of range", quote(v)))
}
