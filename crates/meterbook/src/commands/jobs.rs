//! report request|status|fetch|cancel|jobs: advanced report jobs from the
//! command line. The CLI acts as the provider's operator: its jobs have the
//! enterprise scope.

use super::{day, enrollment_number, period_flag};
use crate::cli::RequestArgs;
use anyhow::{bail, Context, Result};
use meterbook_app::jobs::ReportRequest;
use meterbook_app::{App, Operator, Span};
use meterbook_core::jobs::{ExportFormat, Job};
use meterbook_jobs::Manifest;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

fn job_line(j: &Job) -> String {
    let progress = match j.rows_expected {
        Some(e) => format!("{}/{} rows", j.rows_done, e),
        None => format!("{} rows", j.rows_done),
    };
    let span = match j.spec.billing_period {
        Some(p) => format!("billing period {p}"),
        None => format!("{} to {}", j.spec.from, j.spec.to),
    };
    format!(
        "{}  {:<15} {} {}  {}  {} bytes{}",
        j.id,
        j.status.name(),
        j.spec.format,
        span,
        progress,
        j.bytes,
        j.error
            .as_deref()
            .map_or(String::new(), |e| format!("  ({e})"))
    )
}

pub fn request(app: &App, a: &RequestArgs) -> Result<()> {
    let n = enrollment_number(&a.enrollment)?;
    let span = match (&a.billing_period, &a.from, &a.to) {
        (Some(p), None, None) => Span::Period(period_flag(p, "--billing-period")?),
        (None, Some(from), Some(to)) => Span::Range(day(from, "--from")?, day(to, "--to")?),
        _ => bail!("give --from YYYY-MM-DD --to YYYY-MM-DD, or --billing-period YYYYMM"),
    };
    let request = ReportRequest {
        span,
        accounts: a.account.clone(),
        departments: a.department.clone(),
        format: ExportFormat::requested(&a.format).map_err(anyhow::Error::msg)?,
    };
    let access = app.local_operator().enrollment(&n)?;
    let (job, created) = access.submit_report(request)?;
    out(&job.id)?;
    if !created {
        eprintln!(
            "an identical report is already queued or running: sharing job {}",
            job.id
        );
    }
    if a.detach {
        eprintln!(
            "queued; a running `meterbook serve` prepares it (see `meterbook report status {}`)",
            job.id
        );
        return Ok(());
    }
    let done = app.runner().run_until_done(&job.id)?;
    eprintln!("{}", job_line(&done));
    if !done.status.has_file() {
        bail!("report job {} ended {}", done.id, done.status.name());
    }
    Ok(())
}

pub fn status(op: &Operator, id: &str) -> Result<()> {
    let j = op.report_job(id)?;
    let manifest: serde_json::Value = j
        .manifest
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(serde_json::Value::Null);
    let v = serde_json::json!({
        "id": j.id,
        "enrollmentNumber": j.enrollment.as_str(),
        "status": j.status.code(),
        "statusName": j.status.name(),
        "kind": j.spec.kind(),
        "billingPeriod": j.spec.billing_period.map(|p| p.to_string()),
        "startDate": j.spec.from.to_string(),
        "endDate": j.spec.to.to_string(),
        "format": j.spec.format.name(),
        "accounts": j.spec.accounts,
        "departments": j.spec.departments,
        "progress": {"rowsDone": j.rows_done, "rowsExpected": j.rows_expected, "bytes": j.bytes},
        "attempts": j.attempts,
        "error": j.error,
        "manifest": manifest,
    });
    out(&serde_json::to_string_pretty(&v)?)
}

pub fn fetch(app: &App, id: &str, output: &Path) -> Result<()> {
    let j = app.local_operator().report_job(id)?;
    if !j.status.has_file() {
        bail!(
            "report job {id} has no file: it is {}{}",
            j.status.name(),
            j.error
                .as_deref()
                .map_or(String::new(), |e| format!(" ({e})"))
        );
    }
    let m = j
        .manifest
        .as_deref()
        .and_then(Manifest::parse)
        .context("the job's manifest is unreadable")?;
    let mut f = app
        .runner()
        .files()
        .open(&m.file)?
        .with_context(|| format!("the file of report job {id} is gone"))?;
    let mut tmp = super::temp_beside(output)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.reader.read(&mut buf)?;
        if k == 0 {
            break;
        }
        sha.update(&buf[..k]);
        tmp.write_all(&buf[..k])?;
    }
    let got: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if got != m.sha256 {
        bail!(
            "the stored file of report job {id} does not match its manifest's sha256; not written"
        );
    }
    tmp.as_file().sync_all()?;
    tmp.persist(output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!(
        "{}: {} rows, {} bytes, sha256 {}",
        output.display(),
        m.rows,
        m.bytes,
        m.sha256
    );
    Ok(())
}

pub fn cancel(op: &Operator, id: &str) -> Result<()> {
    let st = op.cancel_report(id, "cancelled from the CLI")?;
    eprintln!("report job {id}: {}", st.name());
    Ok(())
}

pub fn list(op: &Operator, enrollment: &str) -> Result<()> {
    let n = enrollment_number(enrollment)?;
    let lines: Vec<String> = op.report_jobs(&n)?.iter().map(job_line).collect();
    out(&lines.join("\n"))
}

/// Prints a line to stdout; a closed pipe (`| head`) is not an error.
fn out(s: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    match writeln!(o, "{s}").and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}
