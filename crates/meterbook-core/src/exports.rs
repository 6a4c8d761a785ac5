//! Scheduled exports, as Azure Cost Management's exports do them: a schedule
//! per enrollment says what is exported (daily month-to-date, the monthly
//! closed period, or a custom range once), in which format, and into which
//! folder under the operator's export root. Each due *run key* (a day, a
//! period, or `once`) is run once: a run is a row here, claimed under a lease
//! so that two nodes never run the same key at once, and finished as
//! succeeded, failed for good, or failed with a time to retry.
//!
//! Why run keys rather than "the next run at": a key names what a run
//! covers, so a run missed while the service was down is still due when it
//! comes back (every key since the schedule began, within a bound, that has
//! not succeeded), and a re-run of a key writes the same place.

use crate::calendar::{Day, Period};
use crate::enrollment::EnrollmentNumber;
use crate::jobs::ExportFormat;
use crate::store::StoreResult;

/// What a schedule exports, and so its run keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cadence {
    /// Every day D (key `YYYY-MM-DD`, due from 00:00 UTC on D): the usage
    /// dated from the first day of the month of D−1 through D−1, that is the
    /// month to date of the days that have ended. On the 1st it is the whole
    /// previous month.
    DailyMonthToDate,
    /// Every billing period P once it is closed (key `YYYYMM`): the rows
    /// booked in P, as its Usage details report holds them.
    MonthlyClosed,
    /// One run (key `once`): the usage dated from `from` through `to`.
    Once { from: Day, to: Day },
}

impl Cadence {
    /// The name in the API, the CLI, manifests and the store.
    pub fn name(self) -> &'static str {
        match self {
            Cadence::DailyMonthToDate => "daily",
            Cadence::MonthlyClosed => "monthly",
            Cadence::Once { .. } => "once",
        }
    }
}

/// The run key of a [`Cadence::Once`] schedule.
pub const ONCE_KEY: &str = "once";

/// How many daily keys, and monthly keys, a catch-up looks back at most.
pub const CATCH_UP_DAYS: i32 = 31;
pub const CATCH_UP_MONTHS: usize = 12;

/// A schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSchedule {
    /// 128 random bits in hex.
    pub id: String,
    pub enrollment: EnrollmentNumber,
    /// A name for people; unique within the enrollment.
    pub name: String,
    /// The folder under `<export root>/<enrollment>/`; see [`check_folder`].
    pub folder: String,
    pub cadence: Cadence,
    pub format: ExportFormat,
    /// Unix ms. Daily keys start at the day it was created; monthly keys at
    /// the period before it.
    pub created_at: i64,
    pub created_by: String,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// A node holds it until `lease_until`.
    Running = 1,
    Succeeded = 2,
    /// The last attempt failed; the run is due again at `retry_at`.
    Retrying = 3,
    /// Failed and given up (too many attempts); only a run-now retries it.
    Failed = 4,
}

impl RunStatus {
    pub fn from_code(c: i64) -> Option<RunStatus> {
        [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Retrying,
            RunStatus::Failed,
        ]
        .into_iter()
        .find(|s| *s as i64 == c)
    }

    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Retrying => "retrying",
            RunStatus::Failed => "failed",
        }
    }
}

/// One run key of a schedule, as last attempted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRun {
    pub schedule_id: String,
    pub run_key: String,
    /// A fresh id per attempt (in the manifest), 128 random bits in hex.
    pub run_id: String,
    pub status: RunStatus,
    /// Attempts so far, the running one included.
    pub attempts: u32,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub lease_until: Option<i64>,
    pub retry_at: Option<i64>,
    /// Why the last attempt failed (safe to show: no paths, no SQL).
    pub error: Option<String>,
    /// The manifest of the last successful attempt (JSON).
    pub manifest: Option<String>,
}

impl ExportRun {
    /// Whether the run, as stored, may be claimed now (see [`Claim`]).
    pub fn claimable(&self, claim: Claim, now: i64) -> bool {
        match self.status {
            RunStatus::Running => self.lease_until.is_none_or(|l| l <= now),
            RunStatus::Retrying => claim == Claim::Again || self.retry_at.is_none_or(|t| t <= now),
            RunStatus::Succeeded | RunStatus::Failed => claim == Claim::Again,
        }
    }
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded {
        manifest: String,
    },
    /// `retry_at: None`: given up.
    Failed {
        error: String,
        retry_at: Option<i64>,
    },
}

