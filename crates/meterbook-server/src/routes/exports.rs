//! Scheduled exports over the API (Meterbook's own, beside the v3 shapes):
//! list and create an enrollment's schedules, delete one, list its runs,
//! run it now. Enterprise administrators only (others get 403); a schedule
//! names a folder under the operator's export root, never a path.

use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use meterbook_app::exports::NewExport;
use meterbook_app::Span;
use meterbook_core::exports::{Cadence, ExportRun, ExportSchedule};
use meterbook_core::jobs::ExportFormat;
use serde::Deserialize;
use serde_json::{json, Value};

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

pub fn schedule_json(s: &ExportSchedule) -> Value {
    let (from, to) = match s.cadence {
        Cadence::Once { from, to } => (Some(from.to_string()), Some(to.to_string())),
        _ => (None, None),
    };
    json!({
        "id": s.id,
        "enrollmentNumber": s.enrollment.as_str(),
        "name": s.name,
        "folder": s.folder,
        "schedule": s.cadence.name(),
        "startDate": from,
        "endDate": to,
        "format": s.format.name(),
        "createdOn": rfc3339(s.created_at),
        "createdBy": s.created_by,
    })
}

pub fn run_json(r: &ExportRun) -> Value {
    json!({
        "runKey": r.run_key,
        "attemptId": r.run_id,
        "status": r.status.name(),
        "attempts": r.attempts,
        "startedOn": rfc3339(r.started_at),
        "finishedOn": r.finished_at.map_or(Value::Null, rfc3339),
        "retryOn": r.retry_at.map_or(Value::Null, rfc3339),
        "error": r.error,
        "manifest": r.manifest.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()),
    })
}

/// `GET /v3/enrollments/{n}/exports`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    let list = state.run(move |_| a.exports()).await?;
    let value: Vec<Value> = list.iter().map(schedule_json).collect();
    Ok(axum::Json(json!({ "value": value })).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateExport {
    name: String,
    folder: String,
    /// `daily`, `monthly` or `once`.
    schedule: String,
    /// `csv` (default), `csv.gz`, `parquet`, `focus-csv` or `focus-parquet`.
    format: Option<String>,
    /// For `once`: the range, both given.
    start_date: Option<String>,
    end_date: Option<String>,
}

/// `POST /v3/enrollments/{n}/exports`: 201 with the schedule.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(req): ApiJson<CreateExport>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    let day = |v: &str, name: &str| -> Result<meterbook_core::Day, ApiError> {
        super::parse_day_or_time(v).map_err(|e| ApiError::BadRequest(format!("`{name}`: {e}")))
    };
    let span = match (req.start_date.as_deref(), req.end_date.as_deref()) {
        (Some(f), Some(t)) => Some(Span::Range(day(f, "startDate")?, day(t, "endDate")?)),
        (None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "give both `startDate` and `endDate`, or neither".into(),
            ))
        }
    };
    let format = ExportFormat::requested(req.format.as_deref().unwrap_or("csv"))
        .map_err(ApiError::BadRequest)?;
    let r = NewExport {
        name: req.name,
        folder: req.folder,
        schedule: req.schedule,
        span,
        format,
    };
    let s = state.run(move |_| a.create_export(r)).await?;
    Ok((StatusCode::CREATED, axum::Json(schedule_json(&s))).into_response())
}

/// `DELETE /v3/enrollments/{n}/exports/{id}`: 204.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    state.run(move |_| a.delete_export(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v3/enrollments/{n}/exports/{id}/runs`: newest key first.
pub async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    let runs = state.run(move |_| a.export_runs(&id)).await?;
    let value: Vec<Value> = runs.iter().map(run_json).collect();
    Ok(axum::Json(json!({ "value": value })).into_response())
}

/// `POST /v3/enrollments/{n}/exports/{id}/run`: runs the current key now
/// (the range of a once export, today's daily key, the latest closed
/// period) and answers with the run as it ended (a failed run is still 200:
/// its status and error say what happened).
pub async fn run_now(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    let run = state.run(move |_| a.run_export_now(&id)).await?;
    Ok(axum::Json(run_json(&run)).into_response())
}
