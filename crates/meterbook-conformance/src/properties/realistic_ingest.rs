//! Ingestion on realistic-shaped usage (see [`super::realistic`]): the order,
//! split into files and repetition of the records never change a report or
//! a statement; a conflicting re-send and a file with one bad row store
//! nothing; reports read in (day, RecordId) order whatever the arrival.

use crate::fixture::*;
use meterbook_core::ingest::IngestError;
use meterbook_core::store::Store;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use std::collections::HashSet;

use super::realistic::*;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        ..Config::default()
    })
}

/// Keys of an arrival order: the rows sorted by them (the last ones reused
/// for more rows than keys). Shrinks to the rows' own order.
fn arrival() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(any::<u32>(), 160)
}

/// `rows` in the arrival order of `keys`.
fn shuffled(rows: &[RealRow], keys: &[u32]) -> Vec<RealRow> {
    let mut keyed: Vec<(u32, usize)> = (0..rows.len()).map(|i| (keys[i % keys.len()], i)).collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| rows[i].clone()).collect()
}

/// `rows` with copies of `pool[a]` put in at positions `b`.
fn with_copies(rows: &[RealRow], copies: &[(Index, Index)], pool: &[RealRow]) -> Vec<RealRow> {
    let mut feed = rows.to_vec();
    if pool.is_empty() {
        return feed;
    }
    for (a, b) in copies {
        let at = b.index(feed.len() + 1);
        feed.insert(at, pool[a.index(pool.len())].clone());
    }
    feed
}

/// `rows` cut into files at `cuts`, leaving out empty ones.
fn files<'a>(rows: &'a [RealRow], cuts: &[Index]) -> Vec<&'a [RealRow]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(rows.len() + 1)).collect();
    at.push(0);
    at.push(rows.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &rows[w[0]..w[1]]).collect()
}

/// Sends `files` one after another; returns (stored, duplicates).
fn send<S: Store>(s: &S, files: &[&[RealRow]]) -> (u64, u64) {
    let (mut stored, mut dups) = (0, 0);
    for f in files {
        let sum = real_ingest(s, f).expect("ingest a file");
        stored += sum.stored;
        dups += sum.duplicates;
    }
    (stored, dups)
}

/// A period's report is in (own days before corrections, day, RecordId as
/// text) order, and its JSON pages hold the CSV's rows in the same order.
fn check_order(p: &str, v: &PeriodView) -> Result<(), TestCaseError> {
    let ids = column(&v.csv, "RecordId");
    let keys: Vec<(String, String, String)> = column(&v.csv, "IsCorrection")
        .into_iter()
        .zip(column(&v.csv, "Date"))
        .zip(ids.iter().cloned())
        .map(|((c, d), id)| (c, d, id))
        .collect();
    for w in keys.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let before = (a.0 == "true", &a.1, a.2.as_bytes()) < (b.0 == "true", &b.1, b.2.as_bytes());
        prop_assert!(before, "{}: {:?} is reported before {:?}", p, a, b);
    }
    prop_assert_eq!(&page_ids(&v.pages), &ids, "{}: pages and CSV differ", p);
    Ok(())
}

/// The two stores show the same in every period: CSV, JSON pages, statement.
fn same_views(a: &[PeriodView], b: &[PeriodView]) -> Result<(), TestCaseError> {
    for ((p, va), vb) in PERIODS.iter().zip(a).zip(b) {
        prop_assert!(
            va.csv == vb.csv,
            "{}: CSV differs\n{}\n---\n{}",
            p,
            va.csv,
            vb.csv
        );
        prop_assert_eq!(&va.pages, &vb.pages, "{}: JSON pages differ", p);
        prop_assert_eq!(&va.statement, &vb.statement, "{}: statement differs", p);
    }
    Ok(())
}

