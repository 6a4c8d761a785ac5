//! Running scheduled exports (see [`meterbook_core::exports`]): which run
//! keys are due, and running one into the operator's export root.
//!
//! A run writes `<root>/<enrollment>/<folder>/<run key>/`: the data file,
//! then `manifest.json`, each written whole (a temporary file, fsynced,
//! renamed; on S3 one PUT or a completed multipart upload). The manifest is
//! written last and removed first when a key runs again, so a folder with a
//! manifest holds a complete run, and its files are the ones the manifest
//! lists, with their sizes and SHA-256. The data file's name depends only on
//! the schedule and the key, so running a key again replaces its file
//! rather than adding one.
//!
//! The export itself is the report jobs' ([`crate::runner::prepare_report`]
//! and `meterbook_io::report::export::export`): a scheduled export's file
//! is what a report job of the same range and format writes.
//!
//! Errors a run records are shown to administrators, so they name what went
//! wrong (`permission denied`, `not a directory`) but never a path: the
//! full error goes to the log.

use crate::files::{DirReportFiles, ReportFiles};
use crate::runner::{hex, prepare_report, Hashing};
use meterbook_core::access::Scope;
use meterbook_core::clock::Clock;
use meterbook_core::exports::{
    retry_delay_ms, Claim, ExportRun, ExportSchedule, RunOutcome, RunRange, RunStatus, MAX_ATTEMPTS,
};
use meterbook_core::jobs::{scope_text, JobSpec};
use meterbook_core::store::{Store, StoreError, StoreResult};
use meterbook_core::{EnrollmentNumber, Period};
use meterbook_io::report::export::{export, ExportFormat};
use meterbook_io::report::focus::FocusSettings;
use meterbook_io::report::usage::ReportError;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The name of a run's manifest.
pub const MANIFEST: &str = "manifest.json";

/// Where exports go: the operator's root. A schedule names only a folder
/// under it (checked by [`meterbook_core::exports::check_folder`]).
pub trait ExportRoot: Send + Sync + std::fmt::Debug {
    /// The files of one run's folder, created if need be.
    fn run_folder(
        &self,
        enrollment: &str,
        folder: &str,
        key: &str,
    ) -> io::Result<Box<dyn ReportFiles>>;
}

/// A directory on this machine (or a mount every node shares).
#[derive(Debug)]
pub struct DirExportRoot(pub PathBuf);

impl ExportRoot for DirExportRoot {
    fn run_folder(
        &self,
        enrollment: &str,
        folder: &str,
        key: &str,
    ) -> io::Result<Box<dyn ReportFiles>> {
        for part in [enrollment, folder, key] {
            crate::files::check_name(part)?;
        }
        Ok(Box::new(DirReportFiles::new(
            self.0.join(enrollment).join(folder).join(key),
        )?))
    }
}

/// An S3-compatible bucket: `s3://BUCKET[/PREFIX]?endpoint=…&region=…`, as
/// `--report-store` takes it.
#[cfg(feature = "s3")]
#[derive(Debug)]
pub struct S3ExportRoot(url::Url);

#[cfg(feature = "s3")]
impl S3ExportRoot {
    pub fn from_url(url: &str) -> io::Result<S3ExportRoot> {
        // Checked now, so a bad URL stops the start rather than every run.
        crate::S3ReportFiles::from_url(url)?;
        let u = url::Url::parse(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(S3ExportRoot(u))
    }
}

#[cfg(feature = "s3")]
impl ExportRoot for S3ExportRoot {
    fn run_folder(
        &self,
        enrollment: &str,
        folder: &str,
        key: &str,
    ) -> io::Result<Box<dyn ReportFiles>> {
        for part in [enrollment, folder, key] {
            crate::files::check_name(part)?;
        }
        let mut u = self.0.clone();
        let base = u.path().trim_matches('/').to_string();
        let path = if base.is_empty() {
            format!("/{enrollment}/{folder}/{key}")
        } else {
            format!("/{base}/{enrollment}/{folder}/{key}")
        };
        u.set_path(&path);
        Ok(Box::new(crate::S3ReportFiles::from_url(u.as_str())?))
    }
}

/// The root named by `--export-root`: `s3://…` (with the `s3` feature) or a directory.
pub fn export_root(spec: &str) -> io::Result<Arc<dyn ExportRoot>> {
    if spec.starts_with("s3://") {
        #[cfg(feature = "s3")]
        return Ok(Arc::new(S3ExportRoot::from_url(spec)?));
        #[cfg(not(feature = "s3"))]
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "an s3:// export root needs a build with --features s3",
        ));
    }
    Ok(Arc::new(DirExportRoot(PathBuf::from(spec))))
}

