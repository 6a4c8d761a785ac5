//! The provider's own work, as the operator API and the CLI do it: creating
//! enrollments and setting their visibility, commitment entries, the usage
//! watermark, closing periods, keys for customers, operator tokens, any
//! enrollment's report jobs, and what monitoring reads. The feeds (usage,
//! price sheets, the hierarchy) are in [`crate::feeds`].

use crate::keys::{put_new_key, scope_name, NewKey};
use crate::{credentials, App, AppError, AppResult, Operator};
use meterbook_core::access::{KeyRecord, OperatorToken, Scope, Slot};
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment, PeriodInfo};
use meterbook_core::jobs::{Job, JobStatus};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::EntryKind;
use meterbook_core::{Day, Enrollment, EnrollmentNumber, Period};
use std::collections::BTreeMap;

/// An operator token just made: the record, and the full token to show once.
pub struct NewOperatorToken {
    pub record: OperatorToken,
    pub token: String,
}

impl std::fmt::Debug for NewOperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewOperatorToken")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// What monitoring reads of the deployment as a whole (the `/metrics` figures
/// that come from the store).
#[derive(Clone, Debug, Default)]
pub struct Monitoring {
    /// (status name, jobs), every status listed.
    pub jobs_by_status: Vec<(&'static str, u64)>,
    /// (job id, finished at in Unix ms, seconds run) of every finished job
    /// the store still holds.
    pub finished: Vec<(String, i64, f64)>,
    /// (enrollment, seconds since the end of its complete-through day).
    pub watermark_age: Vec<(String, i64)>,
}

impl Operator {
    /// Creates an enrollment.
    pub fn create_enrollment(&self, e: &NewEnrollment) -> AppResult<Enrollment> {
        Ok(self.app.store().create_enrollment(e)?)
    }

    /// Sets who besides enterprise administrators sees charges; a setting
    /// left `None` keeps its value. Returns the settings now in force.
    pub fn set_visibility(
        &self,
        n: &EnrollmentNumber,
        department_admins_view_charges: Option<bool>,
        account_owners_view_charges: Option<bool>,
    ) -> AppResult<ChargeVisibility> {
        let s = self.app.store();
        let cur = s.enrollment(n)?.visibility;
        let v = ChargeVisibility {
            department_admins_view_charges: department_admins_view_charges
                .unwrap_or(cur.department_admins_view_charges),
            account_owners_view_charges: account_owners_view_charges
                .unwrap_or(cur.account_owners_view_charges),
        };
        s.set_visibility(n, v)?;
        Ok(v)
    }

    /// Records a purchase or an adjustment of the commitment.
    pub fn add_entry(
        &self,
        n: &EnrollmentNumber,
        kind: EntryKind,
        entry: &CommitmentEntry,
    ) -> AppResult<()> {
        Ok(self.app.store().add_entry(n, kind, entry)?)
    }

    /// Usage is complete through `through` (what reports state).
    pub fn set_watermark(&self, n: &EnrollmentNumber, through: Day) -> AppResult<()> {
        Ok(self.app.store().set_watermark(n, through)?)
    }

    /// The term's billing periods, oldest first, open or closed.
    pub fn periods(&self, n: &EnrollmentNumber) -> AppResult<Vec<PeriodInfo>> {
        Ok(self.app.store().periods(n)?)
    }

    /// Closes period `p` (the oldest open one, ended by the clock's today),
    /// locking its rates.
    pub fn close_period(&self, n: &EnrollmentNumber, p: Period) -> AppResult<()> {
        let today = self.app.clock().today();
        Ok(meterbook_core::ledger::close_period(
            self.app.store(),
            n,
            p,
            today,
        )?)
    }

    /// Closes every open period through `through`, in order; returns those
    /// it closed (none when all were closed already).
    pub fn close_periods_through(
        &self,
        n: &EnrollmentNumber,
        through: Period,
    ) -> AppResult<Vec<Period>> {
        let today = self.app.clock().today();
        Ok(meterbook_core::ledger::close_periods_through(
            self.app.store(),
            n,
            through,
            today,
        )?)
    }

