//! exports list|add|remove|runs|run-due: scheduled exports from the command
//! line, as the operator. `run-due` runs what `serve` runs every
//! `--export-interval-seconds`, once, for cron.

use super::{day, enrollment_number};
use crate::cli::ExportsCmd;
use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use meterbook_app::exports::NewExport;
use meterbook_app::{App, Span};
use meterbook_core::exports::{ExportRun, ExportSchedule, RunStatus};
use meterbook_core::jobs::ExportFormat;
use meterbook_jobs::exports::ExportRoot;
use std::sync::Arc;

/// The export root `--export-root` names.
pub fn export_root(settings: &Settings) -> Result<Arc<dyn ExportRoot>> {
    meterbook_jobs::exports::export_root(&settings.export_root)
        .with_context(|| format!("cannot use the export root {}", settings.export_root))
}

/// The use-case layer with the export root set.
pub fn app(settings: &Settings) -> Result<App> {
    let app = super::app_with_reports(settings)?;
    app.set_export_root(export_root(settings)?);
    Ok(app)
}

fn cadence_text(s: &ExportSchedule) -> String {
    match s.cadence {
        meterbook_core::exports::Cadence::Once { from, to } => format!("once {from}..{to}"),
        c => c.name().to_string(),
    }
}

fn run_line(r: &ExportRun) -> String {
    format!(
        "{:<10} {:<9} attempt {}{}{}",
        r.run_key,
        r.status.name(),
        r.attempts,
        r.retry_at.map_or(String::new(), |t| format!(
            "  retry at {}",
            chrono::DateTime::from_timestamp_millis(t)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        )),
        r.error
            .as_deref()
            .map_or(String::new(), |e| format!("  ({e})"))
    )
}

pub fn run(settings: &Settings, c: ExportsCmd) -> Result<()> {
    let app = app(settings)?;
    let op = app.local_operator();
    match c {
        ExportsCmd::List { enrollment } => {
            let a = op.enrollment(&enrollment_number(&enrollment)?)?;
            for s in a.exports()? {
                let last = a.export_runs(&s.id)?.into_iter().next();
                println!(
                    "{}  {:<20} {:<24} {:<13} folder {}  last: {}",
                    s.id,
                    s.name,
                    cadence_text(&s),
                    s.format,
                    s.folder,
                    last.map_or("none".to_string(), |r| run_line(&r))
                );
            }
        }
        ExportsCmd::Add {
            enrollment,
            name,
            folder,
            schedule,
            format,
            from,
            to,
        } => {
            let a = op.enrollment(&enrollment_number(&enrollment)?)?;
            let span = match (from, to) {
                (Some(f), Some(t)) => Some(Span::Range(day(&f, "--from")?, day(&t, "--to")?)),
                (None, None) => None,
                _ => bail!("give both --from and --to, or neither"),
            };
            let s = a.create_export(NewExport {
                name,
                folder,
                schedule,
                span,
                format: ExportFormat::requested(&format).map_err(anyhow::Error::msg)?,
            })?;
            println!("{}", s.id);
        }
        ExportsCmd::Remove { enrollment, id } => {
            op.enrollment(&enrollment_number(&enrollment)?)?
                .delete_export(&id)?;
        }
        ExportsCmd::Runs { enrollment, id } => {
            for r in op
                .enrollment(&enrollment_number(&enrollment)?)?
                .export_runs(&id)?
            {
                println!("{}", run_line(&r));
            }
        }
        ExportsCmd::RunDue { enrollment } => {
            let n = enrollment.as_deref().map(enrollment_number).transpose()?;
            if let Some(n) = &n {
                // An unknown enrollment is an error, not "nothing due".
                op.enrollment(n)?;
            }
            let runner = app.export_runner().context("no export root")?;
            let ran = runner.run_due(n.as_ref())?;
            let mut failed = 0;
            for r in &ran {
                println!(
                    "{}  {}  {}",
                    r.schedule.id,
                    r.schedule.name,
                    run_line(&r.run)
                );
                if r.run.status != RunStatus::Succeeded {
                    failed += 1;
                }
            }
            if failed > 0 {
                bail!("{failed} of {} export runs failed", ran.len());
            }
        }
    }
    Ok(())
}
