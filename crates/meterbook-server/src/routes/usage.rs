//! usagedetails (JSON pages with a keyset cursor), the streamed CSV download,
//! and marketplacecharges.

use super::{base_url, Ctx};
use crate::auth::Caller;
use crate::error::ApiPath;
use crate::params::Params;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use meterbook_app::reads::Details;
use meterbook_app::Span;
use meterbook_core::store::ScanCursor;
use meterbook_core::Day;
use meterbook_io::report::ReportFormat;

const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;

/// An opaque page cursor: hex of `phase|day|record id`.
fn encode_cursor(c: &ScanCursor) -> String {
    format!(
        "{}|{}|{}",
        c.correction_phase as u8,
        c.day.raw(),
        c.record_id
    )
    .bytes()
    .map(|b| format!("{b:02x}"))
    .collect()
}

fn decode_cursor(s: &str) -> Result<ScanCursor, ApiError> {
    let bad = || ApiError::BadRequest("`skiptoken` is not a cursor this server issued".into());
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '|');
    let phase = parts.next().ok_or_else(bad)?;
    let day: i32 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let record_id = parts.next().ok_or_else(bad)?.to_string();
    Ok(ScanCursor {
        correction_phase: phase == "1",
        day: Day::from_raw(day),
        record_id,
    })
}

/// Which rows a page endpoint serves.
#[derive(Clone, Copy)]
struct Pages {
    /// `...bycustomdate`: a date range instead of a billing period.
    custom: bool,
    /// Marketplace charges instead of usage details.
    marketplace: bool,
}

async fn page(
    state: AppState,
    caller: Caller,
    (n, p): (String, Option<String>),
    Pages {
        custom,
        marketplace,
    }: Pages,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ctx = Ctx::load(&caller, &n, &uri)?;
    let q = Params::parse(uri.query())?;
    let span = if custom {
        ctx.range(&q)?
    } else {
        Span::Period(match p {
            Some(p) => ctx.period(&p)?,
            None => ctx.current_period(),
        })
    };
    let size = match q.get("$top").or_else(|| q.get("pagesize")) {
        None => DEFAULT_PAGE,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "page size must be 1 to {MAX_PAGE}, not `{v}`"
                )))
            }
        },
    };
    let details = Details {
        marketplace,
        after: q.get("skiptoken").map(decode_cursor).transpose()?,
        ..Default::default()
    };
    if let Some(r) = ctx.not_modified(&headers) {
        return Ok(r);
    }
    let a = ctx.a.clone();
    let (rows, next) = state
        .run(move |_| {
            let report = a.usage_details(span, &details)?;
            let mut out = Vec::with_capacity(size * 600);
            let (_, next) = report.write_page(size, &mut out)?;
            Ok((out, next))
        })
        .await?;
    let next_link = match next {
        Some(c) => {
            let mut kept: Vec<String> = uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|kv| !kv.is_empty() && !kv.to_ascii_lowercase().starts_with("skiptoken="))
                .map(str::to_string)
                .collect();
            kept.push(format!("skiptoken={}", encode_cursor(&c)));
            format!(
                "\"{}{}?{}\"",
                base_url(&state, &headers),
                uri.path(),
                kept.join("&")
            )
        }
        None => "null".into(),
    };
    let what = if marketplace {
        "marketplacecharges"
    } else {
        "usagedetails"
    };
    let mut body = format!(
        "{{\"id\":\"enrollments/{}/{what}\",\"usageCompleteThrough\":{},\"data\":[",
        ctx.n,
        ctx.watermark_json()
    );
    body.push_str(std::str::from_utf8(&rows).map_err(|e| ApiError::Internal(e.to_string()))?);
    body.push_str(&format!("\n],\"nextLink\":{next_link}}}"));
    Ok(ctx.json(body))
}

pub async fn details_current(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    page(
        state,
        caller,
        (n, None),
        Pages {
            custom: false,
            marketplace: false,
        },
        headers,
        uri,
    )
    .await
}

pub async fn details_period(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, p)): ApiPath<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    page(
        state,
        caller,
        (n, Some(p)),
        Pages {
            custom: false,
            marketplace: false,
        },
        headers,
        uri,
    )
    .await
}

pub async fn details_custom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    page(
        state,
        caller,
        (n, None),
        Pages {
            custom: true,
            marketplace: false,
        },
        headers,
        uri,
    )
    .await
}

pub async fn marketplace_current(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    page(
        state,
        caller,
        (n, None),
        Pages {
            custom: false,
            marketplace: true,
        },
        headers,
        uri,
    )
    .await
}

pub async fn marketplace_period(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, p)): ApiPath<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    page(
        state,
        caller,
        (n, Some(p)),
        Pages {
            custom: false,
            marketplace: true,
        },
        headers,
        uri,
    )
    .await
}

pub async fn marketplace_custom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    page(
        state,
        caller,
        (n, None),
        Pages {
            custom: true,
            marketplace: true,
        },
        headers,
        uri,
    )
    .await
}

/// `usagedetails/download?billingPeriod=` or `?startTime=&endTime=`: the
/// usage-details CSV, streamed (gzip when the client accepts it).
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ctx = Ctx::load(&caller, &n, &uri)?;
    let q = Params::parse(uri.query())?;
    let span = match q.get("billingperiod") {
        Some(p) => Span::Period(ctx.period(p)?),
        None if q.get("starttime").is_some() || q.get("endtime").is_some() => ctx.range(&q)?,
        None => Span::Period(ctx.current_period()),
    };
    if let Some(r) = ctx.not_modified(&headers) {
        return Ok(r);
    }
    let a = ctx.a.clone();
    // Prepare (and fail with a proper status) before the response starts.
    let report = state
        .run(move |_| a.usage_details(span, &Details::default()))
        .await?;
    let body = crate::streaming::body("usage download", move |w| {
        report.write(ReportFormat::Csv, w).map(|_| ())
    });
    let file = format!("usage-details_{}_{}.csv", ctx.n, span.file_part());
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(ctx.decorate(res))
}
