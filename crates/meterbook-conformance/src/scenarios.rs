//! Hand-computed golden scenarios for rating, the statement, booking and
//! ingestion. Each takes a fresh, empty store.

use crate::fixture::*;
use meterbook_core::ingest::IngestError;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, Store, StoreError, UsageSelection};
use meterbook_core::Money;
use meterbook_io::report::usage::UsageFilter;
use meterbook_io::report::ReportScope;

fn entry(date: &str, cents: i64, d: &str) -> CommitmentEntry {
    CommitmentEntry {
        date: day(date),
        amount: Money(cents),
        description: d.into(),
    }
}

/// Tiers crossing boundaries inside one row: included 2, 1.00 from 0, 0.50 from 10.
/// One row of 15: C = 8 × 1.00 + 5 × 0.50 = 10.50; rate = 0.7.
pub fn tiers_cross_inside_one_row<S: Store>(s: &S) {
    enrollment(s, "USD");
    prices(
        s,
        "202501",
        &[meter("t", "2", &[("0", "1.00"), ("10", "0.50")])],
    );
    ingest_ok(s, &[row("r1", G1, "2025-01-05", "t", "15")]);
    let (csv, totals) = usage_csv(s, "202501", &[], &[]);
    assert_eq!(column(&csv, "ResourceRate"), ["0.7"]);
    assert_eq!(column(&csv, "Cost"), ["10.5"]);
    assert_eq!(totals.cost.to_string(), "10.5");
    let st = statement(s, "202501");
    assert_eq!(st.service_overage, Money(1050));
    assert_eq!(st.utilized, Money(0));
    assert_eq!(st.total_usage, Money(1050));
}

/// Included quantity larger than usage, then usage growing past it: the blended
/// rate moves, and rows always add up to Q × rate.
pub fn included_quantity_larger_than_usage<S: Store>(s: &S) {
    enrollment(s, "USD");
    prices(s, "202501", &[meter("inc", "100", &[("0", "2")])]);
    ingest_ok(
        s,
        &[
            row("r1", G1, "2025-01-02", "inc", "30"),
            row("r2", G2, "2025-01-03", "inc", "40"),
        ],
    );
    let (csv, totals) = usage_csv(s, "202501", &[], &[]);
    assert_eq!(column(&csv, "Cost"), ["0", "0"]);
    assert_eq!(totals.cost.to_string(), "0");
    assert_eq!(statement(s, "202501").total_usage, Money(0));
    // Q = 120: C = 20 × 2 = 40; rate = 40/120 = 0.333333333333 (12 places, half-even).
    ingest_ok(s, &[row("r3", G3, "2025-01-04", "inc", "50")]);
    let (csv, totals) = usage_csv(s, "202501", &[], &[]);
    assert_eq!(column(&csv, "ResourceRate"), ["0.333333333333"; 3]);
    assert_eq!(
        column(&csv, "Cost"),
        ["9.99999999999", "13.33333333332", "16.66666666665"]
    );
    assert_eq!(totals.cost.to_string(), "39.99999999996");
    // The statement rounds the exact sum once: 40.00.
    assert_eq!(statement(s, "202501").service_overage, Money(4000));
}

/// A row of quantity 0 is stored and costs nothing; a period without usage has a
/// zero statement that carries the balance forward.
pub fn zero_usage<S: Store>(s: &S) {
    enrollment(s, "USD");
    prices(s, "202501", &[meter("z", "0", &[("0", "5")])]);
    s.add_entry(
        &n(),
        EntryKind::Purchase,
        &entry("2025-01-01", 10_000, "commitment"),
    )
    .expect("purchase");
    let sum = ingest_ok(s, &[row("r0", G1, "2025-01-09", "z", "0")]);
    assert_eq!(sum.stored, 1);
    let (csv, _) = usage_csv(s, "202501", &[], &[]);
    assert_eq!(column(&csv, "Cost"), ["0"]);
    assert_eq!(column(&csv, "ResourceRate"), ["0"]);
    let feb = statement(s, "202502");
    assert_eq!(feb.beginning_balance, Money(10_000));
    assert_eq!(feb.ending_balance, Money(10_000));
    assert_eq!(feb.total_usage, Money(0));
    assert_eq!(feb.utilized, Money(0));
}

/// JPY has no minor unit: 0.2 units at 12.5 = 2.5 yen rounds half-even to 2.
pub fn jpy_has_no_minor_unit<S: Store>(s: &S) {
    enrollment(s, "JPY");
    prices(s, "202501", &[meter("y", "0", &[("0", "12.5")])]);
    s.add_entry(
        &n(),
        EntryKind::Purchase,
        &entry("2025-01-01", 1000, "commitment ¥1000"),
    )
    .expect("purchase");
    ingest_ok(
        s,
        &[
            row("r1", G1, "2025-01-02", "y", "0.1"),
            row("r2", G1, "2025-01-03", "y", "0.1"),
        ],
    );
    let st = statement(s, "202501");
    assert_eq!(st.utilized, Money(2));
    assert_eq!(st.ending_balance, Money(998));
    assert_eq!(st.ending_balance.format(0), "998");
    // 3.5 yen rounds to 4 (half to even).
    ingest_ok(s, &[row("r3", G1, "2025-01-04", "y", "0.08")]);
    assert_eq!(statement(s, "202501").utilized, Money(4));
    assert!(Money::parse("1.5", 0).is_err());
}