/// Runs due exports. Cheap to clone.
#[derive(Clone)]
pub struct ExportRunner {
    pub store: Arc<dyn Store>,
    pub root: Arc<dyn ExportRoot>,
    pub clock: Arc<dyn Clock>,
    pub focus: FocusSettings,
    /// How long a claimed run is held before another node may take it over.
    pub lease: Duration,
}

/// One attempt as it ended.
#[derive(Clone, Debug)]
pub struct Ran {
    pub schedule: ExportSchedule,
    pub run: ExportRun,
}

impl ExportRunner {
    fn closed(&self, n: &EnrollmentNumber) -> StoreResult<Vec<Period>> {
        Ok(self
            .store
            .periods(n)?
            .into_iter()
            .filter(|p| p.closed)
            .map(|p| p.period)
            .collect())
    }

    /// Runs every due key of every schedule (of `n` only, if given), oldest
    /// key first: what was missed while nothing ran is caught up, within
    /// [`meterbook_core::exports::CATCH_UP_DAYS`] /
    /// [`meterbook_core::exports::CATCH_UP_MONTHS`]. Keys another node holds,
    /// keys done, and keys waiting for their retry time are left.
    pub fn run_due(&self, n: Option<&EnrollmentNumber>) -> StoreResult<Vec<Ran>> {
        let mut ran = Vec::new();
        let today = self.clock.today();
        for s in self.store.export_schedules(n)? {
            let closed = match self.closed(&s.enrollment) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(schedule = %s.id, error = %e, "cannot read periods for an export");
                    continue;
                }
            };
            // Read first, claim only what may be claimable: an idle tick
            // takes no write lock (the claim checks again, under its lock).
            let runs: std::collections::HashMap<String, ExportRun> =
                match self.store.export_runs(&s.id) {
                    Ok(r) => r.into_iter().map(|r| (r.run_key.clone(), r)).collect(),
                    Err(e) => {
                        tracing::warn!(schedule = %s.id, error = %e, "cannot read export runs");
                        continue;
                    }
                };
            let now = self.clock.now_millis();
            for key in s.due_keys(today, &closed) {
                if runs
                    .get(&key)
                    .is_some_and(|r| !r.claimable(Claim::Due, now))
                {
                    continue;
                }
                match self.run_key(&s, &key, Claim::Due) {
                    Ok(Some(r)) => ran.push(r),
                    Ok(None) => {}
                    // The schedule was deleted meanwhile.
                    Err(StoreError::NotFound(_)) => break,
                    Err(e) => {
                        tracing::warn!(schedule = %s.id, key = %key, error = %e, "cannot claim an export run");
                    }
                }
            }
        }
        Ok(ran)
    }

    /// Runs a schedule's current key now, again if it already ran: the
    /// custom range, today's daily key, the latest closed period. `Ok(None)`:
    /// another node is running it. Invalid: a monthly schedule with no
    /// closed period yet.
    pub fn run_now(&self, s: &ExportSchedule) -> StoreResult<Option<Ran>> {
        let closed = self.closed(&s.enrollment)?;
        let key = s.key_now(self.clock.today(), &closed).ok_or_else(|| {
            StoreError::Invalid("no billing period is closed yet: nothing to export".into())
        })?;
        self.run_key(s, &key, Claim::Again)
    }

    /// Claims run `key` and, if it was claimable, runs it and records how it ended.
    pub fn run_key(&self, s: &ExportSchedule, key: &str, claim: Claim) -> StoreResult<Option<Ran>> {
        let now = self.clock.now_millis();
        let lease_until = now.saturating_add(self.lease.as_millis() as i64);
        let run_id = crate::new_job_id();
        let Some(run) =
            self.store
                .claim_export_run(&s.id, key, &run_id, claim, now, lease_until)?
        else {
            return Ok(None);
        };
        let outcome = match self.write_run(s, &run) {
            Ok(manifest) => RunOutcome::Succeeded { manifest },
            Err(error) => {
                tracing::warn!(schedule = %s.id, key = %key, attempt = run.attempts, error = %error.log, "export run failed");
                let retry_at = (run.attempts < MAX_ATTEMPTS).then(|| {
                    self.clock
                        .now_millis()
                        .saturating_add(retry_delay_ms(run.attempts))
                });
                RunOutcome::Failed {
                    error: error.shown,
                    retry_at,
                }
            }
        };
        let at = self.clock.now_millis();
        if !self
            .store
            .finish_export_run(&s.id, key, &run_id, at, &outcome)?
        {
            tracing::warn!(schedule = %s.id, key = %key, "an export run was taken over before it finished");
        }
        let run = self
            .store
            .export_runs(&s.id)?
            .into_iter()
            .find(|r| r.run_key == key)
            .unwrap_or(ExportRun {
                status: match outcome {
                    RunOutcome::Succeeded { .. } => RunStatus::Succeeded,
                    RunOutcome::Failed { .. } => RunStatus::Failed,
                },
                ..run
            });
        Ok(Some(Ran {
            schedule: s.clone(),
            run,
        }))
    }

    /// Writes the run's data file and manifest; the manifest's JSON.
    fn write_run(&self, s: &ExportSchedule, run: &ExportRun) -> Result<String, RunError> {
        let store = self.store.as_ref();
        let range = s.range_of(&run.run_key).ok_or_else(|| {
            RunError::both(format!("{} is not a run key of this export", run.run_key))
        })?;
        let spec = JobSpec {
            scope: Scope::Enrollment,
            billing_period: match range {
                RunRange::Booked(p) => Some(p),
                RunRange::Dates { .. } => None,
            },
            from: match range {
                RunRange::Booked(p) => p.first_day(),
                RunRange::Dates { from, .. } => from,
            },
            to: match range {
                RunRange::Booked(p) => p.last_day(),
                RunRange::Dates { to, .. } => to,
            },
            accounts: vec![],
            departments: vec![],
            format: s.format,
        };
        let files = self
            .root
            .run_folder(s.enrollment.as_str(), &s.folder, &run.run_key)
            .map_err(|e| RunError::io("cannot create the export folder", e))?;
        // A re-run: the old manifest goes first, so the folder never shows a
        // manifest beside files it does not describe.
        files
            .remove(MANIFEST)
            .map_err(|e| RunError::io("cannot remove the previous manifest", e))?;
        let generated_at = self.clock.now_rfc3339();
        let (report, meta, e) =
            prepare_report(store, &s.enrollment, &spec, generated_at).map_err(RunError::store)?;
        let name = data_file_name(s, &run.run_key, s.format);
        let pending = files
            .create(&name)
            .map_err(|e| RunError::io("cannot create the export file", e))?;
        let bytes = Arc::new(AtomicU64::new(0));
        let mut out = Hashing {
            inner: pending,
            sha: Sha256::new(),
            bytes: bytes.clone(),
        };
        // A long export renews its lease as it goes (every third of it), so
        // no other node takes the key over while this one still writes; a
        // renewal refused means it was taken over: stop, commit nothing.
        let lost = std::sync::atomic::AtomicBool::new(false);
        let mut renewed = std::time::Instant::now();
        let every = self.lease / 3;
        let mut progress = |_done: u64| {
            if renewed.elapsed() >= every {
                renewed = std::time::Instant::now();
                let until = self
                    .clock
                    .now_millis()
                    .saturating_add(self.lease.as_millis() as i64);
                match self
                    .store
                    .renew_export_run(&s.id, &run.run_key, &run.run_id, until)
                {
                    Ok(true) => {}
                    Ok(false) => lost.store(true, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!(schedule = %s.id, error = %e, "cannot renew an export run's lease")
                    }
                }
            }
            !lost.load(Ordering::Relaxed)
        };
        let totals = export(
            store,
            &s.enrollment,
            &report,
            s.format,
            &self.focus,
            &mut out,
            &mut progress,
        )
        .map_err(|e| match e {
            ReportError::Store(e) => RunError::store(e),
            ReportError::Io(e) => RunError::io("writing the export file failed", e),
        })?;
        if lost.load(Ordering::Relaxed) {
            return Err(RunError::both(
                "the run was taken over by another node".into(),
            ));
        }
        out.flush()
            .map_err(|e| RunError::io("writing the export file failed", e))?;
        let Hashing { inner, sha, .. } = out;
        let sha256 = hex(&sha.finalize());
        inner
            .commit()
            .map_err(|e| RunError::io("storing the export file failed", e))?;
        let costs_shown = spec.scope.sees_costs(e.visibility);
        let manifest = serde_json::json!({
            "runId": run_identity(s, &run.run_key),
            "attemptId": run.run_id,
            "attempt": run.attempts,
            "scheduleId": s.id,
            "scheduleName": s.name,
            "enrollmentNumber": s.enrollment.as_str(),
            "schedule": s.cadence.name(),
            "runKey": run.run_key,
            "range": match range {
                RunRange::Booked(p) => serde_json::json!({
                    "kind": "billingPeriod",
                    "billingPeriod": p.to_string(),
                    "startDate": p.first_day().to_string(),
                    "endDate": p.last_day().to_string(),
                }),
                RunRange::Dates { from, to } => serde_json::json!({
                    "kind": "dateRange",
                    "startDate": from.to_string(),
                    "endDate": to.to_string(),
                }),
            },
            "format": s.format.name(),
            "scope": scope_text(spec.scope),
            "costsShown": costs_shown,
            "currencyCode": meta.currency,
            "files": [{
                "name": name,
                "contentType": s.format.content_type(),
                "rows": totals.rows,
                "bytes": bytes.load(Ordering::Relaxed),
                "sha256": sha256,
            }],
            "rows": totals.rows,
            "bytes": bytes.load(Ordering::Relaxed),
            "dataWatermark": meta.watermark,
            "generatedAt": meta.generated_at,
        });
        let text = serde_json::to_string_pretty(&manifest).expect("JSON serializes");
        let mut m = files
            .create(MANIFEST)
            .map_err(|e| RunError::io("cannot create the manifest", e))?;
        m.write_all(text.as_bytes())
            .and_then(|_| m.write_all(b"\n"))
            .map_err(|e| RunError::io("writing the manifest failed", e))?;
        m.commit()
            .map_err(|e| RunError::io("storing the manifest failed", e))?;
        Ok(text)
    }
}

