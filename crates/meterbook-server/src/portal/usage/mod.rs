//! Usage: what was used and what it cost, for a month or a range of months,
//! by service or down the hierarchy (department → account → subscription),
//! inside the viewer's scope (design §5), with a stacked chart per month and a
//! table whose rows drill down to the next level; every level links to the
//! usage-details CSV of its selection.
//!
//! The figures come from [`usage_summary`] (daily sums, never the facts), so
//! they are exact and add up to the usage-details report of the same month and
//! scope. Months are billing periods as booked (corrections included in the
//! month they are booked in).

use super::chart::{self, Stacked};
use super::overview::{label, short};
use super::{format, render, Page, PageResult, Tab, Viewer};
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use meterbook_core::figures::{Focus, Group, Grouping};
use meterbook_core::{Money, Period};
use serde::Deserialize;

mod details;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/e/{n}/usage", get(usage))
        .route("/portal/e/{n}/usage/details.csv", get(details::details_csv))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The page's GET form: every field optional (empty = not chosen).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UsageQuery {
    /// First billing period, `YYYYMM`.
    from: String,
    /// Last billing period, `YYYYMM`.
    to: String,
    /// `hierarchy` (default) or `service`.
    by: String,
    department: String,
    account: String,
}

/// An option of a `<select>`.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A row of the usage table.
pub struct Row {
    pub name: String,
    /// What the row is ("Department", "Account", "Subscription", "Service", "Meter").
    pub kind: String,
    /// The next level, if any.
    pub href: Option<String>,
    /// A meter row under its service (indented).
    pub detail: bool,
    /// Quantity (meters only), in the column's decimals.
    pub quantity: String,
    /// Its unit of measure (`1 GB`, `10 Hours`), in a column of its own.
    pub unit: String,
    pub records: String,
    pub charges: String,
}

#[derive(Template)]
#[template(path = "portal/usage.html")]
struct UsagePage {
    nav: super::Nav,
    freshness: String,
    from_opts: Vec<Opt>,
    to_opts: Vec<Opt>,
    /// A refused choice of months: (field, message), shown next to the field.
    span_error: Option<(&'static str, String)>,
    by_service: bool,
    dept_opts: Vec<Opt>,
    acct_opts: Vec<Opt>,
    /// Breadcrumb links above the current level: (label, href).
    crumbs: Vec<(String, String)>,
    heading: String,
    span_label: String,
    costs: bool,
    currency: String,
    chart_svg: String,
    chart_legend: String,
    chart_caption: String,
    rows: Vec<Row>,
    total_records: String,
    total_charges: String,
    /// Exact figures of the total (machine-readable attributes).
    total_rows_raw: i64,
    total_cost_exact: String,
    period_head: Vec<String>,
    period_table: Vec<(String, Vec<String>)>,
    download_href: String,
    download_label: String,
    download_note: String,
    group_href_hierarchy: String,
    group_href_service: String,
}

/// Which level of the hierarchy the table shows.
enum Level {
    /// Departments, and accounts without one.
    Top,
    Department(String),
    Account(String),
}

fn parse_period(v: &str, what: &str) -> Result<Period, ApiError> {
    v.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`{what}` must be a billing period (YYYYMM), not `{v}`"
        ))
    })
}

