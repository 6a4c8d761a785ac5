//! usagedetails (JSON pages with a keyset cursor), the streamed CSV download,
//! and marketplacecharges.

use super::{base_url, Ctx};
use crate::auth::Caller;
use crate::error::ApiPath;
use crate::params::Params;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use meterbook_core::store::{ScanCursor, UsageSelection};
use meterbook_core::{Day, Period};
use meterbook_io::report::usage::{UsageFilter, UsageReport};
use meterbook_io::report::{ReportFormat, ReportScope};

const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;

/// What a request selects: a billing period or a date range.
#[derive(Clone, Copy)]
enum Span {
    Period(Period),
    Range(Day, Day),
}

impl Span {
    fn selection(self) -> UsageSelection {
        match self {
            Span::Period(p) => UsageSelection {
                booked: Some(p),
                ..Default::default()
            },
            Span::Range(f, t) => UsageSelection {
                from: Some(f),
                to: Some(t),
                ..Default::default()
            },
        }
    }
    fn scope(self) -> ReportScope {
        match self {
            Span::Period(p) => ReportScope::Period(p.to_string()),
            Span::Range(f, t) => ReportScope::Range {
                from: f.to_string(),
                to: t.to_string(),
            },
        }
    }
    fn file_part(self) -> String {
        match self {
            Span::Period(p) => p.to_string(),
            Span::Range(f, t) => format!("{f}_{t}"),
        }
    }
}

fn filter(ctx: &Ctx, caller: &Caller, span: Span, marketplace: bool) -> UsageFilter {
    UsageFilter {
        selection: span.selection(),
        show_costs: caller.scope.sees_costs(ctx.e.visibility),
        marketplace_only: marketplace,
        scope: Some(caller.scope),
        ..Default::default()
    }
}

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
    let ctx = Ctx::load(&state, &caller, &n, &uri).await?;
    let q = Params::parse(uri.query())?;
    let span = if custom {
        let (f, t) = ctx.range(&q)?;
        Span::Range(f, t)
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
    let mut f = filter(&ctx, &caller, span, marketplace);
    if let Some(tok) = q.get("skiptoken") {
        f.selection.after = Some(decode_cursor(tok)?);
    }
    if let Some(r) = ctx.not_modified(&headers) {
        return Ok(r);
    }
    let number = ctx.n.clone();
    let meta = ctx.meta(span.scope());
    let (rows, next) = state
        .blocking(move |s| {
            let report = UsageReport::prepare(s, &number, f, meta)?;
            let mut out = Vec::with_capacity(size * 600);
            let (_, next) = report.write_page(s, &number, size, &mut out)?;
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
                base_url(&headers),
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

/// Bytes written on a blocking thread, sent to the response body through a
/// bounded channel: the report streams, memory stays flat, and a client that
/// goes away stops the report at its next chunk.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
    let ctx = Ctx::load(&state, &caller, &n, &uri).await?;
    let q = Params::parse(uri.query())?;
    let span = match q.get("billingperiod") {
        Some(p) => Span::Period(ctx.period(p)?),
        None if q.get("starttime").is_some() || q.get("endtime").is_some() => {
            let (f, t) = ctx.range(&q)?;
            Span::Range(f, t)
        }
        None => Span::Period(ctx.current_period()),
    };
    if let Some(r) = ctx.not_modified(&headers) {
        return Ok(r);
    }
    let f = filter(&ctx, &caller, span, false);
    let number = ctx.n.clone();
    let meta = ctx.meta(span.scope());
    // Prepare (and fail with a proper status) before the response starts.
    let report = state
        .blocking(move |s| Ok(UsageReport::prepare(s, &number, f, meta)?))
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = state.store().clone();
    let number = ctx.n.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx: tx.clone() };
        if let Err(e) = report.write(store.as_ref(), &number, ReportFormat::Csv, &mut w) {
            tracing::warn!(error = %e, "usage download ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other("report failed")));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let file = format!("usage-details_{}_{}.csv", ctx.n, span.file_part());
    let mut res = Body::from_stream(stream).into_response();
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
