//! The operator API: everything the operator CLI does with files, over HTTP,
//! with operator tokens only. Uploads (usage, price sheets, hierarchy) are
//! first received in full into a temporary file (see [`crate::spool`]), then
//! read by the same ingest loop as the CLI (flat memory, idempotent by
//! RecordId): the store's write connection is never held while waiting on a client.

use crate::auth::Operator;
use crate::error::ApiJson;
use crate::error::ApiPath;
use crate::params::Params;
use crate::{keys, ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meterbook_core::access::{KeyRecord, Scope, Slot};
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::ingest::{ingest, IngestError, IngestOptions};
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
    _op: Operator,
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
    let e = state
        .blocking(move |s| Ok(s.create_enrollment(&e)?))
        .await?;
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
    _op: Operator,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<SettingsBody>,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let v = state
        .blocking(move |s| {
            let cur = s.enrollment(&n)?.visibility;
            let v = ChargeVisibility {
                department_admins_view_charges: b
                    .department_admins_view_charges
                    .unwrap_or(cur.department_admins_view_charges),
                account_owners_view_charges: b
                    .account_owners_view_charges
                    .unwrap_or(cur.account_owners_view_charges),
            };
            s.set_visibility(&n, v)?;
            Ok(v)
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
    _op: Operator,
    ApiPath(n): ApiPath<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let body = crate::spool::receive(body, &state.settings().limits).await?;
    let sum = state
        .blocking(move |s| {
            let rows = meterbook_io::input::hierarchy::read("body", std::io::BufReader::new(body))
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            Ok(s.upsert_hierarchy(&n, &rows)?)
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
    _op: Operator,
    ApiPath((n, p)): ApiPath<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let p: Period = p
        .parse()
        .map_err(|e: meterbook_core::calendar::DateError| ApiError::BadRequest(e.0))?;
    let body = crate::spool::receive(body, &state.settings().limits).await?;
    let count = state
        .blocking(move |s| {
            let rows = meterbook_io::input::prices::read("body", std::io::BufReader::new(body))
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let sheet = meterbook_core::prices::build_price_sheet(&rows)
                .map_err(|(line, m)| ApiError::BadRequest(format!("body:{line}: {m}")))?;
            Ok(s.import_prices(&n, p, &sheet)?)
        })
        .await?;
    Ok(Json(json!({"billingPeriodId": p.to_string(), "meters": count})).into_response())
}

/// `POST .../usage[?format=csv|ndjson][&skipInvalid=true]`: the body is
/// received in full, then ingested; the answer has the counts and each
/// rejected line.
pub async fn usage(
    State(state): State<AppState>,
    _op: Operator,
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
    let result = state
        .blocking(move |s| {
            let mut src = UsageReader::open(body, format)
                .map_err(|r| ApiError::BadRequest(format!("body:{}: {}", r.line, r.reason)))?;
            let mut rejects = Vec::new();
            let outcome = ingest(
                s,
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
        Ok(sum) => state.metrics().ingested(sum.stored, sum.rejected),
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
    n: String,
    kind: EntryKind,
    b: EntryBody,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let date = day(&b.date, "date")?;
    state
        .blocking(move |s| {
            let e = s.enrollment(&n)?;
            let amount = Money::parse(&b.amount, e.currency.exponent()).map_err(|err| {
                ApiError::BadRequest(format!("`amount` {}: {err} for {}", b.amount, e.currency))
            })?;
            let entry = CommitmentEntry {
                date,
                amount,
                description: b.description,
            };
            s.add_entry(&n, kind, &entry)?;
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
        .map(|recorded| (StatusCode::CREATED, Json(recorded)).into_response())
}

pub async fn purchase(
    State(state): State<AppState>,
    _op: Operator,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<EntryBody>,
) -> Result<Response, ApiError> {
    entry(state, n, EntryKind::Purchase, b).await
}

pub async fn adjustment(
    State(state): State<AppState>,
    _op: Operator,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<EntryBody>,
) -> Result<Response, ApiError> {
    entry(state, n, EntryKind::Adjustment, b).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkBody {
    date: String,
}

pub async fn watermark(
    State(state): State<AppState>,
    _op: Operator,
    ApiPath(n): ApiPath<String>,
    ApiJson(b): ApiJson<WatermarkBody>,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let d = day(&b.date, "date")?;
    state.blocking(move |s| Ok(s.set_watermark(&n, d)?)).await?;
    Ok(Json(json!({"usageCompleteThrough": d.to_string()})).into_response())
}

pub async fn close_period(
    State(state): State<AppState>,
    _op: Operator,
    ApiPath((n, p)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let n = number(&n)?;
    let p: Period = p
        .parse()
        .map_err(|e: meterbook_core::calendar::DateError| ApiError::BadRequest(e.0))?;
    let today = state.clock().today();
    state
        .blocking(move |s| Ok(meterbook_core::ledger::close_period(s, &n, p, today)?))
        .await?;
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
    _op: Operator,
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
    let k = keys::generate().map_err(|e| ApiError::Internal(e.to_string()))?;
    let token = k.token.clone();
    let now = state.now_unix();
    let rec = KeyRecord {
        id: k.id,
        enrollment: n,
        scope: Scope::Enrollment,
        slot,
        read_only: b.read_only,
        secret_hash: k.secret_hash,
        created_at: now,
        expires_at: now + days as i64 * 86_400,
        disabled: false,
        last_used_at: None,
    };
    state.blocking(move |s| Ok(s.put_key(&rec)?)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": token, "slot": slot.as_str(), "expiresInDays": days})),
    )
        .into_response())
}
