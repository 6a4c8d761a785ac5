//! Runs the storage conformance suite against the PostgreSQL ledger, each
//! store in a fresh schema of its own on the server `MB_TEST_STORE` names
//! (skipped without it unless `MB_REQUIRE_CLUSTER=1`), with usage facts in
//! the in-memory reference fact store.

#[macro_use]
mod common;

use common::{url, Schema};
use meterbook_conformance::mem_facts::MemFacts;
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

whole_suite!();

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
