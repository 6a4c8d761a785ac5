//! budgets list|add|remove and notifications evaluate: the operator acts as
//! the enrollment's administrator through the use-case layer.

use super::enrollment_number;
use crate::cli::{BudgetsCmd, NotificationsCmd};
use anyhow::{Context, Result};
use meterbook_app::budgets::BudgetInput;
use meterbook_app::Operator;
use meterbook_core::notify::{DeliveryStatus, DeliveryTarget};

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
    match c {
        NotificationsCmd::Evaluate { enrollment } => {
            let n = enrollment_number(&enrollment)?;
            let fired = op.evaluate_notifications(&n)?;
            for e in &fired {
                println!("{}", e.key);
            }
            eprintln!(
                "{} new event(s) recorded for enrollment {n}, their deliveries queued",
                fired.len()
            );
        }
        NotificationsCmd::Channels { enrollment } => {
            let a = op.enrollment(&enrollment_number(&enrollment)?)?;
            let channels = a.enterprise()?.channels()?;
            if channels.is_empty() {
                eprintln!("no channels");
            }
            for c in channels {
                let events: Vec<&str> = c.events.iter().map(|k| k.name()).collect();
                println!(
                    "{:>5}  {:<8} {}  [{}]",
                    c.id,
                    c.target.kind(),
                    c.target.address(),
                    events.join(", ")
                );
            }
        }
        NotificationsCmd::Deliveries { enrollment, limit } => {
            let a = op.enrollment(&enrollment_number(&enrollment)?)?;
            let log = a.enterprise()?.deliveries(limit.clamp(1, 500))?;
            if log.is_empty() {
                eprintln!("no deliveries");
            }
            for d in log {
                let target = match &d.target {
                    DeliveryTarget::Email(to) => format!("e-mail {to}"),
                    DeliveryTarget::Webhook { channel } => format!("webhook channel {channel}"),
                };
                let next = match d.status {
                    DeliveryStatus::Pending => format!(
                        ", next attempt {}",
                        chrono::DateTime::from_timestamp_millis(d.next_attempt_at)
                            .unwrap_or_default()
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                    _ => String::new(),
                };
                println!(
                    "{:>6}  {:<9} attempts {}  {target}  {}{next}{}",
                    d.id,
                    d.status.name(),
                    d.attempts,
                    d.event_key,
                    d.last_error
                        .map_or(String::new(), |e| format!("  last error: {e}"))
                );
            }
        }
    }
    Ok(())
}
