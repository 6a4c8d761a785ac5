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
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use meterbook_core::access::Scope;
use meterbook_core::figures::{self, Focus, Group, Grouping};
use meterbook_core::fixed::Overflow;
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::store::{StoreError, UsageSelection};
use meterbook_core::summary::{usage_summary, SummaryRow};
use meterbook_core::{Amount, Day, Money, Period};
use meterbook_io::report::usage::{UsageFilter, UsageReport};
use meterbook_io::report::{ReportFormat, ReportMeta, ReportScope};
use serde::Deserialize;
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/e/{n}/usage", get(usage))
        .route("/portal/e/{n}/usage/details.csv", get(details_csv))
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

/// Departments the scope reaches (by name): all of them for an enterprise
/// role, its own for a department role, its account's for an account owner.
fn departments_in_scope(scope: Scope, h: &Hierarchy) -> Vec<String> {
    let mut v: Vec<String> = h
        .departments
        .values()
        .filter(|d| match scope {
            Scope::Enrollment => true,
            Scope::Department(id) => d.id == id,
            Scope::Account(a) => h
                .accounts
                .get(&a)
                .is_some_and(|a| a.department_id == Some(d.id)),
        })
        .map(|d| d.name.clone())
        .collect();
    v.sort();
    v
}

fn accounts_in_scope(scope: Scope, h: &Hierarchy) -> Vec<String> {
    let mut v: Vec<String> = h
        .accounts
        .values()
        .filter(|a| scope.covers_account(Some(a)))
        .map(|a| a.name.clone())
        .collect();
    v.sort();
    v
}

/// Checks the department/account filters against the scope: a name outside it
/// reads as unknown (no existence leaks).
fn checked_filters(
    scope: Scope,
    h: &Hierarchy,
    department: &str,
    account: &str,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let account = if account.is_empty() {
        None
    } else {
        match h.account_by_name(account) {
            Some(a) if scope.covers_account(Some(a)) => Some(a.name.clone()),
            _ => return Err(ApiError::NotFound(format!("no account {account} for you"))),
        }
    };
    let department = if department.is_empty() {
        None
    } else if departments_in_scope(scope, h)
        .iter()
        .any(|d| d == department)
    {
        Some(department.to_string())
    } else {
        return Err(ApiError::NotFound(format!(
            "no department {department} for you"
        )));
    };
    Ok((department, account))
}

fn out_of_range(_: Overflow) -> StoreError {
    StoreError::Invalid("the usage summed here exceeds the supported range".into())
}

#[derive(Default)]
struct Agg {
    rows: i64,
    cost: Amount,
    quantity: i128,
    unit: String,
    per_period: Vec<(i64, Amount)>,
}