/// The same realistic records, sent in one file each side of January's
/// close, or shuffled, with copies mixed in, cut into several files: the
/// usage-details CSV, the JSON pages walked by cursor and the statements of
/// every period are identical, every copy is counted as a duplicate (also
/// a copy of an on-time row sent after the close), and every report reads
/// in (day, RecordId) order.
pub fn realistic_ingest_order_does_not_matter<S: Store>(make: &dyn Fn() -> S, cases: u32) {
    // A plain tuple (no flat map), so a failure shrinks to few rows.
    let strategy = (
        real_usage_strategy(),
        arrival(),
        arrival(),
        prop::collection::vec(any::<(Index, Index)>(), 0..6),
        prop::collection::vec(any::<(Index, Index)>(), 0..4),
        prop::collection::vec(any::<Index>(), 0..5),
        prop::collection::vec(any::<Index>(), 0..3),
        1usize..9,
    );
    runner(cases)
        .run(
            &strategy,
            |(u, order, late_order, copies, late_copies, cuts, late_cuts, page)| {
                let (rows, late) = (shuffled(&u.rows, &order), shuffled(&u.late, &late_order));
                let a = make();
                real_setup(&a, &u.world);
                real_ingest(&a, &u.rows).expect("ingest on time");
                close(&a, "202501");
                real_ingest(&a, &u.late).expect("ingest late");

                let b = make();
                real_setup(&b, &u.world);
                let feed = with_copies(&rows, &copies, &u.rows);
                let (stored, dups) = send(&b, &files(&feed, &cuts));
                close(&b, "202501");
                let pool: Vec<RealRow> = u.rows.iter().chain(&u.late).cloned().collect();
                let late_feed = with_copies(&late, &late_copies, &pool);
                let (late_stored, late_dups) = send(&b, &files(&late_feed, &late_cuts));

                prop_assert_eq!(stored, u.rows.len() as u64);
                prop_assert_eq!(late_stored, u.late.len() as u64);
                prop_assert_eq!(dups, copies.len() as u64);
                prop_assert_eq!(late_dups, late_copies.len() as u64);
                let (va, vb) = (views(&a, page), views(&b, page));
                same_views(&va, &vb)?;
                // The late rows are February's corrections.
                let corrections = column(&vb[1].csv, "IsCorrection");
                let corrections = corrections.iter().filter(|c| *c == "true").count();
                prop_assert_eq!(corrections, u.late.len());
                for (p, v) in PERIODS.iter().zip(&vb) {
                    check_order(p, v)?;
                }
                Ok(())
            },
        )
        .unwrap();
}

/// The same row with one field of its content changed.
fn conflicting(w: &World, r: &RealRow, what: u8) -> RealRow {
    let mut c = r.clone();
    match what {
        0 => {
            let (int, frac) = r.quantity.split_once('.').expect("a decimal");
            let micro: u64 =
                int.parse::<u64>().expect("int") * 1_000_000 + frac.parse::<u64>().expect("frac");
            let q = micro + 1;
            c.quantity = format!("{}.{:06}", q / 1_000_000, q % 1_000_000);
        }
        1 => {
            // Another day of the same month.
            let dd: u32 = r.date[8..].parse().expect("day");
            let other = if dd == 1 { 2 } else { dd - 1 };
            c.date = format!("{}{other:02}", &r.date[..8]);
        }
        2 => {
            let i = w
                .meters
                .iter()
                .position(|m| m.id == r.meter)
                .expect("meter");
            c.meter = w.meters[(i + 1) % w.meters.len()].id.clone();
        }
        3 => {
            let i = w
                .subscriptions
                .iter()
                .position(|g| *g == r.subscription)
                .expect("subscription");
            c.subscription = w.subscriptions[(i + 1) % w.subscriptions.len()].clone();
        }
        4 => {
            let mut tags: serde_json::Map<String, serde_json::Value> = if r.tags.is_empty() {
                serde_json::Map::new()
            } else {
                serde_json::from_str(&r.tags).expect("tags")
            };
            tags.insert("patched".into(), "yes".into());
            c.tags = serde_json::Value::Object(tags).to_string();
        }
        5 => c.instance.push_str("-2"),
        6 => c.resource_group.push_str("-2"),
        7 => c.location = format!("{}2", r.location),
        _ => {
            c.additional_info = if r.additional_info.is_empty() {
                r#"{"VCPUs":2}"#.into()
            } else {
                String::new()
            }
        }
    }
    c
}

