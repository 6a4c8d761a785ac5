//! A shard going down and coming back (`scripts/cluster.sh stop-shard 2`):
//! writes to the other shard go on, writes to it fail at once with the host
//! named, reads (which go through the Distributed tables) fail rather than
//! answer without its rows, and everything is there once it is back.
//!
//! In a test binary of its own, because the other tests of the cluster would
//! fail while the shard is down. Needs `MB_CLUSTER_DIR` (the cluster script's
//! env file sets it) and a two-shard `MB_TEST_USAGE_STORE`; skips otherwise.

mod common;

use meterbook_clickhouse::shard_of;
use meterbook_conformance::fact_store::{random_fact, uuid, Fact};
use meterbook_core::calendar::Day;
use meterbook_core::enrollment::EnrollmentNumber;
use meterbook_core::facts::{FactStore, Visibility};
use meterbook_core::store::{Flow, OwnedBatch, StoreError, UsageSelection};
use std::process::Command;
use std::time::{Duration, Instant};

fn cluster(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/cluster.sh");
    let status = Command::new(script)
        .args(args)
        .status()
        .expect("run cluster.sh");
    assert!(status.success(), "cluster.sh {args:?} failed");
}

/// Starts shard 2 again even when the test fails half-way.
struct Restart;
impl Drop for Restart {
    fn drop(&mut self) {
        cluster(&["start-shard", "2"]);
    }
}

fn batch(rng: &mut fastrand::Rng, rows: usize) -> (OwnedBatch, Vec<Fact>) {
    let mut b = OwnedBatch::default();
    let mut facts = Vec::new();
    for _ in 0..rows {
        let d = Day::from_ymd(2026, 2, rng.u32(1..=28)).unwrap();
        let id = uuid(rng);
        let f = random_fact(rng, id, d, None);
        b.push(&f.fact());
        facts.push(f);
    }
    (b, facts)
}

fn scan(store: &dyn FactStore, n: &EnrollmentNumber) -> Result<Vec<Fact>, StoreError> {
    let vis = Visibility {
        through: 10,
        hidden: vec![],
    };
    let mut out = Vec::new();
    store.scan(n, &vis, &UsageSelection::default(), &mut |b| {
        b.for_each(&mut |f| {
            out.push(Fact::of(f));
            Ok(Flow::Continue)
        })
    })?;
    Ok(out)
}

#[test]
fn a_stopped_shard_fails_its_writes_and_all_reads_until_it_is_back() {
    if std::env::var("MB_CLUSTER_DIR").is_err() {
        if common::base_url().is_some() {
            eprintln!("note: MB_CLUSTER_DIR is not set (no cluster.sh cluster); skipping");
        }
        return;
    }
    let Some(f) = common::fresh() else { return };
    let hosts = f.store.address().hosts.clone();
    if hosts.len() != 2 {
        eprintln!("note: the shard test needs two shards; skipping");
        return;
    }
    // An enrollment on each shard.
    let on = |shard| {
        (0..)
            .map(|i| EnrollmentNumber::parse(&format!("E{i}")).unwrap())
            .find(|n| shard_of(n, 2) == shard)
            .unwrap()
    };
    let (up, down) = (on(0), on(1));
    let mut rng = fastrand::Rng::with_seed(3);
    let (b, mut up_rows) = batch(&mut rng, 300);
    f.store.insert_facts(&up, 1, &b).expect("insert");
    let (b, down_rows) = batch(&mut rng, 300);
    f.store.insert_facts(&down, 1, &b).expect("insert");

    cluster(&["stop-shard", "2"]);
    let restart = Restart;
    let started = Instant::now();
    let (b, _) = batch(&mut rng, 10);
    match f.store.insert_facts(&down, 2, &b) {
        Err(StoreError::Backend(m)) => assert!(m.contains(&hosts[1]), "{m}"),
        other => panic!("an insert into a stopped shard: {other:?}"),
    }
    let (b, more) = batch(&mut rng, 50);
    f.store
        .insert_facts(&up, 2, &b)
        .expect("the live shard takes writes");
    up_rows.extend(more);
    for n in [&up, &down] {
        assert!(
            matches!(scan(&f.store, n), Err(StoreError::Backend(_))),
            "a read with a shard down must fail, not answer in part"
        );
    }
    let problems = f.store.doctor();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&hosts[1]) && p.contains("unreachable")),
        "{problems:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failing took too long"
    );

    drop(restart);
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        match scan(&f.store, &up) {
            Ok(rows) => break rows,
            Err(e) if Instant::now() > deadline => panic!("the shard did not come back: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let mut want = up_rows;
    want.sort_by(|a, b| (a.day, &a.record_id).cmp(&(b.day, &b.record_id)));
    assert!(got == want, "rows of the live shard after the restart");
    let mut want = down_rows;
    want.sort_by(|a, b| (a.day, &a.record_id).cmp(&(b.day, &b.record_id)));
    assert!(scan(&f.store, &down).expect("scan") == want);
    assert_eq!(f.store.doctor(), Vec::<String>::new());
}
