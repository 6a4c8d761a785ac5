//! Booking and ingestion: closed periods and late usage, idempotency,
//! attribution by date, price sheets that keep used meters, and the supported
//! ranges.

use crate::fixture::*;
use meterbook_core::ingest::IngestError;
use meterbook_core::store::{Store, StoreError};
use meterbook_core::Money;

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
