//! The FOCUS export of a small enrollment, end to end through the SQLite store:
//! costs add up to the usage report's, corrections and commitment entries get
//! their FOCUS categories and signs, filters and hidden costs are respected,
//! and the output is deterministic.

use meterbook_conformance::fixture::{
    close, enrollment, ingest_ok, meter, n, period, prices, row, G1, G3, G4, M,
};
use meterbook_core::access::Scope;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, MetadataStore, UsageSelection};
use meterbook_core::{Amount, Day, Money, Price, Quantity};
use meterbook_io::report::export::{export, ExportFormat};
use meterbook_io::report::focus::FocusSettings;
use meterbook_io::report::usage::{Reach, UsageFilter, UsageReport};
use meterbook_io::report::{ReportFormat, ReportMeta, ReportScope};
use meterbook_sqlite::SqliteStore;
use std::collections::HashMap;

fn day(s: &str) -> Day {
    s.parse().expect("test date")
}

fn entry(date: &str, cents: i64, description: &str) -> CommitmentEntry {
    CommitmentEntry {
        date: day(date),
        amount: Money(cents),
        description: description.into(),
    }
}

/// January: usage, a purchase, then the period closes; February: usage, late
/// January usage (corrections booked in February), a credit and a debit.
fn seeded(dir: &tempfile::TempDir) -> SqliteStore {
    let s = SqliteStore::open(dir.path().join("focus.db")).expect("open");
    enrollment(&s, "USD");
    let sheet = [
        meter("c", "0", &[("0", "1"), ("100", "0.5")]),
        meter("g", "0", &[("0", "2"), ("2", "1")]),
        M {
            separately: true,
            ..meter("s", "0", &[("0", "10")])
        },
        M {
            publisher: "Contoso Apps",
            ..meter("m", "0", &[("0", "0.5")])
        },
    ];
    prices(&s, "202501", &sheet);
    prices(&s, "202502", &sheet);
    s.add_entry(
        &n(),
        EntryKind::Purchase,
        &entry("2025-01-01", 100_000, "Monetary commitment"),
    )
    .expect("purchase");
    ingest_ok(
        &s,
        &[
            row("j1", G1, "2025-01-05", "c", "120"),
            row("j2", G3, "2025-01-06", "c", "80.5"),
            row("j3", G4, "2025-01-07", "m", "3"),
        ],
    );
    close(&s, "202501");
    ingest_ok(
        &s,
        &[
            row("f1", G1, "2025-02-02", "c", "100"),
            row("f2", G3, "2025-02-03", "s", "2"),
            row("late-c", G1, "2025-01-20", "c", "10"),
            row("late-g", G3, "2025-01-21", "g", "4"),
        ],
    );
    s.add_entry(
        &n(),
        EntryKind::Adjustment,
        &entry("2025-02-10", 25_000, "Service credit"),
    )
    .expect("credit");
    s.add_entry(
        &n(),
        EntryKind::Adjustment,
        &entry("2025-02-15", -4_000, ""),
    )
    .expect("debit");
    s
}

fn meta(scope: ReportScope) -> ReportMeta {
    ReportMeta {
        enrollment: n().to_string(),
        scope,
        generated_at: "2026-11-26T00:00:00Z".into(),
        watermark: None,
        currency: "USD".into(),
    }
}

fn range() -> UsageFilter {
    UsageFilter::operator(UsageSelection {
        from: Some(day("2025-01-01")),
        to: Some(day("2025-02-28")),
        ..Default::default()
    })
}

