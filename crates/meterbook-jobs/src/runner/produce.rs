//! Writing a job's file with its manifest, and what its spec selects.

use meterbook_core::access::Scope;
use meterbook_core::jobs::{Job, JobSpec};
use meterbook_core::store::{Store, StoreError, UsageSelection};
use meterbook_core::{Day, EnrollmentNumber};
use meterbook_io::report::export::{export, ExportFormat};
use meterbook_io::report::usage::{ReportError, UsageFilter, UsageReport};
use meterbook_io::report::{ReportMeta, ReportScope};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::run::*;

impl Runner {
    /// The job's file and manifest; see [`Runner::produce`].
    pub(super) fn produce_file(
        &self,
        job: &Job,
        rows: &AtomicU64,
        bytes: &Arc<AtomicU64>,
        stop: &StopFlag,
        deadline: i64,
        expected_rows_seen: &AtomicU64,
    ) -> Result<String, Failure> {
        let result = (|| -> Result<String, Failure> {
            let store = self.store.as_ref();
            let n = &job.enrollment;
            let spec = &job.spec;
            let format = spec.format;
            let expected = estimated_rows(store, n, spec);
            if let Some(x) = expected {
                expected_rows_seen.store(x, Ordering::Relaxed);
            }
            let (report, meta, e) =
                prepare_report(store, n, spec, self.clock.now_rfc3339()).map_err(Failure::store)?;
            let name = file_name(job, format);
            let pending = self
                .files
                .create(&name)
                .map_err(|e| Failure::Error(format!("cannot create the report file: {e}")))?;
            let mut out = Hashing {
                inner: pending,
                sha: Sha256::new(),
                bytes: bytes.clone(),
            };
            // The export only reads the stop flag; a heartbeat thread renews the
            // lease and reports progress every second whatever the export is
            // doing, and raises the flag on cancel, time limit or a lost lease.
            let mut progress = |done: u64| -> bool {
                rows.store(done, Ordering::Relaxed);
                if self.shutdown.load(Ordering::Relaxed) {
                    stop.raise(Stop::Shutdown);
                }
                if self.now_ms() >= deadline {
                    stop.raise(Stop::TimedOut);
                }
                stop.get().is_none()
            };
            if !progress(0) {
                return Err(Failure::Stopped(stop.get().unwrap_or(Stop::TimedOut)));
            }
            let exported = export(
                store,
                n,
                &report,
                format,
                &self.settings.focus,
                &mut out,
                &mut progress,
            );
            if let Some(s) = stop.get() {
                return Err(Failure::Stopped(s));
            }
            let totals = exported.map_err(|e| match e {
                ReportError::Store(e) => Failure::store(e),
                ReportError::Io(e) => Failure::Error(format!("writing the report failed: {e}")),
            })?;
            out.flush()
                .map_err(|e| Failure::Error(format!("writing the report failed: {e}")))?;
            let Hashing { inner, sha, bytes } = out;
            let sha256 = hex(&sha.finalize());
            // Last look before the file appears: a job cancelled (or taken
            // over) meanwhile leaves no file behind.
            self.beat(job, rows, &bytes, expected, i64::MAX, stop);
            if let Some(s) = stop.get() {
                return Err(Failure::Stopped(s));
            }
            inner
                .commit()
                .map_err(|e| Failure::Error(format!("storing the report failed: {e}")))?;
            let manifest = serde_json::json!({
                "jobId": job.id,
                "enrollmentNumber": n.as_str(),
                "file": name,
                "downloadName": download_name(job, format),
                "format": format.name(),
                "contentType": format.content_type(),
                "rows": totals.rows,
                "bytes": bytes.load(Ordering::Relaxed),
                "sha256": sha256,
                "filters": {
                    "kind": spec.kind(),
                    "billingPeriod": spec.billing_period.map(|p| p.to_string()),
                    "startDate": spec.from.to_string(),
                    "endDate": spec.to.to_string(),
                    "accounts": spec.accounts,
                    "departments": spec.departments,
                    "scope": meterbook_core::jobs::scope_text(spec.scope),
                    "costsShown": report_costs_shown(spec.scope, &e),
                },
                "watermark": meta.watermark,
                "generatedAt": meta.generated_at,
                "currencyCode": meta.currency,
                "totalCost": if report_costs_shown(spec.scope, &e) {
                    serde_json::Value::String(totals.cost.to_string())
                } else {
                    serde_json::Value::Null
                },
                "attempt": job.attempts,
            });
            Ok(manifest.to_string())
        })();
        result
    }
}