/// The data file of a run: depends only on the schedule and the key, so a
/// re-run replaces it. `usage-` or `focus-`, enrollment, run key, extension.
pub fn data_file_name(s: &ExportSchedule, key: &str, format: ExportFormat) -> String {
    let kind = match format {
        ExportFormat::FocusCsv | ExportFormat::FocusParquet => "focus",
        _ => "usage",
    };
    format!(
        "{kind}-{}-{key}.{}",
        s.enrollment.as_str(),
        format.extension()
    )
}

/// A run's stable id: the same for every attempt of a key, so a re-run's
/// manifest names the same run.
pub fn run_identity(s: &ExportSchedule, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(s.id.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    hex(&h.finalize()[..16])
}

/// Why an attempt failed: what the run records (shown to administrators)
/// and what the log gets.
struct RunError {
    shown: String,
    log: String,
}

impl RunError {
    fn both(m: String) -> RunError {
        RunError {
            shown: m.clone(),
            log: m,
        }
    }

    /// The error's kind is shown (`permission denied`); its text, which may
    /// name a path, is logged.
    fn io(what: &str, e: io::Error) -> RunError {
        RunError {
            shown: format!("{what}: {}", e.kind()),
            log: format!("{what}: {e}"),
        }
    }

    fn store(e: StoreError) -> RunError {
        match e {
            StoreError::Backend(m) => RunError {
                shown: "reading the usage failed (see the server's log)".into(),
                log: m,
            },
            e => RunError::both(e.to_string()),
        }
    }
}