impl Agg {
    /// Parts of the summary's range-checked totals: the sums cannot
    /// overflow, and are checked so stored data out of range is an error.
    fn add(&mut self, i: usize, n: usize, r: &SummaryRow) -> Result<(), StoreError> {
        if self.per_period.len() != n {
            self.per_period = vec![(0, Amount::ZERO); n];
        }
        self.rows += r.rows;
        self.cost = self.cost.checked_add(r.cost).map_err(out_of_range)?;
        self.quantity += r.quantity_micro;
        self.per_period[i].0 += r.rows;
        self.per_period[i].1 = self.per_period[i]
            .1
            .checked_add(r.cost)
            .map_err(out_of_range)?;
        Ok(())
    }
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
    let (scope, costs, number) = (page.scope(), page.sees_costs(), page.n.clone());
    let exp = page.e.currency.exponent();
    let term_first = page.e.first_period();
    let (h, summary, scope_totals, term) = state
        .blocking(move |s| {
            let h = s.hierarchy(&number)?;
            let sum = usage_summary(s, &number, scope, costs, from, to)?;
            // The names coloured (the same set on every page): the term's, up
            // to the current month.
            let term = if (from, to) == (term_first, cur) {
                None
            } else {
                Some(usage_summary(s, &number, scope, false, term_first, cur)?)
            };
            // The figures every page shows (the statement's, for the enterprise).
            let totals = if costs {
                figures::scope_charges(s, &number, scope, &sum, from, to, exp)?
            } else {
                Vec::new()
            };
            Ok((h, sum, totals, term))
        })
        .await?;
    let (department, account) = checked_filters(scope, &h, &q.department, &q.account)?;
    // An account's department comes from the account (the filter may not name it).
    let department = match &account {
        Some(a) => h
            .account_by_name(a)
            .and_then(|a| h.department(a.department_id))
            .map(|d| d.name.clone()),
        None => department,
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

    let periods: Vec<Period> = from.through(to).collect();
    let np = periods.len();
    let focus = match &level {
        Level::Top => Focus::Scope,
        Level::Department(d) => Focus::Department(d.clone()),
        Level::Account(a) => Focus::Account {
            department: department.clone(),
            account: a.clone(),
        },
    };
    let grouping = if by_service {
        Grouping::Service
    } else {
        Grouping::Hierarchy
    };
    let selected: Vec<&SummaryRow> = summary
        .iter()
        .filter(|r| figures::in_focus(r, &focus))
        .collect();

    // Records and quantities per group (and, for services, per meter below).
    let mut groups: BTreeMap<Group, Agg> = BTreeMap::new();
    let mut meters: BTreeMap<(Group, String, String), Agg> = BTreeMap::new();
    let mut total = Agg::default();
    for r in &selected {
        let i = periods.iter().position(|p| *p == r.period).unwrap_or(0);
        total.add(i, np, r)?;
        let g = figures::group_of(r, &focus, grouping);
        if by_service {
            let m = meters
                .entry((g.clone(), r.meter_id.clone(), r.unit.clone()))
                .or_default();
            m.unit = r.unit.clone();
            m.add(i, np, r)?;
        }
        groups.entry(g).or_default().add(i, np, r)?;
    }
    // Charges: the view's figures, split into parts that add up to them
    // (the same split as the overview's chart).
    let charges = if costs {
        Some(figures::breakdown(
            &summary,
            &scope_totals,
            &periods,
            &focus,
            grouping,
            exp,
        )?)
    } else {
        None
    };
    let parts_of = |g: &Group| -> Vec<Money> {
        charges
            .as_ref()
            .and_then(|c| c.groups.get(g).cloned())
            .unwrap_or_else(|| vec![Money::ZERO; np])
    };
    let sum = |v: &[Money]| Money::checked_sum(v.iter().copied()).map_err(out_of_range);
    // The table's heading names the currency: cells hold the figure alone.
    let money = |m: Money| format::group(&m.format(exp));

    // One order for the table, the chart and its legend: charges (usage
    // records where charges are hidden) descending, then name.
    let weight = |g: &Group, agg: &Agg| -> Result<i128, StoreError> {
        Ok(if costs {
            sum(&parts_of(g))?.0 as i128
        } else {
            agg.rows as i128
        })
    };
    let mut order: Vec<(&Group, &Agg, i128)> = Vec::with_capacity(groups.len());
    for (g, agg) in &groups {
        order.push((g, agg, weight(g, agg)?));
    }
    order.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.name().cmp(b.0.name())));
    // Colours: by name, from the names of the term (the same on every page).
    let colour_slots = chart::group_slots(term.as_ref().unwrap_or(&summary), &focus, grouping);

    let mut rows = Vec::new();
    // Each meter row's quantity, formatted once the column is known.
    let mut quantities: Vec<(usize, i128)> = Vec::new();
    for (g, agg, _) in &order {
        let g = *g;
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
        let parts = parts_of(g);
        rows.push(Row {
            name: g.name().to_string(),
            kind: kind.to_string(),
            href,
            detail: false,
            quantity: String::new(),
            unit: String::new(),
            records: format::group(&agg.rows.to_string()),
            charges: money(sum(&parts)?),
        });
        if by_service {
            let by_meter = figures::split(
                &parts,
                &periods,
                selected
                    .iter()
                    .copied()
                    .filter(|r| figures::group_of(r, &focus, grouping) == *g),
                |r| (r.meter_id.clone(), r.unit.clone()),
                exp,
            )?;
            let mut meter_rows = Vec::new();
            for ((_, meter, unit), m) in meters.iter().filter(|((svc, _, _), _)| svc == g) {
                let part = by_meter
                    .get(&(meter.clone(), unit.clone()))
                    .map_or(Ok(Money::ZERO), |v| sum(v))?;
                let w = if costs {
                    part.0 as i128
                } else {
                    m.rows as i128
                };
                meter_rows.push((w, meter, m, part));
            }
            meter_rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            for (_, meter, m, part) in meter_rows {
                quantities.push((rows.len(), m.quantity));
                rows.push(Row {
                    name: if meter.is_empty() {
                        "(unknown meter)".into()
                    } else {
                        meter.clone()
                    },
                    kind: "Meter".into(),
                    href: None,
                    detail: true,
                    quantity: String::new(),
                    unit: m.unit.clone(),
                    records: format::group(&m.rows.to_string()),
                    charges: money(part),
                });
            }
        }
    }
    let shown = format::quantities(&quantities.iter().map(|(_, q)| *q).collect::<Vec<_>>());
    for ((i, _), q) in quantities.iter().zip(shown) {
        rows[*i].quantity = q;
    }

    // The chart: one series per group in the table's order (the 7 largest,
    // the rest as "Other").
    let mut series: Vec<(String, Vec<i128>, i128)> = Vec::with_capacity(order.len());
    for (g, agg, w) in &order {
        let vals: Vec<i128> = if costs {
            parts_of(g).iter().map(|m| m.0 as i128).collect()
        } else {
            agg.per_period.iter().map(|(r, _)| *r as i128).collect()
        };
        series.push((g.name().to_string(), vals, *w));
    }
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
    let total_charges = match &charges {
        Some(c) => money(c.total().map_err(out_of_range)?),
        None => money(Money::ZERO),
    };
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
        dept_opts: opts(departments_in_scope(scope, &h), department.as_deref()),
        acct_opts: opts(accounts_in_scope(scope, &h), account.as_deref()),
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
        total_records: format::group(&total.rows.to_string()),
        total_charges,
        total_rows_raw: total.rows,
        total_cost_exact: total.cost.to_string(),
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

