//! The exactly-once protocol across the ledger and the fact store, at each
//! point where an ingest can die (docs/design-notes.md, "Exactly once across
//! two databases"): whatever is left, no read sees a partial ingest, and
//! running the file again stores every record exactly once.
//!
//! The fact store is the in-memory reference, which can be told to fail
//! like a shard that went down; the ledger is the PostgreSQL server
//! `MB_TEST_STORE` names (skipped without it unless `MB_REQUIRE_CLUSTER=1`).

mod common;

use common::{url, TestStore};
use meterbook_conformance::fixture::*;
use meterbook_core::ingest::IngestError;
use meterbook_core::store::{UsageStore, Written};
use meterbook_core::usage::OwnedUsage;
use meterbook_postgres::FailPoint;
use std::time::{Duration, Instant};

/// A file of `n` rows over January 2025, spread over meters and days.
fn file(tag: &str, n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let mut r = row(
                &format!("{tag}-{i:06}"),
                if i % 3 == 0 { G2 } else { G1 },
                &format!("2025-01-{:02}", 1 + i % 28),
                if i % 2 == 0 { "c" } else { "d" },
                &format!("{}.{:03}", 1 + i % 7, i % 1000),
            );
            r.tags = format!(r#"{{"n":"{}"}}"#, i % 5);
            r
        })
        .collect()
}

fn seeded(test: &str) -> Option<TestStore> {
    let s = TestStore::new(&url(test)?);
    enrollment(&*s, "USD");
    prices(
        &*s,
        "202501",
        &[
            meter("c", "0", &[("0", "0.5")]),
            meter("d", "10", &[("0", "2"), ("100", "1.5")]),
        ],
    );
    // A second after a crash, the next ingest may take the slot over.
    s.set_ingest_lease(Duration::from_secs(1));
    Some(s)
}

/// What a clean ingest of `rows` leaves: the period's report and statement.
fn clean_result(rows: &[Row]) -> Option<(String, String)> {
    let s = seeded("clean")?;
    ingest_ok(&*s, rows);
    Some(figures(&s))
}

fn figures(s: &TestStore) -> (String, String) {
    (
        usage_csv(&**s, "202501", &[], &[]).0,
        format!("{:?}", statement(&**s, "202501")),
    )
}

fn stored_rows(s: &TestStore) -> u64 {
    usage_csv(&**s, "202501", &[], &[]).1.rows
}

#[test]
fn each_crash_point_leaves_nothing_visible_and_a_rerun_stores_once() {
    let rows = file("r", 2_000);
    let Some(clean) = clean_result(&rows) else {
        return;
    };
    for point in [FailPoint::AfterFacts, FailPoint::AfterDaySums] {
        let s = seeded("crash").unwrap();
        let empty = figures(&s);
        s.fail_at(Some(point));
        let err = try_ingest(&*s, &rows, false).expect_err("the ingest dies");
        assert!(matches!(err, IngestError::Store(_)), "{point:?}: {err:?}");
        // Its rows are in the fact store, and no read sees them.
        assert_eq!(s.facts.stored_rows(&n()), rows.len(), "{point:?}");
        assert_eq!(figures(&s), empty, "{point:?}: a partial ingest is visible");
        // The re-run waits out the dead writer's lease, takes over, deletes
        // what it left, and stores everything once.
        let started = Instant::now();
        let again = ingest_ok(&*s, &rows);
        assert_eq!(again.stored, rows.len() as u64, "{point:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "{point:?}: no wait for the lease"
        );
        assert_eq!(figures(&s), clean, "{point:?}");
        assert_eq!(
            s.facts.stored_rows(&n()),
            rows.len(),
            "{point:?}: leftovers not purged"
        );
        let third = ingest_ok(&*s, &rows);
        assert_eq!(
            (third.stored, third.duplicates),
            (0, rows.len() as u64),
            "{point:?}"
        );
    }
}

