//! Rows add up exactly to charges, whatever the order, batching, repetition
//! or size of the files they came in.

use crate::fixture::*;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, Store};
use meterbook_core::Money;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::generated::*;

/// For any generated period, the usage rows' costs add up exactly to its
/// charges, and the statement identities hold to the cent.
pub fn rows_add_up_to_charges<S: Store>(make: &dyn Fn() -> S, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (prop::collection::vec(meter_strategy(), 3), rows_strategy());
    runner
        .run(&strategy, |(meters, rows)| {
            let s = make();
            setup(&s, &meters);
            ingest_ok(&s, &rows);
            for p in ["202501", "202502"] {
                let (_, totals) = usage_csv(&s, p, &[], &[]);
                let charges =
                    meterbook_core::ledger::charges(&s, &n(), period(p)).expect("charges");
                prop_assert_eq!(Ok(totals.cost), charges.total());
                let st = statement(&s, p);
                prop_assert!(st.check_identities(&charges, 2).is_ok(), "{:?}", st);
            }
            Ok(())
        })
        .unwrap();
}

/// Ingesting the same records in any order, split into any batches, with any
/// duplicates, gives identical reports and statements.
pub fn ingest_order_does_not_matter<S: Store>(make: &dyn Fn() -> S, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(meter_strategy(), 3),
        rows_strategy().prop_flat_map(|rows| {
            let n = rows.len();
            (
                Just(rows.clone()),
                Just(rows).prop_shuffle(),
                prop::collection::vec(0..n, 0..4),
                1usize..5,
            )
        }),
    );
    runner
        .run(&strategy, |(meters, (rows, shuffled, dups, batches))| {
            let a = make();
            setup(&a, &meters);
            ingest_ok(&a, &rows);
            let b = make();
            setup(&b, &meters);
            let mut feed = shuffled.clone();
            for i in dups {
                feed.push(rows[i].clone());
            }
            let size = feed.len().div_ceil(batches);
            let mut dup_count = 0;
            for chunk in feed.chunks(size) {
                dup_count += ingest_ok(&b, chunk).duplicates;
            }
            prop_assert_eq!(dup_count as usize, feed.len() - rows.len());
            for p in ["202501", "202502"] {
                prop_assert_eq!(usage_csv(&a, p, &[], &[]).0, usage_csv(&b, p, &[], &[]).0);
                prop_assert_eq!(statement(&a, p), statement(&b, p));
            }
            Ok(())
        })
        .unwrap();
}

/// Sequences of files near the limits, in CLF (4 decimals, the finest minor
/// unit): each file is stored whole or refused whole with a range error naming
/// its line and meter; after every file the enrollment's charges are within
/// the range, the report rows add up to them exactly, and every statement
/// holds its identities with nothing negative utilised.
pub fn files_near_the_limits<S: Store>(make: &dyn Fn() -> S, cases: u32) {
    use meterbook_core::limits::{max_money, MAX_CHARGES};
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let file = prop::collection::vec((0usize..3, any::<bool>(), quantity_near_the_range()), 1..4);
    let strategy = (
        prop::collection::vec(file, 1..6),
        0i64..=1000,
        prop::option::of(0usize..6),
    );
    runner
        .run(&strategy, |(files, purchase, resend)| {
            let s = make();
            enrollment(&s, "CLF");
            let sheet = [
                meter("top", "0", &[("0", "100000000")]),
                meter(
                    "tiered",
                    "1000",
                    &[("0", "0.5"), ("500000000000", "99.999999999999")],
                ),
                M {
                    separately: true,
                    ..meter("support", "0", &[("0", "0.000000000001")])
                },
            ];
            prices(&s, "202501", &sheet);
            prices(&s, "202502", &sheet);
            let commitment = Money(max_money(4).0 / 1000 * purchase);
            if commitment > Money::ZERO {
                s.add_entry(
                    &n(),
                    EntryKind::Purchase,
                    &CommitmentEntry {
                        date: day("2025-01-01"),
                        amount: commitment,
                        description: "commitment".into(),
                    },
                )
                .expect("purchase within the range");
            }
            let ids = ["top", "tiered", "support"];
            let mut sent: Vec<Vec<Row>> = Vec::new();
            for (f, rows) in files.iter().enumerate() {
                let rows: Vec<Row> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, (m, second, q))| {
                        let date = if *second { "2025-02-10" } else { "2025-01-10" };
                        row(&format!("f{f}-{i}"), G1, date, ids[*m], q)
                    })
                    .collect();
                let mut feed = rows.clone();
                // Sometimes an earlier file comes again with this one.
                if let Some(earlier) = resend.and_then(|r| sent.get(r)) {
                    feed.extend(earlier.iter().cloned());
                }
                match try_ingest(&s, &feed, false) {
                    Ok(_) => sent.push(rows),
                    Err(meterbook_core::ingest::IngestError::Rejected { rejects, .. }) => {
                        prop_assert!(!rejects.is_empty());
                        for r in &rejects {
                            let meter = &feed[r.line as usize - 2].meter;
                            prop_assert!(
                                r.reason.starts_with(&format!("meter {meter}: "))
                                    && r.reason.contains("the supported range"),
                                "{:?}",
                                r
                            );
                        }
                    }
                    Err(e) => prop_assert!(false, "not a range refusal: {e}"),
                }
                let mut total = meterbook_core::Amount::ZERO;
                for p in ["202501", "202502"] {
                    let charges =
                        meterbook_core::ledger::charges(&s, &n(), period(p)).expect("charges");
                    let charged = charges.total().expect("charges fit");
                    total = total.checked_add(charged).expect("total fits");
                    prop_assert_eq!(usage_csv(&s, p, &[], &[]).1.cost, charged);
                    let st = statement(&s, p);
                    prop_assert_eq!(st.check_identities(&charges, 4), Ok(()));
                    prop_assert!(st.utilized >= Money::ZERO, "{:?}", st);
                }
                prop_assert!(total <= MAX_CHARGES, "{}", total);
            }
            Ok(())
        })
        .unwrap();
}
