//! The storage conformance suite on the scale-out deployment as it runs:
//! the PostgreSQL ledger with usage facts in the ClickHouse cluster that
//! `MB_TEST_USAGE_STORE` names (scripts/cluster.sh starts two shards). Each
//! store is a fresh PostgreSQL schema and a fresh ClickHouse database on
//! every shard, both dropped at the end. Skipped without the cluster unless
//! `MB_REQUIRE_CLUSTER=1`.

#[macro_use]
mod common;

use common::{url, Schema};
use meterbook_clickhouse::ChFacts;
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

whole_suite!();
