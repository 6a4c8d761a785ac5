//! Property tests over generated data, run against any backend: rows add up
//! exactly to charges, and the order, batching and repetition of ingestion
//! never change a report.

use crate::fixture::*;
use meterbook_core::access::Scope;
use meterbook_core::fixed::Amount;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, ScanCursor, Store, UsageSelection};
use meterbook_core::Money;
use meterbook_io::report::usage::{Col, UsageFilter, UsageReport, USAGE_DETAIL_COLUMNS};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::value::RawValue;
use std::collections::HashMap;

const SUBS: [&str; 4] = [G1, G2, G3, G4];

#[derive(Clone, Debug)]
struct Meter {
    included: u32,
    /// (minimum, price in 10^-4)
    tiers: Vec<(u32, u32)>,
    kind: u8,
}

fn meter_strategy() -> impl Strategy<Value = Meter> {
    (
        0u32..50,
        prop::collection::btree_map(1u32..500, 1u32..50_000, 0..3),
        1u32..50_000,
        0u8..3,
    )
        .prop_map(|(included, more, first, kind)| {
            let mut tiers = vec![(0, first)];
            tiers.extend(more);
            Meter {
                included,
                tiers,
                kind,
            }
        })
}

fn rows_strategy() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec((0usize..4, 0usize..3, 0i32..59, 0u64..200_000_000), 1..40).prop_map(
        |v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (sub, m, d, q))| {
                    let date = day("2025-01-01").add_days(d).to_string();
                    row(
                        &format!("rec-{i:03}"),
                        SUBS[sub],
                        &date,
                        &format!("m{m}"),
                        &format!("{}.{:06}", q / 1_000_000, q % 1_000_000),
                    )
                })
                .collect()
        },
    )
}

/// (id, included, tiers as (minimum, price) text, kind) of a generated meter.
type OwnedMeter = (String, String, Vec<(String, String)>, u8);

fn setup<S: Store>(s: &S, meters: &[Meter]) {
    setup_in(s, meters, "USD")
}

fn setup_in<S: Store>(s: &S, meters: &[Meter], currency: &str) {
    enrollment(s, currency);
    let owned: Vec<OwnedMeter> = meters
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                format!("m{i}"),
                m.included.to_string(),
                m.tiers
                    .iter()
                    .map(|(min, p)| (min.to_string(), format!("{}.{:04}", p / 10_000, p % 10_000)))
                    .collect(),
                m.kind,
            )
        })
        .collect();
    let tiers: Vec<Vec<(&str, &str)>> = owned
        .iter()
        .map(|(_, _, t, _)| t.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect())
        .collect();
    let sheet: Vec<M<'_>> = owned
        .iter()
        .zip(&tiers)
        .map(|((id, inc, _, kind), t)| M {
            id,
            included: inc,
            tiers: t,
            separately: *kind == 1,
            publisher: if *kind == 2 { "Pub" } else { "" },
        })
        .collect();
    prices(s, "202501", &sheet);
    prices(s, "202502", &sheet);
    s.add_entry(
        &n(),
        EntryKind::Purchase,
        &CommitmentEntry {
            date: day("2025-01-01"),
            amount: Money(50_000),
            description: "commitment".into(),
        },
    )
    .expect("purchase");
}

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

/// Usage quantities near the range: whole fractions of it, the range itself,
/// and small ones.
fn quantity_near_the_range() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u64..=4).prop_map(|k| format!("{}", 250_000_000_000 * k)),
        (0u64..=1_000_000_000_000).prop_map(|q| q.to_string()),
        (0u64..1_000_000).prop_map(|q| format!("0.{q:06}")),
        Just("1000000000000.000001".to_string()),
    ]
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

/// Late rows: dated in January, ingested after it closed, so booked in
/// February as corrections.
fn late_rows_strategy() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec((0usize..4, 0usize..3, 0i32..31, 0u64..90_000_000), 0..6).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (sub, m, d, q))| {
                let date = day("2025-01-01").add_days(d).to_string();
                row(
                    &format!("late-{i:03}"),
                    SUBS[sub],
                    &date,
                    &format!("m{m}"),
                    &format!("{}.{:06}", q / 1_000_000, q % 1_000_000),
                )
            })
            .collect()
    })
}