/// The report a spec asks for, ready for [`export`], with its metadata and
/// the enrollment as read: the one path from a spec to a usage export,
/// shared by report jobs and scheduled exports (`crate::exports`), so a
/// scheduled export's file is byte for byte what a report job of the same
/// spec writes (but for the generation time).
pub fn prepare_report(
    store: &dyn Store,
    n: &EnrollmentNumber,
    spec: &JobSpec,
    generated_at: String,
) -> Result<(UsageReport, ReportMeta, meterbook_core::Enrollment), StoreError> {
    let e = store.enrollment(n)?;
    let filter = UsageFilter {
        accounts: spec.accounts.clone(),
        departments: spec.departments.clone(),
        ..UsageFilter::within(
            spec.scope,
            spec.scope.sees_costs(e.visibility),
            selection(spec),
        )
    };
    let meta = ReportMeta {
        enrollment: n.to_string(),
        scope: match spec.billing_period {
            Some(p) => ReportScope::Period(p.to_string()),
            None => ReportScope::Range {
                from: spec.from.to_string(),
                to: spec.to.to_string(),
            },
        },
        generated_at,
        watermark: e.watermark.map(|d| d.to_string()),
        currency: e.currency.code().to_string(),
    };
    let report = UsageReport::prepare(store, n, filter, meta.clone())?;
    Ok((report, meta, e))
}

/// Counts and hashes what goes into the pending file.
pub(crate) struct Hashing {
    pub(crate) inner: Box<dyn crate::files::PendingFile>,
    pub(crate) sha: Sha256,
    pub(crate) bytes: Arc<AtomicU64>,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The stored file's name: the job id and the format's extension.
pub fn file_name(job: &Job, format: ExportFormat) -> String {
    format!("{}.{}", job.id, format.extension())
}

/// What a job's spec selects: the rows booked in its billing period, or
/// the rows dated in its range.
pub fn selection(spec: &JobSpec) -> UsageSelection {
    match spec.billing_period {
        Some(p) => UsageSelection {
            booked: Some(p),
            ..Default::default()
        },
        None => UsageSelection {
            from: Some(spec.from),
            to: Some(spec.to),
            ..Default::default()
        },
    }
}

/// The name a download is saved as: enrollment, billing period (`YYYYMM`)
/// or range (`FROM_TO`), and format.
pub fn download_name(job: &Job, format: ExportFormat) -> String {
    let kind = match format {
        ExportFormat::FocusCsv | ExportFormat::FocusParquet => "focus",
        _ => "usage",
    };
    let span = match job.spec.billing_period {
        Some(p) => p.to_string(),
        None => format!("{}_{}", job.spec.from, job.spec.to),
    };
    format!(
        "meterbook-{}-{}-{}_{}.{}",
        job.enrollment.as_str(),
        kind,
        span,
        &job.id[..8.min(job.id.len())],
        format.extension()
    )
}

/// The rows a job's report will hold, for its progress: estimated from the
/// rollups for a report of the whole enrollment; `None` for one narrowed by
/// accounts, departments or the requester's scope, which the rollups cannot
/// count (an upper bound there read as "753,045 expected" and ended at 197,464).
pub fn estimated_rows(store: &dyn Store, n: &EnrollmentNumber, spec: &JobSpec) -> Option<u64> {
    let whole =
        spec.scope == Scope::Enrollment && spec.accounts.is_empty() && spec.departments.is_empty();
    if !whole {
        return None;
    }
    match spec.billing_period {
        // The period's rollups count its booked rows exactly, corrections included.
        Some(p) => store
            .rollups(n, p)
            .ok()
            .map(|r| r.iter().map(|r| r.rows).sum::<i64>().max(0) as u64),
        None => expected_rows(store, n, spec.from, spec.to).ok(),
    }
}

/// An estimate of the rows a range holds, from the rollups (rows of months
/// partly inside the range counted pro rata by days).
fn expected_rows(
    store: &dyn Store,
    n: &EnrollmentNumber,
    from: Day,
    to: Day,
) -> Result<u64, StoreError> {
    let mut total: i64 = 0;
    for p in from.period().through(to.period()) {
        let rows: i64 = store
            .rollups(n, p)?
            .iter()
            .filter(|r| !r.correction)
            .map(|r| r.rows)
            .sum();
        let (a, b) = (p.first_day().max(from), p.last_day().min(to));
        let days = (b.raw() - a.raw() + 1) as i64;
        let month = (p.last_day().raw() - p.first_day().raw() + 1) as i64;
        total += rows * days / month;
    }
    Ok(total.max(0) as u64)
}
