//! Running jobs: validating requests, claiming work, writing the file with
//! its manifest, reporting progress, honouring cancel and time limits, and
//! cleaning up after retention.

use crate::files::ReportFiles;
use meterbook_core::access::Scope;
use meterbook_core::clock::Clock;
use meterbook_core::jobs::{Job, JobOutcome, JobProgress, JobSpec, JobStatus};
use meterbook_core::store::{Store, StoreError, UsageSelection};
use meterbook_core::{Day, EnrollmentNumber};
use meterbook_io::report::export::{export, ExportFormat};
use meterbook_io::report::focus::FocusSettings;
use meterbook_io::report::usage::{ReportError, UsageFilter, UsageReport};
use meterbook_io::report::{ReportMeta, ReportScope};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct JobSettings {
    /// Worker threads: how many reports run at once.
    pub workers: usize,
    /// A job running longer than this ends as TimedOut.
    pub time_limit: Duration,
    /// How long a worker's claim holds without a heartbeat (it beats every second).
    pub lease: Duration,
    /// Finished jobs and their files are removed this long after they end.
    pub retention: Duration,
    /// How often idle workers look for queued jobs (submits wake them at once).
    pub poll: Duration,
    pub focus: FocusSettings,
    /// Jobs one requester (an API key, a portal user, the CLI) may have
    /// queued or running at once in an enrollment.
    pub max_active_per_requester: usize,
    /// Bytes of finished report files one requester may keep in an
    /// enrollment; past it, new jobs wait for retention (or a delete).
    pub max_bytes_per_requester: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            workers: 2,
            time_limit: Duration::from_secs(2 * 3600),
            lease: Duration::from_secs(30),
            retention: Duration::from_secs(30 * 24 * 3600),
            poll: Duration::from_secs(1),
            focus: FocusSettings::default(),
            max_active_per_requester: 4,
            max_bytes_per_requester: 5 << 30,
        }
    }
}

/// Why a request cannot become a job.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Invalid(String),
    /// A filter names something outside the requester's scope.
    #[error("{0}")]
    Forbidden(String),
    /// The requester is at its quota of active jobs or stored bytes; trying
    /// again after `retry_after` seconds may succeed.
    #[error("{message}")]
    Quota { message: String, retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest span a request may cover, in months.
pub const MAX_MONTHS: u32 = 36;

/// The most accounts, and the most departments, one request may name.
pub const MAX_FILTER_IDS: usize = 200;

/// Why a running job stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Cancelled,
    TimedOut,
    /// This process is shutting down: the job is left for the next start.
    Shutdown,
    /// Another worker took the job over (this one stalled past its lease).
    LostLease,
}

pub struct Runner {
    store: Arc<dyn Store>,
    files: Arc<dyn ReportFiles>,
    settings: JobSettings,
    shutdown: AtomicBool,
    /// Quota check and insert happen under this lock, so parallel submits
    /// from one requester cannot all pass the check (within this process).
    submitting: Mutex<()>,
    /// Where "now" comes from: leases, time limits, retention, timestamps.
    clock: Arc<dyn Clock>,
}

/// What a finished file's manifest says, for downloads.
pub struct Manifest {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub rows: u64,
}

impl Manifest {
    pub fn parse(json: &str) -> Option<Manifest> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        Some(Manifest {
            file: v.get("file")?.as_str()?.to_string(),
            sha256: v.get("sha256")?.as_str()?.to_string(),
            bytes: v.get("bytes")?.as_u64()?,
            rows: v.get("rows")?.as_u64()?,
        })
    }
}

impl Runner {
    pub fn new(
        store: Arc<dyn Store>,
        files: Arc<dyn ReportFiles>,
        settings: JobSettings,
    ) -> Runner {
        Runner::with_clock(store, files, settings, meterbook_core::clock::system())
    }

    /// As [`Runner::new`], reading the time from `clock`.
    pub fn with_clock(
        store: Arc<dyn Store>,
        files: Arc<dyn ReportFiles>,
        settings: JobSettings,
        clock: Arc<dyn Clock>,
    ) -> Runner {
        Runner {
            store,
            files,
            settings,
            shutdown: AtomicBool::new(false),
            submitting: Mutex::new(()),
            clock,
        }
    }

