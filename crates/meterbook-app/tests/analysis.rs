//! Cost analysis on a hand-built enrollment with tags, figures computed by
//! hand: grouping by a tag key (rows without it in "(untagged)"), a full
//! period's cells adding up to the statement's figure, a cell unchanged by
//! filters and date ranges, each role's reach, hidden costs, and the bounds.

mod common;

use meterbook_app::analysis::{AnalysisQuery, Dimension, Granularity};
use meterbook_app::{Access, App, AppError};
use meterbook_conformance::fixture::{self, day, ingest_ok, meter, n, period, prices, row, Row, M};
use meterbook_core::access::{Scope, Slot};
use meterbook_core::clock::ManualClock;
use meterbook_core::Money;
use meterbook_sqlite::SqliteStore;
use std::sync::Arc;

struct Setup {
    app: App,
    _dir: tempfile::TempDir,
}

fn tagged(mut r: Row, tags: &str) -> Row {
    r.tags = tags.into();
    r
}

/// January 2025, USD: m1 at 1.005, m2 at 0.333333, a marketplace meter mp at 0.5.
///
/// | row | sub (account) | day | meter | qty | tags | exact cost |
/// |---|---|---|---|---|---|---|
/// | r1 | G1 (a1, A) | 05 | m1 | 1 | env=prod | 1.005 |
/// | r2 | G2 (a1, A) | 05 | m1 | 1 | env=dev | 1.005 |
/// | r3 | G3 (b1, B) | 06 | m2 | 3 | env=prod, team=x | 0.999999 |
/// | r4 | G4 (c1) | 06 | m2 | 1 | — | 0.333333 |
/// | r5 | G1 (a1, A) | 07 | mp | 2 | env=prod | 1.000000 (marketplace) |
///
/// The statement: commitment usage 3.343332 → 3.34, marketplace 1.00: 4.34.
fn setup() -> Setup {
    setup_with(&[])
}

/// [`setup`], then January closed and `late` ingested (rows dated in January
/// become corrections booked in February).
fn setup_with(late: &[Row]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    fixture::enrollment(&store, "USD");
    for p in ["202501", "202502"] {
        prices(
            &store,
            p,
            &[
                meter("m1", "0", &[("0", "1.005")]),
                meter("m2", "0", &[("0", "0.333333")]),
                M {
                    publisher: "Pub",
                    ..meter("mp", "0", &[("0", "0.5")])
                },
            ],
        );
    }
    ingest_ok(
        &store,
        &[
            tagged(
                row("r1", fixture::G1, "2025-01-05", "m1", "1"),
                r#"{"env":"prod"}"#,
            ),
            tagged(
                row("r2", fixture::G2, "2025-01-05", "m1", "1"),
                r#"{"env":"dev"}"#,
            ),
            tagged(
                row("r3", fixture::G3, "2025-01-06", "m2", "3"),
                r#"{"env":"prod","team":"x"}"#,
            ),
            row("r4", fixture::G4, "2025-01-06", "m2", "1"),
            tagged(
                row("r5", fixture::G1, "2025-01-07", "mp", "2"),
                r#"{"env":"prod"}"#,
            ),
        ],
    );
    if !late.is_empty() {
        fixture::close(&store, "202501");
        ingest_ok(&store, late);
    }
    let noon = common::at("2025-02-20", 12);
    let app = common::layer(
        Arc::new(store),
        dir.path().join("r"),
        ManualClock::at_millis(noon),
    );
    app.local_operator()
        .set_visibility(&n(), Some(true), Some(true))
        .unwrap();
    Setup { app, _dir: dir }
}

fn enterprise(app: &App) -> Access {
    app.local_operator().enrollment(&n()).unwrap()
}

fn scoped(app: &App, scope: impl Fn(&meterbook_core::hierarchy::Hierarchy) -> Scope) -> Access {
    let op = app.local_operator();
    let h = enterprise(app).hierarchy().unwrap();
    let (key, _) = op
        .scope_key(&n(), scope(&h), Slot::Primary, 30, false)
        .unwrap();
    app.key(&key.token).unwrap()
}

fn query(group_by: Dimension, start: &str, end: &str) -> AnalysisQuery {
    AnalysisQuery {
        group_by,
        filters: Vec::new(),
        granularity: Granularity::Daily,
        start: day(start),
        end: day(end),
    }
}

