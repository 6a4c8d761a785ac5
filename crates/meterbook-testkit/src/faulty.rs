//! The SQLite store behind switches that make it misbehave on cue.

use meterbook_core::access::{KeyRecord, KeyStore, OperatorStore, OperatorToken, Scope, Slot};
use meterbook_core::enrollment::{ChargeVisibility, Enrollment, NewEnrollment, PeriodInfo};
use meterbook_core::hierarchy::{Hierarchy, HierarchyRow};
use meterbook_core::jobs::{Job, JobOutcome, JobProgress, JobStatus, JobStore};
use meterbook_core::notify::{
    Budget, Channel, Delivery, DeliveryOutcome, Event, NewBudget, NewChannel, NewDelivery,
    NewEvent, NotifyStore,
};
use meterbook_core::prices::MeterPrice;
use meterbook_core::shared::{SharedState, TokenRate};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{
    EntryKind, Flow, HierarchySummary, MetadataStore, Rollup, StoreError, StoreResult, UsageFact,
    UsageSelection, UsageStore, UsageWriter,
};
use meterbook_core::users::{AuditEntry, Role, Session, User, UserStore};
use meterbook_core::{Day, EnrollmentNumber, Period, Price};
use meterbook_sqlite::SqliteStore;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What usage reads (daily usage, rollups, scans) do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum UsageReads {
    Work = 0,
    /// Fail with a backend error that names SQL and a path (which must not
    /// reach a client).
    Fail = 1,
    Panic = 2,
}

/// The switches; clones share them. All off by default.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// While set, workers find no job to claim: submitted jobs stay queued.
    pub hold: Arc<AtomicBool>,
    /// While set, usage scans fail with a backend error.
    pub fail_scans: Arc<AtomicBool>,
    /// While set, usage scans take 10 ms a row.
    pub slow_scans: Arc<AtomicBool>,
    /// While set, reading rollups waits (a job stays in its preparation).
    pub pause_rollups: Arc<AtomicBool>,
    usage_reads: Arc<AtomicU8>,
}

impl Faults {
    pub fn set_usage_reads(&self, r: UsageReads) {
        self.usage_reads.store(r as u8, Ordering::SeqCst);
    }

    fn usage_read(&self) -> StoreResult<()> {
        match self.usage_reads.load(Ordering::SeqCst) {
            1 => Err(StoreError::Backend(
                "SELECT day, record_id FROM usage_fact WHERE enrollment_id = ?1: \
                 database disk image is malformed (/var/lib/meterbook/meterbook.db)"
                    .into(),
            )),
            2 => panic!("usage scan exploded: SELECT * FROM usage_fact"),
            _ => Ok(()),
        }
    }
}

/// The SQLite store, misbehaving as [`Faults`] say.
pub struct FaultyStore {
    inner: Arc<SqliteStore>,
    faults: Faults,
}

impl FaultyStore {
    pub fn new(inner: Arc<SqliteStore>, faults: Faults) -> FaultyStore {
        FaultyStore { inner, faults }
    }
}

macro_rules! forward {
    ($($name:ident($($a:ident: $t:ty),*) -> $r:ty;)*) => {
        $(fn $name(&self, $($a: $t),*) -> $r { self.inner.$name($($a),*) })*
    };
}

impl MetadataStore for FaultyStore {
    forward! {
        create_enrollment(e: &NewEnrollment) -> StoreResult<Enrollment>;
        enrollment(n: &EnrollmentNumber) -> StoreResult<Enrollment>;
        enrollments() -> StoreResult<Vec<Enrollment>>;
        set_visibility(n: &EnrollmentNumber, v: ChargeVisibility) -> StoreResult<()>;
        set_watermark(n: &EnrollmentNumber, through: Day) -> StoreResult<()>;
        check_ready() -> StoreResult<()>;
        upsert_hierarchy(n: &EnrollmentNumber, rows: &[HierarchyRow]) -> StoreResult<HierarchySummary>;
        move_subscription(n: &EnrollmentNumber, guid: &str, account: &str, effective: Day) -> StoreResult<()>;
        rename(n: &EnrollmentNumber, what: meterbook_core::store::Renamed, old: &str, new: &str) -> StoreResult<()>;
        hierarchy(n: &EnrollmentNumber) -> StoreResult<Hierarchy>;
        import_prices(n: &EnrollmentNumber, period: Period, sheet: &[MeterPrice]) -> StoreResult<usize>;
        price_sheet(n: &EnrollmentNumber, period: Period) -> StoreResult<Vec<(i64, MeterPrice)>>;
        add_entry(n: &EnrollmentNumber, kind: EntryKind, e: &CommitmentEntry) -> StoreResult<()>;
        entries(n: &EnrollmentNumber) -> StoreResult<Vec<(EntryKind, CommitmentEntry)>>;
        periods(n: &EnrollmentNumber) -> StoreResult<Vec<PeriodInfo>>;
        close_period(n: &EnrollmentNumber, period: Period, rates: &[(i64, Price)]) -> StoreResult<()>;
        locked_rates(n: &EnrollmentNumber, period: Period) -> StoreResult<Vec<(i64, Price)>>;
    }
}

