//! How fast `scan` streams one enrollment's facts: loads
//! `MB_SCAN_ROWS` (default 1,000,000) realistic rows into a fresh database of
//! `MB_TEST_USAGE_STORE` and prints rows/s. Ignored by default (it takes a
//! while and measures nothing in a debug build):
//!
//! (`MB_SCAN_KEEP=1` keeps the database.)
//!
//! ```sh
//! MB_TEST_USAGE_STORE=… cargo test --release -p meterbook-clickhouse \
//!     --test scan_speed -- --ignored --nocapture
//! ```

mod common;

use meterbook_clickhouse::ChFacts;
use meterbook_conformance::fact_store::{enrollment, random_fact, uuid};
use meterbook_core::calendar::{Day, Period};
use meterbook_core::facts::{FactStore, Visibility};
use meterbook_core::store::{Flow, OwnedBatch, UsageSelection};
use std::time::Instant;

#[test]
#[ignore = "a benchmark: run with --release --ignored --nocapture"]
fn scan_speed() {
    if std::env::var("MB_SCAN_REUSE").as_deref() == Ok("1") {
        // The database of an earlier run kept with MB_SCAN_KEEP=1, named in
        // MB_TEST_USAGE_STORE: only the scans are run again.
        let Some(url) = common::base_url() else {
            return;
        };
        scans(&ChFacts::open(&url).expect("open"));
        return;
    }
    let Some(f) = common::fresh() else { return };
    let rows: usize = std::env::var("MB_SCAN_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // MB_SCAN_BIG_TAGS=1 keeps the conformance data's 12-20 KB tag sets on
    // one row in 50 (683 bytes of text a row instead of about 360).
    let big_tags = std::env::var("MB_SCAN_BIG_TAGS").as_deref() == Ok("1");
    let n = enrollment(0);
    let mut rng = fastrand::Rng::with_seed(42);
    let first = Day::from_ymd(2026, 1, 1).unwrap();
    let started = Instant::now();
    let mut loaded = 0;
    let mut bytes = 0usize;
    while loaded < rows {
        let mut batch = OwnedBatch::default();
        for _ in 0..20_000.min(rows - loaded) {
            let d = first.add_days(rng.i32(0..90));
            let id = uuid(&mut rng);
            let mut fact = if rng.u32(0..10) == 0 && d.period().month() < 3 {
                let booked = Period::new(2026, 3).unwrap();
                random_fact(&mut rng, id.to_uppercase(), d, Some(booked))
            } else {
                random_fact(&mut rng, id, d, None)
            };
            if !big_tags && fact.texts[4].len() > 1000 {
                // The benchmark shape's tags (docs/benchmarks.md "Data
                // shapes"): a few short pairs, about 460 bytes of CSV a row.
                fact.texts[4] =
                    "{\"env\":\"prod\",\"app\":\"billing\",\"costCenter\":\"CC-1042\"}".into();
            }
            bytes += fact.record_id.len() + fact.texts.iter().map(String::len).sum::<usize>();
            batch.push(&fact.fact());
        }
        loaded += batch.len();
        f.store.insert_facts(&n, 1, &batch).expect("insert");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "loaded {rows} rows ({:.0} MB of text) in {secs:.1} s: {:.0} rows/s",
        bytes as f64 / 1e6,
        rows as f64 / secs
    );
    scans(&f.store);
    if std::env::var("MB_SCAN_KEEP").as_deref() == Ok("1") {
        // Kept for a look at the server's side of the scan.
        println!("kept {}", f.url);
        std::mem::forget(f);
    }
}

fn scans(store: &ChFacts) {
    let n = enrollment(0);
    let vis = Visibility {
        through: 1,
        hidden: vec![],
    };
    let selections = [
        ("all", UsageSelection::default()),
        (
            "booked 2026-03",
            UsageSelection {
                booked: Period::new(2026, 3),
                ..Default::default()
            },
        ),
    ];
    for (name, sel) in selections {
        for _ in 0..2 {
            let started = Instant::now();
            let (mut count, mut text) = (0usize, 0usize);
            store
                .scan(&n, &vis, &sel, &mut |b| {
                    b.for_each(&mut |r| {
                        count += 1;
                        text += r.record_id.len() + r.tags.len() + r.instance_id.len();
                        Ok(Flow::Continue)
                    })
                })
                .expect("scan");
            let secs = started.elapsed().as_secs_f64();
            println!(
                "scan {name}: {count} rows in {secs:.2} s: {:.0} rows/s",
                count as f64 / secs
            );
            assert!(count > 0 && text > 0);
        }
    }
}
