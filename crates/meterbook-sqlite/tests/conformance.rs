//! Runs the storage conformance suite against the SQLite store, each scenario
//! on a fresh database in a temporary directory.

use meterbook_conformance::{properties, scenarios};
use meterbook_sqlite::SqliteStore;

/// Fresh stores, each a new database file in one temporary directory that is
/// removed when the test ends.
struct Stores {
    dir: tempfile::TempDir,
    made: std::cell::Cell<usize>,
}

impl Stores {
    /// In shared memory where there is some: the property tests make
    /// thousands of databases, and on a disk their fsyncs take most of the time.
    fn new() -> Stores {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir())
        } else {
            tempfile::tempdir()
        };
        Stores {
            dir: dir.expect("tempdir"),
            made: std::cell::Cell::new(0),
        }
    }
    fn make(&self) -> SqliteStore {
        self.made.set(self.made.get() + 1);
        SqliteStore::open(self.dir.path().join(format!("{}.db", self.made.get()))).expect("open")
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            scenarios::$name(&Stores::new().make());
        })*
    };
}

conformance!(
    tiers_cross_inside_one_row,
    included_quantity_larger_than_usage,
    zero_usage,
    jpy_has_no_minor_unit,
    overage_billed_separately_and_marketplace,
    period_close_then_late_usage,
    ingest_is_idempotent_and_atomic,
    attribution_follows_subscription_moves,
    prices_keep_used_meters,
    enrollments_are_isolated,
    paging_is_stable_while_usage_arrives,
    report_jobs_lifecycle,
    export_schedules_and_runs,
    users_roles_sessions_and_audit,
    summaries_match_the_usage_report,
    departments_and_accounts_rename,
    ranges_hold_across_files,
    operator_tokens_list_and_disable,
    shared_state_counts_refills_and_flashes,
    budgets_and_channels_per_enrollment,
    events_are_recorded_once_and_delivered_from_the_outbox,
);

/// The embedded store is one process with one handle: both handles are it.
#[test]
fn shared_state_is_seen_by_every_handle() {
    let store = Stores::new().make();
    scenarios::shared_state_is_seen_by_every_handle(&store, &store);
}

/// Two handles on one file (a `serve` and a cron `exports run-due`).
#[test]
fn export_runs_are_claimed_once_across_handles() {
    let stores = Stores::new();
    let a = stores.make();
    let b = SqliteStore::open(stores.dir.path().join("1.db")).expect("open");
    scenarios::export_runs_are_claimed_once_across_handles(&a, &b);
}

#[test]
fn property_rows_add_up_to_charges() {
    let stores = Stores::new();
    properties::rows_add_up_to_charges(&|| stores.make(), 1024);
}

#[test]
fn property_files_near_the_limits() {
    let stores = Stores::new();
    properties::files_near_the_limits(&|| stores.make(), 512);
}

#[test]
fn property_figures_tie_out() {
    let stores = Stores::new();
    properties::figures_tie_out(&|| stores.make(), 320);
}

#[test]
fn property_ingest_order_does_not_matter() {
    let stores = Stores::new();
    properties::ingest_order_does_not_matter(&|| stores.make(), 320);
}

/// Cases of the realistic-shaped properties: `MB_REALISTIC_CASES` or `default`.
fn realistic_cases(default: u32) -> u32 {
    std::env::var("MB_REALISTIC_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn property_realistic_ingest_order_does_not_matter() {
    let stores = Stores::new();
    properties::realistic_ingest_order_does_not_matter(&|| stores.make(), realistic_cases(64));
}

#[test]
fn property_realistic_conflicting_resend_changes_nothing() {
    let stores = Stores::new();
    properties::realistic_conflicting_resend_changes_nothing(
        &|| stores.make(),
        realistic_cases(64),
    );
}

#[test]
fn property_realistic_bad_row_stores_nothing() {
    let stores = Stores::new();
    properties::realistic_bad_row_stores_nothing(&|| stores.make(), realistic_cases(64));
}

#[test]
fn property_realistic_one_day_in_many_files() {
    let stores = Stores::new();
    properties::realistic_one_day_in_many_files(&|| stores.make(), realistic_cases(32));
}

#[test]
fn migrations_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let v = SqliteStore::open(&path).unwrap().schema_version().unwrap();
    assert_eq!(v, meterbook_sqlite::SCHEMA_VERSION);
    // Opening again applies nothing and keeps the data.
    assert_eq!(
        SqliteStore::open(&path).unwrap().schema_version().unwrap(),
        meterbook_sqlite::SCHEMA_VERSION
    );
}
