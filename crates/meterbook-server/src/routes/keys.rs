//! API access keys over the API: list, generate (or regenerate) and disable,
//! each limited to scopes the caller's own key covers.

use super::Ctx;
use crate::auth::Caller;
use crate::error::ApiJson;
use crate::error::ApiPath;
use crate::{keys, ApiError, AppState};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meterbook_core::access::{KeyRecord, Scope, Slot};
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

fn resolve(h: &Hierarchy, req: &KeyRequest) -> Result<Scope, ApiError> {
    let name = || {
        req.name.as_deref().ok_or_else(|| {
            ApiError::BadRequest(format!("`name` is required for scope {}", req.scope))
        })
    };
    match req.scope.to_ascii_lowercase().as_str() {
        "enrollment" => Ok(Scope::Enrollment),
        "department" => h
            .department_by_name(name()?)
            .map(|d| Scope::Department(d.id))
            .ok_or_else(|| ApiError::NotFound(format!("no department {}", name().unwrap_or("")))),
        "account" => h
            .account_by_name(name()?)
            .map(|a| Scope::Account(a.id))
            .ok_or_else(|| ApiError::NotFound(format!("no account {}", name().unwrap_or("")))),
        other => Err(ApiError::BadRequest(format!(
            "`scope` must be enrollment, department or account, not `{other}`"
        ))),
    }
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

fn scope_name(h: &Hierarchy, s: Scope) -> serde_json::Value {
    match s {
        Scope::Enrollment => serde_json::Value::Null,
        Scope::Department(d) => h.departments.get(&d).map(|d| d.name.clone()).into(),
        Scope::Account(a) => h.accounts.get(&a).map(|a| a.name.clone()).into(),
    }
}

fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn describe(h: &Hierarchy, k: &KeyRecord, now: i64) -> serde_json::Value {
    serde_json::json!({
        "id": format!("{}{}", keys::PREFIX, k.id),
        "scope": k.scope.kind(),
        "name": scope_name(h, k.scope),
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
    let ctx = Ctx::load(&state, &caller, &n, &uri).await?;
    let number = ctx.n.clone();
    let scope = caller.scope;
    let now = state.now_unix();
    let body = state
        .blocking(move |s| {
            let h = s.hierarchy(&number)?;
            let v: Vec<serde_json::Value> = s
                .keys(&number)?
                .iter()
                .filter(|k| scope.covers(k.scope, &h))
                .map(|k| describe(&h, k, now))
                .collect();
            serde_json::to_string(&v).map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await?;
    Ok(ctx.json(body))
}

/// Generates the key of a scope and slot, replacing the one there (regenerate).
pub async fn generate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    ApiJson(req): ApiJson<KeyRequest>,
) -> Result<Response, ApiError> {
    let number = caller.enrollment(&n)?;
    if caller.read_only {
        return Err(ApiError::Forbidden(
            "a read-only administrator cannot manage keys".into(),
        ));
    }
    let settings = state.settings().clone();
    let days = req.expires_in_days.unwrap_or(settings.key_default_days);
    if days == 0 || days > settings.key_max_days {
        return Err(ApiError::BadRequest(format!(
            "`expiresInDays` must be 1 to {}",
            settings.key_max_days
        )));
    }
    let slot = slot(&req)?;
    let new = keys::generate().map_err(|e| ApiError::Internal(e.to_string()))?;
    let token = new.token.clone();
    let now = state.now_unix();
    let body = state
        .blocking(move |s| {
            let h = s.hierarchy(&number)?;
            let scope = resolve(&h, &req)?;
            if !caller.scope.covers(scope, &h) {
                return Err(ApiError::Forbidden(
                    "your key's scope does not include that scope".into(),
                ));
            }
            let rec = KeyRecord {
                id: new.id,
                enrollment: number.clone(),
                scope,
                slot,
                read_only: false,
                secret_hash: new.secret_hash,
                created_at: now,
                expires_at: now + days as i64 * 86_400,
                disabled: false,
                last_used_at: None,
            };
            s.put_key(&rec)?;
            let mut v = describe(&h, &rec, now);
            v["key"] = serde_json::Value::String(token);
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
    let number = caller.enrollment(&n)?;
    if caller.read_only {
        return Err(ApiError::Forbidden(
            "a read-only administrator cannot manage keys".into(),
        ));
    }
    let slot = slot(&req)?;
    state
        .blocking(move |s| {
            let h = s.hierarchy(&number)?;
            let scope = resolve(&h, &req)?;
            if !caller.scope.covers(scope, &h) {
                return Err(ApiError::Forbidden(
                    "your key's scope does not include that scope".into(),
                ));
            }
            if !s.set_key_disabled(&number, scope, slot, true)? {
                return Err(ApiError::NotFound("there is no key in that slot".into()));
            }
            Ok(())
        })
        .await?;
    Ok(Json(serde_json::json!({"disabled": true})).into_response())
}
