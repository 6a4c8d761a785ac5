//! Who is calling: the API key in `Authorization: bearer <key>`, checked
//! against its hash, its state and its expiry, and rate-limited per key.

use crate::{keys, ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use meterbook_core::access::Scope;
use meterbook_core::EnrollmentNumber;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An authenticated caller: the scope of the person who made the key.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: String,
    pub enrollment: EnrollmentNumber,
    pub scope: Scope,
    pub read_only: bool,
}

impl Caller {
    /// The enrollment of the path must be the key's. A key for another
    /// enrollment gets 403 whether or not the requested one exists.
    pub fn enrollment(&self, path_number: &str) -> Result<EnrollmentNumber, ApiError> {
        if self.enrollment.as_str() == path_number {
            Ok(self.enrollment.clone())
        } else {
            Err(ApiError::Forbidden(
                "this API key is not valid for the requested enrollment".into(),
            ))
        }
    }

    pub fn require_balance(&self) -> Result<(), ApiError> {
        if self.scope.sees_balance() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "balance and price sheet are visible to enterprise administrators only".into(),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "MissingKey",
                "no API key: send `Authorization: bearer <key>`",
            )
        })?;
        let malformed = || {
            ApiError::unauthorized(
                "MalformedKey",
                "the Authorization header is not `bearer <key>` with a Meterbook API key (mbk_...)",
            )
        };
        let value = header.to_str().map_err(|_| malformed())?.trim();
        let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(malformed());
        }
        let (id, secret) = keys::parse(token.trim()).ok_or_else(malformed)?;
        let (id, secret) = (id.to_string(), secret.to_string());
        let lookup = id.clone();
        let rec = state
            .blocking(move |s| Ok(s.key(&lookup)?))
            .await?
            .filter(|k| keys::verify(&secret, &k.secret_hash))
            .ok_or_else(|| ApiError::unauthorized("UnknownKey", "this API key is not known"))?;
        if rec.disabled {
            return Err(ApiError::unauthorized(
                "DisabledKey",
                "this API key is disabled",
            ));
        }
        let now = state.now_unix();
        if now >= rec.expires_at {
            let date = chrono::DateTime::from_timestamp(rec.expires_at, 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            return Err(ApiError::unauthorized(
                "ExpiredKey",
                format!("this API key expired on {date}; generate a new one"),
            ));
        }
        if now < rec.created_at {
            return Err(ApiError::unauthorized(
                "KeyNotYetValid",
                "this API key is not valid yet",
            ));
        }
        let touch = state.inner.limiter.check(&id)?;
        if touch {
            let store = state.store().clone();
            let id = id.clone();
            // Last-used is advisory: at most once a minute per key, off the request path.
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.touch_key(&id, now) {
                    tracing::warn!(error = %e, "could not record key use");
                }
            });
        }
        Ok(Caller {
            key_id: id,
            enrollment: rec.enrollment,
            scope: rec.scope,
            read_only: rec.read_only,
        })
    }
}

/// A token bucket per key.
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    touched: Option<Instant>,
}

impl RateLimiter {
    pub fn new(per_sec: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            per_sec,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; Err(429) when none is left. Returns whether the
    /// key's last-used time is due for an update.
    pub fn check(&self, key: &str) -> Result<bool, ApiError> {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = map.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            touched: None,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst);
        b.at = now;
        if b.tokens < 1.0 {
            let wait = if self.per_sec > 0.0 {
                (1.0 - b.tokens) / self.per_sec
            } else {
                60.0
            };
            return Err(ApiError::TooManyRequests(wait.ceil() as u64));
        }
        b.tokens -= 1.0;
        let due = b
            .touched
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(60));
        if due {
            b.touched = Some(now);
        }
        Ok(due)
    }
}

/// An authenticated provider operator (`Authorization: bearer mbo_...`).
#[derive(Clone, Debug)]
pub struct Operator {
    pub token_id: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Operator, ApiError> {
        let op = operator(parts, state).await?;
        state
            .inner
            .limiter
            .check(&format!("operator:{}", op.token_id))?;
        Ok(op)
    }
}

/// The operator behind `Authorization: bearer mbo_...`, without the rate
/// limit (for `/metrics`, which a scraper calls on its own schedule).
pub(crate) async fn operator(parts: &Parts, state: &AppState) -> Result<Operator, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "MissingToken",
            "no operator token: send `Authorization: bearer <token>`",
        )
    })?;
    let malformed = || {
        ApiError::unauthorized(
            "MalformedToken",
            "the Authorization header is not `bearer <token>` with a Meterbook operator token (mbo_...)",
        )
    };
    let value = header.to_str().map_err(|_| malformed())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    let (id, secret) =
        keys::parse_with(keys::OPERATOR_PREFIX, token.trim()).ok_or_else(malformed)?;
    let (id, secret) = (id.to_string(), secret.to_string());
    let lookup = id.clone();
    let t = state
        .blocking(move |s| Ok(s.operator_token(&lookup)?))
        .await?
        .filter(|t| keys::verify(&secret, &t.secret_hash))
        .ok_or_else(|| {
            ApiError::unauthorized("UnknownToken", "this operator token is not known")
        })?;
    if t.disabled {
        return Err(ApiError::unauthorized(
            "DisabledToken",
            "this operator token is disabled",
        ));
    }
    Ok(Operator { token_id: id })
}
