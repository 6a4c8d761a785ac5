//! Who is calling: the API key in `Authorization: bearer <key>`, checked
//! against its hash, its state and its expiry, and rate-limited per key.

use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use meterbook_app::{Access, Actor};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An authenticated caller: the use-case layer's handle for the key's
/// enrollment and scope.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: String,
    access: Access,
}

impl Caller {
    /// The caller's access, if the path names the key's enrollment. A key for
    /// another enrollment gets 403 whether or not the requested one exists.
    pub fn access(&self, path_number: &str) -> Result<&Access, ApiError> {
        if self.access.number().as_str() == path_number {
            Ok(&self.access)
        } else {
            Err(ApiError::Forbidden(
                "this API key is not valid for the requested enrollment".into(),
            ))
        }
    }
}

/// `Authorization: bearer <token>`'s token, or the 401 that says what is wrong.
fn bearer<'a>(
    parts: &'a Parts,
    what: &str,
    malformed: &dyn Fn() -> ApiError,
) -> Result<&'a str, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            if what == "key" {
                "MissingKey"
            } else {
                "MissingToken"
            },
            format!(
                "no {}: send `Authorization: bearer <{what}>`",
                if what == "key" {
                    "API key"
                } else {
                    "operator token"
                }
            ),
        )
    })?;
    let value = header.to_str().map_err(|_| malformed())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let malformed = || {
            ApiError::unauthorized(
                "MalformedKey",
                "the Authorization header is not `bearer <key>` with a Meterbook API key (mbk_...)",
            )
        };
        let token = bearer(parts, "key", &malformed)?.to_string();
        let access = state.run(move |app| app.key(&token)).await?;
        let id = match access.actor() {
            Actor::Key(id) => id.clone(),
            _ => return Err(ApiError::Internal("a key resolved to another actor".into())),
        };
        let touch = state.inner.limiter.check(&id)?;
        if touch {
            let app = state.app().clone();
            let id = id.clone();
            // Last-used is advisory: at most once a minute per key, off the request path.
            tokio::task::spawn_blocking(move || {
                if let Err(e) = app.record_key_use(&id) {
                    tracing::warn!(error = %e, "could not record key use");
                }
            });
        }
        Ok(Caller { key_id: id, access })
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
    pub handle: meterbook_app::Operator,
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
    let malformed = || {
        ApiError::unauthorized(
            "MalformedToken",
            "the Authorization header is not `bearer <token>` with a Meterbook operator token (mbo_...)",
        )
    };
    let token = bearer(parts, "token", &malformed)?.to_string();
    let handle = state.run(move |app| app.operator(&token)).await?;
    Ok(Operator {
        token_id: handle.name().to_string(),
        handle,
    })
}