/// When a claim may take a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// A due run: taken if it has no row, is `Retrying` with `retry_at` ≤
    /// now, or `Running` with its lease past (its node died).
    Due,
    /// Run now at someone's request: also a `Succeeded` or `Failed` run (it is
    /// run again), never one `Running` under a live lease.
    Again,
}

pub trait ExportStore {
    /// Records a schedule. Conflict if the enrollment has one of that name,
    /// or one writing to that folder.
    fn create_export(&self, s: &ExportSchedule) -> StoreResult<()>;
    fn export_schedule(&self, id: &str) -> StoreResult<Option<ExportSchedule>>;
    /// An enrollment's schedules (all enrollments' with `None`), oldest first.
    fn export_schedules(&self, n: Option<&EnrollmentNumber>) -> StoreResult<Vec<ExportSchedule>>;
    /// Removes a schedule of `n` and its runs' records (not its files).
    /// NotFound if `n` has no such schedule.
    fn delete_export(&self, n: &EnrollmentNumber, id: &str) -> StoreResult<()>;
    /// Takes run `key` of schedule `id` (see [`Claim`]) as attempt
    /// `attempts + 1` with a fresh `run_id`, running until `lease_until`.
    /// `None`: not claimable (done, waiting to retry, or another node runs
    /// it). NotFound if the schedule is gone.
    fn claim_export_run(
        &self,
        id: &str,
        key: &str,
        run_id: &str,
        claim: Claim,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Option<ExportRun>>;
    /// Extends the lease of attempt `run_id` while it runs; false if the run
    /// is no longer that attempt's (the writer should stop).
    fn renew_export_run(
        &self,
        id: &str,
        key: &str,
        run_id: &str,
        lease_until: i64,
    ) -> StoreResult<bool>;
    /// Ends attempt `run_id`; false if the run is no longer that attempt's
    /// (its lease ran out and another node took it over).
    fn finish_export_run(
        &self,
        id: &str,
        key: &str,
        run_id: &str,
        at: i64,
        o: &RunOutcome,
    ) -> StoreResult<bool>;
    /// A schedule's runs, newest key first.
    fn export_runs(&self, id: &str) -> StoreResult<Vec<ExportRun>>;
}

/// Why a folder name is refused, if it is: 1 to 64 characters of ASCII
/// letters, digits, `-` and `_`, not starting with `-`. Nothing that can name
/// another directory (`..`, `/`), a hidden file or an option.
pub fn check_folder(folder: &str) -> Result<(), String> {
    let ok = !folder.is_empty()
        && folder.len() <= 64
        && !folder.starts_with('-')
        && folder
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("folder: use 1 to 64 letters, digits, '-' and '_' (not starting with '-')".into())
    }
}

/// What a run key covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunRange {
    /// Usage dated from `from` through `to`.
    Dates { from: Day, to: Day },
    /// Usage booked in the period.
    Booked(Period),
}

impl ExportSchedule {
    /// What run `key` covers, or None if the schedule has no such key.
    pub fn range_of(&self, key: &str) -> Option<RunRange> {
        match self.cadence {
            Cadence::DailyMonthToDate => {
                let d = key.parse::<Day>().ok()?;
                let last = d.add_days(-1);
                Some(RunRange::Dates {
                    from: last.period().first_day(),
                    to: last,
                })
            }
            Cadence::MonthlyClosed => key.parse::<Period>().ok().map(RunRange::Booked),
            Cadence::Once { from, to } => (key == ONCE_KEY).then_some(RunRange::Dates { from, to }),
        }
    }

