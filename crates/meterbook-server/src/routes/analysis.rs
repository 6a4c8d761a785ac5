//! `costanalysis`: the use-case layer's cost analysis as JSON, or its cells
//! as a streamed CSV (`format=csv` or `costanalysis/download`). Every
//! parameter is checked there ([`meterbook_app::analysis`]); a bad one is a
//! 400 with a JSON error.

use super::Ctx;
use crate::auth::Caller;
use crate::error::ApiPath;
use crate::params::{all_values, Params};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use meterbook_app::analysis::{Analysis, RawQuery};
use meterbook_core::Money;

/// The query's parameters, as the portal's form names them too.
pub(crate) fn raw_query(uri_query: Option<&str>) -> Result<RawQuery, ApiError> {
    let q = Params::parse(uri_query)?;
    let get = |name: &str| q.get(name).map(str::to_string);
    Ok(RawQuery {
        group_by: get("groupby"),
        granularity: get("granularity"),
        start: get("startdate"),
        end: get("enddate"),
        filters: all_values(uri_query, "filter")?,
    })
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The analysis as JSON: rows (group, date, records, cost, accumulated),
/// groups, per-bucket totals and the total. Money is written as exact
/// decimal numbers, `null` where the caller may not see costs.
pub(crate) fn analysis_json(n: &str, a: &Analysis) -> String {
    let money = |m: Option<Money>| m.map_or("null".to_string(), |m| m.format(a.exponent));
    let q = &a.query;
    let mut o = format!(
        "{{\"id\":\"enrollments/{n}/costanalysis\",\"groupBy\":{},\"granularity\":\"{}\",\"startDate\":\"{}\",\"endDate\":\"{}\",\"currency\":\"{}\",\"costsShown\":{},\"filters\":[",
        json_string(&q.group_by.name()),
        q.granularity.name(),
        q.start,
        q.end,
        a.currency,
        a.costs
    );
    let mut first = true;
    for (d, vs) in &q.filters {
        for v in vs {
            if !first {
                o.push(',');
            }
            first = false;
            o.push_str(&json_string(&format!("{}={v}", d.name())));
        }
    }
    o.push_str("],\"rows\":[");
    for (i, r) in a.rows.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str(&format!(
            "{{\"group\":{},\"date\":\"{}\",\"records\":{},\"cost\":{},\"accumulated\":{}}}",
            json_string(&r.group),
            a.bucket_label(r.bucket),
            r.records,
            money(r.cost),
            money(r.accumulated)
        ));
    }
    o.push_str("],\"groups\":[");
    for (i, g) in a.groups.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str(&format!(
            "{{\"group\":{},\"records\":{},\"cost\":{}}}",
            json_string(&g.group),
            g.records,
            money(g.cost)
        ));
    }
    o.push_str("],\"buckets\":[");
    let mut acc = a.costs.then_some(Money::ZERO);
    for (i, d) in a.buckets.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        acc = match (acc, a.bucket_costs[i]) {
            (Some(x), Some(c)) => x.checked_add(c).ok(),
            _ => None,
        };
        o.push_str(&format!(
            "{{\"date\":\"{}\",\"records\":{},\"cost\":{},\"accumulated\":{}}}",
            a.bucket_label(*d),
            a.bucket_records[i],
            money(a.bucket_costs[i]),
            money(acc)
        ));
    }
    o.push_str(&format!(
        "],\"totals\":{{\"records\":{},\"cost\":{}}}}}",
        a.total_records,
        money(a.total_cost)
    ));
    o
}

async fn respond(
    state: AppState,
    caller: Caller,
    n: String,
    headers: HeaderMap,
    uri: Uri,
    download: bool,
) -> Result<Response, ApiError> {
    let ctx = Ctx::load(&caller, &n, &uri)?;
    let params = Params::parse(uri.query())?;
    let csv = download || params.choice("format", &["json", "csv"], "json")? == "csv";
    let raw = raw_query(uri.query())?;
    let query = ctx.a.analysis_query(&raw)?;
    if let Some(r) = ctx.not_modified(&headers) {
        return Ok(r);
    }
    let a = ctx.a.clone();
    let analysis = state.run(move |_| a.cost_analysis(&query)).await?;
    if !csv {
        return Ok(ctx.json(analysis_json(ctx.n.as_str(), &analysis)));
    }
    let file = format!(
        "cost-analysis_{}_{}_{}.csv",
        ctx.n, analysis.query.start, analysis.query.end
    );
    let body = crate::streaming::body("cost analysis download", move |w| analysis.write_csv(w));
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(ctx.decorate(res))
}

/// `GET costanalysis`: JSON, or CSV with `format=csv`.
pub async fn cost_analysis(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    respond(state, caller, n, headers, uri, false).await
}

/// `GET costanalysis/download`: the CSV.
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(n): ApiPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    respond(state, caller, n, headers, uri, true).await
}