/// A refused choice of months: the field to show it next to, and why.
type SpanError = (&'static str, String);

/// The months chosen: both inside the term and not after the current month,
/// `from` ≤ `to`; the current month by default.
fn span(page: &Page, q: &UsageQuery) -> Result<(Period, Period), SpanError> {
    let e = &page.e;
    let cur = page.access.current_period();
    let field = |what: &'static str| move |err: ApiError| (what, err.to_string());
    let from = if q.from.is_empty() {
        None
    } else {
        Some(parse_period(&q.from, "from").map_err(field("from"))?)
    };
    let to = if q.to.is_empty() {
        None
    } else {
        Some(parse_period(&q.to, "to").map_err(field("to"))?)
    };
    let (from, to) = match (from, to) {
        (None, None) => (cur, cur),
        (Some(f), None) => (f, f.max(cur)),
        (None, Some(t)) => (t, t),
        (Some(f), Some(t)) => (f, t),
    };
    if to < from {
        return Err((
            "to",
            format!(
                "The last month ({}) is before the first ({}).",
                label(to),
                label(from)
            ),
        ));
    }
    // Months after the current one have no usage yet: not offered, refused.
    let last = e.last_period().min(cur);
    for (what, p) in [("from", from), ("to", to)] {
        if p < e.first_period() || p > last {
            return Err((
                what,
                format!(
                    "Choose months from {} to {} (the enrollment's term, up to the current month), not {}.",
                    label(e.first_period()),
                    label(last),
                    label(p)
                ),
            ));
        }
    }
    Ok((from, to))
}

async fn usage(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Query(q): Query<UsageQuery>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    // A refused choice shows the page again (the current month's figures)
    // with the months as entered and the reason next to the field.
    let cur = page.access.current_period();
    let (from, to, span_error) = match span(&page, &q) {
        Ok((f, t)) => (f, t, None),
        Err(e) => (cur, cur, Some(e)),
    };
    let entered = |v: &str, dflt: Period| v.trim().parse::<Period>().unwrap_or(dflt);
    let (from_shown, to_shown) = if span_error.is_some() {
        (entered(&q.from, from), entered(&q.to, to))
    } else {
        (from, to)
    };
    let by_service = q.by == "service";
    let grouping = if by_service {
        Grouping::Service
    } else {
        Grouping::Hierarchy
    };
    let exp = page.e.currency.exponent();
    let a = page.access.clone();
    let (dq, aq) = (q.department.clone(), q.account.clone());
    let (focus, table) = state
        .run(move |_| {
            let focus = a.focus(Some(&dq), Some(&aq))?;
            let table = a.usage_table(from, to, &focus, grouping, by_service)?;
            Ok((focus, table))
        })
        .await?;
    let (costs, h) = (table.costs, &table.hierarchy);
    let (department, account) = match &focus {
        Focus::Scope => (None, None),
        Focus::Department(d) => (Some(d.clone()), None),
        Focus::Account {
            department,
            account,
        } => (department.clone(), Some(account.clone())),
    };
    let level = match (&department, &account) {
        (_, Some(a)) => Level::Account(a.clone()),
        (Some(d), None) => Level::Department(d.clone()),
        (None, None) => Level::Top,
    };
    let e = &page.e;
    let ccy = e.currency.code().to_string();
    let base = format!("/portal/e/{}/usage", page.n);
    let span_q = format!("from={from}&to={to}");
    let by_q = if by_service { "&by=service" } else { "" };
    let link = |extra: &str| format!("{base}?{span_q}{by_q}{extra}");

    let periods = &table.periods;
    let np = periods.len();
    // The table's heading names the currency: cells hold the figure alone.
    let money = |m: Money| format::group(&m.format(exp));
    // Colours: by name, from the names of the term (the same on every page).
    let colour_slots = chart::slots(table.term_names.iter().map(String::as_str));

    let mut rows = Vec::new();
    // Each meter row's quantity, formatted once the column is known.
    let mut quantities: Vec<(usize, i128)> = Vec::new();
    for gr in &table.rows {
        let g = &gr.group;
        let (kind, href) = match g {
            Group::Department(d) => ("Department", Some(link(&format!("&department={}", enc(d))))),
            Group::Account(a) => (
                if matches!(level, Level::Top) {
                    "Account (no department)"
                } else {
                    "Account"
                },
                Some(link(&format!("&account={}", enc(a)))),
            ),
            Group::Subscription(_) => ("Subscription", None),
            Group::Service(_) => ("Service", None),
            Group::Unassigned => ("", None),
        };
        rows.push(Row {
            name: g.name().to_string(),
            kind: kind.to_string(),
            href,
            detail: false,
            quantity: String::new(),
            unit: String::new(),
            records: format::group(&gr.figures.records.to_string()),
            charges: money(gr.figures.charges),
        });
        for m in &gr.meters {
            quantities.push((rows.len(), m.quantity_micro));
            rows.push(Row {
                name: if m.meter.is_empty() {
                    "(unknown meter)".into()
                } else {
                    m.meter.clone()
                },
                kind: "Meter".into(),
                href: None,
                detail: true,
                quantity: String::new(),
                unit: m.unit.clone(),
                records: format::group(&m.records.to_string()),
                charges: money(m.charges),
            });
        }
    }
    let shown = format::quantities(&quantities.iter().map(|(_, q)| *q).collect::<Vec<_>>());
    for ((i, _), q) in quantities.iter().zip(shown) {
        rows[*i].quantity = q;
    }

    // The chart: one series per group in the table's order (the 7 largest,
    // the rest as "Other").
    let mut series: Vec<(String, Vec<i128>, i128)> = table
        .rows
        .iter()
        .map(|r| {
            let vals = r.figures.per_period(costs);
            let w = vals.iter().sum();
            (r.group.name().to_string(), vals, w)
        })
        .collect();
    if series.len() > 8 {
        let rest = series.split_off(7);
        let mut other = vec![0i128; np];
        for (_, v, _) in &rest {
            for (o, x) in other.iter_mut().zip(v) {
                *o += x;
            }
        }
        let s = other.iter().sum();
        series.push(("Other".into(), other, s));
    }
    let series: Vec<(String, Vec<i128>)> = series.into_iter().map(|(n, v, _)| (n, v)).collect();
    let total = &table.total;
    let total_charges = money(if costs { total.charges } else { Money::ZERO });
    let span_label = if from == to {
        label(from)
    } else {
        format!("{} to {}", label(from), label(to))
    };
    let (heading, crumbs) = {
        let all = (
            if by_service {
                "All services".to_string()
            } else {
                "All departments".to_string()
            },
            link(""),
        );
        match &level {
            Level::Top => (
                if by_service {
                    "Services".to_string()
                } else {
                    "Departments".to_string()
                },
                vec![],
            ),
            Level::Department(d) => (format!("Department {d}"), vec![all]),
            Level::Account(a) => {
                let mut c = vec![all];
                if let Some(d) = &department {
                    c.push((
                        format!("Department {d}"),
                        link(&format!("&department={}", enc(d))),
                    ));
                }
                (format!("Account {a}"), c)
            }
        }
    };
    let what = match (&level, by_service) {
        (_, true) => "service",
        (Level::Top, false) => "department",
        (Level::Department(_), false) => "account",
        (Level::Account(_), false) => "subscription",
    };
    let chart = Stacked {
        title: format!(
            "{} by {what}, {span_label}",
            if costs { "Charges" } else { "Usage records" },
        ),
        labels: periods
            .iter()
            .map(|p| {
                if np > 12 {
                    format!("{} {}", short(*p), p.year() % 100)
                } else {
                    short(*p)
                }
            })
            .collect(),
        colours: series
            .iter()
            .enumerate()
            .map(|(k, (name, _))| chart::slot_of(&colour_slots, name, k))
            .collect(),
        series: series.clone(),
        format: if costs {
            Box::new(move |v| format::minor(v, exp))
        } else {
            Box::new(|v| format::group(&v.to_string()))
        },
    };
    let period_head = periods.iter().map(|p| label(*p)).collect();
    let period_table = series
        .iter()
        .map(|(name, vals)| {
            (
                name.clone(),
                vals.iter().map(|v| (chart.format)(*v)).collect(),
            )
        })
        .collect();

    // The usage details of the selection.
    let (download_href, download_label) = {
        let what = match &level {
            Level::Top => "all your usage".to_string(),
            Level::Department(d) => format!("department {d}"),
            Level::Account(a) => format!("account {a}"),
        };
        let filter = match &level {
            Level::Top => String::new(),
            Level::Department(d) => format!("&department={}", enc(d)),
            Level::Account(a) => format!("&account={}", enc(a)),
        };
        let href = if from == to && filter.is_empty() {
            format!(
                "/portal/e/{}/download/usage?period={from}&format=csv",
                page.n
            )
        } else if from == to {
            format!(
                "/portal/e/{}/usage/details.csv?period={from}{filter}",
                page.n
            )
        } else {
            format!(
                "/portal/e/{}/usage/details.csv?from={}&to={}{filter}",
                page.n,
                from.first_day(),
                to.last_day()
            )
        };
        (
            href,
            format!("Download the usage details of {what}, {span_label} (CSV)"),
        )
    };
    let download_note = if from == to {
        "One row per usage record booked in the month, corrections included.".to_string()
    } else {
        "One row per usage record dated in the months chosen (a correction booked in them for an earlier date is in its month's download instead).".to_string()
    };

    let opts = |all: Vec<String>, cur: Option<&str>| -> Vec<Opt> {
        all.into_iter()
            .map(|v| Opt {
                selected: cur == Some(v.as_str()),
                label: v.clone(),
                value: v,
            })
            .collect()
    };
    // The months offered: the term's, up to the current one.
    let term: Vec<Period> = e.first_period().through(e.last_period().min(cur)).collect();
    let period_opts = |sel: Period| -> Vec<Opt> {
        term.iter()
            .map(|p| Opt {
                value: p.to_string(),
                label: label(*p),
                selected: *p == sel,
            })
            .collect()
    };
    let keep_filter = match &level {
        Level::Top => String::new(),
        Level::Department(d) => format!("&department={}", enc(d)),
        Level::Account(a) => format!("&account={}", enc(a)),
    };
    let freshness = format!(
        "Usage complete through {}; generated {}",
        e.watermark
            .map_or("(not set)".to_string(), |d| d.to_string()),
        page.clock.now().format("%Y-%m-%d %H:%M UTC")
    );
    let refused = span_error.is_some();
    let mut r = render(&UsagePage {
        nav: page.nav(Tab::Usage),
        freshness,
        from_opts: period_opts(from_shown),
        to_opts: period_opts(to_shown),
        span_error,
        by_service,
        dept_opts: opts(page.access.departments_in_reach(h), department.as_deref()),
        acct_opts: opts(page.access.accounts_in_reach(h), account.as_deref()),
        crumbs,
        heading,
        span_label,
        costs,
        currency: ccy.clone(),
        chart_svg: chart.svg(),
        chart_legend: chart.legend(),
        chart_caption: if costs {
            format!("Amounts in {ccy}: each month's charges as billed (the statement's, for the whole enterprise), its parts rounded to add up to it; the downloads are exact.")
        } else {
            "Your role does not show charges in this enrollment: the chart counts usage records, and downloads show cost and rate as 0.".into()
        },
        rows,
        total_records: format::group(&total.records.to_string()),
        total_charges,
        total_rows_raw: total.records,
        total_cost_exact: total.cost_exact.to_string(),
        period_head,
        period_table,
        download_href,
        download_label,
        download_note,
        group_href_hierarchy: format!("{base}?{span_q}{keep_filter}"),
        group_href_service: format!("{base}?{span_q}&by=service{keep_filter}"),
    });
    if refused {
        *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    Ok(r)
}
