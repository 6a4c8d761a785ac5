//! The storage conformance suite on the scale-out deployment as it runs:
//! the PostgreSQL ledger with usage facts in the ClickHouse cluster that
//! `MB_TEST_USAGE_STORE` names (scripts/cluster.sh starts two shards). Each
//! store is a fresh PostgreSQL schema and a fresh ClickHouse database on
//! every shard, both dropped at the end. Skipped without the cluster unless
//! `MB_REQUIRE_CLUSTER=1`.

mod common;

use common::{url, Schema};
use meterbook_clickhouse::ChFacts;
use meterbook_conformance::{properties, scenarios};
use meterbook_postgres::PgStore;
use std::cell::RefCell;
use std::sync::Arc;

struct Stores {
    pg: String,
    ch: String,
    made: RefCell<Vec<(Schema, Arc<ChFacts>)>>,
}

/// `url` with its database replaced (the query, `?cluster=…`, kept).
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    match path.split_once('?') {
        Some((_, q)) => format!("{scheme}://{hosts}/{db}?{q}"),
        None => format!("{scheme}://{hosts}/{db}"),
    }
}

impl Stores {
    fn new(test: &str) -> Option<Stores> {
        let pg = url(test)?;
        let ch = match std::env::var("MB_TEST_USAGE_STORE") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                assert!(
                    std::env::var("MB_REQUIRE_CLUSTER").as_deref() != Ok("1"),
                    "{test}: MB_TEST_USAGE_STORE is not set and MB_REQUIRE_CLUSTER=1"
                );
                eprintln!("{test}: skipped (set MB_TEST_USAGE_STORE=clickhouse://... to run it)");
                return None;
            }
        };
        Some(Stores {
            pg,
            ch,
            made: RefCell::new(Vec::new()),
        })
    }

    fn make(&self) -> PgStore {
        let schema = Schema::new(&self.pg);
        let facts = Arc::new(
            ChFacts::open(&with_database(&self.ch, &schema.name)).expect("open the fact store"),
        );
        let store = PgStore::open_config(schema.config(), facts.clone(), 4).expect("open");
        self.made.borrow_mut().push((schema, facts));
        store
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        for (_, facts) in self.made.borrow().iter() {
            let _ = facts.drop_database();
        }
    }
}

/// Cases of each property: `MB_CLUSTER_CASES`, or 24 (every case costs a
/// schema and a database on each shard).
fn cases() -> u32 {
    std::env::var("MB_CLUSTER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(24, |v: u32| v.div_ceil(2))
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