/// Overage when the commitment runs out, with billed-separately and
/// marketplace charges that never draw on it.
pub fn overage_billed_separately_and_marketplace<S: Store>(s: &S) {
    enrollment(s, "USD");
    let sheet = [
        meter("c", "0", &[("0", "1.00")]),
        M {
            separately: true,
            ..meter("s", "0", &[("0", "10")])
        },
        M {
            publisher: "Contoso Apps",
            ..meter("m", "0", &[("0", "0.5")])
        },
    ];
    prices(s, "202501", &sheet);
    prices(s, "202502", &sheet);
    s.add_entry(
        &n(),
        EntryKind::Purchase,
        &entry("2025-01-01", 10_000, "commitment"),
    )
    .expect("purchase");
    ingest_ok(
        s,
        &[
            row("c1", G1, "2025-01-10", "c", "150.255"),
            row("s1", G3, "2025-01-11", "s", "2"),
            row("m1", G4, "2025-01-12", "m", "3"),
        ],
    );
    let jan = statement(s, "202501");
    // 150.255 rounds half-even to 150.26 (15025.5 cents -> 15026).
    assert_eq!(jan.utilized, Money(10_000));
    assert_eq!(jan.service_overage, Money(5026));
    assert_eq!(jan.charges_billed_separately, Money(2000));
    assert_eq!(jan.total_overage, Money(7026));
    assert_eq!(jan.total_usage, Money(17_026));
    assert_eq!(jan.marketplace_charges, Money(150));
    assert_eq!(jan.ending_balance, Money(0));
    // February: a credit of 30.00 covers 10.00 of usage.
    s.add_entry(
        &n(),
        EntryKind::Adjustment,
        &entry("2025-02-03", 3000, "credit"),
    )
    .expect("adjustment");
    ingest_ok(s, &[row("c2", G1, "2025-02-10", "c", "10")]);
    let feb = statement(s, "202502");
    assert_eq!(feb.beginning_balance, Money(0));
    assert_eq!(feb.adjustments, Money(3000));
    assert_eq!(feb.utilized, Money(1000));
    assert_eq!(feb.ending_balance, Money(2000));
    assert_eq!(feb.service_overage, Money(0));
    assert_eq!(feb.adjustment_details.len(), 1);
    // The marketplace report holds just the marketplace row.
    let filter = UsageFilter {
        selection: UsageSelection {
            booked: Some(period("202501")),
            ..Default::default()
        },
        show_costs: true,
        marketplace_only: true,
        ..Default::default()
    };
    let (csv, t) = report(s, filter, ReportScope::Period("202501".into()));
    assert_eq!(column(&csv, "RecordId"), ["m1"]);
    assert_eq!(column(&csv, "PublisherName"), ["Contoso Apps"]);
    assert_eq!(t.cost.to_string(), "1.5");
}

/// Closing a period locks its rates; late usage dated in it is booked in the
/// oldest open period at the locked rate, and the closed period never changes.
pub fn period_close_then_late_usage<S: Store>(s: &S) {
    enrollment(s, "USD");
    let sheet = [
        meter("c", "0", &[("0", "1"), ("100", "0.5")]),
        meter("g", "0", &[("0", "2"), ("2", "1")]),
    ];
    prices(s, "202501", &sheet);
    prices(s, "202502", &sheet);
    // Q = 200: C = 100 + 50 = 150; rate 0.75.
    ingest_ok(
        s,
        &[
            row("j1", G1, "2025-01-05", "c", "120"),
            row("j2", G2, "2025-01-06", "c", "80"),
        ],
    );
    let before = usage_csv(s, "202501", &[], &[]);
    let st_before = statement(s, "202501");
    close(s, "202501");
    assert!(s.periods(&n()).unwrap()[0].closed);
    // Closed periods refuse new prices.
    assert!(matches!(
        s.import_prices(&n(), period("202501"), &[]),
        Err(StoreError::Conflict(_))
    ));
    ingest_ok(
        s,
        &[
            row("late-c", G1, "2025-01-20", "c", "10"),
            // No usage of g in January: priced at C(4)/4 = (2×2 + 2×1)/4 = 1.5.
            row("late-g", G3, "2025-01-21", "g", "4"),
            row("f1", G1, "2025-02-02", "c", "100"),
        ],
    );
    // A record already stored is a duplicate, even though its period closed.
    let dup = ingest_ok(s, &[row("j1", G1, "2025-01-05", "c", "120")]);
    assert_eq!((dup.stored, dup.duplicates), (0, 1));
    assert_eq!(usage_csv(s, "202501", &[], &[]).0, before.0);
    assert_eq!(statement(s, "202501"), st_before);
    let (feb, t) = usage_csv(s, "202502", &[], &[]);
    assert_eq!(column(&feb, "RecordId"), ["f1", "late-c", "late-g"]);
    assert_eq!(column(&feb, "IsCorrection"), ["false", "true", "true"]);
    assert_eq!(
        column(&feb, "Date"),
        ["2025-02-02", "2025-01-20", "2025-01-21"]
    );
    // f1: Q(Feb) = 100 (corrections do not move February's rate): C = 100, rate 1.
    assert_eq!(column(&feb, "ResourceRate"), ["1", "0.75", "1.5"]);
    assert_eq!(column(&feb, "Cost"), ["100", "7.5", "6"]);
    assert_eq!(t.cost.to_string(), "113.5");
    assert_eq!(statement(s, "202502").service_overage, Money(11_350));
    // Periods close in order, and only once they have ended.
    assert!(meterbook_core::ledger::close_period(s, &n(), period("202503"), day(TODAY)).is_err());
    assert!(
        meterbook_core::ledger::close_period(s, &n(), period("202502"), day("2025-02-20")).is_err()
    );
}

