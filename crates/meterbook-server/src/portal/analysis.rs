//! Cost analysis: charges (records where the role does not show charges)
//! grouped by a tag key, resource group, meter, region, subscription,
//! department, account, service or charge type, filtered, per day or month,
//! actual or accumulated, in a stacked chart and a table, with a "Download
//! CSV" link of the same query. The figures are the use-case layer's
//! ([`meterbook_app::analysis`]); this page only reads the form and formats.
//!
//! The form is a GET form, so a query is a link: the page's URL and the CSV's
//! carry the same parameters (`groupBy`, `tagKey`, `granularity`,
//! `startDate`, `endDate`, `filters` one `DIMENSION=VALUE` a line, `view`).

use super::chart::{self, Stacked};
use super::{format, render, Page, PageResult, Tab, Viewer};
use crate::params::{all_values, Params};
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use meterbook_app::analysis::{Analysis, RawQuery};
use meterbook_app::AppError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/e/{n}/analysis", get(page))
        .route("/portal/e/{n}/analysis.csv", get(csv))
}

/// What the form sent, as it is redisplayed.
#[derive(Default)]
struct Form {
    group_by: String,
    tag_key: String,
    granularity: String,
    start: String,
    end: String,
    filters: String,
    accumulated: bool,
}

fn read_form(query: Option<&str>) -> Result<(Form, RawQuery), ApiError> {
    let p = Params::parse(query)?;
    let get = |k: &str| p.get(k).unwrap_or_default().to_string();
    let form = Form {
        group_by: get("groupby"),
        tag_key: get("tagkey"),
        granularity: get("granularity"),
        start: get("startdate"),
        end: get("enddate"),
        filters: get("filters"),
        accumulated: p.get("view") == Some("accumulated"),
    };
    let group_by = match form.group_by.as_str() {
        "" => None,
        "tag" => Some(format!("tag:{}", form.tag_key.trim())),
        g => Some(g.to_string()),
    };
    let mut filters: Vec<String> = form
        .filters
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    filters.extend(all_values(query, "filter")?);
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let raw = RawQuery {
        group_by,
        granularity: opt(&form.granularity),
        start: opt(&form.start),
        end: opt(&form.end),
        filters,
    };
    Ok((form, raw))
}

#[derive(Template)]
#[template(path = "portal/analysis.html")]
struct AnalysisPage {
    nav: super::Nav,
    form: Form,
    /// (value, label) of the grouping select.
    dimensions: Vec<(&'static str, &'static str)>,
    error: String,
    costs: bool,
    title: String,
    chart_svg: String,
    chart_legend: String,
    caption: String,
    total: String,
    /// (group, records, cost) over the range.
    groups: Vec<(String, String, String)>,
    /// (bucket, group, records, cost, accumulated).
    cells: Vec<(String, String, String, String, String)>,
    csv_link: String,
}

const DIMENSIONS: [(&str, &str); 10] = [
    ("subscription", "Subscription"),
    ("resourceGroup", "Resource group"),
    ("meter", "Meter"),
    ("region", "Region"),
    ("tag", "Tag (key below)"),
    ("department", "Department"),
    ("account", "Account"),
    ("service", "Service"),
    ("chargeType", "Charge type"),
    ("", ""),
];

/// Series beyond this many groups are drawn as one "Other".
const SERIES: usize = 7;

async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    uri: Uri,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let (form, raw) = read_form(uri.query())?;
    let csv_link = format!(
        "/portal/e/{}/analysis.csv?{}",
        page.n,
        uri.query().unwrap_or_default()
    );
    let a = page.access.clone();
    let result = state
        .run(move |_| match a.analysis_query(&raw) {
            Ok(q) => a.cost_analysis(&q).map(Ok),
            Err(AppError::Invalid(m)) => Ok(Err(m)),
            Err(e) => Err(e),
        })
        .await?;
    let mut p = AnalysisPage {
        nav: page.nav(Tab::Analysis),
        form,
        dimensions: DIMENSIONS[..9].to_vec(),
        error: String::new(),
        costs: page.sees_costs(),
        title: String::new(),
        chart_svg: String::new(),
        chart_legend: String::new(),
        caption: String::new(),
        total: String::new(),
        groups: Vec::new(),
        cells: Vec::new(),
        csv_link,
    };
    match result {
        Err(message) => p.error = message,
        Ok(an) => fill(&mut p, &an),
    }
    Ok(render(&p))
}

