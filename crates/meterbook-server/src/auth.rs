//! Who is calling: the API key in `Authorization: bearer <key>`, checked
//! against its hash, its state and its expiry, and rate-limited per key (a
//! token bucket every node of the deployment shares).

use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use meterbook_app::{Access, Actor};

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
        let rate = state.rate();
        // The key, then its token: one trip to the blocking pool (with a
        // shared store the bucket is a row every node updates).
        let (access, taken) = state
            .run(move |app| {
                let access = app.key(&token)?;
                let id = match access.actor() {
                    Actor::Key(id) => id.clone(),
                    _ => {
                        return Err(meterbook_app::AppError::Internal(
                            "a key resolved to another actor".into(),
                        ))
                    }
                };
                let taken = app
                    .shared()
                    .take_token(&id, rate, app.clock().now_millis())?;
                Ok((access, taken))
            })
            .await?;
        let id = match access.actor() {
            Actor::Key(id) => id.clone(),
            _ => return Err(ApiError::Internal("a key resolved to another actor".into())),
        };
        let touch = taken.map_err(too_many)?;
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

/// The 429 of an empty bucket.
fn too_many(retry_after_secs: i64) -> ApiError {
    ApiError::TooManyRequests(retry_after_secs.max(1) as u64)
}

/// Takes a token from `key`'s bucket (shared by every node: see
/// [`meterbook_core::shared`]); Err(429) when none is left. Returns whether
/// the key's last-used time is due for an update.
pub(crate) async fn take_token(state: &AppState, key: String) -> Result<bool, ApiError> {
    let rate = state.rate();
    state
        .run(move |app| {
            Ok(app
                .shared()
                .take_token(&key, rate, app.clock().now_millis())?)
        })
        .await?
        .map_err(too_many)
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
        take_token(state, format!("operator:{}", op.token_id)).await?;
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
