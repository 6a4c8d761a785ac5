//! Advanced report jobs: a request for a usage export over any date range and
//! set of accounts or departments, prepared in the background and downloaded
//! from a link. The record lives in the store so a job outlives the process
//! that accepted it; workers claim jobs under a lease, so a job whose worker
//! died is picked up again once the lease runs out.

use crate::access::Scope;
use crate::calendar::{Day, Period};
use crate::enrollment::EnrollmentNumber;
use crate::store::StoreResult;

/// The Reporting API's status codes, plus `Cancelled`, which it lacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Queued = 1,
    InProgress = 2,
    /// Not used for new jobs (they end `ReadyToDownload`); kept for the API's code table.
    Completed = 3,
    Failed = 4,
    /// Finished, and no row matched the filters (the file holds only a header).
    NoDataFound = 5,
    ReadyToDownload = 6,
    TimedOut = 7,
    /// Meterbook's addition: stopped at the requester's wish.
    Cancelled = 8,
}

impl JobStatus {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: i64) -> Option<JobStatus> {
        use JobStatus::*;
        [
            Queued,
            InProgress,
            Completed,
            Failed,
            NoDataFound,
            ReadyToDownload,
            TimedOut,
            Cancelled,
        ]
        .into_iter()
        .find(|s| *s as i64 == c)
    }

    pub fn name(self) -> &'static str {
        use JobStatus::*;
        match self {
            Queued => "Queued",
            InProgress => "InProgress",
            Completed => "Completed",
            Failed => "Failed",
            NoDataFound => "NoDataFound",
            ReadyToDownload => "ReadyToDownload",
            TimedOut => "TimedOut",
            Cancelled => "Cancelled",
        }
    }

    /// Whether the job has stopped for good.
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::InProgress)
    }

    /// Whether the job has a file to download.
    pub fn has_file(self) -> bool {
        matches!(self, JobStatus::ReadyToDownload | JobStatus::NoDataFound)
    }
}

/// File formats of a usage export (an advanced report's file, or the CLI's
/// `report usage --format`). Stored and shown by [`ExportFormat::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// Usage details (design §4) as CSV.
    Csv,
    /// The same, gzip-compressed.
    CsvGzip,
    /// Usage details with typed columns.
    Parquet,
    /// The FinOps FOCUS 1.2 cost and usage dataset as CSV.
    FocusCsv,
    /// FOCUS 1.2 as typed Parquet.
    FocusParquet,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 5] = [
        ExportFormat::Csv,
        ExportFormat::CsvGzip,
        ExportFormat::Parquet,
        ExportFormat::FocusCsv,
        ExportFormat::FocusParquet,
    ];

    /// The name used on the CLI, in the API, in manifests and in the store.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::CsvGzip => "csv.gz",
            ExportFormat::Parquet => "parquet",
            ExportFormat::FocusCsv => "focus-csv",
            ExportFormat::FocusParquet => "focus-parquet",
        }
    }

    /// The format named exactly `s`.
    pub fn parse(s: &str) -> Option<ExportFormat> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The format a request names (in any case), or why there is none: how
    /// every front end reads a requested format.
    pub fn requested(s: &str) -> Result<ExportFormat, String> {
        let lower = s.to_ascii_lowercase();
        Self::parse(&lower).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|f| f.name()).collect();
            format!(
                "unknown format \"{}\": use one of {}",
                crate::quote::quote(&lower),
                names.join(", ")
            )
        })
    }

    /// File extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv | ExportFormat::FocusCsv => "csv",
            ExportFormat::CsvGzip => "csv.gz",
            ExportFormat::Parquet | ExportFormat::FocusParquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv | ExportFormat::FocusCsv => "text/csv; charset=utf-8",
            ExportFormat::CsvGzip => "application/gzip",
            ExportFormat::Parquet | ExportFormat::FocusParquet => "application/vnd.apache.parquet",
        }
    }
}

impl std::fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Who asked for a job, as it is recorded: an API key's id, a portal
/// user's e-mail, or an operator's name (`cli` for the command line). A
/// requester's quota counts its jobs; a read-only caller may cancel only its
/// own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requester(pub String);

impl Requester {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

impl PartialEq<str> for Requester {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Requester {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&str> for Requester {
    fn from(s: &str) -> Requester {
        Requester(s.to_string())
    }
}

impl From<String> for Requester {
    fn from(s: String) -> Requester {
        Requester(s)
    }
}

/// What was asked for. Two requests with the same spec from the same scope
/// share one job while it is queued or running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// The requester's scope: it bounds the rows and decides whether costs show.
    pub scope: Scope,
    /// Set for a billing-period request: the rows booked in the period, as
    /// its Usage details report holds them (corrections booked in it
    /// included, its own days booked later left out); `from` and `to` are
    /// then the period's days inside the term, for display only. `None`: a
    /// date range, the rows dated from `from` to `to`.
    pub billing_period: Option<Period>,
    pub from: Day,
    pub to: Day,
    /// Account names; with `departments`, a row is kept if either matches. Both empty: the whole scope.
    pub accounts: Vec<String>,
    pub departments: Vec<String>,
    /// The file's format.
    pub format: ExportFormat,
}

impl JobSpec {
    /// What the request covers, as manifests and the API name it:
    /// `billingPeriod` or `dateRange`.
    pub fn kind(&self) -> &'static str {
        if self.billing_period.is_some() {
            "billingPeriod"
        } else {
            "dateRange"
        }
    }

