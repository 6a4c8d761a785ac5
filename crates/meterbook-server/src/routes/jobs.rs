//! Advanced report downloads over the API: submit a job (the Reporting API's
//! `usagedetails/submit`, or Meterbook's `reports` with the full filter set),
//! poll it, list, cancel, mint a fresh link, and download the file (with the
//! key, or through the signed link without one; the file itself is served by
//! [`super::files`]).

use super::files::serve_file;
use super::{base_url, Ctx};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath};
use crate::links::{self, LinkError, Signed};
use crate::params::Params;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use meterbook_app::jobs::ReportRequest as Request;
use meterbook_app::Span;
use meterbook_core::jobs::{scope_text, ExportFormat, Job};
use meterbook_core::Day;
use meterbook_jobs::FileState;
use serde::Deserialize;
use serde_json::{json, Value};

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

/// A signed link to the job's file, valid for `lifetime`.
fn signed_link(state: &AppState, base: &str, job: &Job, lifetime_secs: i64) -> (String, i64) {
    let expires = state.app().clock().now_unix() + lifetime_secs;
    let scope = scope_text(job.spec.scope);
    let sig = links::sign(
        &state.reports().link_secret,
        &Signed {
            job_id: &job.id,
            scope: &scope,
            expires,
        },
    );
    (
        format!(
            "{base}/downloads/{}?scope={}&expires={expires}&signature={sig}",
            job.id,
            scope.replace(':', "%3A")
        ),
        expires,
    )
}

/// The state of each job's file (see [`FileState`]), read off the runtime.
fn job_json(state: &AppState, base: &str, job: &Job, file: FileState) -> Value {
    let lifetime = state.settings().link_lifetime.as_secs() as i64;
    let (blob, link_expires) = if file == FileState::Available {
        let (l, e) = signed_link(state, base, job, lifetime);
        (Value::String(l), rfc3339(e * 1000))
    } else {
        (Value::String(String::new()), Value::Null)
    };
    let retention = state.reports().runner.settings().retention.as_millis() as i64;
    let manifest: Value = job
        .manifest
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null);
    json!({
        "id": job.id,
        "enrollmentNumber": job.enrollment.as_str(),
        "requestedOn": rfc3339(job.requested_at),
        "status": job.status.code(),
        "statusName": job.status.name(),
        "blobPath": blob,
        "reportUrl": format!("{base}/v3/enrollments/{}/reports/{}", job.enrollment, job.id),
        "kind": job.spec.kind(),
        "billingPeriod": job.spec.billing_period.map(|p| p.to_string()),
        "startDate": job.spec.from.to_string(),
        "endDate": job.spec.to.to_string(),
        "format": job.spec.format.name(),
        "accounts": job.spec.accounts,
        "departments": job.spec.departments,
        "scope": scope_text(job.spec.scope),
        "progress": {
            "rowsDone": job.rows_done,
            "rowsExpected": job.rows_expected,
            "bytes": job.bytes,
        },
        "startedOn": job.started_at.map_or(Value::Null, rfc3339),
        "finishedOn": job.finished_at.map_or(Value::Null, rfc3339),
        "error": job.error,
        "attempts": job.attempts,
        "linkExpiresOn": link_expires,
        "expiresOn": job.finished_at.map_or(Value::Null, |f| rfc3339(f + retention)),
        "manifest": manifest,
        "fileState": file.name(),
        "fileError": file.reason(),
    })
}

