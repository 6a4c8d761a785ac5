//! What the demo shows a finance team beyond its reports: budgets near their
//! thresholds (with the alerts they have fired), the forecast, and an e-mail
//! channel whose deliveries fill the delivery log.
//!
//! Amounts are derived from the generated usage, so the story holds on any
//! day the demo is seeded: the term budget is always about 85% used (its 50%
//! and 80% alerts have fired, 90% is next), whatever the day of the month.

use anyhow::Result;
use meterbook_app::budgets::BudgetInput;
use meterbook_app::forecast::Horizon;
use meterbook_app::notifications::ChannelInput;
use meterbook_app::Operator;
use meterbook_core::{EnrollmentNumber, Money};

/// Budgets, a channel and the first evaluation; the lines to print.
pub(super) fn seed(op: &Operator, n: &EnrollmentNumber) -> Result<Vec<String>> {
    let a = op.enrollment(n)?;
    let term = a.forecast(Horizon::Term)?;
    let month = a.forecast(Horizon::Period)?;
    let admin = a.admin()?;
    // Round figures in whole thousands of dollars (cents), at least 1,000.00.
    let round_up = |cents: i64| ((cents.max(0) / 100_000) + 1).max(1) * 100_000;
    let thresholds = |t: &[(&str, u32)]| -> Vec<(String, i64)> {
        t.iter()
            .map(|(b, p)| (b.to_string(), i64::from(*p)))
            .collect()
    };
    // The term's charges so far at about 85% of the budget.
    let term_budget = admin.create_budget(&BudgetInput {
        name: "Northwind cloud spend, whole term".into(),
        scope: "enrollment".into(),
        scope_name: None,
        cadence: "term".into(),
        amount: Money(round_up(term.actual.0.saturating_mul(100) / 85)).format(2),
        thresholds: thresholds(&[
            ("actual", 50),
            ("actual", 80),
            ("actual", 90),
            ("balance", 10),
        ]),
    })?;
    // This month: the budget a tenth above the month's forecast.
    let month_budget = admin.create_budget(&BudgetInput {
        name: "Northwind monthly".into(),
        scope: "enrollment".into(),
        scope_name: None,
        cadence: "monthly".into(),
        amount: Money(round_up(month.projected.0.saturating_mul(11) / 10)).format(2),
        thresholds: thresholds(&[("actual", 80), ("actual", 100), ("forecast", 100)]),
    })?;
    admin.add_channel(&ChannelInput {
        kind: "email".into(),
        address: "finance@northwind.example".into(),
        events: vec!["alert".into(), "period-closed".into(), "watermark".into()],
    })?;
    let fired = op.evaluate_notifications(n)?;
    let pct = |t: i128| format!("{}.{}%", t / 10, t % 10);
    let mut lines = vec![
        format!(
            "Budget \"{}\": {} of {} USD used ({}); alerts at 50, 80 and 90%.",
            term_budget.budget.name,
            term_budget.actual.format(2),
            term_budget.budget.amount.format(2),
            pct(term_budget.used_tenths_percent)
        ),
        format!(
            "Budget \"{}\": {} of {} USD so far this month ({}).",
            month_budget.budget.name,
            month_budget.actual.format(2),
            month_budget.budget.amount.format(2),
            pct(month_budget.used_tenths_percent)
        ),
        format!(
            "Forecast for {}: {} USD (between {} and {}), from the mean of the last {} days' charges.",
            month.period,
            month.projected.format(2),
            month.projected_low.format(2),
            month.projected_high.format(2),
            month.basis_days
        ),
    ];
    if let Some(r) = term.commitment {
        lines.push(match (r.already_used, r.runs_out_on) {
            (true, _) => "The commitment is used up.".to_string(),
            (false, Some(d)) => format!(
                "The commitment ({} USD left) runs out around {d} at the current burn rate.",
                r.balance.format(2)
            ),
            (false, None) => format!(
                "The commitment ({} USD left) lasts the term at the current burn rate.",
                r.balance.format(2)
            ),
        });
    }
    lines.push(format!(
        "{} alert(s) fired and queued for finance@northwind.example and the administrators \
         (serve with --smtp-relay HOST:PORT to send them; the delivery log is under Manage).",
        fired.len()
    ));
    Ok(lines)
}
