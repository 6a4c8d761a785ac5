//! API access keys over the API: list, generate (or regenerate) and disable,
//! each limited to scopes the caller's own key covers.

use super::Ctx;
use crate::auth::Caller;
use crate::error::ApiJson;
use crate::error::ApiPath;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meterbook_app::credentials::PREFIX;
use meterbook_app::keys;
use meterbook_core::access::{KeyRecord, Slot};
use meterbook_core::hierarchy::Hierarchy;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRequest {
    /// `enrollment`, `department` or `account`.
    scope: String,
    /// The department's or account's name (not for `enrollment`).
    name: Option<String>,
    /// `primary` (default) or `secondary`.
    slot: Option<String>,
    expires_in_days: Option<u32>,
}

fn slot(req: &KeyRequest) -> Result<Slot, ApiError> {
    match &req.slot {
        None => Ok(Slot::Primary),
        Some(s) => Slot::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`slot` must be primary or secondary, not `{}`",
                meterbook_core::quote::quote(s)
            ))
        }),
    }
}

fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn describe(h: &Hierarchy, k: &KeyRecord, now: i64) -> serde_json::Value {
    serde_json::json!({
        "id": format!("{PREFIX}{}", k.id),
        "scope": k.scope.kind(),
        "name": keys::scope_name(h, k.scope),
        "slot": k.slot.as_str(),
        "readOnly": k.read_only,
        "startsOn": date(k.created_at),
        "expiresOn": date(k.expires_at),
        "expired": k.expires_at <= now,
        "expiresSoon": k.expires_at > now && k.expires_at - now < 30 * 86_400,
        "disabled": k.disabled,
        "lastUsedOn": k.last_used_at.map(date),
    })
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ctx = Ctx::load(&caller, &n, &uri)?;
    let a = ctx.a.clone();
    let (h, keys) = state.run(move |_| a.keys()).await?;
    let now = state.app().clock().now_unix();
    let v: Vec<serde_json::Value> = keys.iter().map(|k| describe(&h, k, now)).collect();
    Ok(ctx.json(serde_json::to_string(&v).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// Generates the key of a scope and slot, replacing the one there (regenerate).
pub async fn generate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(req): ApiJson<KeyRequest>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    a.writer()?;
    let lifetime = state.settings().key_lifetime();
    let days = lifetime.days(req.expires_in_days).map_err(|_| {
        ApiError::BadRequest(format!(
            "`expiresInDays` must be 1 to {}",
            lifetime.max_days
        ))
    })?;
    let slot = slot(&req)?;
    let now = state.app().clock().now_unix();
    let body = state
        .run(move |_| {
            let h = a.hierarchy()?;
            let scope = keys::named_scope(&h, &req.scope, req.name.as_deref())?;
            let new = a.writer()?.generate_key(scope, slot, days)?;
            let mut v = describe(&h, &new.record, now);
            v["key"] = serde_json::Value::String(new.token);
            Ok(v)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(req): ApiJson<KeyRequest>,
) -> Result<Response, ApiError> {
    let a = caller.access(&n)?.clone();
    a.writer()?;
    let slot = slot(&req)?;
    state
        .run(move |_| {
            let h = a.hierarchy()?;
            let scope = keys::named_scope(&h, &req.scope, req.name.as_deref())?;
            a.writer()?.set_key_disabled(scope, slot, true)
        })
        .await?;
    Ok(Json(serde_json::json!({"disabled": true})).into_response())
}
