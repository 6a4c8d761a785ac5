//! report balance|usage|prices|marketplace (synchronous), and the advanced
//! report jobs' commands (in `jobs`).

use super::{day, enrollment_number, period};
use crate::cli::{OutputFormat, ReportArgs, ReportCmd, ReportKind};
use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use meterbook_app::monthly::{MonthlyKind, Stated, Within};
use meterbook_app::Span;
use meterbook_core::Enrollment;
use meterbook_io::report::{ReportFormat, ReportScope};
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
    let kind = match kind {
        ReportKind::Balance => MonthlyKind::Balance,
        ReportKind::Usage => MonthlyKind::Usage,
        ReportKind::Prices => MonthlyKind::Prices,
        ReportKind::Marketplace => MonthlyKind::Marketplace,
    };
    if kind == MonthlyKind::Balance && (!a.account.is_empty() || !a.department.is_empty()) {
        bail!("the balance report covers the whole enrollment; --account and --department do not apply");
    }
    if kind == MonthlyKind::Prices && matches!(sp, Span::Range(..)) {
        bail!("the price list is per billing period: use --period");
    }
    let within = Within {
        accounts: a.account.clone(),
        departments: a.department.clone(),
    };
    let report = access.monthly_report(kind, sp, &within)?;
    let mut out = Output::new(a.output.as_deref())?;
    let stated = match export_format {
        None => report.write(format, &mut out.writer())?,
        Some(f) => report.export(f, &settings.focus, &mut out.writer())?,
    };
    out.commit()?;
    let meta = report.meta();
    let exp = e.currency.exponent();
    let summary = match stated {
        Stated::Balance {
            periods,
            ending_balance,
            total_usage,
        } => format!(
            "balance: {periods} period(s); ending balance {} {}, total usage {}",
            ending_balance.format(exp),
            meta.currency,
            total_usage.format(exp)
        ),
        Stated::Prices { period, meters } => format!("prices: {meters} meters in {period}"),
        Stated::Usage { rows, cost, exact } => format!(
            "{}: {rows} rows, cost {} {} (exact {exact})",
            kind.name(),
            cost.format(exp),
            meta.currency,
        ),
    };
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
