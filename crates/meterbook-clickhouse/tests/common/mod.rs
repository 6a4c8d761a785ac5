//! What the ClickHouse tests share: a store in a fresh database named after
//! `MB_TEST_USAGE_STORE`'s, dropped when the test ends.
#![allow(dead_code)]

use meterbook_clickhouse::{Address, ChFacts};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A store in a fresh database, dropped at the end of the test.
pub struct Fresh {
    pub store: ChFacts,
    pub url: String,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Err(e) = self.store.drop_database() {
            eprintln!("could not drop the test database: {e}");
        }
    }
}

/// The address to test against, or None (with a note) to skip.
pub fn base_url() -> Option<String> {
    match std::env::var("MB_TEST_USAGE_STORE") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("MB_REQUIRE_CLUSTER").as_deref() == Ok("1") {
                panic!("MB_REQUIRE_CLUSTER=1 but MB_TEST_USAGE_STORE is not set");
            }
            eprintln!("note: MB_TEST_USAGE_STORE is not set; skipping the ClickHouse test");
            None
        }
    }
}

pub fn url_for(a: &Address, database: &str) -> String {
    let mut url = format!("clickhouse://{}/{database}", a.hosts.join(","));
    if let Some(c) = &a.cluster {
        url.push_str("?cluster=");
        url.push_str(c);
    }
    url
}

pub fn fresh() -> Option<Fresh> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = base_url()?;
    let a = Address::parse(&base).expect("MB_TEST_USAGE_STORE is a ClickHouse address");
    let db = format!(
        "{}_t{}_{}",
        a.database,
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let url = url_for(&a, &db);
    let store = ChFacts::open(&url).unwrap_or_else(|e| panic!("open {url}: {e:?}"));
    Some(Fresh { store, url })
}
