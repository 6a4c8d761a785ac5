//! What an operator's monitoring calls: liveness (`/healthz`: the process
//! answers), readiness (`/readyz`: it can serve) and `/metrics`. None of them
//! counts against a key's rate limit.

use crate::metrics;
use crate::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// 200 when the store answers a read with the schema this build knows and
/// the report workers run; else 503 with the reason.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.run(|app| Ok(app.check_ready())).await;
    let reason = match store {
        Err(e) => Some(format!("the store cannot be reached: {e}")),
        // The store's own words (not the layer's "internal error" wrapping).
        Ok(Err(meterbook_app::AppError::Internal(m))) => {
            Some(format!("the store is not ready: {m}"))
        }
        Ok(Err(e)) => Some(format!("the store is not ready: {e}")),
        Ok(Ok(())) if !state.reports().workers.is_running() => {
            Some("the report workers are not running".to_string())
        }
        Ok(Ok(())) => None,
    };
    match reason {
        None => axum::Json(json!({"status": "ready"})).into_response(),
        Some(r) => {
            tracing::warn!(reason = %r, "not ready");
            ApiError::NotReady(r).into_response()
        }
    }
}

/// The Prometheus exposition; it names enrollments, so it needs an operator token.
pub async fn metrics(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let op = crate::auth::operator(&parts, &state).await?.handle;
    let snap = state.run(move |_| op.monitoring()).await?;
    let body = metrics::render(state.metrics(), snap);
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response())
}