/// A re-send of a stored RecordId with different content (quantity, day,
/// meter, subscription, tags, resource, group, location or additional info),
/// in a file with new rows and exact copies, or a file that itself holds one
/// id twice with different content, is refused with one reject naming the
/// line and the RecordId, and changes nothing: every period's CSV, JSON
/// pages and statement are as before, and the file's new rows can be sent
/// afterwards.
pub fn realistic_conflicting_resend_changes_nothing<S: Store>(make: &dyn Fn() -> S, cases: u32) {
    let strategy = (
        real_usage_strategy(),
        0usize..4,
        any::<Index>(),
        0u8..9,
        any::<bool>(),
        any::<Index>(),
        prop::collection::vec(any::<(Index, Index)>(), 0..3),
        any::<bool>(),
    );
    runner(cases)
        .run(
            &strategy,
            |(u, held, victim, what, in_file, at, copies, closed)| {
                let held = held.min(u.rows.len() - 1);
                let (stored, new) = u.rows.split_at(u.rows.len() - held);
                let s = make();
                real_setup(&s, &u.world);
                real_ingest(&s, stored).expect("ingest");
                if closed {
                    close(&s, "202501");
                    real_ingest(&s, &u.late).expect("ingest late");
                }
                let before = views(&s, 4);

                let mut file = with_copies(new, &copies, stored);
                let line = if in_file && !new.is_empty() {
                    // The file holds one of its new ids twice; the later is refused.
                    let v = &new[victim.index(new.len())];
                    let first = file.iter().position(|r| r == v).expect("in the file");
                    let at = first + 1 + at.index(file.len() - first);
                    file.insert(at, conflicting(&u.world, v, what));
                    at
                } else {
                    let v = &stored[victim.index(stored.len())];
                    let at = at.index(file.len() + 1);
                    file.insert(at, conflicting(&u.world, v, what));
                    at
                };
                match real_ingest(&s, &file) {
                    Err(IngestError::Rejected { rejects, .. }) => {
                        prop_assert_eq!(rejects.len(), 1, "{:?}", rejects);
                        let r = &rejects[0];
                        prop_assert_eq!(r.line, line as u64 + 2, "{:?}", r);
                        prop_assert_eq!(r.column, Some("RecordId"));
                        prop_assert!(
                            r.reason.contains("already stored with different content"),
                            "{}",
                            r.reason
                        );
                    }
                    other => prop_assert!(false, "a conflict was not refused: {:?}", other),
                }
                prop_assert!(before == views(&s, 4), "a refused file changed a report");
                let sum = real_ingest(&s, new).expect("the new rows alone");
                prop_assert_eq!(sum.stored, new.len() as u64);
                Ok(())
            },
        )
        .unwrap();
}

/// A bad row of a given kind, and the column its reject names.
fn bad_row(r: &RealRow, kind: u8, fresh: &str) -> (RealRow, &'static str) {
    let mut b = r.clone();
    b.record_id = fresh.into();
    let column = match kind {
        0 => {
            b.subscription = uuid4(0x5eed);
            "SubscriptionGuid"
        }
        1 => {
            b.meter = uuid4(0xbad);
            "MeterId"
        }
        2 => {
            b.date = "2024-12-31".into();
            "Date"
        }
        3 => {
            b.date = "2025-02-30".into();
            "Date"
        }
        4 => {
            b.quantity = "-1.5".into();
            "ConsumedQuantity"
        }
        5 => {
            b.quantity = "12,5".into();
            "ConsumedQuantity"
        }
        6 => {
            b.tags = r#"{"env":1}"#.into();
            "Tags"
        }
        7 => {
            b.additional_info = "[1]".into();
            "AdditionalInfo"
        }
        8 => {
            b.record_id = String::new();
            "RecordId"
        }
        9 => {
            b.record_id = format!("{}{}", "r".repeat(93), uuid4(1));
            "RecordId"
        }
        // A day of a period without prices.
        _ => {
            b.date = "2025-04-02".into();
            "MeterId"
        }
    };
    (b, column)
}

