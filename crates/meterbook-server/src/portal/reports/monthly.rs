//! The monthly downloads of a billing period: what `meterbook report <kind>
//! --period P --format F` writes (the same use-case function makes both),
//! limited to the viewer's scope (design §5).

use super::super::{Page, PageResult, Viewer};
use crate::{ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use meterbook_app::monthly::{MonthlyKind, Within};
use meterbook_app::Span;
use meterbook_io::report::ReportFormat;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct DownloadQ {
    period: Option<String>,
    format: Option<String>,
}

/// `csv` or `json`: the format, the file extension and the content type.
fn format_of(q: Option<&str>) -> Result<(ReportFormat, &'static str, &'static str), ApiError> {
    match q.unwrap_or("csv") {
        "csv" => Ok((ReportFormat::Csv, "csv", "text/csv; charset=utf-8")),
        "json" => Ok((ReportFormat::Json, "json", "application/json")),
        other => Err(ApiError::BadRequest(format!(
            "the format must be csv or json, not `{}`",
            meterbook_core::quote::quote(other)
        ))),
    }
}

/// `GET /portal/e/{n}/download/{kind}?period=YYYYMM&format=csv|json`.
pub(super) async fn download(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((n, kind)): Path<(String, String)>,
    Query(q): Query<DownloadQ>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let kind = MonthlyKind::parse(&kind)
        .ok_or_else(|| ApiError::NotFound(format!("there is no {kind} report")))?;
    let period = match q.period.as_deref().filter(|p| !p.is_empty()) {
        None => page.access.current_period(),
        Some(p) => page.access.period(p).map_err(ApiError::from)?,
    };
    let (format, ext, content_type) = format_of(q.format.as_deref())?;
    let a = page.access.clone();
    // Loaded (and refused, if it must be) before the response starts.
    let report = state
        .run(move |_| a.monthly_report(kind, Span::Period(period), &Within::default()))
        .await?;
    page.audit(
        &state,
        "download",
        format!("{} {period} {ext}", kind.name()),
    )
    .await;
    let file = report.file_name(ext);
    let body = crate::streaming::body("portal download", move |out| {
        report.write(format, out).map(|_| ())
    });
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
