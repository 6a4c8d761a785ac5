//! `meterbook forecast`: the enrollment's forecast as the operator sees it
//! (the enterprise scope), as text or as the Reporting API's JSON.

use crate::cli::{ForecastArgs, HorizonArg};
use anyhow::Result;
use meterbook_app::forecast::Horizon;
use meterbook_app::Operator;
use meterbook_core::access::Scope;
use meterbook_core::Day;

pub fn run(op: &Operator, a: &ForecastArgs) -> Result<()> {
    let n = super::enrollment_number(&a.enrollment)?;
    let access = op.enrollment(&n)?;
    let horizon = match a.horizon {
        HorizonArg::Period => Horizon::Period,
        HorizonArg::Term => Horizon::Term,
    };
    let f = access.forecast(horizon)?;
    let e = access.enrollment();
    if a.json {
        println!(
            "{}",
            meterbook_server::forecast_json(e, Scope::Enrollment, &f)
        );
        return Ok(());
    }
    let exp = e.currency.exponent();
    let ccy = e.currency.code();
    let m = |v: meterbook_core::Money| format!("{} {ccy}", v.format(exp));
    let day = |d: Option<Day>| d.map_or_else(|| "-".to_string(), |d| d.to_string());
    let what = match horizon {
        Horizon::Period => format!("billing period {}", f.period),
        Horizon::Term => "the term".to_string(),
    };
    println!(
        "forecast of {n} for {what} ({} to {})",
        f.first_day, f.last_day
    );
    println!(
        "  as of:           {} (usage complete through {}), {} day(s) left",
        day(f.as_of),
        day(e.watermark),
        f.days_left
    );
    println!("  charges so far:  {}", m(f.actual));
    println!(
        "  expected:        {} (between {} and {})",
        m(f.projected),
        m(f.projected_low),
        m(f.projected_high)
    );
    println!(
        "  daily burn:      {} ({} to {}) over {} day(s)",
        m(f.daily_burn),
        m(f.daily_low),
        m(f.daily_high),
        f.basis_days
    );
    if let Some(c) = &f.commitment {
        let when = if c.already_used {
            "already used".to_string()
        } else {
            match c.runs_out_on {
                Some(d) => format!(
                    "runs out around {d} (between {} and {})",
                    day(c.earliest),
                    c.latest
                        .map_or_else(|| "the term's end".to_string(), |d| d.to_string())
                ),
                None => "lasts to the term's end at this rate".to_string(),
            }
        };
        println!(
            "  commitment:      {} left of {}; {when}",
            m(c.balance),
            m(c.total)
        );
    }
    println!("  method: {}", f.method);
    Ok(())
}
