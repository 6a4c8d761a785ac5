//! Building blocks for scenarios: an enrollment with a small hierarchy,
//! price sheets, usage rows held in memory, and report helpers.

use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::hierarchy::HierarchyRow;
use meterbook_core::ingest::{ingest, IngestError, IngestOptions, IngestSummary, UsageSource};
use meterbook_core::prices::{build_price_sheet, PriceRow};
use meterbook_core::statement::Statement;
use meterbook_core::store::{Store, StoreResult, UsageSelection};
use meterbook_core::usage::{RawUsage, Reject};
use meterbook_core::{Currency, Day, EnrollmentNumber, Period, Price, Quantity};
use meterbook_io::report::usage::{ReportTotals, UsageFilter, UsageReport};
use meterbook_io::report::{ReportFormat, ReportMeta, ReportScope};

pub const TODAY: &str = "2026-11-26";

pub fn day(s: &str) -> Day {
    s.parse().expect("test date")
}
pub fn period(s: &str) -> Period {
    s.parse().expect("test period")
}
pub fn n() -> EnrollmentNumber {
    EnrollmentNumber::parse("E100").expect("number")
}

/// Subscriptions of the fixture hierarchy.
pub const G1: &str = "11111111-0000-4000-8000-000000000001";
pub const G2: &str = "11111111-0000-4000-8000-000000000002";
pub const G3: &str = "11111111-0000-4000-8000-000000000003";
pub const G4: &str = "11111111-0000-4000-8000-000000000004";

/// Enrollment `E100` (2025-01-01 to 2027-12-31) with departments A (a1: G1, G2)
/// and B (b1: G3), and c1 (G4) without a department.
pub fn enrollment<S: Store>(s: &S, currency: &str) {
    s.create_enrollment(&NewEnrollment {
        number: n(),
        name: "Fixture".into(),
        currency: Currency::parse(currency).expect("currency"),
        start: day("2025-01-01"),
        end: day("2027-12-31"),
        visibility: ChargeVisibility::default(),
    })
    .expect("create enrollment");
    let row = |line, d: &str, a: &str, g: &str| HierarchyRow {
        line,
        department_name: d.into(),
        department_cost_center: if d.is_empty() {
            String::new()
        } else {
            format!("CC-{d}")
        },
        account_name: a.into(),
        account_owner_email: format!("{a}@example.com"),
        account_cost_center: format!("CC-{a}"),
        subscription_guid: g.into(),
        subscription_name: format!("sub-{}", &g[g.len() - 1..]),
    };
    s.upsert_hierarchy(
        &n(),
        &[
            row(2, "A", "a1", G1),
            row(3, "A", "a1", G2),
            row(4, "B", "b1", G3),
            row(5, "", "c1", G4),
        ],
    )
    .expect("hierarchy");
}

/// A meter for a price sheet: id, included quantity, tiers (minimum, price), kind.
pub struct M<'a> {
    pub id: &'a str,
    pub included: &'a str,
    pub tiers: &'a [(&'a str, &'a str)],
    pub separately: bool,
    pub publisher: &'a str,
}

pub fn meter<'a>(id: &'a str, included: &'a str, tiers: &'a [(&'a str, &'a str)]) -> M<'a> {
    M {
        id,
        included,
        tiers,
        separately: false,
        publisher: "",
    }
}

