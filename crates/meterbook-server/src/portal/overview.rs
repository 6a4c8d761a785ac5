//! Overview: remaining commitment and its trend, this month's charges, overage,
//! a usage history chart (by department or by service), and data freshness.

use super::chart::{self, Stacked};
use super::{format, render, Page, PageResult, Tab, Viewer};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use meterbook_core::figures::{self, Focus, Group, Grouping};
use meterbook_core::summary::usage_summary;
use meterbook_core::Period;
use serde::Deserialize;
use std::collections::BTreeMap;

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

#[derive(Template)]
#[template(path = "portal/overview.html")]
struct OverviewPage {
    nav: super::Nav,
    freshness: String,
    figures: Vec<Figure>,
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

/// The current period, kept inside the term.
pub fn current_period(
    e: &meterbook_core::Enrollment,
    clock: &dyn meterbook_core::clock::Clock,
) -> Period {
    clock
        .today()
        .period()
        .clamp(e.first_period(), e.last_period())
}

async fn overview(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Query(q): Query<Q>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let by_service = q.by.as_deref() == Some("service");
    let e = page.e.clone();
    let exp = e.currency.exponent();
    let cur = current_period(&e, page.clock.as_ref());
    let first = e.first_period().max(prev_n(cur, 11));
    let (scope, costs, number) = (page.scope(), page.sees_costs(), page.n.clone());
    let sees_balance = scope.sees_balance();
    let term_first = e.first_period();
    let (summary, statements, scope_totals, term) = state
        .blocking(move |s| {
            let sum = usage_summary(s, &number, scope, costs, first, cur)?;
            // The names coloured (the same set on every page): the term's, up
            // to the current month.
            let term = if first == term_first {
                None
            } else {
                Some(usage_summary(s, &number, scope, false, term_first, cur)?)
            };
            let sts = if sees_balance {
                meterbook_core::ledger::statements(s, &number, cur)?
                    .into_iter()
                    .map(|(st, _)| st)
                    .collect()
            } else {
                Vec::new()
            };
            // The figures every page shows (the statement's, for the enterprise).
            let totals = if costs {
                figures::scope_charges(s, &number, scope, &sum, first, cur, exp)?
            } else {
                Vec::new()
            };
            Ok((sum, sts, totals, term))
        })
        .await?;
    let ccy = e.currency.code().to_string();
    let mut tiles = Vec::new();
    if let Some(st) = statements.last() {
        tiles.push(Figure {
            label: "Remaining commitment".into(),
            value: format::money(st.ending_balance, exp, &ccy),
            note: format!("end of {}", label(cur)),
        });
        // The same figure every role reads: all charges, marketplace included
        // (the Usage page's total for the month).
        tiles.push(Figure {
            label: "Charges this month".into(),
            value: format::money(
                st.total_usage
                    .checked_add(st.marketplace_charges)
                    .map_err(out_of_range)?,
                exp,
                &ccy,
            ),
            note: format!("{} so far, marketplace included", label(cur)),
        });
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
        let this: Vec<_> = summary.iter().filter(|r| r.period == cur).collect();
        if let Some(total) = scope_totals.last() {
            tiles.push(Figure {
                label: "Charges this month".into(),
                value: format::money(*total, exp, &ccy),
                note: format!("{} so far, your accounts, marketplace included", label(cur)),
            });
        }
        tiles.push(Figure {
            label: "Usage records this month".into(),
            value: format::group(&this.iter().map(|r| r.rows).sum::<i64>().to_string()),
            note: format!("{}, your accounts", label(cur)),
        });
    }
    // History: periods × (department or service), the bars' totals the
    // periods' charges as billed, split into parts that add up to them.
    let periods: Vec<Period> = first.through(cur).collect();
    let grouping = if by_service {
        Grouping::Service
    } else {
        Grouping::Hierarchy
    };
    let groups: BTreeMap<Group, Vec<i128>> = if costs {
        figures::breakdown(
            &summary,
            &scope_totals,
            &periods,
            &Focus::Scope,
            grouping,
            exp,
        )?
        .groups
        .into_iter()
        .map(|(g, v)| (g, v.into_iter().map(|m| m.0 as i128).collect()))
        .collect()
    } else {
        let mut counts: BTreeMap<Group, Vec<i128>> = BTreeMap::new();
        for r in &summary {
            let i = periods.iter().position(|p| *p == r.period).unwrap_or(0);
            counts
                .entry(figures::group_of(r, &Focus::Scope, grouping))
                .or_insert_with(|| vec![0; periods.len()])[i] += r.rows as i128;
        }
        counts
    };
    let labels: Vec<String> = periods.iter().map(|p| short(*p)).collect();
    // Colours by name, from the names of the term (the same on every page).
    let colour_slots =
        chart::group_slots(term.as_ref().unwrap_or(&summary), &Focus::Scope, grouping);
    // The Usage page's order: charges (records where charges are hidden)
    // descending, then name.
    let mut groups: Vec<(Group, Vec<i128>)> = groups.into_iter().collect();
    groups.sort_by(|a, b| {
        let (sa, sb) = (a.1.iter().sum::<i128>(), b.1.iter().sum::<i128>());
        sb.cmp(&sa).then_with(|| a.0.name().cmp(b.0.name()))
    });
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
    if let Some(last) = statements.last() {
        let mut bought = meterbook_core::Money::ZERO;
        for st in &statements {
            bought = bought
                .checked_add(st.new_purchases)
                .and_then(|b| b.checked_add(st.adjustments))
                .map_err(out_of_range)?;
        }
        let left = last.ending_balance.0.max(0) as i128;
        let total = bought.0 as i128;
        commitment.push(Figure {
            label: "Total commitment".into(),
            value: format::money(bought, exp, &ccy),
            note: format!("purchases and adjustments through {}", label(cur)),
        });
        commitment.push(Figure {
            label: "Used".into(),
            value: if total > 0 {
                // Tenths of a percent, rounded half-even; never past 100%.
                let tenths = meterbook_core::fixed::div_round_half_even(
                    (total - left.min(total)) * 1000,
                    total,
                );
                format!("{}.{}%", tenths / 10, tenths % 10)
            } else {
                "–".into()
            },
            note: format!(
                "{} left at the end of {}",
                format::money(last.ending_balance, exp, &ccy),
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

fn prev_n(mut p: Period, k: u32) -> Period {
    for _ in 0..k {
        p = p.prev();
    }
    p
}

/// Figures here are parts of range-checked totals and cannot overflow; stored
/// data out of range is an error rather than a wrapped figure.
fn out_of_range(_: meterbook_core::fixed::Overflow) -> meterbook_core::store::StoreError {
    meterbook_core::store::StoreError::Invalid("a figure exceeds the supported range".into())
}

/// `Nov 2026`.
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