    /// The keys due by `today`, oldest first: daily, every day from the
    /// schedule's first through today (at most [`CATCH_UP_DAYS`]); monthly,
    /// every closed period from the one before the schedule's creation (at
    /// most the last [`CATCH_UP_MONTHS`]); once, `once`.
    pub fn due_keys(&self, today: Day, closed: &[Period]) -> Vec<String> {
        let created = Day::from_naive(
            chrono::DateTime::from_timestamp_millis(self.created_at)
                .unwrap_or_default()
                .date_naive(),
        );
        match self.cadence {
            Cadence::DailyMonthToDate => {
                let first = created.max(today.add_days(1 - CATCH_UP_DAYS));
                let mut keys = Vec::new();
                let mut d = first;
                while d <= today {
                    keys.push(d.to_string());
                    d = d.succ();
                }
                keys
            }
            Cadence::MonthlyClosed => {
                let first = created.period().prev();
                let mut ps: Vec<Period> = closed.iter().copied().filter(|p| *p >= first).collect();
                ps.sort();
                ps.dedup();
                let skip = ps.len().saturating_sub(CATCH_UP_MONTHS);
                ps[skip..].iter().map(|p| p.to_string()).collect()
            }
            Cadence::Once { .. } => vec![ONCE_KEY.to_string()],
        }
    }

    /// The key a run-now runs: today's daily key, the latest closed period,
    /// `once`. None for a monthly schedule with no closed period.
    pub fn key_now(&self, today: Day, closed: &[Period]) -> Option<String> {
        match self.cadence {
            Cadence::DailyMonthToDate => Some(today.to_string()),
            Cadence::MonthlyClosed => closed.iter().max().map(|p| p.to_string()),
            Cadence::Once { .. } => Some(ONCE_KEY.to_string()),
        }
    }
}

/// The wait before retry number `attempts` (1 after the first failure):
/// one minute, doubling, at most an hour.
pub fn retry_delay_ms(attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(6);
    (60_000i64 << exp).min(3_600_000)
}

/// Attempts after which a run is given up (until run again by hand).
pub const MAX_ATTEMPTS: u32 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(c: Cadence, created: &str) -> ExportSchedule {
        let d = created.parse::<Day>().unwrap();
        ExportSchedule {
            id: "x".into(),
            enrollment: EnrollmentNumber::parse("100").unwrap(),
            name: "n".into(),
            folder: "f".into(),
            cadence: c,
            format: ExportFormat::Csv,
            created_at: d
                .naive()
                .and_hms_opt(10, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis(),
            created_by: "t".into(),
        }
    }

    #[test]
    fn daily_keys_cover_the_closed_days_of_the_month() {
        let s = sched(Cadence::DailyMonthToDate, "2025-03-01");
        assert_eq!(
            s.due_keys("2025-03-03".parse::<Day>().unwrap(), &[]),
            ["2025-03-01", "2025-03-02", "2025-03-03"]
        );
        assert_eq!(
            s.range_of("2025-03-01"),
            Some(RunRange::Dates {
                from: "2025-02-01".parse::<Day>().unwrap(),
                to: "2025-02-28".parse::<Day>().unwrap()
            })
        );
        assert_eq!(
            s.range_of("2025-03-03"),
            Some(RunRange::Dates {
                from: "2025-03-01".parse::<Day>().unwrap(),
                to: "2025-03-02".parse::<Day>().unwrap()
            })
        );
        // Bounded: 31 keys at most.
        let keys = s.due_keys("2025-06-30".parse::<Day>().unwrap(), &[]);
        assert_eq!(keys.len(), 31);
        assert_eq!(keys[0], "2025-05-31");
        assert_eq!(s.range_of("nope"), None);
    }

    #[test]
    fn monthly_keys_are_closed_periods_from_the_one_before_creation() {
        let s = sched(Cadence::MonthlyClosed, "2025-03-15");
        let p = |t: &str| t.parse::<Period>().unwrap();
        let closed = [p("202501"), p("202503"), p("202502")];
        assert_eq!(
            s.due_keys("2025-04-02".parse::<Day>().unwrap(), &closed),
            ["202502", "202503"]
        );
        assert_eq!(s.range_of("202502"), Some(RunRange::Booked(p("202502"))));
        assert_eq!(
            s.key_now("2025-04-02".parse::<Day>().unwrap(), &closed),
            Some("202503".into())
        );
        assert_eq!(s.key_now("2025-04-02".parse::<Day>().unwrap(), &[]), None);
    }

    #[test]
    fn folders_stay_inside_the_root() {
        for ok in ["finance", "daily_csv", "a-b", "A1"] {
            assert!(check_folder(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            "a/b",
            ".hidden",
            "-rf",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(check_folder(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_delay_ms(1), 60_000);
        assert_eq!(retry_delay_ms(2), 120_000);
        assert_eq!(retry_delay_ms(30), 3_600_000);
    }
}