/// One usage-details row as a JSON page has it: each key's value as written.
type JsonRow = HashMap<String, Box<RawValue>>;

/// The usage-details rows booked in `p` inside `scope`, as the API pages
/// them: `size` rows a page, each page prepared afresh and resumed after the
/// cursor the previous one returned (as `usagedetails?skiptoken=` does).
/// Stops after `most` pages: paging that does not end is an error.
fn json_pages<S: Store>(
    s: &S,
    p: &str,
    scope: Scope,
    size: usize,
    most: usize,
) -> Result<Vec<Vec<JsonRow>>, TestCaseError> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let r = UsageReport::prepare(s, &n(), scoped_filter(p, scope, after), page_meta(p))
            .expect("prepare a page");
        let mut out = Vec::new();
        let (rows, next) = r.write_page(s, &n(), size, &mut out).expect("write a page");
        let text = format!("[{}]", std::str::from_utf8(&out).expect("utf-8"));
        let page: Vec<JsonRow> = serde_json::from_str(&text).expect("a page is JSON");
        assert_eq!(page.len() as u64, rows, "a page counts its rows");
        pages.push(page);
        match next {
            Some(c) => after = Some(c),
            None => return Ok(pages),
        }
        prop_assert!(
            pages.len() < most,
            "{:?} {}: more than {} pages of {} rows",
            scope,
            p,
            most,
            size
        );
    }
}

fn page_meta(p: &str) -> meterbook_io::report::ReportMeta {
    meta(meterbook_io::report::ReportScope::Period(p.into()))
}

/// What a key of `scope` gets for booked period `p`: its rows, with costs.
fn scoped_filter(p: &str, scope: Scope, after: Option<ScanCursor>) -> UsageFilter {
    UsageFilter::within(
        scope,
        true,
        UsageSelection {
            booked: Some(period(p)),
            after,
            ..Default::default()
        },
    )
}

/// A JSON value as the CSV writes the same cell: strings unquoted, `null` empty,
/// numbers, booleans and embedded JSON as written.
fn as_csv_cell(col: Col, v: &RawValue) -> String {
    let raw = v.get();
    match col {
        Col::Tags | Col::AdditionalInfo if raw != "null" => raw.to_string(),
        _ if raw == "null" => String::new(),
        _ if raw.starts_with('"') => serde_json::from_str(raw).expect("a JSON string"),
        _ => raw.to_string(),
    }
}