#[test]
fn a_crash_after_the_ledger_commit_lost_nothing() {
    let rows = file("r", 500);
    let Some(clean) = clean_result(&rows) else {
        return;
    };
    let s = seeded("after_commit").unwrap();
    s.fail_at(Some(FailPoint::AfterLedgerCommit));
    assert!(try_ingest(&*s, &rows, false).is_err());
    // The caller never heard, but it was stored: a re-run finds duplicates.
    assert_eq!(figures(&s), clean);
    let again = ingest_ok(&*s, &rows);
    assert_eq!((again.stored, again.duplicates), (0, rows.len() as u64));
    assert_eq!(figures(&s), clean);
}

/// A writer that dies while it writes (some rows sent to the fact store,
/// more in its buffer): nothing shows, the next ingest purges what it sent.
#[test]
fn a_writer_killed_mid_file() {
    let rows = file("m", 20_000);
    let Some(clean) = clean_result(&rows) else {
        return;
    };
    let s = seeded("mid_file").unwrap();
    let empty = figures(&s);
    {
        let mut w = s.begin_usage(&n()).expect("begin");
        let catalog = w.catalog();
        let batch: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let raw = meterbook_core::usage::RawUsage {
                    line: i as u64 + 2,
                    record_id: &r.record_id,
                    subscription_guid: &r.subscription,
                    date: &r.date,
                    meter_id: &r.meter,
                    consumed_quantity: &r.quantity,
                    instance_id: &r.instance,
                    resource_group: "rg",
                    resource_location: "westeurope",
                    consumed_service: "Svc",
                    tags: &r.tags,
                    ..Default::default()
                };
                let c = catalog.classify(&raw).expect("valid row");
                (OwnedUsage::from_raw(&raw), c)
            })
            .collect();
        let mut out = Vec::new();
        w.write_batch(&batch, &mut out).expect("write");
        assert!(out.iter().all(|o| *o == Written::Stored));
        // The process dies: no commit, no clean-up.
        std::mem::forget(w);
    }
    assert!(
        s.facts.stored_rows(&n()) > 0,
        "some rows reached the fact store"
    );
    assert_eq!(figures(&s), empty);
    let again = ingest_ok(&*s, &rows);
    assert_eq!(again.stored, rows.len() as u64);
    assert_eq!(figures(&s), clean);
    assert_eq!(s.facts.stored_rows(&n()), rows.len());
}

/// The fact store goes down during an ingest (a shard stopped): a clear
/// error, nothing shown; once it is back, the re-run stores once.
#[test]
fn a_fact_store_down_mid_ingest() {
    let rows = file("d", 20_000);
    let Some(clean) = clean_result(&rows) else {
        return;
    };
    let s = seeded("store_down").unwrap();
    let empty = figures(&s);
    // The first insert goes through, the second fails, and so does the
    // clean-up that follows.
    s.facts.fail_after(1);
    let err = try_ingest(&*s, &rows, false).expect_err("the store is down");
    assert!(err.to_string().contains("down"), "{err}");
    assert_eq!(figures(&s), empty);
    s.facts.recover();
    assert_eq!(figures(&s), empty, "the abandoned rows stay hidden");
    let again = ingest_ok(&*s, &rows);
    assert_eq!(again.stored, rows.len() as u64);
    assert_eq!(figures(&s), clean);
    assert_eq!(
        s.facts.stored_rows(&n()),
        rows.len(),
        "the abandoned rows were purged"
    );
}

/// Two nodes ingest the same enrollment at once: the second waits for the
/// first, then finds its records stored.
#[test]
fn a_second_node_waits_for_the_first() {
    let rows = file("w", 3_000);
    let Some(s) = seeded("two_writers") else {
        return;
    };
    let other = s.another();
    let first = s.begin_usage(&n()).expect("begin");
    let waited = std::thread::scope(|scope| {
        let second = scope.spawn(|| {
            let started = Instant::now();
            let summary = ingest_ok(&other, &rows);
            (started.elapsed(), summary)
        });
        std::thread::sleep(Duration::from_millis(800));
        // The first writer commits nothing (an empty ingest) and lets go.
        first.commit().expect("commit");
        second.join().expect("second node")
    });
    assert!(
        waited.0 >= Duration::from_millis(700),
        "did not wait: {:?}",
        waited.0
    );
    assert_eq!(waited.1.stored, rows.len() as u64);
    assert_eq!(stored_rows(&s), rows.len() as u64);
}