/// The download's query: a billing period or a date range, and an optional
/// account or department (inside the viewer's scope).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DetailsQuery {
    period: String,
    from: String,
    to: String,
    account: String,
    department: String,
}

/// Bytes written on a blocking thread, sent to the response body through a
/// bounded channel (memory stays flat; a client that leaves stops the report).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /portal/e/{n}/usage/details.csv?period=YYYYMM` or
/// `?from=YYYY-MM-DD&to=YYYY-MM-DD`, with `account=` or `department=`: the
/// usage-details CSV of a selection of the usage page, streamed.
async fn details_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Query(q): Query<DetailsQuery>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let e = &page.e;
    let day = |v: &str, what: &str| -> Result<Day, ApiError> {
        v.trim().parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "`{what}` must be a date (YYYY-MM-DD), not `{}`",
                meterbook_core::quote::quote(v)
            ))
        })
    };
    let (selection, scope_meta, file_part, what) = if !q.period.is_empty() {
        let p = parse_period(&q.period, "period")?;
        if p < e.first_period() || p > e.last_period() {
            return Err(ApiError::BadRequest(format!(
                "period {p} is outside the enrollment's term"
            ))
            .into());
        }
        (
            UsageSelection {
                booked: Some(p),
                ..Default::default()
            },
            ReportScope::Period(p.to_string()),
            p.to_string(),
            format!("period {p}"),
        )
    } else {
        let (f, t) = (day(&q.from, "from")?, day(&q.to, "to")?);
        if t < f {
            return Err(ApiError::BadRequest(format!("`to` {t} is before `from` {f}")).into());
        }
        if f < e.start || t > e.end {
            return Err(ApiError::BadRequest(format!(
                "the range {f} to {t} is outside the enrollment's term {} to {}",
                e.start, e.end
            ))
            .into());
        }
        (
            UsageSelection {
                from: Some(f),
                to: Some(t),
                ..Default::default()
            },
            ReportScope::Range {
                from: f.to_string(),
                to: t.to_string(),
            },
            format!("{f}_{t}"),
            format!("{f} to {t}"),
        )
    };
    let scope = page.scope();
    let number = page.n.clone();
    let h = state.blocking(move |s| Ok(s.hierarchy(&number)?)).await?;
    let (department, account) = checked_filters(scope, &h, &q.department, &q.account)?;
    let filter = UsageFilter {
        accounts: account.iter().cloned().collect(),
        // An account narrows further than its department: the report keeps a row
        // matching either, so only one of them is passed.
        departments: if account.is_some() {
            Vec::new()
        } else {
            department.iter().cloned().collect()
        },
        ..UsageFilter::within(scope, page.sees_costs(), selection)
    };
    let meta = ReportMeta {
        enrollment: page.n.to_string(),
        scope: scope_meta,
        generated_at: page.clock.now_rfc3339(),
        watermark: e.watermark.map(|d| d.to_string()),
        currency: e.currency.code().to_string(),
    };
    let number = page.n.clone();
    // Prepare (and fail with a proper page) before the response starts.
    let report = state
        .blocking(move |s| Ok(UsageReport::prepare(s, &number, filter, meta)?))
        .await?;
    let sel = match (&account, &department) {
        (Some(a), _) => format!(", account {a}"),
        (None, Some(d)) => format!(", department {d}"),
        _ => String::new(),
    };
    page.audit(&state, "download", format!("usage details, {what}{sel}"))
        .await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = state.store().clone();
    let number = page.n.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx: tx.clone() };
        if let Err(e) = report.write(store.as_ref(), &number, ReportFormat::Csv, &mut w) {
            tracing::warn!(error = %e, "usage details download ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other("report failed")));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let sel_part = match (&account, &department) {
        (Some(a), _) => format!("_{}", file_safe(a)),
        (None, Some(d)) => format!("_{}", file_safe(d)),
        _ => String::new(),
    };
    let file = format!("usage-details_{}_{file_part}{sel_part}.csv", page.n);
    let mut res = Body::from_stream(stream).into_response();
    let hd = res.headers_mut();
    hd.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    hd.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        hd.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// A name as part of a file name: letters, digits, `-` and `_` kept.
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