pub fn prices<S: Store>(s: &S, p: &str, meters: &[M<'_>]) {
    try_prices(s, p, meters).expect("import prices");
}

/// Imports a price sheet built from `meters`, returning the store's answer.
pub fn try_prices<S: Store>(s: &S, p: &str, meters: &[M<'_>]) -> StoreResult<usize> {
    let mut rows = Vec::new();
    for m in meters {
        for (min, price) in m.tiers {
            rows.push(PriceRow {
                line: rows.len() as u64 + 2,
                meter_id: m.id.into(),
                meter_name: format!("{} meter", m.id),
                meter_category: "Cat".into(),
                meter_sub_category: "Sub".into(),
                meter_region: "EU West".into(),
                unit_of_measure: "1 Hour".into(),
                part_number: format!("P-{}", m.id),
                unit_price: price.parse::<Price>().expect("price"),
                included_quantity: m.included.parse::<Quantity>().expect("included"),
                tier_minimum_units: min.parse::<Quantity>().expect("tier"),
                charges_billed_separately: m.separately,
                publisher_name: m.publisher.into(),
                offer_name: if m.publisher.is_empty() {
                    String::new()
                } else {
                    "Offer".into()
                },
                plan_name: if m.publisher.is_empty() {
                    String::new()
                } else {
                    "Plan".into()
                },
            });
        }
    }
    let sheet = build_price_sheet(&rows).expect("valid sheet");
    s.import_prices(&n(), period(p), &sheet)
}

/// One usage record, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub record_id: String,
    pub subscription: String,
    pub date: String,
    pub meter: String,
    pub quantity: String,
    pub tags: String,
    pub instance: String,
}

pub fn row(id: &str, sub: &str, date: &str, meter: &str, q: &str) -> Row {
    Row {
        record_id: id.into(),
        subscription: sub.into(),
        date: date.into(),
        meter: meter.into(),
        quantity: q.into(),
        tags: String::new(),
        instance: format!("/res/{id}"),
    }
}

/// Rows in memory as a [`UsageSource`].
pub struct Rows<'a> {
    rows: &'a [Row],
    next: usize,
}

impl UsageSource for Rows<'_> {
    fn next_record(&mut self) -> Option<Result<RawUsage<'_>, Reject>> {
        let r = self.rows.get(self.next)?;
        self.next += 1;
        Some(Ok(RawUsage {
            line: self.next as u64 + 1,
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
        }))
    }
}

pub fn try_ingest<S: Store>(
    s: &S,
    rows: &[Row],
    skip_invalid: bool,
) -> Result<IngestSummary, IngestError> {
    let mut src = Rows { rows, next: 0 };
    ingest(
        s,
        &n(),
        &mut src,
        IngestOptions {
            skip_invalid,
            ..Default::default()
        },
        &mut |_, _| {},
    )
}

pub fn ingest_ok<S: Store>(s: &S, rows: &[Row]) -> IngestSummary {
    try_ingest(s, rows, false).expect("ingest")
}

/// The meta data of the fixture's reports (a fixed generation time).
pub fn meta(scope: ReportScope) -> ReportMeta {
    ReportMeta {
        enrollment: n().to_string(),
        scope,
        generated_at: "2026-11-26T00:00:00Z".into(),
        watermark: None,
        currency: "USD".into(),
    }
}

/// The usage-details report of a booked period, as CSV, with what it wrote.
pub fn usage_csv<S: Store>(
    s: &S,
    p: &str,
    accounts: &[&str],
    departments: &[&str],
) -> (String, ReportTotals) {
    let filter = UsageFilter {
        accounts: accounts.iter().map(|a| a.to_string()).collect(),
        departments: departments.iter().map(|a| a.to_string()).collect(),
        ..UsageFilter::operator(UsageSelection {
            booked: Some(period(p)),
            ..Default::default()
        })
    };
    report(s, filter, ReportScope::Period(p.into()))
}

pub fn report<S: Store>(s: &S, filter: UsageFilter, scope: ReportScope) -> (String, ReportTotals) {
    let r = UsageReport::prepare(s, &n(), filter, meta(scope)).expect("prepare report");
    let mut out = Vec::new();
    let t = r
        .write(s, &n(), ReportFormat::Csv, &mut out)
        .expect("write report");
    (String::from_utf8(out).expect("utf8"), t)
}

/// Values of one column of a CSV report.
pub fn column(csv: &str, name: &str) -> Vec<String> {
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let i = r
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == name)
        .expect("column");
    r.records()
        .map(|rec| rec.expect("csv record")[i].to_string())
        .collect()
}

pub fn statement<S: Store>(s: &S, p: &str) -> Statement {
    meterbook_core::ledger::statement(s, &n(), period(p)).expect("statement")
}

pub fn close<S: Store>(s: &S, p: &str) {
    meterbook_core::ledger::close_period(s, &n(), period(p), day(TODAY)).expect("close period");
}
