//! report balance|usage|prices|marketplace (synchronous), and the advanced
//! report jobs' commands (in `jobs`).

use super::{day, enrollment_number, period};
use crate::cli::{OutputFormat, ReportArgs, ReportCmd, ReportKind};
use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use meterbook_app::reads::Details;
use meterbook_app::{Access, Span};
use meterbook_core::fixed::Amount;
use meterbook_core::{Enrollment, Money};
use meterbook_io::report::{balance, prices, ReportFormat, ReportScope};
use std::io::Write;

fn span(a: &ReportArgs, e: &Enrollment) -> Result<Span> {
    let s = match (&a.period, &a.from, &a.to) {
        (Some(p), _, _) => Span::Period(period(p)?),
        (None, Some(f), Some(t)) => {
            let (f, t) = (day(f, "--from")?, day(t, "--to")?);
            if t < f {
                bail!("--to {t} is before --from {f}");
            }
            Span::Range(f, t)
        }
        _ => bail!("give --period YYYYMM or --from YYYY-MM-DD --to YYYY-MM-DD"),
    };
    let (first, last) = match s {
        Span::Period(p) => (p.first_day(), p.last_day()),
        Span::Range(f, t) => (f, t),
    };
    if last < e.start || first > e.end {
        bail!(
            "the report's span {first} to {last} is outside the enrollment's term {} to {}",
            e.start,
            e.end
        );
    }
    Ok(s)
}

/// Stdout, or a file written atomically: a temp file beside it, fsync, rename.
enum Output {
    Stdout,
    File(tempfile::NamedTempFile, std::path::PathBuf),
}

impl Output {
    fn new(target: Option<&std::path::Path>) -> Result<Output> {
        Ok(match target {
            None => Output::Stdout,
            Some(t) => Output::File(super::temp_beside(t)?, t.to_path_buf()),
        })
    }

    fn writer(&mut self) -> Box<dyn Write + Send + '_> {
        match self {
            Output::Stdout => Box::new(std::io::stdout()),
            Output::File(t, _) => Box::new(t.as_file_mut()),
        }
    }

    fn commit(self) -> Result<()> {
        if let Output::File(t, target) = self {
            t.as_file().sync_all()?;
            t.persist(&target)
                .with_context(|| format!("cannot write {}", target.display()))?;
        }
        Ok(())
    }
}

pub fn run(settings: &Settings, c: ReportCmd) -> Result<()> {
    match c {
        ReportCmd::Balance(a) => run_report(settings, ReportKind::Balance, &a),
        ReportCmd::Usage(a) => run_report(settings, ReportKind::Usage, &a.report),
        ReportCmd::Prices(a) => run_report(settings, ReportKind::Prices, &a),
        ReportCmd::Marketplace(a) => run_report(settings, ReportKind::Marketplace, &a),
        ReportCmd::Request(a) => super::jobs::request(&super::app_with_reports(settings)?, &a),
        ReportCmd::Status { id } => super::jobs::status(&super::operator(settings)?, &id),
        ReportCmd::Fetch { id, output, .. } => {
            super::jobs::fetch(&super::app_with_reports(settings)?, &id, &output)
        }
        ReportCmd::Cancel { id } => super::jobs::cancel(&super::operator(settings)?, &id),
        ReportCmd::Jobs { enrollment } => {
            super::jobs::list(&super::operator(settings)?, &enrollment)
        }
    }
}

fn run_report(settings: &Settings, kind: ReportKind, a: &ReportArgs) -> Result<()> {
    let n = enrollment_number(&a.enrollment)?;
    let access = super::operator(settings)?.enrollment(&n)?;
    let e = access.enrollment();
    let sp = span(a, e)?;
    let export_format = a.format.export();
    let format = match a.format {
        OutputFormat::Json => ReportFormat::Json,
        _ => ReportFormat::Csv,
    };
    if export_format.is_some() && kind != ReportKind::Usage {
        bail!("--format {:?} is for usage reports only", a.format);
    }
    let meta = access.report_meta(sp);
    let exp = e.currency.exponent();
    let mut out = Output::new(a.output.as_deref())?;
    let summary = match kind {
        ReportKind::Balance => {
            if !a.account.is_empty() || !a.department.is_empty() {
                bail!("the balance report covers the whole enrollment; --account and --department do not apply");
            }
            let (first, last) = match sp {
                Span::Period(p) => (p, p),
                Span::Range(f, t) => (f.period(), t.period()),
            };
            let last = last.min(e.last_period());
            let all = access.enterprise()?.statements(last)?;
            let sts: Vec<_> = all
                .into_iter()
                .map(|(st, _)| st)
                .filter(|st| st.period >= first)
                .collect();
            balance::write(&meta, &sts, exp, format, &mut out.writer())?;
            let last = sts.last().context("no statement")?;
            format!(
                "balance: {} period(s); ending balance {} {}, total usage {}",
                sts.len(),
                last.ending_balance.format(exp),
                meta.currency,
                last.total_usage.format(exp)
            )
        }
        ReportKind::Prices => {
            let p = match sp {
                Span::Period(p) => p,
                Span::Range(..) => bail!("the price list is per billing period: use --period"),
            };
            let sheet: Vec<_> = access
                .enterprise()?
                .price_sheet(p)?
                .into_iter()
                .map(|(_, m)| m)
                .collect();
            prices::write(&meta, &sheet, format, &mut out.writer())?;
            format!("prices: {} meters in {p}", sheet.len())
        }
        ReportKind::Usage | ReportKind::Marketplace => {
            let details = access.usage_details(
                sp,
                &Details {
                    marketplace: kind == ReportKind::Marketplace,
                    accounts: a.account.clone(),
                    departments: a.department.clone(),
                    ..Default::default()
                },
            )?;
            let t = match export_format {
                None => details.write(format, &mut out.writer())?,
                Some(f) => details.export(f, &settings.focus, &mut out.writer())?,
            };
            format!(
                "{}: {} rows, cost {} {} (exact {})",
                if kind == ReportKind::Usage {
                    "usage"
                } else {
                    "marketplace"
                },
                t.rows,
                shown_cost(&access, sp, kind, a, t.cost, exp)?.format(exp),
                meta.currency,
                exact(t.cost)
            )
        }
    };
    out.commit()?;
    let scope = match &meta.scope {
        ReportScope::Period(p) => format!("period {p}"),
        ReportScope::Range { from, to } => format!("{from} to {to}"),
    };
    eprintln!(
        "{summary}; {scope}; usage complete through {}; generated {}",
        meta.watermark.as_deref().unwrap_or("(not set)"),
        meta.generated_at
    );
    Ok(())
}

/// The cost a usage or marketplace report states: for a whole billing period,
/// the statement's own figure (each charge kind rounded, then added), so the
/// summary line agrees with `report balance` to the cent; otherwise the
/// report's exact total rounded once.
fn shown_cost(
    access: &Access,
    span: Span,
    kind: ReportKind,
    a: &ReportArgs,
    exact_total: Amount,
    exp: u32,
) -> Result<Money> {
    let range = || anyhow::anyhow!("the report's total cost exceeds the supported range");
    match span {
        Span::Period(p) if a.account.is_empty() && a.department.is_empty() => {
            let c = access.enterprise()?.charges(p)?;
            let figure = if kind == ReportKind::Marketplace {
                c.marketplace.round_to_minor(exp)
            } else {
                c.billed(exp)
            };
            figure.map_err(|_| range())
        }
        _ => exact_total.round_to_minor(exp).map_err(|_| range()),
    }
}

fn exact(a: Amount) -> String {
    a.to_string()
}