/// Idempotency by RecordId, conflicts, all-or-nothing files and --skip-invalid.
pub fn ingest_is_idempotent_and_atomic<S: Store>(s: &S) {
    enrollment(s, "USD");
    prices(s, "202501", &[meter("c", "0", &[("0", "1")])]);
    let rows = [
        row("a", G1, "2025-01-01", "c", "1"),
        row("b", G1, "2025-01-02", "c", "2"),
    ];
    assert_eq!(ingest_ok(s, &rows).stored, 2);
    let again = ingest_ok(s, &rows);
    assert_eq!((again.stored, again.duplicates), (0, 2));
    // Same RecordId, other content: a conflict, and the whole file is refused.
    let bad = [
        row("c", G1, "2025-01-03", "c", "3"),
        row("a", G1, "2025-01-01", "c", "1.5"),
    ];
    match try_ingest(s, &bad, false) {
        Err(IngestError::Rejected { rejects, .. }) => {
            assert_eq!(rejects.len(), 1);
            assert_eq!(rejects[0].line, 3);
            assert_eq!(rejects[0].column, Some("RecordId"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(usage_csv(s, "202501", &[], &[]).1.rows, 2);
    // Every kind of invalid row, each naming its column.
    let invalid = [
        (
            row("u", "no-such-sub", "2025-01-01", "c", "1"),
            "SubscriptionGuid",
        ),
        (row("v", G1, "2025-01-01", "nometer", "1"), "MeterId"),
        (row("w", G1, "2024-12-31", "c", "1"), "Date"),
        (row("x", G1, "2025-01-01", "c", "-1"), "ConsumedQuantity"),
        (
            row("y", G1, "2025-01-01", "c", "1.0000001"),
            "ConsumedQuantity",
        ),
        (
            Row {
                tags: r#"{"a":1}"#.into(),
                ..row("z", G1, "2025-01-01", "c", "1")
            },
            "Tags",
        ),
        (
            row(&"r".repeat(200), G1, "2025-01-01", "c", "1"),
            "RecordId",
        ),
        (row("d", G1, "2025-02-30", "c", "1"), "Date"),
    ];
    for (r, col) in &invalid {
        match try_ingest(
            s,
            &[row("ok", G1, "2025-01-04", "c", "1"), r.clone()],
            false,
        ) {
            Err(IngestError::Rejected { rejects, .. }) => {
                assert_eq!(rejects[0].column, Some(*col), "{:?}", rejects[0]);
                assert_eq!(rejects[0].line, 3);
            }
            other => panic!("expected {col} rejection, got {other:?}"),
        }
    }
    assert_eq!(
        usage_csv(s, "202501", &[], &[]).1.rows,
        2,
        "nothing of a refused file is stored"
    );
    // skip_invalid keeps the valid rows.
    let mixed: Vec<Row> = std::iter::once(row("ok", G1, "2025-01-04", "c", "1"))
        .chain(invalid.iter().map(|(r, _)| r.clone()))
        .collect();
    let sum = try_ingest(s, &mixed, true).expect("skip invalid");
    assert_eq!((sum.stored, sum.rejected), (1, invalid.len() as u64));
    assert_eq!(usage_csv(s, "202501", &[], &[]).1.rows, 3);
}

/// Usage belongs to the account that owned the subscription on its date; the
/// department and cost center follow the account; filters select by either.
pub fn attribution_follows_subscription_moves<S: Store>(s: &S) {
    enrollment(s, "USD");
    prices(s, "202501", &[meter("c", "0", &[("0", "1")])]);
    s.move_subscription(&n(), G1, "b1", day("2025-01-15"))
        .expect("move");
    ingest_ok(
        s,
        &[
            row("before", G1, "2025-01-14", "c", "1"),
            row("after", G1, "2025-01-15", "c", "2"),
        ],
    );
    let (csv, _) = usage_csv(s, "202501", &[], &[]);
    assert_eq!(column(&csv, "AccountName"), ["a1", "b1"]);
    assert_eq!(column(&csv, "DepartmentName"), ["A", "B"]);
    assert_eq!(column(&csv, "CostCenter"), ["CC-a1", "CC-b1"]);
    assert_eq!(
        column(&usage_csv(s, "202501", &["a1"], &[]).0, "RecordId"),
        ["before"]
    );
    assert_eq!(
        column(&usage_csv(s, "202501", &[], &["B"]).0, "RecordId"),
        ["after"]
    );
    // Moving a subscription to another account by re-importing the hierarchy is refused.
    let h = s.hierarchy(&n()).expect("hierarchy");
    assert_eq!(h.subscriptions.len(), 4);
    // A move into a closed period is refused.
    close(s, "202501");
    assert!(s
        .move_subscription(&n(), G1, "a1", day("2025-01-20"))
        .is_err());
    s.move_subscription(&n(), G1, "a1", day("2025-02-01"))
        .expect("move after the closed period");
}

/// A price sheet that drops a meter with usage in its period is refused.
pub fn prices_keep_used_meters<S: Store>(s: &S) {
    enrollment(s, "USD");
    prices(
        s,
        "202501",
        &[
            meter("c", "0", &[("0", "1")]),
            meter("d", "0", &[("0", "1")]),
        ],
    );
    ingest_ok(s, &[row("a", G1, "2025-01-01", "c", "1")]);
    prices(s, "202501", &[meter("c", "0", &[("0", "2")])]);
    assert_eq!(
        statement(s, "202501").service_overage,
        Money(200),
        "a new sheet reprices the open period"
    );
    let sheet = meterbook_core::prices::build_price_sheet(&[]).expect("empty");
    assert!(matches!(
        s.import_prices(&n(), period("202501"), &sheet),
        Err(StoreError::Conflict(_))
    ));
    assert!(
        s.import_prices(&n(), period("203001"), &sheet).is_err(),
        "outside the term"
    );
}

/// The supported ranges hold across files (design notes, "Supported ranges"):
/// a file whose rows take a meter's period quantity or the enrollment's charges
/// past the range is refused whole, naming the row's line and meter, even when
/// each file fits on its own; exactly at the range is accepted; a new price
/// sheet or a correction that would take stored usage past it is refused.
pub fn ranges_hold_across_files<S: Store>(s: &S) {
    use meterbook_core::limits::{RangeError, MAX_CHARGES};
    enrollment(s, "USD");
    let sheet = [
        meter("c", "0", &[("0", "99.99")]),
        meter("d", "0", &[("0", "1")]),
    ];
    prices(s, "202501", &sheet);
    prices(s, "202502", &sheet);
    ingest_ok(s, &[row("a", G1, "2025-01-01", "c", "600000000000")]);
    let before = statement(s, "202501");
    let second = [
        row("b1", G2, "2025-01-02", "d", "5"),
        row("b2", G1, "2025-01-02", "c", "400000000000"),
        row("b3", G1, "2025-01-03", "c", "0.000001"),
    ];
    let refused = |rows: &[Row], skip_invalid: bool| match try_ingest(s, rows, skip_invalid) {
        Err(IngestError::Rejected { rejects, .. }) => {
            assert_eq!(rejects.len(), 1, "{rejects:?}");
            rejects.into_iter().next().expect("one")
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    // Each file fits; together they pass 1e12 units of c in 202501.
    for skip_invalid in [false, true] {
        let r = refused(&second, skip_invalid);
        assert_eq!((r.line, r.column), (4, Some("ConsumedQuantity")));
        assert_eq!(r.reason, format!("meter c: {}", RangeError::PeriodQuantity));
    }
    assert_eq!(statement(s, "202501"), before, "nothing of it was stored");
    assert_eq!(usage_csv(s, "202501", &[], &[]).1.rows, 1);

    // Exactly at the quantity range: 1e12 units of c.
    ingest_ok(s, &second[..2]);
    let again = ingest_ok(s, &second[..2]);
    assert_eq!(
        (again.stored, again.duplicates),
        (0, 2),
        "re-sending counts once"
    );
    // Charges are 99 990 000 000 005: d in 202502 may add 9 999 999 995, no more.
    let r = refused(&[row("e", G3, "2025-02-01", "d", "9999999996")], false);
    assert_eq!((r.line, r.column), (2, None));
    assert_eq!(r.reason, format!("meter d: {}", RangeError::Charges));
    ingest_ok(s, &[row("e", G3, "2025-02-01", "d", "9999999995")]);
    let mut total = meterbook_core::Amount::ZERO;
    for p in ["202501", "202502"] {
        let charges = meterbook_core::ledger::charges(s, &n(), period(p)).expect("charges");
        let st = statement(s, p);
        st.check_identities(&charges, 2).expect("identities");
        assert_eq!(Ok(usage_csv(s, p, &[], &[]).1.cost), charges.total());
        total = total.checked_add(charges.total().unwrap()).unwrap();
    }
    assert_eq!(total, MAX_CHARGES, "exactly at the range");
    let at_max = statement(s, "202502");
    assert_eq!(at_max.service_overage.format(2), "9999999995.00");

    // A dearer sheet would reprice 202501's usage past the range.
    let dearer = [
        meter("c", "0", &[("0", "99.990000000001")]),
        meter("d", "0", &[("0", "1")]),
    ];
    match try_prices(s, "202501", &dearer) {
        Err(StoreError::Invalid(m)) => assert_eq!(m, format!("meter c: {}", RangeError::Charges)),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(statement(s, "202502"), at_max, "the old prices stay");

    // A cheaper one makes room (5e13 less); corrections of the closed 202501 are
    // booked in 202502 at its locked rate 50 and held to the same ranges.
    prices(
        s,
        "202501",
        &[
            meter("c", "0", &[("0", "50")]),
            meter("d", "0", &[("0", "1")]),
        ],
    );
    close(s, "202501");
    let r = refused(
        &[row("f", G1, "2025-01-20", "c", "1000000000000.000001")],
        false,
    );
    assert_eq!(r.reason, format!("meter c: {}", RangeError::RowQuantity));
    ingest_ok(s, &[row("f1", G1, "2025-01-20", "c", "600000000000")]);
    let r = refused(&[row("f2", G1, "2025-01-21", "c", "400000000001")], false);
    assert_eq!(r.reason, format!("meter c: {}", RangeError::PeriodQuantity));
    let r = refused(&[row("f3", G1, "2025-01-21", "c", "399800000001")], false);
    assert_eq!(r.reason, format!("meter c: {}", RangeError::Charges));
    ingest_ok(s, &[row("f4", G1, "2025-01-21", "c", "399800000000")]);
    let st = statement(s, "202502");
    let charges = meterbook_core::ledger::charges(s, &n(), period("202502")).expect("charges");
    st.check_identities(&charges, 2).expect("identities");
    // 9 999 999 995 of d and 999 800 000 000 corrected units of c at 50.
    assert_eq!(st.service_overage.format(2), "49999999999995.00");
}

/// Another enrollment's data is never visible.
pub fn enrollments_are_isolated<S: Store>(s: &S) {
    enrollment(s, "USD");
    prices(s, "202501", &[meter("c", "0", &[("0", "1")])]);
    ingest_ok(s, &[row("a", G1, "2025-01-01", "c", "1")]);
    let other = meterbook_core::EnrollmentNumber::parse("E200").unwrap();
    s.create_enrollment(&meterbook_core::enrollment::NewEnrollment {
        number: other.clone(),
        name: "Other".into(),
        currency: meterbook_core::Currency::parse("USD").unwrap(),
        start: day("2025-01-01"),
        end: day("2025-12-31"),
        visibility: Default::default(),
    })
    .unwrap();
    assert!(s.hierarchy(&other).unwrap().subscriptions.is_empty());
    assert!(s.price_sheet(&other, period("202501")).unwrap().is_empty());
    assert!(s.rollups(&other, period("202501")).unwrap().is_empty());
    let mut seen = 0;
    s.scan_usage(&other, &UsageSelection::default(), &mut |_| {
        seen += 1;
        Ok(meterbook_core::store::Flow::Continue)
    })
    .unwrap();
    assert_eq!(seen, 0);
    assert!(matches!(
        s.create_enrollment(&meterbook_core::enrollment::NewEnrollment {
            number: other,
            name: "Again".into(),
            currency: meterbook_core::Currency::parse("USD").unwrap(),
            start: day("2025-01-01"),
            end: day("2025-12-31"),
            visibility: Default::default(),
        }),
        Err(StoreError::Conflict(_))
    ));
}

/// Keyset paging: walking a booked period page by page returns every row once,
/// in order (own days, then corrections), even while new usage arrives.
pub fn paging_is_stable_while_usage_arrives<S: Store>(s: &S) {
    enrollment(s, "USD");
    let sheet = [meter("c", "0", &[("0", "1")])];
    prices(s, "202501", &sheet);
    prices(s, "202502", &sheet);
    close(s, "202501");
    let mut rows: Vec<Row> = (0..40)
        .map(|i| {
            row(
                &format!("f{i:02}"),
                G1,
                &format!("2025-02-{:02}", 1 + i % 28),
                "c",
                "1",
            )
        })
        .collect();
    rows.extend((0..5).map(|i| row(&format!("late{i}"), G2, "2025-01-15", "c", "2")));
    ingest_ok(s, &rows);
    let (all, _) = usage_csv(s, "202502", &[], &[]);
    let expected = column(&all, "RecordId");
    assert_eq!(expected.len(), 45);
    let mut seen: Vec<String> = Vec::new();
    let mut filter = UsageFilter {
        selection: UsageSelection {
            booked: Some(period("202502")),
            ..Default::default()
        },
        show_costs: true,
        ..Default::default()
    };
    let mut extra = 0;
    loop {
        let report = meterbook_io::report::usage::UsageReport::prepare(
            s,
            &n(),
            filter.clone(),
            meterbook_io::report::ReportMeta {
                enrollment: n().to_string(),
                scope: ReportScope::Period("202502".into()),
                generated_at: String::new(),
                watermark: None,
                currency: "USD".into(),
            },
        )
        .expect("prepare");
        let mut out = Vec::new();
        let (count, next) = report.write_page(s, &n(), 7, &mut out).expect("page");
        let text = String::from_utf8(out).expect("utf8");
        let ids: Vec<String> = text
            .split("\"recordId\":\"")
            .skip(1)
            .map(|t| t[..t.find('"').expect("end")].to_string())
            .collect();
        assert_eq!(ids.len() as u64, count);
        seen.extend(ids);
        // New usage arrives between pages: one row early in the month (already
        // passed) and one at its end (still ahead).
        extra += 1;
        ingest_ok(
            s,
            &[
                row(&format!("new-early{extra}"), G3, "2025-02-01", "c", "1"),
                row(&format!("new-late{extra}"), G3, "2025-02-28", "c", "1"),
            ],
        );
        match next {
            Some(c) => filter.selection.after = Some(c),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    let original: Vec<&String> = seen.iter().filter(|id| !id.starts_with("new-")).collect();
    assert_eq!(
        original,
        expected.iter().collect::<Vec<_>>(),
        "every original row once, in order"
    );
    assert!(
        !seen.iter().any(|id| id.starts_with("new-early")),
        "rows behind the cursor are not returned"
    );
}

fn job(id: &str, spec: &meterbook_core::jobs::JobSpec, at: i64) -> meterbook_core::jobs::Job {
    use meterbook_core::jobs::{Job, JobStatus};
    Job {
        id: id.into(),
        enrollment: n(),
        spec: spec.clone(),
        requested_by: "test".into(),
        requested_at: at,
        status: JobStatus::Queued,
        started_at: None,
        finished_at: None,
        rows_done: 0,
        rows_expected: None,
        bytes: 0,
        error: None,
        attempts: 0,
        lease_until: None,
        manifest: None,
    }
}

/// Report jobs: identical requests share a queued job; workers claim the
/// oldest; a stalled worker's job is taken over after its lease; only the
/// current attempt may finish it; cancel; retention; the signing secret is
/// made once.
pub fn report_jobs_lifecycle<S: Store>(s: &S) {
    use meterbook_core::access::Scope;
    use meterbook_core::jobs::{JobOutcome, JobProgress, JobSpec, JobStatus};
    enrollment(s, "USD");
    let spec = JobSpec {
        scope: Scope::Enrollment,
        billing_period: None,
        from: day("2025-01-01"),
        to: day("2025-01-31"),
        accounts: vec!["b".into(), "a".into()],
        departments: vec![],
        format: meterbook_core::jobs::ExportFormat::Csv,
    };
    let (j1, new) = s.submit_job(&job("j1", &spec, 1_000)).unwrap();
    assert!(new);
    assert_eq!(j1.status, JobStatus::Queued);
    assert_eq!(j1.spec, spec);
    // Same filters in another order: the same job.
    let mut same = spec.clone();
    same.accounts.reverse();
    let (again, new) = s.submit_job(&job("j2", &same, 2_000)).unwrap();
    assert!(!new);
    assert_eq!(again.id, "j1");
    // Another scope or format: a job of its own.
    let mut other = spec.clone();
    other.format = meterbook_core::jobs::ExportFormat::Parquet;
    assert!(s.submit_job(&job("j3", &other, 3_000)).unwrap().1);

    // The oldest is claimed first; then nothing else is claimable but j3.
    let c = s.claim_job(10_000, 20_000, None).unwrap().unwrap();
    assert_eq!(
        (c.id.as_str(), c.attempts, c.status),
        ("j1", 1, JobStatus::InProgress)
    );
    assert_eq!(s.claim_job(10_000, 20_000, None).unwrap().unwrap().id, "j3");
    assert!(s.claim_job(10_000, 20_000, None).unwrap().is_none());
    let p = JobProgress {
        rows_done: 5,
        rows_expected: Some(10),
        bytes: 99,
    };
    assert_eq!(
        s.job_heartbeat("j1", 1, p, 30_000).unwrap(),
        Some(JobStatus::InProgress)
    );
    let seen = s.job("j1").unwrap().unwrap();
    assert_eq!(
        (seen.rows_done, seen.rows_expected, seen.bytes),
        (5, Some(10), 99)
    );
    // The worker stalls: past its lease another one takes over (attempt 2) ...
    assert!(s.claim_job(25_000, 40_000, Some("j1")).unwrap().is_none());
    let c2 = s.claim_job(31_000, 60_000, Some("j1")).unwrap().unwrap();
    assert_eq!(c2.attempts, 2);
    // ... and the first attempt can no longer report or finish.
    assert_eq!(
        s.job_heartbeat("j1", 1, p, 90_000).unwrap(),
        Some(JobStatus::Failed)
    );
    let done = JobOutcome {
        status: JobStatus::ReadyToDownload,
        progress: JobProgress {
            rows_done: 10,
            rows_expected: Some(10),
            bytes: 123,
        },
        error: None,
        manifest: Some("{}".into()),
    };
    assert!(!s.finish_job("j1", 1, 50_000, &done).unwrap());
    assert!(s.finish_job("j1", 2, 50_000, &done).unwrap());
    let f = s.job("j1").unwrap().unwrap();
    assert_eq!(
        (f.status, f.finished_at, f.bytes),
        (JobStatus::ReadyToDownload, Some(50_000), 123)
    );
    // A finished job is no longer shared: the same request makes a new job.
    assert!(s.submit_job(&job("j4", &spec, 60_000)).unwrap().1);
    // Cancel: a running job stops; a finished one keeps its status.
    assert_eq!(
        s.cancel_job("j3", 70_000, "by test").unwrap(),
        Some(JobStatus::Cancelled)
    );
    assert_eq!(
        s.job_heartbeat("j3", 1, p, 90_000).unwrap(),
        Some(JobStatus::Cancelled)
    );
    assert_eq!(
        s.cancel_job("j1", 70_000, "late").unwrap(),
        Some(JobStatus::ReadyToDownload)
    );
    assert_eq!(s.cancel_job("nope", 70_000, "x").unwrap(), None);
    // Listing, newest first; retention finds ended jobs only.
    let ids: Vec<String> = s.jobs(&n()).unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(ids, ["j4", "j3", "j1"]);
    let old: Vec<String> = s
        .expired_jobs(65_000)
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(old, ["j1"]);
    s.delete_job("j1").unwrap();
    assert!(s.job("j1").unwrap().is_none());
    // The secret is made once and kept.
    let a = s.secret("link", b"first").unwrap();
    assert_eq!(a, b"first");
    assert_eq!(s.secret("link", b"second").unwrap(), b"first");
}

/// Users: unique e-mails (case-insensitive), one role per enrollment, sessions
/// signed out one by one or everywhere, set-password tokens used once and only
/// before they expire, and the audit log newest first.
pub fn users_roles_sessions_and_audit<S: Store>(s: &S) {
    use meterbook_core::access::Scope;
    use meterbook_core::users::{AuditEntry, Role, Session};
    enrollment(s, "USD");
    let u = s
        .create_user("Ada@Example.com", "Ada", Some("$argon2id$x"), 10)
        .unwrap();
    assert_eq!(u.email, "ada@example.com");
    assert!(matches!(
        s.create_user("ada@example.com", "Again", None, 11),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.user_by_email(" ADA@example.com ").unwrap().unwrap().id,
        u.id
    );
    let h = s.hierarchy(&n()).unwrap();
    let a = h.department_by_name("A").unwrap().id;
    let admin = Role {
        enrollment: n(),
        scope: Scope::Enrollment,
        read_only: false,
    };
    s.grant_role(u.id, &admin).unwrap();
    let dept = Role {
        enrollment: n(),
        scope: Scope::Department(a),
        read_only: true,
    };
    s.grant_role(u.id, &dept).unwrap();
    assert_eq!(
        s.roles(u.id).unwrap(),
        std::slice::from_ref(&dept),
        "one role per enrollment"
    );
    let users = s.enrollment_users(&n()).unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].1, dept);
    s.revoke_role(u.id, &n()).unwrap();
    assert!(s.roles(u.id).unwrap().is_empty());

    let sess = |b: u8| Session {
        token_hash: [b; 32],
        user_id: u.id,
        csrf: format!("csrf{b}"),
        created_at: 100,
        last_seen_at: 100,
    };
    s.create_session(&sess(1)).unwrap();
    s.create_session(&sess(2)).unwrap();
    s.touch_session(&[1; 32], 150).unwrap();
    assert_eq!(s.session(&[1; 32]).unwrap().unwrap().last_seen_at, 150);
    s.delete_session(&[1; 32]).unwrap();
    assert!(s.session(&[1; 32]).unwrap().is_none());
    assert!(s.session(&[2; 32]).unwrap().is_some());
    s.delete_user_sessions(u.id).unwrap();
    assert!(s.session(&[2; 32]).unwrap().is_none());

    s.put_password_token(&[7; 32], u.id, 1000).unwrap();
    assert_eq!(s.take_password_token(&[7; 32], 500).unwrap(), Some(u.id));
    assert_eq!(
        s.take_password_token(&[7; 32], 500).unwrap(),
        None,
        "used once"
    );
    // Using a token ends the user's other tokens.
    s.put_password_token(&[5; 32], u.id, 1000).unwrap();
    s.put_password_token(&[6; 32], u.id, 1000).unwrap();
    assert_eq!(s.take_password_token(&[5; 32], 500).unwrap(), Some(u.id));
    assert_eq!(
        s.take_password_token(&[6; 32], 500).unwrap(),
        None,
        "ended by the other's use"
    );
    s.put_password_token(&[8; 32], u.id, 1000).unwrap();
    assert_eq!(
        s.take_password_token(&[8; 32], 1000).unwrap(),
        None,
        "expired"
    );
    s.set_password(u.id, "$argon2id$y").unwrap();
    assert_eq!(
        s.user(u.id).unwrap().unwrap().password_hash.as_deref(),
        Some("$argon2id$y")
    );

    for i in 0..3 {
        s.audit(
            &n(),
            &AuditEntry {
                at: i,
                actor: "ada".into(),
                action: format!("a{i}"),
                detail: String::new(),
            },
        )
        .unwrap();
    }
    let log: Vec<String> = s
        .audit_log(&n(), 2)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(log, ["a2", "a1"]);
}

/// Summaries from the daily sums agree exactly with the usage-details report:
/// per booked period, corrections included, for the whole enrollment and for
/// a department's scope; moves attribute usage by date.
pub fn summaries_match_the_usage_report<S: Store>(s: &S) {
    use meterbook_core::access::Scope;
    use meterbook_core::summary::usage_summary;
    enrollment(s, "USD");
    for p in ["202501", "202502"] {
        prices(
            s,
            p,
            &[
                meter("c", "3", &[("0", "0.7"), ("20", "0.3")]),
                meter("d", "0", &[("0", "1.1")]),
            ],
        );
    }
    let subs = [G1, G2, G3, G4];
    let rows: Vec<Row> = (0..80)
        .map(|i| {
            row(
                &format!("r{i}"),
                subs[i % 4],
                &format!("2025-01-{:02}", 1 + i % 28),
                if i % 3 == 0 { "d" } else { "c" },
                &format!("{}.25", i % 7),
            )
        })
        .collect();
    ingest_ok(s, &rows);
    s.move_subscription(&n(), G2, "b1", day("2025-01-15"))
        .unwrap();
    close(s, "202501");
    ingest_ok(
        s,
        &[
            row("late", G1, "2025-01-15", "c", "2"),
            row("feb", G3, "2025-02-02", "c", "1.5"),
        ],
    );
    let a = s
        .hierarchy(&n())
        .unwrap()
        .department_by_name("A")
        .unwrap()
        .id;
    for p in ["202501", "202502"] {
        let sum = usage_summary(s, &n(), Scope::Enrollment, true, period(p), period(p)).unwrap();
        let (_, t) = usage_csv(s, p, &[], &[]);
        let cost = meterbook_core::Amount::checked_sum(sum.iter().map(|r| r.cost));
        assert_eq!(cost, Ok(t.cost), "period {p}");
        assert_eq!(sum.iter().map(|r| r.rows).sum::<i64>() as u64, t.rows);
        let dept =
            usage_summary(s, &n(), Scope::Department(a), true, period(p), period(p)).unwrap();
        let (_, td) = usage_csv(s, p, &[], &["A"]);
        assert_eq!(
            meterbook_core::Amount::checked_sum(dept.iter().map(|r| r.cost)),
            Ok(td.cost),
            "dept {p}"
        );
        assert!(dept.iter().all(|r| r.department.as_deref() == Some("A")));
        let hidden =
            usage_summary(s, &n(), Scope::Department(a), false, period(p), period(p)).unwrap();
        assert!(hidden
            .iter()
            .all(|r| r.cost == meterbook_core::Amount::ZERO));
    }
}

/// Renaming a department or an account keeps its id, so its usage and keys
/// stay with it; names stay unique.
pub fn departments_and_accounts_rename<S: Store>(s: &S) {
    use meterbook_core::store::Renamed;
    enrollment(s, "USD");
    let before = s.hierarchy(&n()).unwrap();
    let a_id = before.department_by_name("A").unwrap().id;
    let a1_id = before.account_by_name("a1").unwrap().id;
    s.rename(&n(), Renamed::Department, "A", "Research")
        .unwrap();
    s.rename(&n(), Renamed::Account, "a1", "lab").unwrap();
    let h = s.hierarchy(&n()).unwrap();
    assert_eq!(h.department_by_name("Research").unwrap().id, a_id);
    assert_eq!(h.account_by_name("lab").unwrap().id, a1_id);
    assert!(h.department_by_name("A").is_none());
    assert!(matches!(
        s.rename(&n(), Renamed::Account, "lab", "b1"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.rename(&n(), Renamed::Department, "nope", "x"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.rename(&n(), Renamed::Department, "B", " "),
        Err(StoreError::Invalid(_))
    ));
}

/// Operator tokens: listed oldest first, disabled and enabled by id; an
/// unknown id changes nothing.
pub fn operator_tokens_list_and_disable<S: Store>(s: &S) {
    use meterbook_core::access::OperatorToken;
    let token = |id: &str, at: i64| OperatorToken {
        id: id.into(),
        name: format!("feed {id}"),
        secret_hash: [at as u8; 32],
        created_at: at,
        disabled: false,
    };
    assert!(s.operator_tokens().unwrap().is_empty());
    s.put_operator_token(&token("b2", 20)).unwrap();
    s.put_operator_token(&token("a1", 10)).unwrap();
    let listed = s.operator_tokens().unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["a1", "b2"]
    );
    assert!(listed[0] == token("a1", 10), "read back as written");
    assert!(s.set_operator_token_disabled("b2", true).unwrap());
    assert!(s.operator_token("b2").unwrap().unwrap().disabled);
    assert!(!s.operator_token("a1").unwrap().unwrap().disabled);
    assert!(!s.set_operator_token_disabled("zz", true).unwrap());
    assert!(s.set_operator_token_disabled("b2", false).unwrap());
    assert!(!s.operator_token("b2").unwrap().unwrap().disabled);
}