/// The FOCUS CSV of a report, as rows of column → value.
fn focus(s: &SqliteStore, filter: UsageFilter) -> (String, Vec<HashMap<String, String>>) {
    let r = UsageReport::prepare(s, &n(), filter, meta(ReportScope::Period("x".into())))
        .expect("prepare");
    let mut out = Vec::new();
    export(
        s,
        &n(),
        &r,
        ExportFormat::FocusCsv,
        &FocusSettings::default(),
        &mut out,
        &mut |_| true,
    )
    .expect("export");
    let text = String::from_utf8(out).expect("utf8");
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let names: Vec<String> = rd
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let rows = rd
        .records()
        .map(|rec| {
            let rec = rec.expect("record");
            names
                .iter()
                .cloned()
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect();
    (text, rows)
}

fn usage_cost(s: &SqliteStore, filter: UsageFilter) -> Amount {
    let r = UsageReport::prepare(s, &n(), filter, meta(ReportScope::Period("x".into())))
        .expect("prepare");
    r.write(s, &n(), ReportFormat::Csv, &mut Vec::new())
        .expect("usage report")
        .cost
}

fn amount(v: &str) -> Amount {
    v.parse().unwrap_or_else(|e| panic!("{v:?}: {e}"))
}

fn category<'a>(rows: &'a [HashMap<String, String>], c: &str) -> Vec<&'a HashMap<String, String>> {
    rows.iter().filter(|r| r["ChargeCategory"] == c).collect()
}

#[test]
fn usage_rows_add_up_to_the_usage_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = seeded(&dir);
    for filter in [
        range(),
        UsageFilter::operator(UsageSelection {
            booked: Some(period("202502")),
            ..Default::default()
        }),
    ] {
        let (_, rows) = focus(&s, filter.clone());
        let usage = category(&rows, "Usage");
        let billed = Amount::checked_sum(usage.iter().map(|r| amount(&r["BilledCost"])));
        assert_eq!(billed, Ok(usage_cost(&s, filter)));
        for r in &usage {
            // The row's exact cost in every cost column, and unit price × quantity = cost.
            for c in ["EffectiveCost", "ContractedCost", "ListCost"] {
                assert_eq!(r[c], r["BilledCost"], "{c}");
            }
            let q: Quantity = r["PricingQuantity"].parse().expect("quantity");
            let p: Price = r["ListUnitPrice"].parse().expect("price");
            assert_eq!(q.checked_mul(p), Ok(amount(&r["ListCost"])));
            assert_eq!(r["ContractedUnitPrice"], r["ListUnitPrice"]);
            assert_eq!(r["ConsumedQuantity"], r["PricingQuantity"]);
            assert_eq!(r["ChargeFrequency"], "Usage-Based");
            assert_eq!(r["BillingAccountId"], "/enrollments/E100");
            assert_eq!(r["BillingAccountName"], "Fixture");
            assert_eq!(r["BillingCurrency"], "USD");
        }
    }
}

#[test]
fn corrections_and_periods() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = seeded(&dir);
    let (_, rows) = focus(&s, range());
    let by_id = |id: &str| {
        rows.iter()
            .find(|r| r["x_RecordId"] == id)
            .unwrap_or_else(|| panic!("no row {id}"))
    };
    for id in ["late-c", "late-g"] {
        assert_eq!(by_id(id)["ChargeClass"], "Correction", "{id}");
        // Booked (billed) in February, charged on its January day.
        assert_eq!(by_id(id)["BillingPeriodStart"], "2025-02-01T00:00:00Z");
        assert_eq!(by_id(id)["BillingPeriodEnd"], "2025-03-01T00:00:00Z");
    }
    assert_eq!(by_id("late-c")["ChargePeriodStart"], "2025-01-20T00:00:00Z");
    assert_eq!(by_id("late-c")["ChargePeriodEnd"], "2025-01-21T00:00:00Z");
    // January had no usage of g: priced at C(4)/4 of January's sheet = 1.5.
    assert_eq!(by_id("late-g")["BilledCost"], "6.0");
    assert_eq!(by_id("late-g")["ListUnitPrice"], "1.5");
    for id in ["j1", "j2", "j3", "f1", "f2"] {
        assert_eq!(by_id(id)["ChargeClass"], "", "{id}");
    }
    assert_eq!(by_id("j1")["BillingPeriodStart"], "2025-01-01T00:00:00Z");
    assert_eq!(by_id("j1")["SubAccountId"], G1);
    assert_eq!(by_id("j1")["SubAccountName"], "sub-1");
    assert_eq!(by_id("j1")["x_AccountName"], "a1");
    assert_eq!(by_id("j1")["x_DepartmentName"], "A");
    assert_eq!(by_id("j1")["ResourceId"], "/res/j1");
    assert_eq!(by_id("j1")["ResourceName"], "j1");
    assert_eq!(by_id("j1")["RegionId"], "westeurope");
    assert_eq!(by_id("j1")["SkuId"], "c");
    assert_eq!(by_id("j1")["ConsumedUnit"], "1 Hour");
    assert_eq!(by_id("j1")["PublisherName"], "Meterbook");
    // A marketplace meter names its publisher.
    assert_eq!(by_id("j3")["PublisherName"], "Contoso Apps");
    assert_eq!(by_id("j3")["ProviderName"], "Meterbook");
}

