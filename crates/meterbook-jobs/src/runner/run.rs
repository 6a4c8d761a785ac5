//! The runner: claiming work, running a job with heartbeats, honouring
//! cancel and time limits, and cleaning up after retention.

use crate::files::ReportFiles;
use meterbook_core::access::Scope;
use meterbook_core::clock::Clock;
use meterbook_core::jobs::{Job, JobOutcome, JobProgress, JobSpec, JobStatus};
use meterbook_core::store::{Store, StoreError};
use meterbook_core::EnrollmentNumber;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::request::*;

/// Why a running job stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    Cancelled,
    TimedOut,
    /// This process is shutting down: the job is left for the next start.
    Shutdown,
    /// Another worker took the job over (this one stalled past its lease).
    LostLease,
}

pub struct Runner {
    pub(super) store: Arc<dyn Store>,
    pub(super) files: Arc<dyn ReportFiles>,
    pub(super) settings: JobSettings,
    pub(super) shutdown: AtomicBool,
    /// Quota check and insert happen under this lock, so parallel submits
    /// from one requester cannot all pass the check (within this process).
    submitting: Mutex<()>,
    /// Where "now" comes from: leases, time limits, retention, timestamps.
    pub(super) clock: Arc<dyn Clock>,
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

    pub(super) fn now_ms(&self) -> i64 {
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

    /// One heartbeat: progress and a renewed lease to the store; the answer
    /// (or the clock) may raise the stop flag.
    pub(super) fn beat(
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

pub(super) fn report_costs_shown(scope: Scope, e: &meterbook_core::Enrollment) -> bool {
    scope.sees_costs(e.visibility)
}

/// Why the running export should stop, set once by whoever notices first.
#[derive(Default)]
pub(super) struct StopFlag(Mutex<Option<Stop>>);

impl StopFlag {
    pub(super) fn raise(&self, s: Stop) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert(s);
    }
    pub(super) fn get(&self) -> Option<Stop> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) enum Failure {
    Stopped(Stop),
    Error(String),
}

impl Failure {
    pub(super) fn store(e: StoreError) -> Failure {
        Failure::Error(match e {
            StoreError::Backend(_) => "the store failed while reading the report".to_string(),
            e => e.to_string(),
        })
    }
}
