//! The runner's settings and what a request may ask for.

use meterbook_core::access::Scope;
use meterbook_core::jobs::JobSpec;
use meterbook_core::store::{Store, StoreError};
use meterbook_core::{Day, EnrollmentNumber};
use meterbook_io::report::focus::FocusSettings;
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