fn fill(p: &mut AnalysisPage, an: &Analysis) {
    let exp = an.exponent;
    let ccy = an.currency.clone();
    let money = |m: Option<meterbook_core::Money>| {
        m.map_or_else(|| "–".to_string(), |m| format::money(m, exp, &ccy))
    };
    p.costs = an.costs;
    let q = &an.query;
    let what = if an.costs { "Charges" } else { "Usage records" };
    p.title = format!(
        "{}{} by {}, {} to {}",
        if p.form.accumulated && an.costs {
            "Accumulated "
        } else {
            ""
        },
        if p.form.accumulated && an.costs {
            what.to_lowercase()
        } else {
            what.to_string()
        },
        q.group_by.name(),
        an.bucket_label(an.buckets.first().copied().unwrap_or(q.start)),
        an.bucket_label(an.buckets.last().copied().unwrap_or(q.end)),
    );
    // The largest groups each a series, the rest one "Other" (the table
    // lists every group).
    let named: Vec<&str> = an
        .groups
        .iter()
        .take(SERIES)
        .map(|g| g.group.as_str())
        .collect();
    let index: std::collections::HashMap<meterbook_core::Day, usize> = an
        .buckets
        .iter()
        .enumerate()
        .map(|(i, d)| (*d, i))
        .collect();
    let mut series: Vec<(String, Vec<i128>)> = named
        .iter()
        .map(|g| (g.to_string(), vec![0i128; an.buckets.len()]))
        .collect();
    let other = an.groups.len() > SERIES;
    if other {
        series.push(("Other".into(), vec![0i128; an.buckets.len()]));
    }
    for r in &an.rows {
        let k = named
            .iter()
            .position(|g| *g == r.group)
            .unwrap_or(series.len() - 1);
        let v = r.cost.map_or(i128::from(r.records), |c| i128::from(c.0));
        series[k].1[index[&r.bucket]] += v;
    }
    if p.form.accumulated && an.costs {
        for (_, vals) in &mut series {
            let mut run = 0i128;
            for v in vals.iter_mut() {
                run += *v;
                *v = run;
            }
        }
    }
    // Bars stack non-negative values: credits (a negative cell) draw as 0;
    // the table shows them as they are.
    for (_, vals) in &mut series {
        for v in vals.iter_mut() {
            *v = (*v).max(0);
        }
    }
    let slots = chart::slots(an.groups.iter().map(|g| g.group.as_str()));
    let colours = series
        .iter()
        .enumerate()
        .map(|(k, (g, _))| chart::slot_of(&slots, g, k))
        .collect();
    let labels = an
        .buckets
        .iter()
        .map(|d| match q.granularity {
            meterbook_app::analysis::Granularity::Daily => d.to_string()[5..].to_string(),
            meterbook_app::analysis::Granularity::Monthly => an.bucket_label(*d),
        })
        .collect();
    let chart = Stacked {
        title: p.title.clone(),
        labels,
        series,
        colours,
        format: if an.costs {
            Box::new(move |v| format::minor(v, exp))
        } else {
            Box::new(|v| format::group(&v.to_string()))
        },
    };
    p.chart_svg = chart.svg();
    p.chart_legend = chart.legend();
    p.caption = if an.costs {
        format!(
            "Amounts in {ccy}: each billing period's charges (the statement's for the enterprise) \
             shared among its cells, so a whole period adds up to the statement."
        )
    } else {
        "Your role does not show charges: the chart counts usage records.".into()
    };
    p.total = if an.costs {
        money(an.total_cost)
    } else {
        format!("{} records", format::group(&an.total_records.to_string()))
    };
    p.groups = an
        .groups
        .iter()
        .map(|g| {
            (
                g.group.clone(),
                format::group(&g.records.to_string()),
                money(g.cost),
            )
        })
        .collect();
    p.cells = an
        .rows
        .iter()
        .map(|r| {
            (
                an.bucket_label(r.bucket),
                r.group.clone(),
                format::group(&r.records.to_string()),
                money(r.cost),
                money(r.accumulated),
            )
        })
        .collect();
}

/// `GET /portal/e/{n}/analysis.csv?...`: the page's cells as CSV, streamed.
async fn csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    uri: Uri,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let (_, raw) = read_form(uri.query())?;
    let a = page.access.clone();
    let an = state
        .run(move |_| {
            let q = a.analysis_query(&raw)?;
            a.cost_analysis(&q)
        })
        .await?;
    let file = format!(
        "cost-analysis_{}_{}_{}.csv",
        page.n, an.query.start, an.query.end
    );
    let body = crate::streaming::body("cost analysis download", move |w| an.write_csv(w));
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