fn accepted(state: &AppState, base: &str, job: &Job, created: bool, file: FileState) -> Response {
    let body = job_json(state, base, job, file);
    let mut res = (
        if created && !job.status.is_final() {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
        axum::Json(body),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{base}/v3/enrollments/{}/reports/{}",
        job.enrollment, job.id
    )) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

async fn submit_spec(
    state: &AppState,
    ctx: &Ctx,
    r: Request,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let a = ctx.a.clone();
    let (job, created, file) = state
        .run(move |_| {
            let (job, created) = a.submit_report(r)?;
            let (job, file) = a.report_job(&job.id)?;
            Ok((job, created, file))
        })
        .await?;
    if created {
        state.reports().workers.notify();
    }
    Ok(accepted(
        state,
        &base_url(state, headers),
        &job,
        created,
        file,
    ))
}

/// The requested format (`csv` when none is named).
fn format_param(v: Option<&str>) -> Result<ExportFormat, ApiError> {
    ExportFormat::requested(v.unwrap_or("csv")).map_err(ApiError::BadRequest)
}

/// `POST usagedetails/submit?billingPeriod=` or `?startTime=&endTime=`
/// (`format=` optional, default `csv`): the Reporting API's asynchronous report.
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ctx = Ctx::load(&caller, &n, &uri)?;
    let q = Params::parse(uri.query())?;
    // A billing period selects the rows booked in it (the period's Usage
    // details report); a range selects rows by usage date.
    let span = match q.get("billingperiod") {
        Some(p) => Span::Period(ctx.period(p)?),
        None => ctx.range(&q)?,
    };
    let r = Request {
        span,
        accounts: vec![],
        departments: vec![],
        format: format_param(q.get("format"))?,
    };
    submit_spec(&state, &ctx, r, &headers).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportRequest {
    /// A date range (by usage date): both of these, or `billing_period`.
    start_date: Option<String>,
    end_date: Option<String>,
    /// `YYYYMM`: the rows booked in the period, as its Usage details report
    /// holds them (corrections booked in it included).
    billing_period: Option<String>,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    departments: Vec<String>,
    /// `csv` (default), `csv.gz`, `parquet`, `focus-csv` or `focus-parquet`.
    format: Option<String>,
}

/// `POST reports` with `{startDate, endDate | billingPeriod, accounts,
/// departments, format}`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
    ApiJson(req): ApiJson<ReportRequest>,
) -> Result<Response, ApiError> {
    let ctx = Ctx::load(&caller, &n, &uri)?;
    let day = |v: &str, name: &str| -> Result<Day, ApiError> {
        super::parse_day_or_time(v).map_err(|e| ApiError::BadRequest(format!("`{name}`: {e}")))
    };
    let span = match (
        req.billing_period.as_deref(),
        req.start_date.as_deref(),
        req.end_date.as_deref(),
    ) {
        (Some(p), None, None) => Span::Period(ctx.period(p).map_err(|e| match e {
            ApiError::BadRequest(m) => ApiError::BadRequest(format!("`billingPeriod`: {m}")),
            e => e,
        })?),
        (Some(_), _, _) => {
            return Err(ApiError::BadRequest(
                "give either `billingPeriod` or `startDate` and `endDate`, not both".into(),
            ))
        }
        (None, Some(from), Some(to)) => Span::Range(day(from, "startDate")?, day(to, "endDate")?),
        (None, _, _) => {
            return Err(ApiError::BadRequest(
                "give `startDate` and `endDate` (YYYY-MM-DD), or `billingPeriod` (YYYYMM)".into(),
            ))
        }
    };
    let r = Request {
        span,
        accounts: req.accounts,
        departments: req.departments,
        format: format_param(req.format.as_deref())?,
    };
    submit_spec(&state, &ctx, r, &headers).await
}

/// One of the caller's jobs, with its file's state.
async fn load_job(
    state: &AppState,
    caller: &Caller,
    n: &str,
    id: &str,
) -> Result<(Job, FileState), ApiError> {
    let (a, id) = (caller.access(n)?.clone(), id.to_string());
    state.run(move |_| a.report_job(&id)).await
}

/// `GET reports`: the caller's jobs, newest first, with progress.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    let jobs = state.run(move |_| a.report_jobs()).await?;
    let base = base_url(&state, &headers);
    let value: Vec<Value> = jobs
        .iter()
        .map(|(j, f)| job_json(&state, &base, j, *f))
        .collect();
    Ok(axum::Json(json!({ "value": value })).into_response())
}

