//! The operator API: everything the operator CLI does with files, over HTTP,
//! with operator tokens only. Uploads (usage, price sheets, hierarchy) are
//! first received in full into a temporary file (see [`crate::spool`]), then
//! read by the same ingest loop as the CLI (flat memory, idempotent by
//! RecordId): the store's write connection is never held while waiting on a client.

use crate::auth::Operator;
use crate::error::ApiJson;
use crate::error::ApiPath;
use crate::params::Params;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meterbook_app::AppError;
use meterbook_core::access::Slot;
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::ingest::{IngestError, IngestOptions};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::EntryKind;
use meterbook_core::{Currency, Day, EnrollmentNumber, Money, Period};
use meterbook_io::input::usage::{Format, UsageReader};
use serde::Deserialize;
use serde_json::json;

fn number(s: &str) -> Result<EnrollmentNumber, ApiError> {
    EnrollmentNumber::parse(s).map_err(ApiError::BadRequest)
}

fn day(s: &str, what: &str) -> Result<Day, ApiError> {
    s.parse().map_err(|e: meterbook_core::calendar::DateError| {
        ApiError::BadRequest(format!("`{what}`: {}", e.0))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrollmentBody {
    number: String,
    name: String,
    currency: String,
    start: String,
    end: String,
    #[serde(default)]
    department_admins_view_charges: bool,
    #[serde(default)]
    account_owners_view_charges: bool,
}

pub async fn create_enrollment(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(b): ApiJson<EnrollmentBody>,
) -> Result<Response, ApiError> {
    let e = NewEnrollment {
        number: number(&b.number)?,
        name: b.name,
        currency: Currency::parse(&b.currency).map_err(ApiError::BadRequest)?,
        start: day(&b.start, "start")?,
        end: day(&b.end, "end")?,
        visibility: ChargeVisibility {
            department_admins_view_charges: b.department_admins_view_charges,
            account_owners_view_charges: b.account_owners_view_charges,
        },
    };
    let op = op.handle;
    let e = state.run(move |_| op.create_enrollment(&e)).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"number": e.number.as_str(), "name": e.name, "currency": e.currency.code(),
                    "start": e.start.to_string(), "end": e.end.to_string()}),
        ),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsBody {
    department_admins_view_charges: Option<bool>,
    account_owners_view_charges: Option<bool>,
}

pub async fn settings(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<SettingsBody>,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let op = op.handle;
    let v = state
        .run(move |_| {
            op.set_visibility(
                &n,
                b.department_admins_view_charges,
                b.account_owners_view_charges,
            )
        })
        .await?;
    Ok(Json(
        json!({"departmentAdminsViewCharges": v.department_admins_view_charges,
                   "accountOwnersViewCharges": v.account_owners_view_charges}),
    )
    .into_response())
}

pub async fn hierarchy(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(n): ApiPath<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let body = crate::spool::receive(body, &state.settings().limits).await?;
    let op = op.handle;
    let sum = state
        .run(move |_| {
            let rows = meterbook_io::input::hierarchy::read("body", std::io::BufReader::new(body))
                .map_err(|e| AppError::Invalid(e.to_string()))?;
            op.import_hierarchy(&n, &rows)
        })
        .await?;
    Ok(Json(
        json!({"departments": sum.departments, "accounts": sum.accounts,
                   "subscriptionsCreated": sum.subscriptions_created,
                   "subscriptionsUpdated": sum.subscriptions_updated}),
    )
    .into_response())
}

pub async fn prices(
    State(state): State<AppState>,
    op: Operator,
    ApiPath((n, p)): ApiPath<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let p: Period = p
        .parse()
        .map_err(|e: meterbook_core::calendar::DateError| ApiError::BadRequest(e.0))?;
    let body = crate::spool::receive(body, &state.settings().limits).await?;
    let op = op.handle;
    let count = state
        .run(move |_| {
            let rows = meterbook_io::input::prices::read("body", std::io::BufReader::new(body))
                .map_err(|e| AppError::Invalid(e.to_string()))?;
            op.import_prices(&n, p, "body", &rows)
        })
        .await?;
    Ok(Json(json!({"billingPeriodId": p.to_string(), "meters": count})).into_response())
}

/// `POST .../usage[?format=csv|ndjson][&skipInvalid=true]`: the body is
/// received in full, then ingested; the answer has the counts and each
/// rejected line.
pub async fn usage(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(n): ApiPath<String>,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let q = Params::parse(uri.query())?;
    let format = match q
        .choice("format", &["auto", "csv", "ndjson"], "auto")?
        .as_str()
    {
        "csv" => Some(Format::Csv),
        "ndjson" => Some(Format::Ndjson),
        _ => None,
    };
    let skip_invalid = q.choice("skipinvalid", &["true", "false"], "false")? == "true";
    let started = std::time::Instant::now();
    let body = crate::spool::receive(body, &state.settings().limits).await?;
    let op = op.handle;
    let result = state
        .run(move |_| {
            let mut src = UsageReader::open(body, format)
                .map_err(|r| AppError::Invalid(format!("body:{}: {}", r.line, r.reason)))?;
            let mut rejects = Vec::new();
            let outcome = op.ingest(
                &n,
                &mut src,
                IngestOptions {
                    skip_invalid,
                    ..Default::default()
                },
                &mut |r, _| {
                    if rejects.len() < 1000 {
                        rejects
                            .push(json!({"line": r.line, "column": r.column, "reason": r.reason}));
                    }
                },
            );
            Ok((outcome, rejects))
        })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    match &result.0 {
        Ok(sum) => {
            state.metrics().ingested(sum.stored, sum.rejected);
            // New usage: budgets may have crossed a threshold.
            state.wake_notifier();
        }
        // All or nothing: the invalid records are the rejects; nothing was stored.
        Err(IngestError::Rejected { rejects, .. }) => {
            state.metrics().ingested(0, rejects.len() as u64)
        }
        Err(IngestError::Store(_)) => {}
    }
    match result {
        (Ok(sum), rejects) => Ok(Json(json!({
            "read": sum.read, "stored": sum.stored, "duplicates": sum.duplicates,
            "rejected": sum.rejected, "seconds": secs, "errors": rejects,
        }))
        .into_response()),
        // The error's own list is the whole story: it also holds what only
        // the writer finds (a total past the supported range), which never
        // passes through the per-record callback.
        (Err(IngestError::Rejected { read, rejects }), _) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": {"code": "InvalidRecords",
                          "message": format!("{} invalid record(s) in {read} read; nothing was stored", rejects.len())},
                "errors": rejects.iter().map(|r| json!({"line": r.line, "column": r.column, "reason": r.reason})).collect::<Vec<_>>(),
            })),
        )
            .into_response()),
        (Err(IngestError::Store(e)), _) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntryBody {
    date: String,
    amount: String,
    description: String,
}

