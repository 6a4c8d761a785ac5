//! report request|status|fetch|cancel|jobs: advanced report jobs from the
//! command line. The CLI acts as the provider's operator: its jobs have the
//! enterprise scope.

use super::{day, enrollment_number, period_flag};
use crate::cli::RequestArgs;
use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use meterbook_core::access::Scope;
use meterbook_core::jobs::{Job, JobSpec, JobStore};
use meterbook_core::store::MetadataStore;
use meterbook_jobs::{DirReportFiles, Manifest, Runner};
use meterbook_sqlite::SqliteStore;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

fn runner(s: SqliteStore, settings: &Settings) -> Result<Runner> {
    let files = DirReportFiles::new(&settings.report_dir).with_context(|| {
        format!(
            "cannot use the report directory {}",
            settings.report_dir.display()
        )
    })?;
    Ok(Runner::new(
        Arc::new(s),
        Arc::new(files),
        settings.jobs.clone(),
    ))
}

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

pub fn request(s: SqliteStore, settings: &Settings, a: &RequestArgs) -> Result<()> {
    let n = enrollment_number(&a.enrollment)?;
    // A billing period: the rows booked in it; its days inside the term are
    // the job's span, for display (the runner checks the period lies in the term).
    let (billing_period, from, to) = match (&a.billing_period, &a.from, &a.to) {
        (Some(p), None, None) => {
            let p = period_flag(p, "--billing-period")?;
            let e = s.enrollment(&n)?;
            (Some(p), p.first_day().max(e.start), p.last_day().min(e.end))
        }
        (None, Some(from), Some(to)) => (None, day(from, "--from")?, day(to, "--to")?),
        _ => bail!("give --from YYYY-MM-DD --to YYYY-MM-DD, or --billing-period YYYYMM"),
    };
    let spec = JobSpec {
        scope: Scope::Enrollment,
        billing_period,
        from,
        to,
        accounts: a.account.clone(),
        departments: a.department.clone(),
        format: a.format.clone(),
    };
    let r = runner(s, settings)?;
    let (job, created) = r.submit(&n, spec, "cli")?;
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
    let done = r.run_until_done(&job.id)?;
    eprintln!("{}", job_line(&done));
    if !done.status.has_file() {
        bail!("report job {} ended {}", done.id, done.status.name());
    }
    Ok(())
}

fn load(s: &SqliteStore, id: &str) -> Result<Job> {
    s.job(id)?.with_context(|| format!("no report job {id}"))
}

pub fn status(s: &SqliteStore, id: &str) -> Result<()> {
    let j = load(s, id)?;
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
        "format": j.spec.format,
        "accounts": j.spec.accounts,
        "departments": j.spec.departments,
        "progress": {"rowsDone": j.rows_done, "rowsExpected": j.rows_expected, "bytes": j.bytes},
        "attempts": j.attempts,
        "error": j.error,
        "manifest": manifest,
    });
    out(&serde_json::to_string_pretty(&v)?)
}

pub fn fetch(s: &SqliteStore, settings: &Settings, id: &str, output: &Path) -> Result<()> {
    let j = load(s, id)?;
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
    let files = DirReportFiles::new(&settings.report_dir)?;
    let mut f = meterbook_jobs::ReportFiles::open(&files, &m.file)?
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

pub fn cancel(s: &SqliteStore, id: &str) -> Result<()> {
    load(s, id)?;
    let st = s
        .cancel_job(id, meterbook_jobs::now_ms(), "cancelled from the CLI")?
        .with_context(|| format!("no report job {id}"))?;
    eprintln!("report job {id}: {}", st.name());
    Ok(())
}

pub fn list(s: &SqliteStore, enrollment: &str) -> Result<()> {
    let n = enrollment_number(enrollment)?;
    let lines: Vec<String> = s.jobs(&n)?.iter().map(job_line).collect();
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
