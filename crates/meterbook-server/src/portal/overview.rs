//! Overview: remaining commitment and its trend, this month's charges, overage,
//! the forecast of the month's charges (and of the commitment's run-out), a
//! usage history chart (by department or by service), and data freshness.

use super::chart::{self, Stacked};
use super::{format, render, Page, PageResult, Tab, Viewer};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use meterbook_app::forecast::{Forecast, Horizon};
use meterbook_core::figures::{Group, Grouping};
use meterbook_core::{Day, Period};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/portal/e/{n}", get(overview))
}

#[derive(Deserialize)]
pub struct Q {
    by: Option<String>,
}

/// A figure of the overview: label and formatted value.
pub struct Figure {
    pub label: String,
    pub value: String,
    pub note: String,
}

/// The Forecast tile: the month's expected charges, their range, the
/// commitment's run-out (enterprise administrators) and the method.
pub struct ForecastTile {
    pub value: String,
    pub range: String,
    pub basis: String,
    /// Empty below the enterprise.
    pub commitment: String,
    pub method: String,
}

fn day_label(d: Day) -> String {
    d.naive().format("%-d %b %Y").to_string()
}

fn forecast_tile(f: &Forecast, exp: u32, ccy: &str) -> ForecastTile {
    let m = |v| format::money(v, exp, ccy);
    let basis = match f.as_of {
        None => "No usage yet to take a daily rate from.".to_string(),
        Some(d) => format!(
            "{} so far through {}; {} a day ({} to {}) over the last {} day{}, {} day{} left.",
            m(f.actual),
            day_label(d),
            m(f.daily_burn),
            m(f.daily_low),
            m(f.daily_high),
            f.basis_days,
            if f.basis_days == 1 { "" } else { "s" },
            f.days_left,
            if f.days_left == 1 { "" } else { "s" },
        ),
    };
    let commitment = match &f.commitment {
        None => String::new(),
        Some(c) if c.total.0 <= 0 && c.balance.0 <= 0 => "No commitment bought.".into(),
        Some(c) if c.already_used => "The commitment is already used.".into(),
        Some(c) => match (c.runs_out_on, c.earliest, c.latest) {
            (Some(on), Some(early), Some(late)) => format!(
                "The commitment runs out around {} (between {} and {}).",
                day_label(on),
                day_label(early),
                day_label(late)
            ),
            (Some(on), Some(early), None) => format!(
                "The commitment runs out around {} (between {} and after the term's end).",
                day_label(on),
                day_label(early)
            ),
            (None, Some(early), _) => format!(
                "The commitment lasts to the term's end at this rate (at the high rate it runs out around {}).",
                day_label(early)
            ),
            _ => "The commitment lasts to the term's end at this rate.".into(),
        },
    };
    ForecastTile {
        value: m(f.projected),
        range: format!(
            "expected by {}: between {} and {}",
            day_label(f.last_day),
            m(f.projected_low),
            m(f.projected_high)
        ),
        basis,
        commitment,
        method: f.method.to_string(),
    }
}

#[derive(Template)]
#[template(path = "portal/overview.html")]
struct OverviewPage {
    nav: super::Nav,
    freshness: String,
    figures: Vec<Figure>,
    forecast: Option<ForecastTile>,
    /// The budgets within the viewer's reach (none where charges are hidden).
    budgets: Vec<super::manage::budgets::BudgetView>,
    by_service: bool,
    chart_svg: String,
    chart_legend: String,
    chart_caption: String,
    balance_svg: String,
    /// The commitment chart's figures: total commitment, used and percent used.
    commitment: Vec<Figure>,
    currency: String,
    table_head: Vec<String>,
    table: Vec<(String, Vec<String>)>,
}

