//! Runs the storage conformance suite against the PostgreSQL ledger, each
//! store in a fresh schema of its own on the server `MB_TEST_STORE` names
//! (skipped without it unless `MB_REQUIRE_CLUSTER=1`), with usage facts in
//! the in-memory reference fact store.

mod common;

use common::{url, Schema};
use meterbook_conformance::mem_facts::MemFacts;
use meterbook_conformance::{properties, scenarios};
use meterbook_postgres::PgStore;
use std::cell::RefCell;
use std::sync::Arc;

/// Fresh stores, each in a schema of its own; the schemas are dropped when
/// this is (after the stores, which the suite drops as it goes).
struct Stores {
    url: String,
    schemas: RefCell<Vec<Schema>>,
}

impl Stores {
    fn new(test: &str) -> Option<Stores> {
        Some(Stores {
            url: url(test)?,
            schemas: RefCell::new(Vec::new()),
        })
    }

    fn make(&self) -> PgStore {
        let schema = Schema::new(&self.url);
        let store = schema.open(Arc::new(MemFacts::new()));
        self.schemas.borrow_mut().push(schema);
        store
    }
}

/// Cases of each property: `MB_CLUSTER_CASES`, or 48 (every case costs a
/// schema and its migration).
fn cases() -> u32 {
    std::env::var("MB_CLUSTER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            let Some(stores) = Stores::new(stringify!($name)) else { return };
            scenarios::$name(&stores.make());
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
    users_roles_sessions_and_audit,
    summaries_match_the_usage_report,
    departments_and_accounts_rename,
    ranges_hold_across_files,
    operator_tokens_list_and_disable,
    shared_state_counts_refills_and_flashes,
);

macro_rules! property {
    ($($test:ident => $name:ident),* $(,)?) => {
        $(#[test]
        fn $test() {
            let Some(stores) = Stores::new(stringify!($test)) else { return };
            properties::$name(&|| stores.make(), cases());
        })*
    };
}

property!(
    property_rows_add_up_to_charges => rows_add_up_to_charges,
    property_files_near_the_limits => files_near_the_limits,
    property_figures_tie_out => figures_tie_out,
    property_ingest_order_does_not_matter => ingest_order_does_not_matter,
    property_realistic_ingest_order_does_not_matter => realistic_ingest_order_does_not_matter,
    property_realistic_conflicting_resend_changes_nothing => realistic_conflicting_resend_changes_nothing,
    property_realistic_bad_row_stores_nothing => realistic_bad_row_stores_nothing,
    property_realistic_one_day_in_many_files => realistic_one_day_in_many_files,
);

#[test]
fn migrations_apply_once() {
    let Some(url) = url("migrations_apply_once") else {
        return;
    };
    let schema = Schema::new(&url);
    let facts = Arc::new(MemFacts::new());
    let v = schema.open(facts.clone()).schema_version().unwrap();
    assert_eq!(v, meterbook_postgres::SCHEMA_VERSION);
    // Opening again applies nothing.
    assert_eq!(
        schema.open(facts).schema_version().unwrap(),
        meterbook_postgres::SCHEMA_VERSION
    );
}

/// Nodes starting at once on an empty database: one migrates, the others
/// wait for it and find the schema done.
#[test]
fn nodes_starting_at_once_migrate_once() {
    let Some(url) = url("nodes_starting_at_once_migrate_once") else {
        return;
    };
    let schema = Schema::new(&url);
    let versions: Vec<usize> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let schema = &schema;
                sc.spawn(move || {
                    schema
                        .open(Arc::new(MemFacts::new()))
                        .schema_version()
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(versions, vec![meterbook_postgres::SCHEMA_VERSION; 4]);
}
