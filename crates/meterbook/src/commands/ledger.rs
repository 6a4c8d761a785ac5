//! purchase, adjustment and period commands.

use super::{day, enrollment_number};
use crate::cli::{EntryCmd, PeriodCmd};
use anyhow::Result;
use meterbook_app::Operator;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::EntryKind;
use meterbook_core::Money;
use std::io::Write;

pub fn entry(op: &Operator, kind: EntryKind, c: EntryCmd) -> Result<()> {
    let EntryCmd::Add {
        enrollment,
        date,
        amount,
        description,
    } = c;
    let n = enrollment_number(&enrollment)?;
    let a = op.enrollment(&n)?;
    let e = a.enrollment();
    let exp = e.currency.exponent();
    let amount = Money::parse(&amount, exp)
        .map_err(|err| anyhow::anyhow!("--amount `{amount}`: {err} for {}", e.currency))?;
    let date = day(&date, "--date")?;
    op.add_entry(
        &n,
        kind,
        &CommitmentEntry {
            date,
            amount,
            description: description.clone(),
        },
    )?;
    let what = match kind {
        EntryKind::Purchase => "purchase",
        EntryKind::Adjustment => "adjustment",
    };
    println!(
        "{what} of {} {} on {date} recorded: {description}",
        amount.format(exp),
        e.currency
    );
    Ok(())
}

pub fn period(op: &Operator, c: PeriodCmd) -> Result<()> {
    match c {
        PeriodCmd::Close {
            enrollment,
            period: p,
            through,
        } => {
            let n = enrollment_number(&enrollment)?;
            match (p, through) {
                (Some(p), _) => {
                    let p = super::period(&p)?;
                    // Periods close in order: point at the command that does that.
                    if let Some(open) = op.periods(&n)?.iter().find(|i| !i.closed && i.period < p) {
                        anyhow::bail!(
                            "period {} is still open; periods close in order \
                             (`period close --enrollment {n} --through {p}` closes every open period up to {p})",
                            open.period
                        );
                    }
                    op.close_period(&n, p)?;
                    println!("period {p} closed; its rates are locked");
                }
                (None, Some(t)) => {
                    let t = super::period_flag(&t, "--through")?;
                    let closed = op.close_periods_through(&n, t)?;
                    for p in &closed {
                        println!("period {p} closed; its rates are locked");
                    }
                    if closed.is_empty() {
                        println!("every period through {t} was already closed");
                    }
                }
                (None, None) => anyhow::bail!("give --period YYYYMM or --through YYYYMM"),
            }
        }
        PeriodCmd::List { enrollment } => {
            let n = enrollment_number(&enrollment)?;
            let periods = op.periods(&n)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "period\tstatus\trates\tprice sheet")?;
            for i in periods {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    i.period,
                    if i.closed { "closed" } else { "open" },
                    if i.closed { "locked" } else { "moving" },
                    if i.has_price_sheet { "yes" } else { "no" }
                )?;
            }
        }
    }
    Ok(())
}