async fn overview(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Query(q): Query<Q>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let by_service = q.by.as_deref() == Some("service");
    let grouping = if by_service {
        Grouping::Service
    } else {
        Grouping::Hierarchy
    };
    let e = page.e.clone();
    let exp = e.currency.exponent();
    let a = page.access.clone();
    let (view, forecast, budgets) = state
        .run(move |_| {
            // The tile is an extra: if its figures fail, the page still shows.
            let forecast = if a.sees_charges() {
                a.forecast(Horizon::Period)
                    .inspect_err(|e| tracing::warn!(error = %e, "the overview's forecast failed"))
                    .ok()
            } else {
                None
            };
            // Each role sees the budgets of its own reach, read-only.
            let budgets = if a.sees_charges() {
                a.budgets()
                    .inspect_err(|e| tracing::warn!(error = %e, "the overview's budgets failed"))
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            Ok((a.overview(grouping)?, forecast, budgets))
        })
        .await?;
    let (cur, costs, statements) = (view.current, view.history.costs, &view.statements);
    let periods = view.history.periods.clone();
    let first = periods.first().copied().unwrap_or(cur);
    let ccy = e.currency.code().to_string();
    let mut tiles = Vec::new();
    if let Some(st) = statements.last() {
        tiles.push(Figure {
            label: "Remaining commitment".into(),
            value: format::money(st.ending_balance, exp, &ccy),
            note: format!("end of {}", label(cur)),
        });
    }
    if let Some(charges) = view.charges_this_month {
        // The same figure every role reads: all charges, marketplace included
        // (the Usage page's total for the month).
        tiles.push(Figure {
            label: "Charges this month".into(),
            value: format::money(charges, exp, &ccy),
            note: if statements.is_empty() {
                format!("{} so far, your accounts, marketplace included", label(cur))
            } else {
                format!("{} so far, marketplace included", label(cur))
            },
        });
    }
    if let Some(st) = statements.last() {
        tiles.push(Figure {
            label: "Overage this month".into(),
            value: format::money(st.total_overage, exp, &ccy),
            note: if st.total_overage.0 > 0 {
                "beyond the commitment: billed separately".into()
            } else {
                "none".into()
            },
        });
        tiles.push(Figure {
            label: "Marketplace this month".into(),
            value: format::money(st.marketplace_charges, exp, &ccy),
            note: "not drawn from the commitment".into(),
        });
    } else {
        tiles.push(Figure {
            label: "Usage records this month".into(),
            value: format::group(&view.records_this_month.to_string()),
            note: format!("{}, your accounts", label(cur)),
        });
    }
    // History: periods × (department or service), the bars' totals the
    // periods' charges as billed, split into parts that add up to them (in
    // the layer's one order: charges, or records, descending, then name).
    let groups: Vec<(Group, Vec<i128>)> = view
        .history
        .rows
        .iter()
        .map(|r| (r.group.clone(), r.figures.per_period(costs)))
        .collect();
    let labels: Vec<String> = periods.iter().map(|p| short(*p)).collect();
    // Colours by name, from the names of the term (the same on every page).
    let colour_slots = chart::slots(view.history.term_names.iter().map(String::as_str));
    let colours: Vec<usize> = groups
        .iter()
        .enumerate()
        .map(|(k, (g, _))| chart::slot_of(&colour_slots, g.name(), k))
        .collect();
    let series: Vec<(String, Vec<i128>)> = groups
        .into_iter()
        .map(|(g, v)| {
            // Accounts without a department stand beside the departments (as on
            // the Usage page): said so, since the chart has no Kind column.
            let name = match &g {
                Group::Account(a) => format!("{a} (no department)"),
                g => g.name().to_string(),
            };
            (name, v)
        })
        .collect();
    let money_fmt = move |v: i128| format::minor(v, exp);
    let chart = Stacked {
        title: format!(
            "{} by {}, {} to {}",
            if costs { "Charges" } else { "Usage records" },
            if by_service { "service" } else { "department" },
            label(first),
            label(cur)
        ),
        labels: labels.clone(),
        series: series.clone(),
        colours,
        format: if costs {
            Box::new(money_fmt)
        } else {
            Box::new(|v| format::group(&v.to_string()))
        },
    };
    // The commitment: bought (purchases and adjustments) through the current
    // period, what is left at its end, and the share used.
    let mut commitment = Vec::new();
    if let Some(c) = view.commitment {
        commitment.push(Figure {
            label: "Total commitment".into(),
            value: format::money(c.total, exp, &ccy),
            note: format!("purchases and adjustments through {}", label(cur)),
        });
        commitment.push(Figure {
            label: "Used".into(),
            value: match c.used_tenths_percent {
                Some(tenths) => format!("{}.{}%", tenths / 10, tenths % 10),
                None => "–".into(),
            },
            note: format!(
                "{} left at the end of {}",
                format::money(c.left, exp, &ccy),
                label(cur)
            ),
        });
    }
    let balance_svg = if statements.is_empty() {
        String::new()
    } else {
        Stacked {
            title: "Remaining commitment at each period's end".into(),
            colours: Vec::new(),
            labels: statements.iter().map(|s| short(s.period)).collect(),
            series: vec![(
                "Remaining commitment".into(),
                statements
                    .iter()
                    .map(|s| s.ending_balance.0.max(0) as i128)
                    .collect(),
            )],
            format: Box::new(money_fmt),
        }
        .svg()
    };
    let table_head = labels;
    let table = series
        .iter()
        .map(|(name, vals)| {
            (
                name.clone(),
                vals.iter().map(|v| (chart.format)(*v)).collect(),
            )
        })
        .collect();
    let freshness = format!(
        "Usage complete through {}; generated {}",
        e.watermark
            .map_or("(not set)".to_string(), |d| d.to_string()),
        page.clock.now().format("%Y-%m-%d %H:%M UTC")
    );
    Ok(render(&OverviewPage {
        nav: page.nav(Tab::Overview),
        freshness,
        figures: tiles,
        forecast: forecast.map(|f| forecast_tile(&f, exp, &ccy)),
        budgets: budgets
            .iter()
            .map(|st| super::manage::budgets::budget_view(st, exp, &ccy))
            .collect(),
        by_service,
        chart_svg: chart.svg(),
        chart_legend: chart.legend(),
        chart_caption: if costs {
            format!("Amounts in {ccy}.")
        } else {
            "Your role does not show charges: the chart counts usage records.".into()
        },
        balance_svg,
        commitment,
        currency: ccy.clone(),
        table_head,
        table,
    }))
}

pub fn label(p: Period) -> String {
    format!("{} {}", short(p), p.year())
}

/// `Nov`.
pub fn short(p: Period) -> String {
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    M[(p.month() as usize).clamp(1, 12) - 1].to_string()
}