    /// A canonical text of the spec: equal specs give equal keys.
    pub fn dedupe_key(&self) -> String {
        let mut a = self.accounts.clone();
        a.sort();
        a.dedup();
        let mut d = self.departments.clone();
        d.sort();
        d.dedup();
        format!(
            "{}|{}{}|{}|{}|{}|{}",
            scope_text(self.scope),
            self.billing_period
                .map_or(String::new(), |p| format!("period:{p}|")),
            self.from,
            self.to,
            a.join("\u{1f}"),
            d.join("\u{1f}"),
            self.format.name()
        )
    }
}

/// `enrollment`, `department:ID` or `account:ID`: how a scope is stored and signed.
pub fn scope_text(s: Scope) -> String {
    match s {
        Scope::Enrollment => "enrollment".into(),
        Scope::Department(d) => format!("department:{d}"),
        Scope::Account(a) => format!("account:{a}"),
    }
}

pub fn parse_scope_text(s: &str) -> Option<Scope> {
    if s == "enrollment" {
        return Some(Scope::Enrollment);
    }
    let (kind, id) = s.split_once(':')?;
    let id: i64 = id.parse().ok()?;
    match kind {
        "department" => Some(Scope::Department(id)),
        "account" => Some(Scope::Account(id)),
        _ => None,
    }
}

/// A job as stored. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub enrollment: EnrollmentNumber,
    pub spec: JobSpec,
    /// Who asked (see [`Requester`]).
    pub requested_by: Requester,
    pub requested_at: i64,
    pub status: JobStatus,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Rows written so far, and rows the report will hold (when known).
    pub rows_done: u64,
    pub rows_expected: Option<u64>,
    pub bytes: u64,
    /// Why the job failed, timed out or was cancelled.
    pub error: Option<String>,
    /// How many times a worker has claimed it (more than 1: it was restarted).
    pub attempts: u32,
    /// The worker's lease: past it, another worker may take the job over.
    pub lease_until: Option<i64>,
    /// The finished file's manifest (JSON), once there is a file.
    pub manifest: Option<String>,
}

/// What a worker reports while it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobProgress {
    pub rows_done: u64,
    pub rows_expected: Option<u64>,
    pub bytes: u64,
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobOutcome {
    pub status: JobStatus,
    pub progress: JobProgress,
    pub error: Option<String>,
    pub manifest: Option<String>,
}

/// Job records. Every method is one transaction.
pub trait JobStore {
    /// Records a new queued job, unless a queued or running job of the same
    /// enrollment has the same `dedupe_key`: then that one is returned, with `false`.
    fn submit_job(&self, job: &Job) -> StoreResult<(Job, bool)>;
    fn job(&self, id: &str) -> StoreResult<Option<Job>>;
    /// An enrollment's jobs, newest first.
    fn jobs(&self, n: &EnrollmentNumber) -> StoreResult<Vec<Job>>;
    /// Takes the oldest job that is queued, or running with its lease past `now`
    /// (its worker died); marks it running until `lease_until`. With `only`,
    /// considers that job alone.
    fn claim_job(&self, now: i64, lease_until: i64, only: Option<&str>)
        -> StoreResult<Option<Job>>;
    /// Records progress and extends the lease of attempt `attempt`. Returns the
    /// job's status: a worker stops when it is no longer `InProgress` under its
    /// attempt (cancelled, or taken over after a stall).
    fn job_heartbeat(
        &self,
        id: &str,
        attempt: u32,
        p: JobProgress,
        lease_until: i64,
    ) -> StoreResult<Option<JobStatus>>;
    /// Ends attempt `attempt`; false if the job is no longer that attempt's.
    fn finish_job(&self, id: &str, attempt: u32, at: i64, o: &JobOutcome) -> StoreResult<bool>;
    /// Cancels a job that has not ended; returns its status after the call.
    fn cancel_job(&self, id: &str, at: i64, reason: &str) -> StoreResult<Option<JobStatus>>;
    /// Ended jobs that finished before `before` (retention is over).
    fn expired_jobs(&self, before: i64) -> StoreResult<Vec<Job>>;
    fn delete_job(&self, id: &str) -> StoreResult<()>;
    /// A named server secret, created (from `fresh`) the first time it is asked for.
    fn secret(&self, name: &str, fresh: &[u8]) -> StoreResult<Vec<u8>>;
    /// Every server secret made so far, by name, read without making any
    /// (for copying a store: signed links stay valid on the copy).
    fn secrets(&self) -> StoreResult<Vec<(String, Vec<u8>)>>;
}

#[cfg(test)]
mod tests {
    use super::ExportFormat;

    /// Stored jobs hold these names: they must not change.
    #[test]
    fn format_names_round_trip() {
        let names: Vec<&str> = ExportFormat::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            ["csv", "csv.gz", "parquet", "focus-csv", "focus-parquet"]
        );
        for f in ExportFormat::ALL {
            assert_eq!(ExportFormat::parse(f.name()), Some(f));
            assert_eq!(ExportFormat::requested(&f.name().to_uppercase()), Ok(f));
        }
        assert_eq!(format!("[{:<6}]", ExportFormat::Csv), "[csv   ]");
    }

    #[test]
    fn an_unknown_format_names_the_known_ones() {
        assert_eq!(
            ExportFormat::requested("XLSX"),
            Err(
                "unknown format \"xlsx\": use one of csv, csv.gz, parquet, focus-csv, focus-parquet"
                    .to_string()
            )
        );
        assert!(ExportFormat::requested("").is_err());
        assert_eq!(ExportFormat::parse("CSV"), None);
    }
}