    /// The clock the runner reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_millis()
    }

    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    pub fn files(&self) -> &dyn ReportFiles {
        self.files.as_ref()
    }

    /// Checks a request against the enrollment's term, the requester's
    /// scope and quota, then records it (or finds the identical job already
    /// queued or running). Every front end submits here, so the quota holds
    /// for the API, the portal and the CLI alike.
    pub fn submit(
        &self,
        n: &EnrollmentNumber,
        spec: JobSpec,
        requested_by: &str,
    ) -> Result<(Job, bool), RequestError> {
        validate(self.store.as_ref(), n, &spec)?;
        let _one_at_a_time = self.submitting.lock().unwrap_or_else(|p| p.into_inner());
        self.check_quota(n, &spec, requested_by)?;
        let job = Job {
            id: crate::new_job_id(),
            enrollment: n.clone(),
            spec,
            requested_by: requested_by.into(),
            requested_at: self.now_ms(),
            status: JobStatus::Queued,
            started_at: None,
            finished_at: None,
            rows_done: 0,
            rows_expected: None,
            bytes: 0,
            error: None,
            attempts: 0,
            lease_until: None,
            manifest: None,
        };
        Ok(self.store.submit_job(&job)?)
    }

    /// Refuses a new job when the requester has `max_active_per_requester`
    /// jobs queued or running, or keeps `max_bytes_per_requester` bytes of
    /// finished files. Asking for a job identical to one queued or running
    /// is always allowed: it joins that job and costs nothing.
    fn check_quota(
        &self,
        n: &EnrollmentNumber,
        spec: &JobSpec,
        requested_by: &str,
    ) -> Result<(), RequestError> {
        let jobs = self.store.jobs(n)?;
        let key = spec.dedupe_key();
        if jobs
            .iter()
            .any(|j| !j.status.is_final() && j.spec.dedupe_key() == key)
        {
            return Ok(());
        }
        let mine: Vec<&Job> = jobs
            .iter()
            .filter(|j| j.requested_by == requested_by)
            .collect();
        let active = mine.iter().filter(|j| !j.status.is_final()).count();
        let max = self.settings.max_active_per_requester;
        if active >= max {
            return Err(RequestError::Quota {
                message: format!(
                    "{active} report job(s) of this requester are queued or running, \
                     the most allowed at once is {max}; try again when one has finished \
                     (or cancel one)"
                ),
                retry_after: 60,
            });
        }
        let kept: Vec<&&Job> = mine.iter().filter(|j| j.status.has_file()).collect();
        let bytes: u64 = kept.iter().map(|j| j.bytes).sum();
        let max = self.settings.max_bytes_per_requester;
        if bytes >= max {
            // The oldest file goes first when its retention ends.
            let retention = self.settings.retention.as_millis() as i64;
            let frees_at = kept
                .iter()
                .filter_map(|j| j.finished_at)
                .min()
                .map_or(0, |f| f + retention);
            return Err(RequestError::Quota {
                message: format!(
                    "this requester's finished reports keep {bytes} bytes, the most allowed is \
                     {max}; delete reports that are no longer needed, or wait for their retention to end"
                ),
                retry_after: ((frees_at - self.now_ms()) / 1000).max(1) as u64,
            });
        }
        Ok(())
    }

    /// Claims one job (any, or `only`) and runs it to its end. Returns whether
    /// there was one.
    pub fn run_next(&self, only: Option<&str>) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let Some(job) =
            self.store
                .claim_job(now, now + self.settings.lease.as_millis() as i64, only)?
        else {
            return Ok(false);
        };
        self.run(job);
        Ok(true)
    }

    fn run(&self, job: Job) {
        let attempt = job.attempts;
        if attempt > 1 {
            tracing::info!(job = %job.id, attempt, "restarting a report job whose worker stopped");
        }
        let started = self.now_ms();
        let (result, progress) = self.produce(&job, started);
        let outcome = match result {
            Ok(manifest) => {
                let m = Manifest::parse(&manifest).expect("manifest we just wrote");
                JobOutcome {
                    status: if m.rows == 0 {
                        JobStatus::NoDataFound
                    } else {
                        JobStatus::ReadyToDownload
                    },
                    progress: JobProgress {
                        rows_done: m.rows,
                        rows_expected: Some(m.rows),
                        bytes: m.bytes,
                    },
                    error: None,
                    manifest: Some(manifest),
                }
            }
            Err(Failure::Stopped(Stop::Shutdown | Stop::LostLease | Stop::Cancelled)) => {
                // Cancelled: the store already says so. Shutdown: the lease
                // runs out and the next start takes the job up again.
                return;
            }
            Err(Failure::Stopped(Stop::TimedOut)) => JobOutcome {
                status: JobStatus::TimedOut,
                progress,
                error: Some(format!(
                    "the report ran longer than its time limit of {} s",
                    self.settings.time_limit.as_secs()
                )),
                manifest: None,
            },
            Err(Failure::Error(reason)) => {
                tracing::warn!(job = %job.id, %reason, "report job failed");
                JobOutcome {
                    status: JobStatus::Failed,
                    progress,
                    error: Some(reason),
                    manifest: None,
                }
            }
        };
        match self
            .store
            .finish_job(&job.id, attempt, self.now_ms(), &outcome)
        {
            Ok(true) => {}
            Ok(false) => {
                // Cancelled or taken over in the last instant: the file is nobody's.
                if let Some(m) = outcome.manifest.as_deref().and_then(Manifest::parse) {
                    if let Err(e) = self.files.remove(&m.file) {
                        tracing::warn!(job = %job.id, error = %e, "cannot remove an unclaimed report file");
                    }
                }
            }
            Err(e) => {
                tracing::error!(job = %job.id, error = %e, "cannot record the end of a report job")
            }
        }
    }

    /// Writes the job's file and returns its manifest.
    fn produce(&self, job: &Job, started: i64) -> (Result<String, Failure>, JobProgress) {
        let rows = AtomicU64::new(0);
        let bytes = Arc::new(AtomicU64::new(0));
        let stop = StopFlag::default();
        // A heartbeat thread renews the lease and reports progress every
        // second for the whole job (preparing, exporting, storing the file),
        // and raises the stop flag on cancel, time limit or a lost lease.
        let deadline = started + self.settings.time_limit.as_millis() as i64;
        let expected_rows_seen = AtomicU64::new(u64::MAX);
        let finished = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            let heart = scope.spawn(|| {
                while !finished.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(1000));
                    if finished.load(Ordering::Relaxed) {
                        break;
                    }
                    let exp = expected_rows_seen.load(Ordering::Relaxed);
                    let exp = (exp != u64::MAX).then_some(exp);
                    self.beat(job, &rows, &bytes, exp, deadline, &stop);
                }
            });
            let r = self.produce_file(job, &rows, &bytes, &stop, deadline, &expected_rows_seen);
            finished.store(true, Ordering::Relaxed);
            heart.thread().unpark();
            r
        });
        let progress = JobProgress {
            rows_done: rows.load(Ordering::Relaxed),
            rows_expected: None,
            bytes: bytes.load(Ordering::Relaxed),
        };
        (result, progress)
    }

    /// The job's file and manifest; see [`Runner::produce`].
    fn produce_file(
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
            let e = store.enrollment(n).map_err(Failure::store)?;
            let expected = estimated_rows(store, n, spec);
            if let Some(x) = expected {
                expected_rows_seen.store(x, Ordering::Relaxed);
            }
            let filter = UsageFilter {
                selection: selection(spec),
                accounts: spec.accounts.clone(),
                departments: spec.departments.clone(),
                show_costs: spec.scope.sees_costs(e.visibility),
                marketplace_only: false,
                scope: Some(spec.scope),
                legacy: false,
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
                generated_at: self.clock.now_rfc3339(),
                watermark: e.watermark.map(|d| d.to_string()),
                currency: e.currency.code().to_string(),
            };
            let report =
                UsageReport::prepare(store, n, filter, meta.clone()).map_err(Failure::store)?;
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

    /// One heartbeat: progress and a renewed lease to the store; the answer
    /// (or the clock) may raise the stop flag.
    fn beat(
        &self,
        job: &Job,
        rows: &AtomicU64,
        bytes: &AtomicU64,
        expected: Option<u64>,
        deadline: i64,
        stop: &StopFlag,
    ) {
        let now = self.now_ms();
        if now >= deadline {
            stop.raise(Stop::TimedOut);
            return;
        }
        let done = rows.load(Ordering::Relaxed);
        let p = JobProgress {
            rows_done: done,
            rows_expected: expected.map(|x| x.max(done)),
            bytes: bytes.load(Ordering::Relaxed),
        };
        let lease = now + self.settings.lease.as_millis() as i64;
        match self.store.job_heartbeat(&job.id, job.attempts, p, lease) {
            Ok(Some(JobStatus::InProgress)) => {}
            // A store hiccup: try again at the next beat (the lease has slack).
            Err(e) => tracing::warn!(job = %job.id, error = %e, "report heartbeat failed"),
            Ok(Some(JobStatus::Cancelled)) => stop.raise(Stop::Cancelled),
            Ok(_) => stop.raise(Stop::LostLease),
        }
    }

    /// Removes jobs whose retention is over, with their files, and what
    /// interrupted writes left. Returns how many jobs went.
    pub fn cleanup(&self, now: i64) -> Result<usize, StoreError> {
        let before = now - self.settings.retention.as_millis() as i64;
        let old = self.store.expired_jobs(before)?;
        for j in &old {
            if let Some(m) = j.manifest.as_deref().and_then(Manifest::parse) {
                if let Err(e) = self.files.remove(&m.file) {
                    tracing::warn!(job = %j.id, error = %e, "cannot remove an expired report file");
                    continue;
                }
            }
            self.store.delete_job(&j.id)?;
        }
        Ok(old.len())
    }

    /// Asks running jobs to stop at their next progress point.
    pub fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
    }

    /// Runs jobs on this thread until job `id` has ended (the CLI's
    /// `report request`: it works with or without a server running).
    pub fn run_until_done(&self, id: &str) -> Result<Job, StoreError> {
        loop {
            let j = self
                .store
                .job(id)?
                .ok_or_else(|| StoreError::NotFound(format!("no report job {id}")))?;
            if j.status.is_final() {
                return Ok(j);
            }
            if !self.run_next(Some(id))? {
                // Another process is running it: wait for it.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn report_costs_shown(scope: Scope, e: &meterbook_core::Enrollment) -> bool {
    scope.sees_costs(e.visibility)
}

/// Why the running export should stop, set once by whoever notices first.
#[derive(Default)]
struct StopFlag(Mutex<Option<Stop>>);

impl StopFlag {
    fn raise(&self, s: Stop) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert(s);
    }
    fn get(&self) -> Option<Stop> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Failure {
    Stopped(Stop),
    Error(String),
}

impl Failure {
    fn store(e: StoreError) -> Failure {
        Failure::Error(match e {
            StoreError::Backend(_) => "the store failed while reading the report".to_string(),
            e => e.to_string(),
        })
    }
}

/// Counts and hashes what goes into the pending file.
struct Hashing {
    inner: Box<dyn crate::files::PendingFile>,
    sha: Sha256,
    bytes: Arc<AtomicU64>,
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

fn hex(b: &[u8]) -> String {
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

/// Checks a request: a real range inside the term, at most [`MAX_MONTHS`]
/// long, a known format, and filters that exist and lie inside the scope.
pub fn validate(
    store: &dyn Store,
    n: &EnrollmentNumber,
    spec: &JobSpec,
) -> Result<(), RequestError> {
    let e = store.enrollment(n)?;
    if let Some(p) = spec.billing_period {
        if p < e.first_period() || p > e.last_period() {
            return Err(RequestError::Invalid(format!(
                "billing period {p} is not inside the enrollment's term {} to {}",
                e.start, e.end
            )));
        }
        let (from, to) = (p.first_day().max(e.start), p.last_day().min(e.end));
        if (spec.from, spec.to) != (from, to) {
            return Err(RequestError::Invalid(format!(
                "a request for billing period {p} covers {from} to {to}, not {} to {}",
                spec.from, spec.to
            )));
        }
    }
    if spec.to < spec.from {
        return Err(RequestError::Invalid(format!(
            "the end date {} is before the start date {}",
            spec.to, spec.from
        )));
    }
    if spec.from < e.start || spec.to > e.end {
        return Err(RequestError::Invalid(format!(
            "the range {} to {} is not inside the enrollment's term {} to {}",
            spec.from, spec.to, e.start, e.end
        )));
    }
    let limit = spec
        .from
        .naive()
        .checked_add_months(chrono::Months::new(MAX_MONTHS))
        .map(Day::from_naive);
    if limit.is_some_and(|l| spec.to >= l) {
        return Err(RequestError::Invalid(format!(
            "the range {} to {} is longer than {MAX_MONTHS} months",
            spec.from, spec.to
        )));
    }
    for (what, names) in [
        ("accounts", &spec.accounts),
        ("departments", &spec.departments),
    ] {
        if names.len() > MAX_FILTER_IDS {
            return Err(RequestError::Invalid(format!(
                "the request names {} {what}; at most {MAX_FILTER_IDS} are accepted",
                names.len()
            )));
        }
    }
    let h = store.hierarchy(n)?;
    for a in &spec.accounts {
        let acc = h
            .account_by_name(a)
            .ok_or_else(|| RequestError::Invalid(format!("no account {a:?} in enrollment {n}")))?;
        if !spec.scope.covers(Scope::Account(acc.id), &h) {
            return Err(RequestError::Forbidden(format!(
                "account {a:?} is outside the requester's scope"
            )));
        }
    }
    for d in &spec.departments {
        let dep = h.department_by_name(d).ok_or_else(|| {
            RequestError::Invalid(format!("no department {d:?} in enrollment {n}"))
        })?;
        if !spec.scope.covers(Scope::Department(dep.id), &h) {
            return Err(RequestError::Forbidden(format!(
                "department {d:?} is outside the requester's scope"
            )));
        }
    }
    Ok(())
}

/// The worker pool and the clean-up thread. Dropping it (or `stop`) stops them.
pub struct Workers {
    runner: Arc<Runner>,
    wake: Arc<(Mutex<u64>, Condvar)>,
    stopping: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    pub fn start(runner: Arc<Runner>) -> Workers {
        let wake = Arc::new((Mutex::new(0u64), Condvar::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        if let Err(e) = runner.files.sweep_partial() {
            tracing::warn!(error = %e, "cannot sweep partial report files");
        }
        for i in 0..runner.settings.workers.max(1) {
            let (runner, wake, stopping) = (runner.clone(), wake.clone(), stopping.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("report-worker-{i}"))
                    .spawn(move || worker_loop(&runner, &wake, &stopping))
                    .expect("spawn a report worker"),
            );
        }
        {
            let (runner, wake, stopping) = (runner.clone(), wake.clone(), stopping.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("report-cleanup".into())
                    .spawn(move || cleanup_loop(&runner, &wake, &stopping))
                    .expect("spawn the report clean-up"),
            );
        }
        Workers {
            runner,
            wake,
            stopping,
            threads,
        }
    }

    pub fn runner(&self) -> &Arc<Runner> {
        &self.runner
    }

    /// Whether every worker and the clean-up thread are alive (a thread that
    /// panicked has ended), and the pool was not stopped.
    pub fn is_running(&self) -> bool {
        !self.stopping.load(Ordering::Relaxed)
            && !self.threads.is_empty()
            && self.threads.iter().all(|t| !t.is_finished())
    }

    /// Wakes an idle worker (a job was just submitted).
    pub fn notify(&self) {
        let (m, c) = &*self.wake;
        *m.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        c.notify_all();
    }

    /// Stops the workers: running jobs stop at their next progress point and
    /// stay claimed until their lease ends, then any process takes them up again.
    pub fn stop(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.runner.shut_down();
        self.notify();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn wait(wake: &(Mutex<u64>, Condvar), seen: &mut u64, timeout: Duration) {
    let (m, c) = wake;
    let g = m.lock().unwrap_or_else(|p| p.into_inner());
    if *g == *seen {
        let (g, _) = c
            .wait_timeout(g, timeout)
            .unwrap_or_else(|p| p.into_inner());
        *seen = *g;
    } else {
        *seen = *g;
    }
}

fn worker_loop(runner: &Runner, wake: &(Mutex<u64>, Condvar), stopping: &AtomicBool) {
    let mut seen = 0;
    while !stopping.load(Ordering::Relaxed) {
        match runner.run_next(None) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot claim a report job"),
        }
        wait(wake, &mut seen, runner.settings.poll);
    }
}

fn cleanup_loop(runner: &Runner, wake: &(Mutex<u64>, Condvar), stopping: &AtomicBool) {
    let every = Duration::from_secs(600)
        .min(runner.settings.retention / 4)
        .max(Duration::from_millis(200));
    let mut seen = 0;
    let mut last = std::time::Instant::now() - every;
    while !stopping.load(Ordering::Relaxed) {
        if last.elapsed() >= every {
            last = std::time::Instant::now();
            match runner.cleanup(runner.now_ms()) {
                Ok(0) => {}
                Ok(k) => tracing::info!(jobs = k, "removed report jobs past their retention"),
                Err(e) => tracing::warn!(error = %e, "report clean-up failed"),
            }
        }
        wait(wake, &mut seen, every.min(Duration::from_secs(5)));
    }
}
