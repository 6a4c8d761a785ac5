//! The fact store conformance checks on a real ClickHouse.
//!
//! `MB_TEST_USAGE_STORE` names the server or cluster
//! (`clickhouse://127.0.0.1:58123,127.0.0.1:58124/meterbook?cluster=meterbook`,
//! as `scripts/cluster.sh` exports); each test works in a database of its own
//! named after the address's (`meterbook_t<pid>_<n>`) and drops it when done.
//! Without the variable the tests pass with a note, unless
//! `MB_REQUIRE_CLUSTER=1`.

mod common;

use common::{base_url, fresh, url_for};
use meterbook_clickhouse::{shard_of, Address, ChFacts, SCHEMA_VERSION};
use meterbook_conformance::fact_store;
use meterbook_core::facts::FactStore;
use meterbook_core::store::StoreError;

macro_rules! conformance {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            if let Some(f) = fresh() {
                fact_store::$name(&f.store);
            }
        }
    )*};
}

conformance!(
    scans,
    scans_stop,
    lookups,
    day_sums,
    day_sum_overflow,
    purge
);

#[test]
fn the_test_enrollments_use_every_shard() {
    let Some(f) = fresh() else { return };
    let hosts = f.store.address().hosts.len();
    let shards: std::collections::BTreeSet<usize> = (0..3)
        .map(|i| shard_of(&fact_store::enrollment(i), hosts))
        .collect();
    assert_eq!(
        shards.len(),
        hosts.min(3),
        "the checks would not cross shards"
    );
}

#[test]
fn opening_again_is_a_no_op_and_the_doctor_is_content() {
    let Some(f) = fresh() else { return };
    assert_eq!(f.store.doctor(), Vec::<String>::new());
    let again = ChFacts::open(&f.url).expect("open again");
    assert_eq!(again.doctor(), Vec::<String>::new());
}

fn exec(host: &str, sql: &str) {
    let mut resp = ureq::post(format!("http://{host}/"))
        .send(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = resp.body_mut().read_to_string();
}

#[test]
fn a_newer_schema_is_refused_and_a_missing_table_reported() {
    let Some(f) = fresh() else { return };
    let a = f.store.address().clone();
    let db = &a.database;
    exec(
        &a.hosts[0],
        &format!(
            "DROP TABLE {db}.{}",
            if a.cluster.is_some() {
                "day_sums"
            } else {
                "day_sums_local"
            }
        ),
    );
    let problems = f.store.doctor();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("day_sums") && problems[0].contains("missing"));
    exec(
        a.hosts.last().unwrap(),
        &format!(
            "INSERT INTO {db}.schema_version (version, applied) VALUES ({}, now())",
            SCHEMA_VERSION + 1
        ),
    );
    match ChFacts::open(&f.url) {
        Err(StoreError::Invalid(m)) => assert!(m.contains("newer"), "{m}"),
        other => panic!("opened a newer schema: {:?}", other.err()),
    }
    assert!(f
        .store
        .doctor()
        .iter()
        .any(|p| p.contains("schema version")));
}

#[test]
fn an_unknown_cluster_or_a_wrong_shard_count_is_reported() {
    let Some(f) = fresh() else { return };
    let a = f.store.address().clone();
    let Some(cluster) = &a.cluster else { return };
    let wrong = Address {
        cluster: Some(format!("{cluster}_nope")),
        ..a.clone()
    };
    if let Ok(s) = ChFacts::open(&url_for(&wrong, &a.database)) {
        // The Distributed tables already exist (over the right cluster); the
        // doctor compares the address with the servers' configuration.
        assert!(s
            .doctor()
            .iter()
            .any(|p| p.contains("not in its remote_servers")));
    }
    if a.hosts.len() > 1 {
        let short = Address {
            hosts: a.hosts[..1].to_vec(),
            ..a.clone()
        };
        let s = ChFacts::open(&url_for(&short, &a.database)).expect("open one host");
        let problems = s.doctor();
        assert!(
            problems.iter().any(|p| p.contains("shards")),
            "{problems:?}"
        );
    }
}

#[test]
fn an_unreachable_host_is_named() {
    if base_url().is_none() {
        return;
    }
    match ChFacts::open("clickhouse://127.0.0.1:9/meterbook_nowhere") {
        Err(StoreError::Backend(m)) => assert!(m.contains("127.0.0.1:9"), "{m}"),
        other => panic!("opened nothing: {:?}", other.err()),
    }
}
