//! One error type for the HTTP layer, mapped to status codes in one place.
//! Bodies are `{"error": {"code", "message"}}`; a 500's cause goes to the log,
//! never to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use meterbook_core::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    /// 403 with a specific code (a refused download link says why).
    #[error("{message}")]
    ForbiddenCode { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    /// 410: it existed, and is gone for good.
    #[error("{0}")]
    Gone(String),
    /// 416: a byte range outside the file.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("rate limit exceeded; retry in {0} s")]
    TooManyRequests(u64),
    /// 429 for a requester's report-job quota (a distinct code, so a client
    /// can tell it from the rate limit).
    #[error("{message}")]
    TooManyReports { message: String, retry_after: u64 },
    /// 413: a body over its bound.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 408: the client stopped sending its body.
    #[error("{0}")]
    RequestTimeout(String),
    /// 414: a query string over its bound.
    #[error("{0}")]
    UriTooLong(String),
    /// 431: headers over their bound.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 503: the server took longer than its request timeout.
    #[error("{0}")]
    Timeout(String),
    /// 503: the server is up but cannot serve (readiness).
    #[error("{0}")]
    NotReady(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::Unauthorized { code, .. } => (StatusCode::UNAUTHORIZED, code),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::ForbiddenCode { code, .. } => (StatusCode::FORBIDDEN, code),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::Gone(_) => (StatusCode::GONE, "Gone"),
            ApiError::RangeNotSatisfiable(_) => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "RangeNotSatisfiable")
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ApiError::TooManyReports { .. } => (StatusCode::TOO_MANY_REQUESTS, "TooManyReports"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "RequestTimeout"),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "UriTooLong"),
            ApiError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "RequestHeaderFieldsTooLarge",
            ),
            ApiError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "Timeout"),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "NotReady"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }
}

impl ApiError {
    /// Seconds to wait before trying again, for the answers that have one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests(secs) => Some(*secs),
            ApiError::TooManyReports { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Backend(m) => ApiError::Internal(m),
        }
    }
}

impl From<meterbook_app::AppError> for ApiError {
    fn from(e: meterbook_app::AppError) -> ApiError {
        use meterbook_app::AppError as A;
        match e {
            A::Invalid(m) => ApiError::BadRequest(m),
            A::Unauthenticated { code, message } => ApiError::Unauthorized { code, message },
            A::Forbidden(m) => ApiError::Forbidden(m),
            A::NotFound(m) => ApiError::NotFound(m),
            A::Gone(m) => ApiError::Gone(m),
            A::Conflict(m) => ApiError::Conflict(m),
            A::Quota {
                message,
                retry_after,
            } => ApiError::TooManyReports {
                message,
                retry_after,
            },
            A::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<meterbook_io::report::usage::ReportError> for ApiError {
    fn from(e: meterbook_io::report::usage::ReportError) -> ApiError {
        match e {
            meterbook_io::report::usage::ReportError::Store(s) => s.into(),
            meterbook_io::report::usage::ReportError::Io(io) => ApiError::Internal(io.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "internal error; the cause is in the server log".to_string()
            }
            other => other.to_string(),
        };
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        let mut res = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after() {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        // A body left unread (stalled or too large) leaves the connection in
        // no state to carry another request: say so, so the client's pool
        // does not reuse it (RFC 9110 §15.5.9), and hyper closes it.
        if matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// `axum::Json`, but a body that is not the expected JSON is a 400 with our
/// error body (axum's own rejection is plain text).
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge(crate::limits::body_too_large()))
            }
            Err(e) => Err(ApiError::BadRequest(format!(
                "request body: {}",
                e.body_text()
            ))),
        }
    }
}

/// `axum::extract::Path`, with a JSON 400 when the path does not decode.
pub struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::BadRequest(format!("path: {}", e.body_text()))),
        }
    }
}