/// A file of new realistic rows with one bad row anywhere in it (unknown
/// subscription or meter, a day outside the term or not a day, a negative or
/// malformed quantity, tags or additional info not an object, an empty or
/// too long RecordId, a day without prices) is refused with one reject
/// naming its line and column, and stores nothing; the same file without
/// it then gives exactly what sending all the rows at once gives.
pub fn realistic_bad_row_stores_nothing<S: Store>(make: &dyn Fn() -> S, cases: u32) {
    let strategy = (
        real_usage_strategy(),
        any::<Index>(),
        0u8..11,
        any::<Index>(),
        any::<Index>(),
        any::<u128>(),
    );
    runner(cases)
        .run(&strategy, |(u, held, kind, like, at, bits)| {
            let held = 1 + held.index(u.rows.len());
            let (stored, new) = u.rows.split_at(u.rows.len() - held);
            let s = make();
            real_setup(&s, &u.world);
            real_ingest(&s, stored).expect("ingest");
            let before = views(&s, 6);

            let ids: HashSet<&str> = u.rows.iter().map(|r| r.record_id.as_str()).collect();
            let fresh = [uuid4(bits), "bad-0001".to_string()]
                .into_iter()
                .find(|id| !ids.contains(id.as_str()))
                .expect("a fresh id");
            let (bad, col) = bad_row(&new[like.index(new.len())], kind, &fresh);
            let mut file = new.to_vec();
            let at = at.index(file.len() + 1);
            file.insert(at, bad);
            match real_ingest(&s, &file) {
                Err(IngestError::Rejected { rejects, .. }) => {
                    prop_assert_eq!(rejects.len(), 1, "{:?}", rejects);
                    prop_assert_eq!(rejects[0].line, at as u64 + 2, "{:?}", rejects);
                    prop_assert_eq!(rejects[0].column, Some(col), "{:?}", rejects);
                }
                other => prop_assert!(false, "a bad row was not refused: {:?}", other),
            }
            prop_assert!(before == views(&s, 6), "a refused file changed a report");

            let sum = real_ingest(&s, new).expect("the file without its bad row");
            prop_assert_eq!(sum.stored, new.len() as u64);
            let all = make();
            real_setup(&all, &u.world);
            real_ingest(&all, &u.rows).expect("all rows at once");
            same_views(&views(&all, 6), &views(&s, 6))?;
            Ok(())
        })
        .unwrap();
}

/// Many rows on one day (2025-02-10, a few on the days either side) arriving
/// shuffled in several files with copies, so the day is written in several
/// pieces: the report reads them in (day, RecordId as text) order, ids of
/// every form interleaved, and is byte-identical to sending them at once in
/// that order.
pub fn realistic_one_day_in_many_files<S: Store>(make: &dyn Fn() -> S, cases: u32) {
    let strategy = (
        real_day_strategy(),
        arrival(),
        prop::collection::vec(any::<Index>(), 1..7),
        prop::collection::vec(any::<(Index, Index)>(), 0..4),
        1usize..12,
    );
    runner(cases)
        .run(&strategy, |(u, order, cuts, copies, page)| {
            let mut sorted = u.rows.clone();
            sorted.sort_by(|a, b| (&a.date, &a.record_id).cmp(&(&b.date, &b.record_id)));
            let a = make();
            real_setup(&a, &u.world);
            real_ingest(&a, &sorted).expect("ingest in order");

            let b = make();
            real_setup(&b, &u.world);
            let feed = with_copies(&shuffled(&u.rows, &order), &copies, &u.rows);
            let (stored, dups) = send(&b, &files(&feed, &cuts));
            prop_assert_eq!(stored, u.rows.len() as u64);
            prop_assert_eq!(dups, copies.len() as u64);

            let v = views(&b, page);
            let expected: Vec<String> = sorted.iter().map(|r| r.record_id.clone()).collect();
            prop_assert_eq!(&column(&v[1].csv, "RecordId"), &expected);
            prop_assert_eq!(&page_ids(&v[1].pages), &expected);
            same_views(&views(&a, page), &v)?;
            Ok(())
        })
        .unwrap();
}
