//! budgets list|add|remove and notifications evaluate: the operator acts as
//! the enrollment's administrator through the use-case layer.

use super::enrollment_number;
use crate::cli::{BudgetsCmd, NotificationsCmd};
use anyhow::{Context, Result};
use meterbook_app::budgets::BudgetInput;
use meterbook_app::Operator;

pub fn run(op: &Operator, c: BudgetsCmd) -> Result<()> {
    match c {
        BudgetsCmd::List { enrollment } => {
            let a = op.enrollment(&enrollment_number(&enrollment)?)?;
            let e = a.enrollment().clone();
            let exp = e.currency.exponent();
            let list = a.budgets()?;
            if list.is_empty() {
                println!("no budgets in enrollment {}", e.number);
            }
            for st in list {
                let b = &st.budget;
                let scope = match &st.scope_name {
                    Some(n) => format!("{} {n}", b.scope.kind()),
                    None => b.scope.kind().to_string(),
                };
                let t = st.used_tenths_percent;
                println!(
                    "{:>4}  {}  [{scope}, {}]  {} of {} {} ({}.{}%) {} to {}{}",
                    b.id,
                    b.name,
                    b.cadence.name(),
                    st.actual.format(exp),
                    b.amount.format(exp),
                    e.currency.code(),
                    t / 10,
                    (t % 10).abs(),
                    st.from,
                    st.to,
                    st.forecast
                        .map(|f| format!(", forecast {}", f.format(exp)))
                        .unwrap_or_default(),
                );
                for th in &b.thresholds {
                    println!(
                        "        {}  {}",
                        th.text(),
                        if st.crossed.contains(th) {
                            "crossed"
                        } else {
                            "-"
                        }
                    );
                }
            }
            Ok(())
        }
        BudgetsCmd::Add {
            enrollment,
            name,
            department,
            account,
            cadence,
            amount,
            thresholds,
        } => {
            let a = op.enrollment(&enrollment_number(&enrollment)?)?;
            let (scope, scope_name) = match (department, account) {
                (Some(d), _) => ("department", Some(d)),
                (_, Some(a)) => ("account", Some(a)),
                _ => ("enrollment", None),
            };
            let mut ts = Vec::new();
            for t in &thresholds {
                let (basis, pct) = t.split_once(':').with_context(|| {
                    format!("--threshold {t}: use BASIS:PERCENT, e.g. actual:80")
                })?;
                let pct: i64 = pct.parse().with_context(|| {
                    format!("--threshold {t}: the percent is not a whole number")
                })?;
                ts.push((basis.to_string(), pct));
            }
            let st = a.admin()?.create_budget(&BudgetInput {
                name,
                scope: scope.into(),
                scope_name,
                cadence,
                amount,
                thresholds: ts,
            })?;
            println!("{}", st.budget.id);
            eprintln!(
                "budget {} \"{}\" added: {} of {} so far",
                st.budget.id,
                st.budget.name,
                st.actual.format(a.enrollment().currency.exponent()),
                st.budget.amount.format(a.enrollment().currency.exponent())
            );
            Ok(())
        }
        BudgetsCmd::Remove { enrollment, id } => {
            let a = op.enrollment(&enrollment_number(&enrollment)?)?;
            a.admin()?.delete_budget(id)?;
            eprintln!("budget {id} removed");
            Ok(())
        }
    }
}

pub fn notifications(op: &Operator, c: NotificationsCmd) -> Result<()> {
    let NotificationsCmd::Evaluate { enrollment } = c;
    let n = enrollment_number(&enrollment)?;
    let fired = op.evaluate_notifications(&n)?;
    for e in &fired {
        println!("{}", e.key);
    }
    eprintln!(
        "{} new event(s) recorded for enrollment {n}, their deliveries queued",
        fired.len()
    );
    Ok(())
}
