//! `GET /v3/enrollments/{n}/forecast?horizon=period|term`: our own endpoint
//! beside the v3 shapes. The charges the key's scope is expected to reach by
//! the end of the current billing period (or of the term), with the range
//! and the method, and for enterprise keys when the commitment runs out. The
//! figures come from the use-case layer ([`meterbook_app::forecast`]), so
//! `actual` is the figure balancesummary and the portal show.

use super::Ctx;
use crate::auth::Caller;
use crate::error::ApiPath;
use crate::params::Params;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use meterbook_app::forecast::{Forecast, Horizon};
use meterbook_core::access::Scope;
use meterbook_core::{Day, Enrollment, Money};

/// The forecast as JSON: camelCase fields, money as exact decimal numbers in
/// the currency's minor unit (as balancesummary writes them), dates as
/// `YYYY-MM-DD`, `commitment` null below the enterprise. The CLI's `--json`
/// prints the same.
pub fn forecast_json(e: &Enrollment, scope: Scope, f: &Forecast) -> String {
    let exp = e.currency.exponent();
    let money = |m: Money| m.format(exp);
    let day = |d: Option<Day>| d.map_or_else(|| "null".to_string(), |d| format!("\"{d}\""));
    let commitment = match &f.commitment {
        None => "null".to_string(),
        Some(c) => format!(
            "{{\"balance\":{},\"total\":{},\"runsOutOn\":{},\"earliest\":{},\"latest\":{},\"alreadyUsed\":{}}}",
            money(c.balance),
            money(c.total),
            day(c.runs_out_on),
            day(c.earliest),
            day(c.latest),
            c.already_used
        ),
    };
    format!(
        "{{\"enrollmentNumber\":{},\"scope\":\"{}\",\"horizon\":\"{}\",\"billingPeriodId\":\"{}\",\"currencyCode\":\"{}\",\"startDate\":\"{}\",\"endDate\":\"{}\",\"asOf\":{},\"daysLeft\":{},\"basisDays\":{},\"actual\":{},\"projected\":{},\"projectedLow\":{},\"projectedHigh\":{},\"dailyBurn\":{},\"dailyLow\":{},\"dailyHigh\":{},\"method\":{},\"usageCompleteThrough\":{},\"commitment\":{}}}",
        serde_json::Value::String(e.number.to_string()),
        scope.kind(),
        f.horizon.as_str(),
        f.period,
        e.currency.code(),
        f.first_day,
        f.last_day,
        day(f.as_of),
        f.days_left,
        f.basis_days,
        money(f.actual),
        money(f.projected),
        money(f.projected_low),
        money(f.projected_high),
        money(f.daily_burn),
        money(f.daily_low),
        money(f.daily_high),
        serde_json::Value::String(f.method.to_string()),
        day(e.watermark),
        commitment
    )
}

pub async fn forecast(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let mut ctx = Ctx::load(&caller, &n, &uri)?;
    // A forecast moves with the calendar too (days left, the current
    // period), not only with the data: today is part of its validator.
    ctx.etag = format!("{}-{}\"", ctx.etag.trim_end_matches('"'), ctx.a.today());
    let q = Params::parse(uri.query())?;
    let horizon = match q.get("horizon") {
        None => Horizon::Period,
        Some(h) => Horizon::parse(h)?,
    };
    if !ctx.a.sees_charges() {
        // Before the ETag: not even a 304 for figures the scope may not see.
        return Err(ApiError::Forbidden(
            "charges are not visible to this key's scope, so neither is their forecast".into(),
        ));
    }
    if let Some(r) = ctx.not_modified(&headers) {
        return Ok(r);
    }
    let a = ctx.a.clone();
    let f = state.run(move |_| a.forecast(horizon)).await?;
    Ok(ctx.json(forecast_json(&ctx.e, ctx.a.scope(), &f)))
}