#[test]
fn purchases_and_adjustments_with_focus_signs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = seeded(&dir);
    let (_, rows) = focus(&s, range());
    // Usage rows first, then the entries by date.
    let first_entry = rows
        .iter()
        .position(|r| r["ChargeCategory"] != "Usage")
        .expect("entries");
    assert!(rows[first_entry..]
        .iter()
        .all(|r| r["ChargeCategory"] != "Usage"));
    let purchase = category(&rows, "Purchase");
    assert_eq!(purchase.len(), 1);
    let p = purchase[0];
    assert_eq!(p["BilledCost"], "1000.0");
    assert_eq!(p["ListCost"], "1000.0");
    assert_eq!(p["ContractedCost"], "1000.0");
    assert_eq!(p["EffectiveCost"], "0.0");
    assert_eq!(p["PricingQuantity"], "1.0");
    assert_eq!(p["ListUnitPrice"], "1000.0");
    assert_eq!(p["ChargeFrequency"], "One-Time");
    assert_eq!(p["ChargeDescription"], "Monetary commitment");
    assert_eq!(p["ChargePeriodStart"], "2025-01-01T00:00:00Z");
    assert_eq!(p["ConsumedQuantity"], "");
    assert_eq!(p["SubAccountId"], "");
    let credit = category(&rows, "Credit");
    assert_eq!(credit.len(), 1);
    for c in ["BilledCost", "EffectiveCost", "ContractedCost", "ListCost"] {
        assert_eq!(credit[0][c], "-250.0", "{c}");
    }
    assert_eq!(credit[0]["ChargeDescription"], "Service credit");
    assert_eq!(credit[0]["PricingQuantity"], "");
    let debit = category(&rows, "Adjustment");
    assert_eq!(debit.len(), 1);
    assert_eq!(debit[0]["BilledCost"], "40.0");
    assert_eq!(debit[0]["ChargeDescription"], "Commitment adjustment");
    assert_eq!(debit[0]["BillingPeriodStart"], "2025-02-01T00:00:00Z");

    // A booked period holds the entries dated in it.
    let (_, feb) = focus(
        &s,
        UsageFilter::operator(UsageSelection {
            booked: Some(period("202502")),
            ..Default::default()
        }),
    );
    assert!(category(&feb, "Purchase").is_empty());
    assert_eq!(category(&feb, "Credit").len(), 1);
    assert_eq!(category(&feb, "Adjustment").len(), 1);

    // Entries belong to the whole enrollment: an enterprise administrator sees
    // them; an account or department filter, or a narrower scope, does not.
    let dept_a = s
        .hierarchy(&n())
        .expect("hierarchy")
        .department_by_name("A")
        .expect("department A")
        .id;
    let cases = [
        (
            UsageFilter {
                reach: Reach::Scope(Scope::Enrollment),
                ..range()
            },
            true,
        ),
        (
            UsageFilter {
                accounts: vec!["a1".into()],
                ..range()
            },
            false,
        ),
        (
            UsageFilter {
                departments: vec!["B".into()],
                ..range()
            },
            false,
        ),
        (
            UsageFilter {
                reach: Reach::Scope(Scope::Department(dept_a)),
                ..range()
            },
            false,
        ),
    ];
    for (filter, with_entries) in cases {
        let (_, rows) = focus(&s, filter.clone());
        let entries = rows
            .iter()
            .filter(|r| r["ChargeCategory"] != "Usage")
            .count();
        assert_eq!(entries, if with_entries { 3 } else { 0 }, "{filter:?}");
        assert!(!category(&rows, "Usage").is_empty());
    }
}