impl UsageStore for FaultyStore {
    forward! {
        begin_usage(n: &EnrollmentNumber) -> StoreResult<Box<dyn UsageWriter + '_>>;
    }
    fn daily_usage(
        &self,
        n: &EnrollmentNumber,
        from: Day,
        to: Day,
    ) -> StoreResult<Vec<meterbook_core::store::DailyUsage>> {
        self.faults.usage_read()?;
        self.inner.daily_usage(n, from, to)
    }
    fn rollups(&self, n: &EnrollmentNumber, booked: Period) -> StoreResult<Vec<Rollup>> {
        self.faults.usage_read()?;
        while self.faults.pause_rollups.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.inner.rollups(n, booked)
    }
    fn scan_usage(
        &self,
        n: &EnrollmentNumber,
        sel: &UsageSelection,
        visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<Flow, StoreError>,
    ) -> StoreResult<()> {
        self.faults.usage_read()?;
        if self.faults.fail_scans.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(
                "SELECT * FROM usage_fact: disk I/O error (/var/lib/meterbook/meterbook.db)".into(),
            ));
        }
        let slow = &self.faults.slow_scans;
        self.inner.scan_usage(n, sel, &mut |f: &UsageFact<'_>| {
            if slow.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            visit(f)
        })
    }
}

impl KeyStore for FaultyStore {
    forward! {
        put_key(k: &KeyRecord) -> StoreResult<()>;
        key(id: &str) -> StoreResult<Option<KeyRecord>>;
        keys(n: &EnrollmentNumber) -> StoreResult<Vec<KeyRecord>>;
        set_key_disabled(n: &EnrollmentNumber, scope: Scope, slot: Slot, disabled: bool) -> StoreResult<bool>;
        touch_key(id: &str, at: i64) -> StoreResult<()>;
    }
}

impl OperatorStore for FaultyStore {
    forward! {
        put_operator_token(t: &OperatorToken) -> StoreResult<()>;
        operator_token(id: &str) -> StoreResult<Option<OperatorToken>>;
        operator_tokens() -> StoreResult<Vec<OperatorToken>>;
        set_operator_token_disabled(id: &str, disabled: bool) -> StoreResult<bool>;
    }
}

impl UserStore for FaultyStore {
    forward! {
        create_user(email: &str, name: &str, password_hash: Option<&str>, at: i64) -> StoreResult<User>;
        user_by_email(email: &str) -> StoreResult<Option<User>>;
        user(id: i64) -> StoreResult<Option<User>>;
        users() -> StoreResult<Vec<User>>;
        set_password(user_id: i64, password_hash: &str) -> StoreResult<()>;
        set_user_disabled(user_id: i64, disabled: bool) -> StoreResult<()>;
        grant_role(user_id: i64, role: &Role) -> StoreResult<()>;
        revoke_role(user_id: i64, n: &EnrollmentNumber) -> StoreResult<()>;
        roles(user_id: i64) -> StoreResult<Vec<Role>>;
        enrollment_users(n: &EnrollmentNumber) -> StoreResult<Vec<(User, Role)>>;
        create_session(s: &Session) -> StoreResult<()>;
        session(token_hash: &[u8; 32]) -> StoreResult<Option<Session>>;
        touch_session(token_hash: &[u8; 32], at: i64) -> StoreResult<()>;
        delete_session(token_hash: &[u8; 32]) -> StoreResult<()>;
        delete_user_sessions(user_id: i64) -> StoreResult<()>;
        put_password_token(token_hash: &[u8; 32], user_id: i64, expires_at: i64) -> StoreResult<()>;
        take_password_token(token_hash: &[u8; 32], now: i64) -> StoreResult<Option<i64>>;
        audit(n: &EnrollmentNumber, e: &AuditEntry) -> StoreResult<()>;
        audit_log(n: &EnrollmentNumber, limit: usize) -> StoreResult<Vec<AuditEntry>>;
    }
}

