//! The older report endpoint: `GET /rest/{n}/usage-report?month=YYYY-MM&type=detail|summary&fmt=json|csv`.

use super::Ctx;
use crate::auth::Caller;
use crate::error::ApiPath;
use crate::params::Params;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use meterbook_app::reads::Details;
use meterbook_app::Span;
use meterbook_io::report::ReportFormat;

pub async fn usage_report(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ctx = Ctx::load(&caller, &n, &uri)?;
    let q = Params::parse(uri.query())?;
    let month = q
        .get("month")
        .ok_or_else(|| ApiError::BadRequest("`month` is required (YYYY-MM)".into()))?;
    let b = month.as_bytes();
    let shaped = b.len() == 7
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit());
    if !shaped {
        return Err(ApiError::BadRequest(format!(
            "`month` must be YYYY-MM, not `{month}`"
        )));
    }
    let period = ctx.period(&format!("{}{}", &month[..4], &month[5..]))?;
    let kind = q.choice("type", &["detail", "summary"], "detail")?;
    if kind == "summary" {
        // Scope first: a 304 must not tell a caller what it may not see.
        ctx.a.enterprise()?;
    }
    let fmt = q.choice("fmt", &["json", "csv"], "json")?;
    if let Some(r) = ctx.not_modified(&headers) {
        return Ok(r);
    }
    let exp = ctx.e.currency.exponent();
    let meta = ctx.a.report_meta(Span::Period(period));
    let a = ctx.a.clone();
    let (body, content_type) = if kind == "summary" {
        let st = state
            .run(move |_| a.enterprise()?.statement(period))
            .await?;
        if fmt == "json" {
            let body = meterbook_io::report::balance::statement_json(
                ctx.n.as_str(),
                &st,
                exp,
                ctx.e.currency.code(),
                None,
            );
            (body.into_bytes(), "application/json")
        } else {
            let mut out = Vec::new();
            meterbook_io::report::balance::write(
                &meta,
                &[(*st).clone()],
                exp,
                ReportFormat::Csv,
                &mut out,
            )
            .map_err(|e| ApiError::Internal(e.to_string()))?;
            (out, "text/csv; charset=utf-8")
        }
    } else {
        let format = if fmt == "json" {
            ReportFormat::Json
        } else {
            ReportFormat::Csv
        };
        let out = state
            .run(move |_| {
                let details = Details {
                    legacy: true,
                    ..Default::default()
                };
                let report = a.usage_details(Span::Period(period), &details)?;
                let mut out = Vec::new();
                report.write(format, &mut out)?;
                Ok(out)
            })
            .await?;
        (
            out,
            if fmt == "json" {
                "application/json"
            } else {
                "text/csv; charset=utf-8"
            },
        )
    };
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(ctx.decorate(res))
}