/// `GET reports/{id}`: the job, as `reportUrl` polling returns it.
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (job, file) = load_job(&state, &caller, &n, &id).await?;
    Ok(axum::Json(job_json(&state, &base_url(&state, &headers), &job, file)).into_response())
}

/// `DELETE reports/{id}`: cancels a queued or running job.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (a, jid) = (caller.access(&n)?.clone(), id.clone());
    let (after, file) = state
        .run(move |_| {
            a.cancel_report(&jid)?;
            a.report_job(&jid)
        })
        .await?;
    Ok(axum::Json(job_json(&state, &base_url(&state, &headers), &after, file)).into_response())
}

/// `POST reports/{id}/link?lifetimeHours=`: a fresh signed link.
pub async fn link(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let (job, file) = load_job(&state, &caller, &n, &id).await?;
    if !job.status.has_file() {
        return Err(ApiError::Conflict(format!(
            "the report has no file to link to ({})",
            job.status.name()
        )));
    }
    if let Some(reason) = file.reason() {
        return Err(ApiError::Gone(reason.into()));
    }
    let q = Params::parse(uri.query())?;
    let max = state.settings().link_lifetime.as_secs() as i64;
    let lifetime = match q.get("lifetimehours") {
        None => max,
        Some(h) => match h.parse::<i64>() {
            Ok(h) if h >= 1 && h <= max / 3600 => h * 3600,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "`lifetimeHours` must be a whole number from 1 to {}",
                    max / 3600
                )))
            }
        },
    };
    let (blob, expires) = signed_link(&state, &base_url(&state, &headers), &job, lifetime);
    Ok(
        axum::Json(json!({"blobPath": blob, "linkExpiresOn": rfc3339(expires * 1000)}))
            .into_response(),
    )
}

/// `GET|HEAD reports/{id}/download`: the file, with the caller's key.
pub async fn download_keyed(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, id)): ApiPath<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (job, file) = load_job(&state, &caller, &n, &id).await?;
    serve_file(&state, &job, file, &method, &headers).await
}

/// `GET|HEAD /downloads/{id}?scope=&expires=&signature=`: the file, through a
/// signed link, without a key.
pub async fn download_signed(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Params::parse(uri.query())?;
    let scope = q.get("scope").unwrap_or("");
    // Only the link exactly as it was minted: no respelled numbers, no
    // upper-case signature (the signature covers the values, the check the text).
    let raw_expires = q.get("expires").unwrap_or("");
    let expires: i64 = raw_expires
        .parse()
        .ok()
        .filter(|e: &i64| e.to_string() == raw_expires)
        .ok_or_else(|| link_refused(LinkError::BadSignature))?;
    let signature = q.get("signature").unwrap_or("");
    if signature.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(link_refused(LinkError::BadSignature));
    }
    links::verify(
        &state.reports().link_secret,
        &Signed {
            job_id: &id,
            scope,
            expires,
        },
        signature,
        state.app().clock().now_unix(),
    )
    .map_err(link_refused)?;
    let lookup = id.clone();
    let (job, file) = state
        .run(move |app| app.linked_report(&lookup))
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::Gone(format!(
                "report {id} no longer exists (its retention period is over, or it was removed)"
            )),
            other => other,
        })?;
    if scope_text(job.spec.scope) != scope {
        return Err(link_refused(LinkError::BadSignature));
    }
    serve_file(&state, &job, file, &method, &headers).await
}

fn link_refused(e: LinkError) -> ApiError {
    match e {
        LinkError::BadSignature => ApiError::ForbiddenCode {
            code: "InvalidSignature",
            message: "this download link is not valid: its signature does not match (was it altered?)"
                .into(),
        },
        LinkError::Expired { at } => ApiError::ForbiddenCode {
            code: "LinkExpired",
            message: format!(
                "this download link expired at {}; ask for a fresh one with your API key (POST .../reports/{{id}}/link)",
                rfc3339(at * 1000).as_str().unwrap_or("?")
            ),
        },
    }
}