/// The usage-details download and JSON pages of `p` for a key of `scope`
/// agree with each other and with `shown`, the figure the overview, the
/// Usage page and (for the enterprise) the statement show: the pages hold
/// exactly the CSV's rows, in order, `size` to a page; the cost column adds up
/// to the same exact sum in both; and that sum, rounded to the currency's
/// minor unit as the figure is (`exponent`), is `shown`: once for a department
/// or an account, per kind of charge for the enterprise (the statement's
/// rule). `kinds[i]` is meter `m{i}`'s kind (1 billed separately, 2 marketplace).
fn downloads_tie_out<S: Store>(
    s: &S,
    p: &str,
    scope: Scope,
    size: usize,
    kinds: &[u8],
    exponent: u32,
    shown: Money,
) -> Result<(), TestCaseError> {
    let (csv, csv_totals) = report(s, scoped_filter(p, scope, None), page_meta(p).scope);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect();
    let names: Vec<&str> = USAGE_DETAIL_COLUMNS.iter().map(|c| c.name()).collect();
    prop_assert_eq!(&header, &names);
    let csv_rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            r.expect("a CSV record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    prop_assert_eq!(csv_rows.len() as u64, csv_totals.rows);

    let most = csv_rows.len() / size + 1;
    let pages = json_pages(s, p, scope, size, most)?;
    let last = pages.len() - 1;
    for (k, page) in pages.iter().enumerate() {
        if k < last {
            prop_assert_eq!(page.len(), size, "page {} of {:?} {}", k, scope, p);
        } else {
            prop_assert!(page.len() <= size && (k == 0 || !page.is_empty()));
        }
    }
    let json_rows: Vec<Vec<String>> = pages
        .iter()
        .flatten()
        .map(|r| {
            prop_assert_eq!(r.len(), USAGE_DETAIL_COLUMNS.len());
            USAGE_DETAIL_COLUMNS
                .iter()
                .map(|c| {
                    let v = r.get(&c.json_name());
                    prop_assert!(v.is_some(), "no {} in {:?}", c.json_name(), r);
                    Ok(as_csv_cell(*c, v.expect("checked")))
                })
                .collect()
        })
        .collect::<Result<_, TestCaseError>>()?;
    prop_assert_eq!(
        &json_rows,
        &csv_rows,
        "{:?} {}: pages of {}",
        scope,
        p,
        size
    );

    let col = |name: &str| names.iter().position(|n| *n == name).expect("a column");
    let (cost, meter) = (col("Cost"), col("MeterId"));
    let sum = |rows: &[Vec<String>], kind: Option<u8>| -> Result<Amount, TestCaseError> {
        let mut total = Amount::ZERO;
        for r in rows {
            let i: usize = r[meter][1..].parse().expect("meter m<i>");
            if kind.is_some_and(|k| k != kinds[i]) {
                continue;
            }
            let c: Amount = r[cost].parse().expect("a cost");
            total = total.checked_add(c).expect("in range");
        }
        Ok(total)
    };
    let (pages_sum, csv_sum) = (sum(&json_rows, None)?, sum(&csv_rows, None)?);
    prop_assert_eq!(pages_sum, csv_sum);
    prop_assert_eq!(csv_sum, csv_totals.cost);
    let rounded = if scope == Scope::Enrollment {
        let mut by_kind = Vec::new();
        for k in 0..3 {
            by_kind.push(
                sum(&json_rows, Some(k))?
                    .round_to_minor(exponent)
                    .expect("in range"),
            );
        }
        Money::checked_sum(by_kind).expect("in range")
    } else {
        pages_sum.round_to_minor(exponent).expect("in range")
    };
    prop_assert_eq!(
        rounded,
        shown,
        "{:?} {}: the rows' cost against the figure shown",
        scope,
        p
    );
    Ok(())
}

/// For every period (and both together), scope (the enterprise, each
/// department, each account), focus inside it and grouping, the figures the
/// portal shows tie out: a scope's charges are the statement's (enterprise) or
/// its usage report's exact costs rounded once (department, account); every
/// breakdown's parts add up to its totals; and a focus below the scope shows
/// the part its group has one level up. And the usage-details rows agree
/// with those figures however they are fetched: JSON pages a few rows each,
/// followed by cursor, and the CSV download hold the same rows, and their cost
/// column adds up to the figure shown (see [`downloads_tie_out`]). Enrollments
/// have tiers, all three kinds of charges, corrections, a subscription move,
/// and USD, JPY or CLF.
pub fn figures_tie_out<S: Store>(make: &dyn Fn() -> S, cases: u32) {
    use meterbook_core::figures::{breakdown, scope_charges, Focus, Group, Grouping};
    use meterbook_core::summary::usage_summary;
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(meter_strategy(), 3),
        rows_strategy(),
        late_rows_strategy(),
        0usize..3,
        prop::option::of((0usize..4, 0usize..3, 0i32..59)),
        1usize..6,
    );
    runner
        .run(
            &strategy,
            |(meters, rows, late, currency, moved, page_size)| {
                let (currency, exp) = [("USD", 2), ("JPY", 0), ("CLF", 4)][currency];
                let s = make();
                setup_in(&s, &meters, currency);
                if let Some((sub, to, d)) = moved {
                    s.move_subscription(
                        &n(),
                        SUBS[sub],
                        ["a1", "b1", "c1"][to],
                        day("2025-01-01").add_days(d),
                    )
                    .expect("move");
                }
                ingest_ok(&s, &rows);
                close(&s, "202501");
                ingest_ok(&s, &late);
                let h = s.hierarchy(&n()).expect("hierarchy");
                let dept = |d: &str| h.department_by_name(d).expect("department").id;
                let acct = |a: &str| h.account_by_name(a).expect("account").id;
                let scopes: [(Scope, &[&str], &[&str]); 6] = [
                    (Scope::Enrollment, &[], &[]),
                    (Scope::Department(dept("A")), &[], &["A"]),
                    (Scope::Department(dept("B")), &[], &["B"]),
                    (Scope::Account(acct("a1")), &["a1"], &[]),
                    (Scope::Account(acct("b1")), &["b1"], &[]),
                    (Scope::Account(acct("c1")), &["c1"], &[]),
                ];
                let (jan, feb) = (period("202501"), period("202502"));
                for (scope, accounts, departments) in scopes {
                    let summary = usage_summary(&s, &n(), scope, true, jan, feb).expect("summary");
                    let totals =
                        scope_charges(&s, &n(), scope, &summary, jan, feb, exp).expect("charges");
                    for (i, p) in ["202501", "202502"].into_iter().enumerate() {
                        let want = if scope == Scope::Enrollment {
                            let st = statement(&s, p);
                            st.total_usage
                                .checked_add(st.marketplace_charges)
                                .expect("in range")
                        } else {
                            usage_csv(&s, p, accounts, departments)
                                .1
                                .cost
                                .round_to_minor(exp)
                                .expect("in range")
                        };
                        prop_assert_eq!(totals[i], want, "{:?} {} {}", scope, p, currency);
                        let kinds: Vec<u8> = meters.iter().map(|m| m.kind).collect();
                        downloads_tie_out(&s, p, scope, page_size, &kinds, exp, totals[i])?;
                    }
                    let periods = [jan, feb];
                    let top = breakdown(
                        &summary,
                        &totals,
                        &periods,
                        &Focus::Scope,
                        Grouping::Hierarchy,
                        exp,
                    )
                    .expect("breakdown");
                    let mut focuses = vec![Focus::Scope];
                    for g in top.groups.keys() {
                        match g {
                            Group::Department(d) => {
                                focuses.push(Focus::Department(d.clone()));
                                for r in summary.iter().filter(|r| r.department.as_ref() == Some(d))
                                {
                                    let account = r.account.clone().expect("an account");
                                    let f = Focus::Account {
                                        department: Some(d.clone()),
                                        account,
                                    };
                                    if !focuses.contains(&f) {
                                        focuses.push(f);
                                    }
                                }
                            }
                            Group::Account(a) => focuses.push(Focus::Account {
                                department: None,
                                account: a.clone(),
                            }),
                            _ => {}
                        }
                    }
                    for focus in &focuses {
                        for grouping in [Grouping::Hierarchy, Grouping::Service] {
                            let b = breakdown(&summary, &totals, &periods, focus, grouping, exp)
                                .expect("breakdown");
                            for i in 0..periods.len() {
                                let parts: i64 = b.groups.values().map(|v| v[i].0).sum();
                                prop_assert_eq!(
                                    parts,
                                    b.totals[i].0,
                                    "{:?} {:?} {:?} {}",
                                    scope,
                                    focus,
                                    grouping,
                                    i
                                );
                            }
                            let whole = match focus {
                                Focus::Scope => totals.clone(),
                                Focus::Department(d) => {
                                    top.groups[&Group::Department(d.clone())].clone()
                                }
                                Focus::Account {
                                    department: None,
                                    account,
                                } => top.groups[&Group::Account(account.clone())].clone(),
                                Focus::Account {
                                    department: Some(d),
                                    account,
                                } => breakdown(
                                    &summary,
                                    &totals,
                                    &periods,
                                    &Focus::Department(d.clone()),
                                    Grouping::Hierarchy,
                                    exp,
                                )
                                .expect("breakdown")
                                .groups[&Group::Account(account.clone())]
                                    .clone(),
                            };
                            prop_assert_eq!(&b.totals, &whole, "{:?} {:?}", scope, focus);
                        }
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}