fn env() -> Dimension {
    Dimension::TagKey("env".into())
}

/// (bucket, group, cost in cents, accumulated in cents) of every row.
fn cells(a: &meterbook_app::analysis::Analysis) -> Vec<(String, String, i64, i64)> {
    a.rows
        .iter()
        .map(|r| {
            (
                a.bucket_label(r.bucket),
                r.group.clone(),
                r.cost.unwrap().0,
                r.accumulated.unwrap().0,
            )
        })
        .collect()
}

fn c(b: &str, g: &str, cost: i64, acc: i64) -> (String, String, i64, i64) {
    (b.into(), g.into(), cost, acc)
}

#[test]
fn by_tag_key_with_untagged_rows_hand_computed() {
    let s = setup();
    let ent = enterprise(&s.app);
    let a = ent
        .cost_analysis(&query(env(), "2025-01-01", "2025-01-31"))
        .unwrap();
    // 434 cents over the cells in key order (day, group): floors 100, 100,
    // 33, 99, 100 = 432; the two cents left go to the largest remainders,
    // 0.9999 (prod on the 6th) and the first 0.5 tie (dev on the 5th).
    assert_eq!(
        cells(&a),
        vec![
            c("2025-01-05", "dev", 101, 101),
            c("2025-01-05", "prod", 100, 100),
            c("2025-01-06", "(untagged)", 33, 33),
            c("2025-01-06", "prod", 100, 200),
            c("2025-01-07", "prod", 100, 300),
        ]
    );
    assert_eq!(a.total_cost, Some(Money(434)));
    assert_eq!(a.total_records, 5);
    assert_eq!(a.buckets.len(), 31);
    let groups: Vec<(&str, i64)> = a
        .groups
        .iter()
        .map(|g| (g.group.as_str(), g.cost.unwrap().0))
        .collect();
    assert_eq!(
        groups,
        vec![("prod", 300), ("dev", 101), ("(untagged)", 33)]
    );
    // The statement's figure, marketplace included.
    let st = ent.enterprise().unwrap().charges(period("202501")).unwrap();
    assert_eq!(st.billed(2).unwrap(), Money(434));
}

#[test]
fn a_full_period_adds_up_to_the_statement_by_every_dimension() {
    let s = setup();
    let ent = enterprise(&s.app);
    let figure = ent
        .enterprise()
        .unwrap()
        .charges(period("202501"))
        .unwrap()
        .billed(2)
        .unwrap();
    for d in [
        env(),
        Dimension::TagKey("team".into()),
        Dimension::ResourceGroup,
        Dimension::Meter,
        Dimension::Region,
        Dimension::Subscription,
        Dimension::Department,
        Dimension::Account,
        Dimension::Service,
        Dimension::ChargeType,
    ] {
        for g in [Granularity::Daily, Granularity::Monthly] {
            let mut q = query(d.clone(), "2025-01-01", "2025-01-31");
            q.granularity = g;
            let a = ent.cost_analysis(&q).unwrap();
            let sum: i64 = a.rows.iter().map(|r| r.cost.unwrap().0).sum();
            assert_eq!(Money(sum), figure, "{d:?} {g:?}");
            assert_eq!(a.total_cost, Some(figure));
        }
    }
    // Marketplace charges are their own charge type.
    let mut q = query(Dimension::ChargeType, "2025-01-01", "2025-01-31");
    q.granularity = Granularity::Monthly;
    let a = ent.cost_analysis(&q).unwrap();
    assert_eq!(
        cells(&a),
        vec![
            c("2025-01", "commitment", 334, 334),
            c("2025-01", "marketplace", 100, 100),
        ]
    );
}

