//! billingPeriods, balancesummary and pricesheet.

use super::{base_url, Ctx};
use crate::auth::Caller;
use crate::error::ApiPath;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use meterbook_app::Span;

use meterbook_io::report::balance::statement_json;

pub async fn billing_periods(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ctx = Ctx::load(&caller, &n, &uri)?;
    if let Some(r) = ctx.not_modified(&headers) {
        return Ok(r);
    }
    let a = ctx.a.clone();
    let periods = state.run(move |_| a.billing_periods()).await?;
    let base = format!(
        "{}/v3/enrollments/{}/billingPeriods",
        base_url(&state, &headers),
        ctx.n
    );
    let sees_balance = ctx.a.sees_balance();
    let items: Vec<serde_json::Value> = periods
        .iter()
        .map(|entry| {
            let (i, marketplace) = (&entry.info, entry.marketplace);
            let p = i.period;
            let link = |ok: bool, what: &str| {
                if ok {
                    serde_json::Value::String(format!("{base}/{p}/{what}"))
                } else {
                    serde_json::Value::Null
                }
            };
            serde_json::json!({
                "billingPeriodId": p.to_string(),
                "billingStart": format!("{}T00:00:00Z", p.first_day()),
                "billingEnd": format!("{}T23:59:59Z", p.last_day()),
                "closed": i.closed,
                "balanceSummary": link(sees_balance, "balancesummary"),
                "usageDetails": link(true, "usagedetails"),
                "marketplaceCharges": link(marketplace, "marketplacecharges"),
                "priceSheet": link(sees_balance && i.has_price_sheet, "pricesheet"),
            })
        })
        .collect();
    Ok(ctx.json(serde_json::to_string(&items).map_err(|e| ApiError::Internal(e.to_string()))?))
}

async fn balance(
    state: AppState,
    caller: Caller,
    n: String,
    p: Option<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ctx = Ctx::load(&caller, &n, &uri)?;
    ctx.a.enterprise()?;
    let period = match p {
        Some(p) => ctx.period(&p)?,
        None => ctx.current_period(),
    };
    if let Some(r) = ctx.not_modified(&headers) {
        return Ok(r);
    }
    let a = ctx.a.clone();
    let st = state
        .run(move |_| a.enterprise()?.statement(period))
        .await?;
    let extra = format!(
        "\"usageCompleteThrough\":{},\"generatedAt\":\"{}\"",
        ctx.watermark_json(),
        ctx.a.report_meta(Span::Period(period)).generated_at
    );
    let body = statement_json(
        ctx.n.as_str(),
        &st,
        ctx.e.currency.exponent(),
        ctx.e.currency.code(),
        Some(&extra),
    );
    Ok(ctx.json(body))
}

pub async fn balance_current(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    balance(state, caller, n, None, headers, uri).await
}

pub async fn balance_period(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, p)): ApiPath<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    balance(state, caller, n, Some(p), headers, uri).await
}

async fn prices(
    state: AppState,
    caller: Caller,
    n: String,
    p: Option<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ctx = Ctx::load(&caller, &n, &uri)?;
    ctx.a.enterprise()?;
    let period = match p {
        Some(p) => ctx.period(&p)?,
        None => ctx.current_period(),
    };
    if let Some(r) = ctx.not_modified(&headers) {
        return Ok(r);
    }
    let a = ctx.a.clone();
    let sheet = state
        .run(move |_| a.enterprise()?.price_sheet(period))
        .await?;
    let currency = ctx.e.currency.code();
    let mut items = Vec::new();
    for (_, m) in &sheet {
        let i = &m.info;
        for t in &m.tiers {
            items.push(format!(
                "{{\"id\":{},\"billingPeriodId\":\"{period}\",\"meterId\":{},\"meterName\":{},\"meterCategory\":{},\"meterSubCategory\":{},\"meterRegion\":{},\"unitOfMeasure\":{},\"includedQuantity\":{},\"tierMinimumUnits\":{},\"partNumber\":{},\"unitPrice\":{},\"currencyCode\":\"{currency}\",\"chargesBilledSeparately\":{},\"publisherName\":{}}}",
                jstr(&format!("enrollments/{}/billingperiods/{period}/pricesheets/{}/{}", ctx.n, i.meter_id, t.min)),
                jstr(&i.meter_id),
                jstr(&i.meter_name),
                jstr(&i.meter_category),
                jstr(&i.meter_sub_category),
                jstr(&i.meter_region),
                jstr(&i.unit_of_measure),
                m.included,
                t.min,
                jstr(&i.part_number),
                t.price,
                i.charges_billed_separately,
                jstr(&i.publisher_name),
            ));
        }
    }
    Ok(ctx.json(format!("[{}]", items.join(","))))
}

fn jstr(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

pub async fn prices_current(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    prices(state, caller, n, None, headers, uri).await
}

pub async fn prices_period(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((n, p)): ApiPath<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    prices(state, caller, n, Some(p), headers, uri).await
}