impl JobStore for FaultyStore {
    forward! {
        submit_job(job: &Job) -> StoreResult<(Job, bool)>;
        job(id: &str) -> StoreResult<Option<Job>>;
        jobs(n: &EnrollmentNumber) -> StoreResult<Vec<Job>>;
        job_heartbeat(id: &str, attempt: u32, p: JobProgress, lease_until: i64) -> StoreResult<Option<JobStatus>>;
        finish_job(id: &str, attempt: u32, at: i64, o: &JobOutcome) -> StoreResult<bool>;
        cancel_job(id: &str, at: i64, reason: &str) -> StoreResult<Option<JobStatus>>;
        expired_jobs(before: i64) -> StoreResult<Vec<Job>>;
        delete_job(id: &str) -> StoreResult<()>;
        secret(name: &str, fresh: &[u8]) -> StoreResult<Vec<u8>>;
        secrets() -> StoreResult<Vec<(String, Vec<u8>)>>;
    }
    fn claim_job(
        &self,
        now: i64,
        lease_until: i64,
        only: Option<&str>,
    ) -> StoreResult<Option<Job>> {
        if self.faults.hold.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.inner.claim_job(now, lease_until, only)
    }
}

impl NotifyStore for FaultyStore {
    forward! {
        create_budget(n: &EnrollmentNumber, b: &NewBudget, created_by: &str, now: i64) -> StoreResult<Budget>;
        budgets(n: &EnrollmentNumber) -> StoreResult<Vec<Budget>>;
        budget(n: &EnrollmentNumber, id: i64) -> StoreResult<Option<Budget>>;
        delete_budget(n: &EnrollmentNumber, id: i64) -> StoreResult<bool>;
        add_channel(n: &EnrollmentNumber, c: &NewChannel, created_by: &str, now: i64) -> StoreResult<Channel>;
        channels(n: &EnrollmentNumber) -> StoreResult<Vec<Channel>>;
        channel(n: &EnrollmentNumber, id: i64) -> StoreResult<Option<Channel>>;
        remove_channel(n: &EnrollmentNumber, id: i64, now: i64) -> StoreResult<bool>;
        record_event(n: &EnrollmentNumber, e: &NewEvent, deliveries: &[NewDelivery], now: i64) -> StoreResult<Option<Event>>;
        events(n: &EnrollmentNumber, limit: usize) -> StoreResult<Vec<Event>>;
        claim_delivery(now: i64, lease_ms: i64) -> StoreResult<Option<Delivery>>;
        finish_delivery(id: i64, outcome: &DeliveryOutcome, now: i64) -> StoreResult<()>;
        deliveries(n: &EnrollmentNumber, limit: usize) -> StoreResult<Vec<Delivery>>;
    }
}

impl SharedState for FaultyStore {
    forward! {
        attempt(keys: &[(&str, u32)], window_secs: i64, now: i64) -> StoreResult<Result<Vec<u32>, i64>>;
        succeeded(clear: &[&str], give_back: &str) -> StoreResult<()>;
        take_token(key: &str, rate: TokenRate, now_millis: i64) -> StoreResult<Result<bool, i64>>;
        put_flash(session: &[u8; 32], enrollment: &str, payload: &[u8], now: i64) -> StoreResult<()>;
        take_flash(session: &[u8; 32], enrollment: &str, now: i64) -> StoreResult<Option<Vec<u8>>>;
    }
}

impl meterbook_core::exports::ExportStore for FaultyStore {
    forward! {
        create_export(s: &meterbook_core::exports::ExportSchedule) -> StoreResult<()>;
        export_schedule(id: &str) -> StoreResult<Option<meterbook_core::exports::ExportSchedule>>;
        export_schedules(n: Option<&EnrollmentNumber>) -> StoreResult<Vec<meterbook_core::exports::ExportSchedule>>;
        delete_export(n: &EnrollmentNumber, id: &str) -> StoreResult<()>;
        claim_export_run(id: &str, key: &str, run_id: &str, claim: meterbook_core::exports::Claim, now: i64, lease_until: i64) -> StoreResult<Option<meterbook_core::exports::ExportRun>>;
        renew_export_run(id: &str, key: &str, run_id: &str, lease_until: i64) -> StoreResult<bool>;
        finish_export_run(id: &str, key: &str, run_id: &str, at: i64, o: &meterbook_core::exports::RunOutcome) -> StoreResult<bool>;
        export_runs(id: &str) -> StoreResult<Vec<meterbook_core::exports::ExportRun>>;
    }
}