#[test]
fn filters_and_ranges_only_drop_cells() {
    let s = setup();
    let ent = enterprise(&s.app);
    let full = cells(
        &ent.cost_analysis(&query(env(), "2025-01-01", "2025-01-31"))
            .unwrap(),
    );
    // A filter on the grouped dimension.
    let mut q = query(env(), "2025-01-01", "2025-01-31");
    q.filters = vec![(env(), vec!["prod".into(), "(untagged)".into()])];
    let got = ent.cost_analysis(&q).unwrap();
    let kept: Vec<_> = full.iter().filter(|x| x.1 != "dev").cloned().collect();
    let kept_costs: Vec<_> = kept
        .iter()
        .map(|x| (x.0.clone(), x.1.clone(), x.2))
        .collect();
    let got_costs: Vec<_> = cells(&got).into_iter().map(|x| (x.0, x.1, x.2)).collect();
    assert_eq!(got_costs, kept_costs);
    // A date range inside the period: the 6th alone.
    let got = ent
        .cost_analysis(&query(env(), "2025-01-06", "2025-01-06"))
        .unwrap();
    assert_eq!(
        cells(&got),
        vec![
            c("2025-01-06", "(untagged)", 33, 33),
            c("2025-01-06", "prod", 100, 100)
        ]
    );
    // A filter on another dimension: subscription sub-1 (G1) has r1 and r5.
    let mut q = query(env(), "2025-01-01", "2025-01-31");
    q.filters = vec![(Dimension::Subscription, vec!["sub-1".into()])];
    let got = ent.cost_analysis(&q).unwrap();
    assert_eq!(
        cells(&got),
        vec![
            c("2025-01-05", "prod", 100, 100),
            c("2025-01-07", "prod", 100, 200)
        ]
    );
    // A value nobody has (or outside the reach) matches nothing.
    let mut q = query(env(), "2025-01-01", "2025-01-31");
    q.filters = vec![(Dimension::Subscription, vec!["nope".into()])];
    let got = ent.cost_analysis(&q).unwrap();
    assert!(got.rows.is_empty());
    assert_eq!(got.total_cost, Some(Money::ZERO));
}

#[test]
fn each_role_sees_only_its_reach() {
    let s = setup();
    // Department A: r1, r2, r5 (a1): 1.005 + 1.005 + 1.0 = 3.01 exactly.
    let a = scoped(&s.app, |h| {
        Scope::Department(h.department_by_name("A").unwrap().id)
    });
    let got = a
        .cost_analysis(&query(env(), "2025-01-01", "2025-01-31"))
        .unwrap();
    // Only a1's rows (the cells themselves: department_cells_hand_computed).
    assert_eq!(got.total_records, 3);
    assert_eq!(got.total_cost, Some(Money(301)));
    assert!(got.rows.iter().all(|r| r.group != "(untagged)"));
    // Account c1: r4 only, untagged.
    let c1 = scoped(&s.app, |h| {
        Scope::Account(h.account_by_name("c1").unwrap().id)
    });
    let got = c1
        .cost_analysis(&query(env(), "2025-01-01", "2025-01-31"))
        .unwrap();
    assert_eq!(cells(&got), vec![c("2025-01-06", "(untagged)", 33, 33)]);
    // A filter naming another scope's subscription matches nothing.
    let mut q = query(Dimension::Subscription, "2025-01-01", "2025-01-31");
    q.filters = vec![(Dimension::Subscription, vec!["sub-1".into()])];
    assert!(c1.cost_analysis(&q).unwrap().rows.is_empty());
}

#[test]
fn department_cells_hand_computed() {
    let s = setup();
    let a = scoped(&s.app, |h| {
        Scope::Department(h.department_by_name("A").unwrap().id)
    });
    let got = a
        .cost_analysis(&query(env(), "2025-01-01", "2025-01-31"))
        .unwrap();
    // 301 cents over 1.005 (dev, 5th), 1.005 (prod, 5th), 1.0 (prod, 7th):
    // floors 100 + 100 + 100; the cent left goes to the first 0.5 tie, dev.
    assert_eq!(
        cells(&got),
        vec![
            c("2025-01-05", "dev", 101, 101),
            c("2025-01-05", "prod", 100, 100),
            c("2025-01-07", "prod", 100, 200),
        ]
    );
}

#[test]
fn hidden_costs_show_records_only() {
    let s = setup();
    s.app
        .local_operator()
        .set_visibility(&n(), Some(false), Some(false))
        .unwrap();
    let b1 = scoped(&s.app, |h| {
        Scope::Account(h.account_by_name("b1").unwrap().id)
    });
    let got = b1
        .cost_analysis(&query(env(), "2025-01-01", "2025-01-31"))
        .unwrap();
    assert!(!got.costs);
    assert_eq!(got.rows.len(), 1);
    assert_eq!(got.rows[0].group, "prod");
    assert_eq!(got.rows[0].records, 1);
    assert_eq!(got.rows[0].cost, None);
    assert_eq!(got.total_cost, None);
    let mut out = Vec::new();
    got.write_csv(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Date,tag:env,Records,Cost,AccumulatedCost,Currency\n2025-01-06,prod,1,,,USD\n"
    );
}