    /// A key for a customer's `scope` in `slot` (read-only if asked),
    /// replacing the one there; also returns the key it replaced.
    pub fn scope_key(
        &self,
        n: &EnrollmentNumber,
        scope: Scope,
        slot: Slot,
        days: u32,
        read_only: bool,
    ) -> AppResult<(NewKey, Option<KeyRecord>)> {
        let a = self.enrollment(n)?;
        let s = self.app.store();
        let h = s.hierarchy(n)?;
        let replaced = s
            .keys(n)?
            .into_iter()
            .find(|k| k.scope == scope && k.slot == slot);
        let new = put_new_key(&a, scope, slot, days, read_only)?;
        a.audit(
            "key-generated",
            format!(
                "{} {}, {} key {}{}{}",
                scope.kind(),
                scope_name(&h, scope).unwrap_or_default(),
                slot.as_str(),
                credentials::PREFIX,
                new.record.id,
                if read_only { " (read-only)" } else { "" }
            ),
        );
        Ok((new, replaced))
    }

    /// Every operator token, oldest first (secrets are only hashes).
    pub fn operator_tokens(&self) -> AppResult<Vec<OperatorToken>> {
        Ok(self.app.store().operator_tokens()?)
    }

    /// A new operator token named `name`; its secret is returned once.
    pub fn create_operator_token(&self, name: &str) -> AppResult<NewOperatorToken> {
        let k = credentials::generate_with(credentials::OPERATOR_PREFIX)
            .map_err(|e| AppError::Internal(format!("no randomness: {e}")))?;
        let record = OperatorToken {
            id: k.id,
            name: name.to_string(),
            secret_hash: k.secret_hash,
            created_at: self.app.clock().now_unix(),
            disabled: false,
        };
        self.app.store().put_operator_token(&record)?;
        Ok(NewOperatorToken {
            record,
            token: k.token,
        })
    }

    /// Disables (or re-enables) operator token `id`; `NotFound` when there
    /// is none.
    pub fn set_operator_token_disabled(&self, id: &str, disabled: bool) -> AppResult<()> {
        if self.app.store().set_operator_token_disabled(id, disabled)? {
            Ok(())
        } else {
            Err(AppError::NotFound(format!("no operator token {id}")))
        }
    }

    /// Any enrollment's report job.
    pub fn report_job(&self, id: &str) -> AppResult<Job> {
        self.app
            .store()
            .job(id)?
            .ok_or_else(|| AppError::NotFound(format!("no report job {id}")))
    }

    /// An enrollment's report jobs, newest first.
    pub fn report_jobs(&self, n: &EnrollmentNumber) -> AppResult<Vec<Job>> {
        Ok(self.app.store().jobs(n)?)
    }

    /// Cancels any queued or running job, recording `reason`; returns its
    /// status afterwards.
    pub fn cancel_report(&self, id: &str, reason: &str) -> AppResult<JobStatus> {
        self.report_job(id)?;
        let now = self.app.clock().now_millis();
        self.app
            .store()
            .cancel_job(id, now, reason)?
            .ok_or_else(|| AppError::NotFound(format!("no report job {id}")))
    }

    /// The report jobs by status, the run time of finished ones, and how old
    /// each enrollment's usage watermark is (for `/metrics`).
    pub fn monitoring(&self) -> AppResult<Monitoring> {
        self.app.monitoring()
    }
}

impl App {
    /// What [`Operator::monitoring`] reads, as of the clock's now.
    fn monitoring(&self) -> AppResult<Monitoring> {
        let s = self.store();
        let now_ms = self.clock().now_millis();
        let all = [
            JobStatus::Queued,
            JobStatus::InProgress,
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::NoDataFound,
            JobStatus::ReadyToDownload,
            JobStatus::TimedOut,
            JobStatus::Cancelled,
        ];
        let mut counts: BTreeMap<u8, u64> = all.iter().map(|s| (s.code(), 0)).collect();
        let (mut finished, mut watermark_age) = (Vec::new(), Vec::new());
        for e in s.enrollments()? {
            for j in s.jobs(&e.number)? {
                *counts.entry(j.status.code()).or_default() += 1;
                if let (true, Some(a), Some(b)) = (j.status.is_final(), j.started_at, j.finished_at)
                {
                    finished.push((j.id, b, (b - a).max(0) as f64 / 1000.0));
                }
            }
            if let Some(d) = e.watermark {
                // Complete through `d`: the data is whole up to the day's end.
                let end = d
                    .succ()
                    .naive()
                    .and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp();
                watermark_age.push((e.number.to_string(), now_ms / 1000 - end));
            }
        }
        let jobs_by_status = all
            .iter()
            .map(|s| (s.name(), counts.get(&s.code()).copied().unwrap_or(0)))
            .collect();
        Ok(Monitoring {
            jobs_by_status,
            finished,
            watermark_age,
        })
    }
}
