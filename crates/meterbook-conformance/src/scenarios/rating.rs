//! Rating and the statement: tiers, included quantities, currencies without
//! a minor unit, overage, billed-separately and marketplace charges.

use crate::fixture::*;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, Store, UsageSelection};
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
        marketplace_only: true,
        ..UsageFilter::operator(UsageSelection {
            booked: Some(period("202501")),
            ..Default::default()
        })
    };
    let (csv, t) = report(s, filter, ReportScope::Period("202501".into()));
    assert_eq!(column(&csv, "RecordId"), ["m1"]);
    assert_eq!(column(&csv, "PublisherName"), ["Contoso Apps"]);
    assert_eq!(t.cost.to_string(), "1.5");
}
