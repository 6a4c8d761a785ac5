//! Budgets and notifications over the API (Meterbook's own endpoints, beside
//! the v3 shapes): budgets with their figures now, notification channels,
//! recent events and the delivery log. Rights are the use-case layer's:
//! enterprise administrators manage, department administrators and account
//! owners read the budgets within their reach when they may see charges;
//! channels and the delivery log are for enterprise administrators.

use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath};
use crate::params::Params;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meterbook_app::budgets::{BudgetInput, BudgetStatus};
use meterbook_app::notifications::{ChannelInput, MAX_LIST};
use meterbook_core::notify::{Channel, Delivery, DeliveryTarget, Event};
use meterbook_core::Enrollment;
use serde::Deserialize;
use serde_json::{json, Value};

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

fn budget_json(e: &Enrollment, st: &BudgetStatus) -> Value {
    let exp = e.currency.exponent();
    let b = &st.budget;
    let tenths = st.used_tenths_percent;
    json!({
        "id": b.id,
        "name": b.name,
        "scope": b.scope.kind(),
        "scopeName": st.scope_name,
        "cadence": b.cadence.name(),
        "amount": b.amount.format(exp),
        "currency": e.currency.code(),
        "thresholds": b.thresholds.iter().map(|t| json!({
            "basis": t.basis.name(),
            "percent": t.percent,
            "crossed": st.crossed.contains(t),
        })).collect::<Vec<_>>(),
        "billingPeriod": st.period.to_string(),
        "startDate": st.from.to_string(),
        "endDate": st.to.to_string(),
        "actual": st.actual.format(exp),
        "forecast": st.forecast.map(|f| f.format(exp)),
        "balance": st.balance.map(|bal| json!({
            "left": bal.left.format(exp),
            "total": bal.total.format(exp),
        })),
        "usedPercent": format!("{}.{}", tenths / 10, (tenths % 10).abs()),
        "asOf": st.as_of.map(|d| d.to_string()),
        "createdOn": rfc3339(b.created_at),
        "createdBy": b.created_by,
    })
}

fn channel_json(c: &Channel) -> Value {
    json!({
        "id": c.id,
        "kind": c.target.kind(),
        "address": c.target.address(),
        "events": c.events.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "createdOn": rfc3339(c.created_at),
        "createdBy": c.created_by,
    })
}

fn event_json(e: &Event) -> Value {
    json!({
        "id": e.id,
        "kind": e.kind.name(),
        "key": e.key,
        "budgetId": e.budget,
        "firedOn": rfc3339(e.fired_at),
        "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null),
    })
}

fn delivery_json(d: &Delivery) -> Value {
    let target = match &d.target {
        DeliveryTarget::Email(a) => json!({"kind": "email", "address": a}),
        DeliveryTarget::Webhook { channel } => json!({"kind": "webhook", "channelId": channel}),
    };
    json!({
        "id": d.id,
        "eventId": d.event_id,
        "eventKind": d.event_kind.name(),
        "eventKey": d.event_key,
        "target": target,
        "subject": d.subject,
        "status": d.status.name(),
        "attempts": d.attempts,
        "nextAttemptOn": rfc3339(d.next_attempt_at),
        "lastError": d.last_error,
        "createdOn": rfc3339(d.created_at),
        "deliveredOn": d.delivered_at.map_or(Value::Null, rfc3339),
    })
}

/// `limit=` (1 to 500, default 100).
fn limit(uri: &Uri) -> Result<usize, ApiError> {
    let q = Params::parse(uri.query())?;
    match q.get("limit") {
        None => Ok(100),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIST).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "`limit` must be 1 to {MAX_LIST}"
            ))),
        },
    }
}

/// A positive id from the path.
fn id(v: i64, what: &str) -> Result<i64, ApiError> {
    if v < 1 {
        return Err(ApiError::NotFound(format!("there is no {what} {v}")));
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThresholdRequest {
    basis: String,
    percent: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetRequest {
    name: String,
    /// `enrollment`, `department` or `account`.
    scope: String,
    scope_name: Option<String>,
    /// `monthly` or `term`.
    cadence: String,
    /// A decimal string in the enrollment's currency.
    amount: String,
    thresholds: Vec<ThresholdRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelRequest {
    /// `email` or `webhook`.
    kind: String,
    address: String,
    events: Vec<String>,
}

/// `GET budgets`: the budgets within the caller's reach, with figures now.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    let e = a.enrollment().clone();
    let list = state.run(move |_| a.budgets()).await?;
    let value: Vec<Value> = list.iter().map(|st| budget_json(&e, st)).collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `POST budgets`: a new budget (read-write enterprise administrators).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(req): ApiJson<BudgetRequest>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    a.admin()?;
    let e = a.enrollment().clone();
    let input = BudgetInput {
        name: req.name,
        scope: req.scope,
        scope_name: req.scope_name,
        cadence: req.cadence,
        amount: req.amount,
        thresholds: req
            .thresholds
            .into_iter()
            .map(|t| (t.basis, t.percent))
            .collect(),
    };
    let st = state.run(move |_| a.admin()?.create_budget(&input)).await?;
    Ok((StatusCode::CREATED, Json(budget_json(&e, &st))).into_response())
}

/// `GET budgets/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, bid)): ApiPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    let bid = id(bid, "budget")?;
    let e = a.enrollment().clone();
    let st = state.run(move |_| a.budget(bid)).await?;
    Ok(Json(budget_json(&e, &st)).into_response())
}

/// `DELETE budgets/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, bid)): ApiPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    a.admin()?;
    let bid = id(bid, "budget")?;
    state.run(move |_| a.admin()?.delete_budget(bid)).await?;
    Ok(Json(json!({ "deleted": true })).into_response())
}

/// `GET notifications/channels` (enterprise administrators).
pub async fn channels(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    a.enterprise()?;
    let list = state.run(move |_| a.enterprise()?.channels()).await?;
    let value: Vec<Value> = list.iter().map(channel_json).collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `POST notifications/channels`: the webhook signing secret is in the
/// answer, once.
pub async fn add_channel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(req): ApiJson<ChannelRequest>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    a.admin()?;
    let input = ChannelInput {
        kind: req.kind,
        address: req.address,
        events: req.events,
    };
    let made = state.run(move |_| a.admin()?.add_channel(&input)).await?;
    let mut v = channel_json(&made.channel);
    v["signingSecret"] = made.secret.map_or(Value::Null, Value::String);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `DELETE notifications/channels/{id}`.
pub async fn remove_channel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, cid)): ApiPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    a.admin()?;
    let cid = id(cid, "channel")?;
    state.run(move |_| a.admin()?.remove_channel(cid)).await?;
    Ok(Json(json!({ "deleted": true })).into_response())
}

/// `GET notifications/events?limit=`: recent events the caller may see.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    let limit = limit(&uri)?;
    let list = state.run(move |_| a.events(limit)).await?;
    let value: Vec<Value> = list.iter().map(event_json).collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `GET notifications/deliveries?limit=`: the delivery log (enterprise
/// administrators).
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    a.enterprise()?;
    let limit = limit(&uri)?;
    let list = state
        .run(move |_| a.enterprise()?.deliveries(limit))
        .await?;
    let value: Vec<Value> = list.iter().map(delivery_json).collect();
    Ok(Json(json!({ "value": value })).into_response())
}
