//! Advanced reports: requesting one, seeing one's own, cancelling, and the
//! finished file. Every front end submits through here, so the reach, the
//! term check and the requester's quota hold alike for the API, the portal
//! and the CLI.

use crate::{Access, AppError, AppResult, Span};
use meterbook_core::jobs::{ExportFormat, Job, JobSpec, JobStatus};
use meterbook_jobs::FileState;

/// What a caller asks an advanced report for.
#[derive(Clone, Debug)]
pub struct ReportRequest {
    /// A billing period (its Usage details rows) or a range of usage dates.
    pub span: Span,
    /// Account names; with `departments`, a row is kept if either matches.
    /// Both empty: the caller's whole reach.
    pub accounts: Vec<String>,
    pub departments: Vec<String>,
    /// The file's format (front ends read it with [`ExportFormat::requested`]).
    pub format: ExportFormat,
}

impl Access {
    /// The job spec of `r`: the caller's reach, the span's days inside the term.
    fn spec(&self, r: ReportRequest) -> AppResult<JobSpec> {
        let (billing_period, from, to) = match r.span {
            Span::Period(p) => {
                let p = self.check_period(p)?;
                (
                    Some(p),
                    p.first_day().max(self.e.start),
                    p.last_day().min(self.e.end),
                )
            }
            Span::Range(from, to) => (None, from, to),
        };
        Ok(JobSpec {
            scope: self.scope(),
            billing_period,
            from,
            to,
            accounts: r.accounts,
            departments: r.departments,
            format: r.format,
        })
    }

    /// Requests an advanced report: the job, and whether it is new (an
    /// identical job already queued or running is returned instead).
    pub fn submit_report(&self, r: ReportRequest) -> AppResult<(Job, bool)> {
        let spec = self.spec(r)?;
        Ok(self
            .app
            .runner()
            .submit(self.number(), spec, self.actor().requester())?)
    }

    /// Whether this caller sees `job`: an enterprise administrator sees every
    /// job of the enrollment; others the jobs requested with their own reach.
    fn sees_job(&self, job: &Job) -> bool {
        job.enrollment == *self.number() && (self.sees_balance() || job.spec.scope == self.scope())
    }

    fn file_state(&self, job: &Job) -> FileState {
        meterbook_jobs::file_state(job, self.e.visibility, self.app.runner().files())
    }

    /// The caller's report jobs, newest first, with the state of their files.
    pub fn report_jobs(&self) -> AppResult<Vec<(Job, FileState)>> {
        Ok(self
            .app
            .store()
            .jobs(self.number())?
            .into_iter()
            .filter(|j| self.sees_job(j))
            .map(|j| {
                let f = self.file_state(&j);
                (j, f)
            })
            .collect())
    }

    /// One of the caller's jobs (`NotFound` for another's, as for none).
    pub fn report_job(&self, id: &str) -> AppResult<(Job, FileState)> {
        let job = self
            .app
            .store()
            .job(id)?
            .filter(|j| self.sees_job(j))
            .ok_or_else(|| AppError::NotFound(format!("no report job {id}")))?;
        let f = self.file_state(&job);
        Ok((job, f))
    }

    /// Whether this caller may cancel `job`: a caller who may change
    /// things, or whoever requested it.
    pub fn may_cancel(&self, job: &Job) -> bool {
        !self.read_only() || job.requested_by == self.actor().requester()
    }

    /// Cancels a queued or running job. Read-only callers may cancel only
    /// the jobs they requested.
    pub fn cancel_report(&self, id: &str) -> AppResult<JobStatus> {
        let (job, _) = self.report_job(id)?;
        if !self.may_cancel(&job) {
            return Err(AppError::Forbidden(
                "a read-only caller may cancel only the reports it requested".into(),
            ));
        }
        if job.status.is_final() {
            return Err(AppError::Conflict(format!(
                "the job has already ended ({})",
                job.status.name()
            )));
        }
        let reason = format!("cancelled by {}", self.actor().requester());
        let now = self.app.clock().now_millis();
        self.app
            .store()
            .cancel_job(&job.id, now, &reason)?
            .ok_or_else(|| AppError::NotFound(format!("no report job {id}")))
    }
}

impl crate::App {
    /// The job a signed download link names. The caller (the server) has
    /// checked the link's signature and expiry: the link is the capability.
    pub fn linked_report(&self, id: &str) -> AppResult<(Job, FileState)> {
        let job = self
            .store()
            .job(id)?
            .ok_or_else(|| AppError::NotFound(format!("no report job {id}")))?;
        let visibility = self.store().enrollment(&job.enrollment)?.visibility;
        let f = meterbook_jobs::file_state(&job, visibility, self.runner().files());
        Ok((job, f))
    }
}
