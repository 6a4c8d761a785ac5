//! The local PostgreSQL + ClickHouse cluster that `scripts/cluster.sh`
//! starts (and `scripts/test.sh` runs the suites against): fresh, isolated
//! databases on it for one test.
//!
//! The cluster's URLs come from `MB_TEST_STORE` and `MB_TEST_USAGE_STORE`.
//! When they are unset a test is skipped with a note, unless
//! `MB_REQUIRE_CLUSTER=1` (as `scripts/test.sh` sets once it has started the
//! cluster): then a missing cluster fails the test.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The URLs of one test's own databases on the cluster.
#[derive(Clone, Debug)]
pub struct ClusterUrls {
    /// `postgres://…/<fresh database>`
    pub store: String,
    /// `clickhouse://…/<fresh database>?cluster=…`
    pub usage_store: String,
}

static MADE: AtomicUsize = AtomicUsize::new(0);

/// Whether the cluster's URLs are set; panics when they must be and are not.
pub fn configured() -> Option<(String, String)> {
    match (
        std::env::var("MB_TEST_STORE"),
        std::env::var("MB_TEST_USAGE_STORE"),
    ) {
        (Ok(pg), Ok(ch)) if !pg.is_empty() && !ch.is_empty() => Some((pg, ch)),
        _ => {
            assert!(
                std::env::var("MB_REQUIRE_CLUSTER").as_deref() != Ok("1"),
                "MB_REQUIRE_CLUSTER=1 but MB_TEST_STORE / MB_TEST_USAGE_STORE are not set: \
                 start the cluster with scripts/cluster.sh"
            );
            eprintln!(
                "skipped: no cluster (MB_TEST_STORE / MB_TEST_USAGE_STORE unset; \
                 scripts/cluster.sh starts one)"
            );
            None
        }
    }
}

/// A fresh PostgreSQL database and a fresh ClickHouse database name (the
/// usage store creates it on every shard when it opens), named after `tag`.
pub fn fresh(tag: &str) -> Option<ClusterUrls> {
    let (pg, ch) = configured()?;
    let name = format!(
        "mb_{}_{}_{}",
        tag.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        std::process::id(),
        MADE.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = postgres::Client::connect(&pg, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"));
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    Some(ClusterUrls {
        store: with_database(&pg, &name),
        usage_store: with_database(&ch, &name),
    })
}

/// `url` with its database (the path after the host part) replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path.split_once('?').map(|(_, q)| q);
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_replaced_query_kept() {
        assert_eq!(
            super::with_database("postgres://u@h:1/meterbook", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            super::with_database("clickhouse://a:1,b:2/meterbook?cluster=c", "x"),
            "clickhouse://a:1,b:2/x?cluster=c"
        );
    }
}
