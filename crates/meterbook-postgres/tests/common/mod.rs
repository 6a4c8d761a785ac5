//! Fresh PostgreSQL stores for tests, each in a schema of its own.
//!
//! The server is named by `MB_TEST_STORE` (a `postgres://` URL, as
//! `scripts/cluster.sh` exports it). Without it the tests print a note and
//! pass without running, unless `MB_REQUIRE_CLUSTER=1`, which makes them fail.
#![allow(dead_code)]

use meterbook_conformance::mem_facts::MemFacts;
use meterbook_postgres::PgStore;
use postgres::{Client, NoTls};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The server's URL, or None (with a note) when tests are to be skipped.
pub fn url(test: &str) -> Option<String> {
    match std::env::var("MB_TEST_STORE") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("MB_REQUIRE_CLUSTER").is_ok_and(|v| v == "1") {
                panic!("{test}: MB_TEST_STORE is not set and MB_REQUIRE_CLUSTER=1");
            }
            eprintln!("{test}: skipped (set MB_TEST_STORE=postgres://... to run it)");
            None
        }
    }
}

static MADE: AtomicUsize = AtomicUsize::new(0);

/// A schema of its own on the test server, dropped with it.
pub struct Schema {
    url: String,
    pub name: String,
}

impl Schema {
    pub fn new(url: &str) -> Schema {
        let name = format!(
            "mb_{}_{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = Client::connect(url, NoTls).expect("connect to MB_TEST_STORE");
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .expect("create schema");
        Schema {
            url: url.to_string(),
            name,
        }
    }

    /// Connection settings whose `search_path` is this schema.
    pub fn config(&self) -> postgres::Config {
        let mut cfg: postgres::Config = self.url.parse().expect("MB_TEST_STORE is a URL");
        cfg.options(&format!("-c search_path={}", self.name));
        cfg
    }

    /// A store on this schema (opening migrates it), keeping facts in `facts`.
    pub fn open(&self, facts: Arc<MemFacts>) -> PgStore {
        PgStore::open_config(self.config(), facts, 4).expect("open the store")
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&self.url, NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// A fresh store in its own schema, with an in-memory fact store. The
/// store is dropped (its connections closed) before the schema.
pub struct TestStore {
    pub store: Option<PgStore>,
    pub facts: Arc<MemFacts>,
    pub schema: Schema,
}

impl TestStore {
    pub fn new(url: &str) -> TestStore {
        let schema = Schema::new(url);
        let facts = Arc::new(MemFacts::new());
        TestStore {
            store: Some(schema.open(facts.clone())),
            facts,
            schema,
        }
    }

    /// Another store (another pool, as another node would have) on the same schema.
    pub fn another(&self) -> PgStore {
        self.schema.open(self.facts.clone())
    }
}

impl std::ops::Deref for TestStore {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        self.store.as_ref().expect("present until drop")
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        self.store.take();
    }
}

/// Every scenario and property of the storage conformance suite, as one
/// test each, over the `Stores` of the test file that invokes it (with
/// `Stores::new(test) -> Option<Stores>`, `Stores::make() -> PgStore` and
/// `cases()` in scope): the plain PostgreSQL run and the cluster run list
/// the same tests.
#[macro_export]
macro_rules! whole_suite {
    () => {
        whole_suite!(@scenarios
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
        whole_suite!(@properties
            property_rows_add_up_to_charges => rows_add_up_to_charges,
            property_files_near_the_limits => files_near_the_limits,
            property_figures_tie_out => figures_tie_out,
            property_ingest_order_does_not_matter => ingest_order_does_not_matter,
            property_realistic_ingest_order_does_not_matter => realistic_ingest_order_does_not_matter,
            property_realistic_conflicting_resend_changes_nothing => realistic_conflicting_resend_changes_nothing,
            property_realistic_bad_row_stores_nothing => realistic_bad_row_stores_nothing,
            property_realistic_one_day_in_many_files => realistic_one_day_in_many_files,
        );
    };
    (@scenarios $($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            let Some(stores) = Stores::new(stringify!($name)) else { return };
            meterbook_conformance::scenarios::$name(&stores.make());
        })*
    };
    (@properties $($test:ident => $name:ident),* $(,)?) => {
        $(#[test]
        fn $test() {
            let Some(stores) = Stores::new(stringify!($test)) else { return };
            meterbook_conformance::properties::$name(&|| stores.make(), cases());
        })*
    };
}
