//! The usage-details CSV of a selection of the Usage page (a billing period
//! or a date range, optionally one department or account inside the viewer's
//! reach), streamed.

use super::parse_period;
use crate::portal::{Page, PageResult, Viewer};
use crate::{ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use meterbook_app::reads::Details;
use meterbook_app::Span;
use meterbook_core::figures::Focus;
use meterbook_core::Day;
use meterbook_io::report::ReportFormat;
use serde::Deserialize;

/// The download's query: a billing period or a date range, and an optional
/// account or department (inside the viewer's scope).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DetailsQuery {
    period: String,
    from: String,
    to: String,
    account: String,
    department: String,
}

/// `GET /portal/e/{n}/usage/details.csv?period=YYYYMM` or
/// `?from=YYYY-MM-DD&to=YYYY-MM-DD`, with `account=` or `department=`: the
/// usage-details CSV of a selection of the usage page, streamed.
pub(super) async fn details_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Query(q): Query<DetailsQuery>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let day = |v: &str, what: &str| -> Result<Day, ApiError> {
        v.trim().parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "`{what}` must be a date (YYYY-MM-DD), not `{}`",
                meterbook_core::quote::quote(v)
            ))
        })
    };
    let a = page.access.clone();
    let span = if !q.period.is_empty() {
        Span::Period(a.check_period(parse_period(&q.period, "period")?)?)
    } else {
        let (f, t) = (day(&q.from, "from")?, day(&q.to, "to")?);
        a.range(f, t, ("`from`", "`to`"))?
    };
    let what = match span {
        Span::Period(p) => format!("period {p}"),
        Span::Range(f, t) => format!("{f} to {t}"),
    };
    let (dq, aq) = (q.department.clone(), q.account.clone());
    // Prepare (and fail with a proper page) before the response starts.
    let (report, department, account) = state
        .run(move |_| {
            let (department, account) = match a.focus(Some(&dq), Some(&aq))? {
                Focus::Scope => (None, None),
                Focus::Department(d) => (Some(d), None),
                Focus::Account {
                    department,
                    account,
                } => (department, Some(account)),
            };
            // An account narrows further than its department: the report
            // keeps a row matching either, so only one of them is passed.
            let details = Details {
                accounts: account.iter().cloned().collect(),
                departments: if account.is_some() {
                    Vec::new()
                } else {
                    department.iter().cloned().collect()
                },
                ..Default::default()
            };
            Ok((a.usage_details(span, &details)?, department, account))
        })
        .await?;
    let sel = match (&account, &department) {
        (Some(a), _) => format!(", account {a}"),
        (None, Some(d)) => format!(", department {d}"),
        _ => String::new(),
    };
    page.audit(&state, "download", format!("usage details, {what}{sel}"))
        .await;
    let body = crate::streaming::body("usage details download", move |w| {
        report.write(ReportFormat::Csv, w).map(|_| ())
    });
    let sel_part = match (&account, &department) {
        (Some(a), _) => format!("_{}", file_safe(a)),
        (None, Some(d)) => format!("_{}", file_safe(d)),
        _ => String::new(),
    };
    let file = format!(
        "usage-details_{}_{}{sel_part}.csv",
        page.n,
        span.file_part()
    );
    let mut res = body.into_response();
    let hd = res.headers_mut();
    hd.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    hd.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        hd.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// A name as part of a file name: letters, digits, `-` and `_` kept.
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
