//! Bounds on everything a client controls over HTTP, and the timeouts that
//! keep a slow or stalled client from holding the server.
//!
//! Two layers: [`guard`] refuses a request whose query string or headers are
//! over their bounds before any handler runs, and [`uniform_errors`] turns the
//! plain-text or empty 4xx/5xx answers of extractors and tower layers (body
//! limit, timeout, malformed form) into the API's JSON error body, or the
//! portal's error page for portal paths. Hyper's own limits sit above ours as
//! a backstop (see `serve`).

use crate::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// The bounds and timeouts (part of [`crate::ServerSettings`]).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Operator uploads (usage, price sheet, hierarchy), spooled to a
    /// temporary file before anything is stored.
    pub max_upload_bytes: u64,
    /// Every other body: API JSON, operator JSON, portal forms.
    pub max_body_bytes: usize,
    /// The query string, in bytes (after `?`).
    pub max_query_bytes: usize,
    /// `name=value` pairs in the query string.
    pub max_query_params: usize,
    /// All request headers together (names and values), in bytes.
    pub max_header_bytes: usize,
    /// Request headers, counted one per line.
    pub max_headers: usize,
    /// An upload whose body sends nothing for this long gets 408.
    pub body_idle_timeout: Duration,
    /// Time to the response's headers for every route but operator uploads
    /// (downloads stream after their headers, so their length is not bound).
    pub request_timeout: Duration,
    /// A connection must send a request's headers within this time.
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 8 << 30,
            max_body_bytes: 1 << 20,
            max_query_bytes: 4096,
            max_query_params: 32,
            max_header_bytes: 32 << 10,
            max_headers: 64,
            body_idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// The message of a body over `max_body_bytes` (the extractor that meets it
/// does not know the figure; the setting's name tells the operator where).
pub(crate) fn body_too_large() -> String {
    "the request body is larger than this server accepts (--max-body-bytes)".to_string()
}

fn is_portal(path: &str) -> bool {
    path == "/portal" || path.starts_with("/portal/")
}

/// The error as the caller's front end shows it: JSON for the API, the
/// error page for the portal.
fn answer(path: &str, e: ApiError) -> Response {
    if is_portal(path) {
        crate::portal::error_page(e)
    } else {
        e.into_response()
    }
}

/// Refuses a request whose query string or headers are over their bounds.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let l = &state.settings().limits;
    if let Some(e) = check(l, &req) {
        return answer(req.uri().path(), e);
    }
    next.run(req).await
}

fn check(l: &Limits, req: &Request) -> Option<ApiError> {
    let query = req.uri().query().unwrap_or("");
    if query.len() > l.max_query_bytes {
        return Some(ApiError::UriTooLong(format!(
            "the query string has {} bytes; at most {} are accepted",
            query.len(),
            l.max_query_bytes
        )));
    }
    let params = query.split('&').filter(|p| !p.is_empty()).count();
    if params > l.max_query_params {
        return Some(ApiError::BadRequest(format!(
            "the query string has {params} parameters; at most {} are accepted",
            l.max_query_params
        )));
    }
    let h = req.headers();
    if h.len() > l.max_headers {
        return Some(ApiError::HeadersTooLarge(format!(
            "the request has {} headers; at most {} are accepted",
            h.len(),
            l.max_headers
        )));
    }
    let bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if bytes > l.max_header_bytes {
        return Some(ApiError::HeadersTooLarge(format!(
            "the request headers have {bytes} bytes; at most {} are accepted",
            l.max_header_bytes
        )));
    }
    None
}

/// Rewrites an error answer that is not already ours (axum's extractor
/// rejections are plain text; tower-http's timeout and hyper's limits send an
/// empty body) into the API's JSON error, or the portal's error page.
pub async fn uniform_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let ours = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    if ours {
        return res;
    }
    let retry = res.headers().get(header::RETRY_AFTER).cloned();
    // Rejection texts are a line or two; anything longer is cut.
    let text = match axum::body::to_bytes(res.into_body(), 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let e = from_status(status, text);
    let mut out = answer(&path, e);
    if let Some(v) = retry {
        out.headers_mut().insert(header::RETRY_AFTER, v);
    }
    out
}

fn from_status(status: StatusCode, text: String) -> ApiError {
    let or = |default: &str| {
        if text.is_empty() {
            default.to_string()
        } else {
            text.clone()
        }
    };
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(body_too_large()),
        StatusCode::REQUEST_TIMEOUT => {
            ApiError::RequestTimeout(or("the request was not received in time"))
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => ApiError::Timeout(or(
            "the request took longer than this server allows (--request-timeout-secs)",
        )),
        StatusCode::URI_TOO_LONG => ApiError::UriTooLong(or("the URI is too long")),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ApiError::HeadersTooLarge(or("the request headers are too large"))
        }
        StatusCode::NOT_FOUND => ApiError::NotFound(or("not found")),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        s if s.is_server_error() => ApiError::Internal(or("internal error")),
        // 400, 415 (wrong content type), 422 (a form that does not decode).
        _ => ApiError::BadRequest(or("the request is malformed")),
    }
}