async fn entry(
    state: AppState,
    op: Operator,
    n: String,
    kind: EntryKind,
    b: EntryBody,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let date = day(&b.date, "date")?;
    let op = op.handle;
    state
        .run(move |_| {
            let e = op.enrollment(&n)?.enrollment().clone();
            let amount = Money::parse(&b.amount, e.currency.exponent()).map_err(|err| {
                AppError::Invalid(format!("`amount` {}: {err} for {}", b.amount, e.currency))
            })?;
            let entry = CommitmentEntry {
                date,
                amount,
                description: b.description,
            };
            op.add_entry(&n, kind, &entry)?;
            // What was recorded, as the other operator endpoints answer.
            Ok(json!({
                "enrollmentNumber": n.as_str(),
                "kind": match kind { EntryKind::Purchase => "purchase", EntryKind::Adjustment => "adjustment" },
                "date": entry.date.to_string(),
                "amount": entry.amount.format(e.currency.exponent()),
                "currencyCode": e.currency.to_string(),
                "description": entry.description,
            }))
        })
        .await
        .map(|recorded| {
            // The commitment changed: balance thresholds may be crossed (or not any more).
            state.wake_notifier();
            (StatusCode::CREATED, Json(recorded)).into_response()
        })
}

pub async fn purchase(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<EntryBody>,
) -> Result<Response, ApiError> {
    entry(state, op, n, EntryKind::Purchase, b).await
}

pub async fn adjustment(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<EntryBody>,
) -> Result<Response, ApiError> {
    entry(state, op, n, EntryKind::Adjustment, b).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkBody {
    date: String,
}

pub async fn watermark(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<WatermarkBody>,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let d = day(&b.date, "date")?;
    let op = op.handle;
    state.run(move |_| op.set_watermark(&n, d)).await?;
    state.wake_notifier();
    Ok(Json(json!({"usageCompleteThrough": d.to_string()})).into_response())
}

pub async fn close_period(
    State(state): State<AppState>,
    op: Operator,
    ApiPath((n, p)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let p: Period = p
        .parse()
        .map_err(|e: meterbook_core::calendar::DateError| ApiError::BadRequest(e.0))?;
    let op = op.handle;
    state.run(move |_| op.close_period(&n, p)).await?;
    state.wake_notifier();
    Ok(Json(json!({"billingPeriodId": p.to_string(), "closed": true})).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorKeyBody {
    #[serde(default)]
    slot: Option<String>,
    #[serde(default)]
    expires_in_days: Option<u32>,
    #[serde(default)]
    read_only: bool,
}

/// An enterprise administrator's key, made by the operator for a customer.
pub async fn enterprise_key(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<OperatorKeyBody>,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let settings = state.settings().clone();
    let days = b.expires_in_days.unwrap_or(settings.key_default_days);
    if days == 0 || days > settings.key_max_days {
        return Err(ApiError::BadRequest(format!(
            "`expiresInDays` must be 1 to {}",
            settings.key_max_days
        )));
    }
    let slot = match b.slot.as_deref() {
        None => Slot::Primary,
        Some(s) => Slot::parse(s)
            .ok_or_else(|| ApiError::BadRequest("`slot` must be primary or secondary".into()))?,
    };
    let op = op.handle;
    let new = state
        .run(move |_| op.enterprise_key(&n, slot, days, b.read_only))
        .await?;
    let token = new.token;
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": token, "slot": slot.as_str(), "expiresInDays": days})),
    )
        .into_response())
}