#[test]
fn hidden_costs_read_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = seeded(&dir);
    let a1 = s
        .hierarchy(&n())
        .expect("hierarchy")
        .account_by_name("a1")
        .expect("account a1")
        .id;
    for reach in [Reach::Everything, Reach::Scope(Scope::Account(a1))] {
        let (_, rows) = focus(
            &s,
            UsageFilter {
                show_costs: false,
                reach,
                ..range()
            },
        );
        assert!(!rows.is_empty());
        for r in &rows {
            for c in [
                "BilledCost",
                "EffectiveCost",
                "ContractedCost",
                "ListCost",
                "ListUnitPrice",
                "ContractedUnitPrice",
            ] {
                assert!(
                    r[c].is_empty() || amount(&r[c]) == Amount::ZERO,
                    "{c} = {}",
                    r[c]
                );
            }
        }
        // Quantities are usage, not costs: they stay.
        assert!(category(&rows, "Usage")
            .iter()
            .all(|r| amount(&r["ConsumedQuantity"]) > Amount::ZERO));
    }
}

#[test]
fn the_same_data_gives_the_same_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = seeded(&dir);
    let (a, _) = focus(&s, range());
    let (b, _) = focus(&s, range());
    assert_eq!(a, b);
}

#[test]
fn progress_is_reported_and_can_stop_the_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteStore::open(dir.path().join("big.db")).expect("open");
    enrollment(&s, "USD");
    prices(&s, "202501", &[meter("c", "0", &[("0", "1")])]);
    let rows: Vec<_> = (0..9000)
        .map(|i| row(&format!("r{i:05}"), G1, "2025-01-05", "c", "1"))
        .collect();
    ingest_ok(&s, &rows);
    let r = UsageReport::prepare(&s, &n(), range(), meta(ReportScope::Period("x".into())))
        .expect("prepare");
    let run = |stop_at: u64| {
        let mut seen = Vec::new();
        let result = export(
            &s,
            &n(),
            &r,
            ExportFormat::FocusCsv,
            &FocusSettings::default(),
            &mut std::io::sink(),
            &mut |rows| {
                seen.push(rows);
                rows < stop_at
            },
        );
        (result.map(|t| t.rows).map_err(|e| e.to_string()), seen)
    };
    let (done, seen) = run(u64::MAX);
    assert_eq!(done, Ok(9000));
    // Every TICK rows scanned, then once at the end.
    let tick = meterbook_io::report::usage::TICK;
    let ticks: Vec<u64> = (1..=9000 / tick).map(|k| k * tick).collect();
    assert_eq!(seen, [ticks.clone(), vec![9000]].concat());
    let (stopped, seen) = run(4096);
    assert!(stopped.unwrap_err().contains("stopped"));
    assert_eq!(
        seen,
        ticks[..ticks.iter().position(|&t| t == 4096).unwrap() + 1]
    );
}

/// scripts/focus-gate.sh declares the criteria this module says describe its data.
#[test]
fn the_gate_script_declares_the_applicability_criteria() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/focus-gate.sh");
    let script = std::fs::read_to_string(path).expect("scripts/focus-gate.sh");
    let declared = script
        .lines()
        .find_map(|l| l.strip_prefix("criteria="))
        .expect("a criteria= line");
    assert_eq!(
        declared,
        meterbook_io::report::focus::APPLICABILITY_CRITERIA.join(",")
    );
}