#[test]
fn csv_has_the_same_figures() {
    let s = setup();
    let got = enterprise(&s.app)
        .cost_analysis(&query(env(), "2025-01-01", "2025-01-31"))
        .unwrap();
    let mut out = Vec::new();
    got.write_csv(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Date,tag:env,Records,Cost,AccumulatedCost,Currency\n\
         2025-01-05,dev,1,1.01,1.01,USD\n\
         2025-01-05,prod,1,1.00,1.00,USD\n\
         2025-01-06,(untagged),1,0.33,0.33,USD\n\
         2025-01-06,prod,1,1.00,2.00,USD\n\
         2025-01-07,prod,1,1.00,3.00,USD\n"
    );
}

#[test]
fn bounds_are_clear_errors() {
    let s = setup();
    let ent = enterprise(&s.app);
    let bad = |q: AnalysisQuery| match ent.cost_analysis(&q) {
        Err(AppError::Invalid(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(bad(query(env(), "2025-01-01", "2025-04-30")).contains("92 days"));
    assert!(bad(query(env(), "2025-02-01", "2025-01-01")).contains("before"));
    assert!(bad(query(env(), "2024-12-31", "2025-01-01")).contains("term"));
    let mut q = query(env(), "2025-01-01", "2028-01-31");
    q.granularity = Granularity::Monthly;
    assert!(bad(q).contains("term"));
    let mut q = query(env(), "2025-01-01", "2025-01-31");
    q.filters = vec![(Dimension::Region, vec!["x".into(); 51])];
    assert!(bad(q).contains("filter"));
    assert!(Dimension::parse("tag:").is_err());
    assert!(Dimension::parse("colour").is_err());
    assert_eq!(
        Dimension::parse("tag:a:b").unwrap(),
        Dimension::TagKey("a:b".into())
    );
    assert!(Granularity::parse("weekly").is_err());
}

#[test]
fn a_correction_shows_on_the_first_day_of_the_period_it_is_booked_in() {
    // r6: 2 × m1 dated 10 January, arriving after January closed: booked in
    // February at January's rate, 2.01; r7: February's own, 1 × m2, 0.333333.
    let s = setup_with(&[
        tagged(
            row("r6", fixture::G1, "2025-01-10", "m1", "2"),
            r#"{"env":"prod"}"#,
        ),
        row("r7", fixture::G3, "2025-02-03", "m2", "1"),
    ]);
    let ent = enterprise(&s.app);
    let feb = ent
        .cost_analysis(&query(env(), "2025-02-01", "2025-02-28"))
        .unwrap();
    // 2.343333 → 234 cents: 201 and 33 floors, nothing left over.
    assert_eq!(
        cells(&feb),
        vec![
            c("2025-02-01", "prod", 201, 201),
            c("2025-02-03", "(untagged)", 33, 33),
        ]
    );
    let figure = ent
        .enterprise()
        .unwrap()
        .charges(period("202502"))
        .unwrap()
        .billed(2)
        .unwrap();
    assert_eq!(feb.total_cost, Some(figure));
    // January is unchanged by the correction booked after it.
    let jan = ent
        .cost_analysis(&query(env(), "2025-01-01", "2025-01-31"))
        .unwrap();
    assert_eq!(jan.total_cost, Some(Money(434)));
    // Monthly: one cell per period and group.
    let mut q = query(env(), "2025-01-01", "2025-02-28");
    q.granularity = Granularity::Monthly;
    let both = ent.cost_analysis(&q).unwrap();
    assert_eq!(
        cells(&both),
        vec![
            c("2025-01", "(untagged)", 33, 33),
            c("2025-01", "dev", 101, 101),
            c("2025-01", "prod", 300, 300),
            c("2025-02", "(untagged)", 33, 66),
            c("2025-02", "prod", 201, 501),
        ]
    );
}
