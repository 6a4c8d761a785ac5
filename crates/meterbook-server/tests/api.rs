//! The Reporting API through the real server on a random port.
//!
//! Every test calls [`spawn_app`], which opens a fresh SQLite store in a
//! temporary directory, seeds it through the storage traits (two enrollments,
//! a hierarchy with a subscription move, price sheets with a tiered, a
//! billed-separately and a marketplace meter, usage ingested from CSV, a
//! purchase, an adjustment, closed periods, corrections, API keys of every
//! scope), and serves it with `meterbook_server::serve` on 127.0.0.1:0.
//!
//! Expected rows are computed independently from the seed (which account owns
//! a subscription on a day, booking order), and figures are compared as exact
//! decimal text with `meterbook_core::ledger::statement` and the
//! `meterbook_io` usage report. A wrapping store (`FlakyStore`) makes usage
//! reads fail or panic to check that a 500 says nothing of its cause.

use flate2::read::GzDecoder;
use meterbook_core::access::{KeyStore, Scope, Slot};
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::hierarchy::HierarchyRow;
use meterbook_core::ingest::{ingest, IngestOptions};
use meterbook_core::prices::{build_price_sheet, MeterPrice, PriceRow};
use meterbook_core::statement::{CommitmentEntry, Statement};
use meterbook_core::store::{EntryKind, MetadataStore, UsageSelection};
use meterbook_core::{Currency, Money};
use meterbook_io::input::usage::UsageReader;
use meterbook_io::report::usage::{UsageFilter, UsageReport};
use meterbook_io::report::{ReportFormat, ReportMeta, ReportScope};
use meterbook_server::ServerSettings;
use meterbook_sqlite::SqliteStore;
use meterbook_testkit::seed::{self, KeySpec};
use meterbook_testkit::seed::{day, num, period};
use meterbook_testkit::{roomy, Clock, ManualClock, Resp, UsageReads};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::time::Duration;

// ---------------------------------------------------------------------------
// The seed
// ---------------------------------------------------------------------------

/// The enrollment under test and a second one.
const N: &str = "E100";
const OTHER: &str = "E200";
/// Usage complete through (E100); E200 has no watermark.
const WATERMARK: &str = "2025-12-20";
/// G2 moves from account a1 (department A) to b1 (department B) on this day.
const MOVE_DAY: &str = "2025-11-20";

const G1: &str = "11111111-0000-4000-8000-000000000001";
const G2: &str = "11111111-0000-4000-8000-000000000002";
const G3: &str = "11111111-0000-4000-8000-000000000003";
const G4: &str = "11111111-0000-4000-8000-000000000004";
const G5: &str = "11111111-0000-4000-8000-000000000005";
const G9: &str = "99999999-0000-4000-8000-000000000009";

/// The usage-details columns of design §4 in their v3 JSON spelling, in order.
const V3_USAGE_FIELDS: [&str; 36] = [
    "accountId",
    "accountName",
    "accountOwnerEmail",
    "additionalInfo",
    "chargesBilledSeparately",
    "consumedQuantity",
    "consumedService",
    "cost",
    "costCenter",
    "date",
    "departmentId",
    "departmentName",
    "instanceId",
    "location",
    "meterCategory",
    "meterId",
    "meterName",
    "meterRegion",
    "meterSubCategory",
    "offerId",
    "partNumber",
    "product",
    "resourceGroup",
    "resourceGuid",
    "resourceLocation",
    "resourceRate",
    "serviceInfo1",
    "serviceInfo2",
    "serviceName",
    "serviceTier",
    "subscriptionGuid",
    "subscriptionName",
    "tags",
    "unitOfMeasure",
    "recordId",
    "isCorrection",
];

/// The Enterprise Agreement detail-report columns of the legacy endpoint.
const LEGACY_FIELDS: [&str; 31] = [
    "AccountOwnerId",
    "AccountName",
    "ServiceAdministratorId",
    "SubscriptionId",
    "SubscriptionGuid",
    "SubscriptionName",
    "Date",
    "Month",
    "Day",
    "Year",
    "Product",
    "MeterId",
    "MeterCategory",
    "MeterSubCategory",
    "MeterRegion",
    "MeterName",
    "ConsumedQuantity",
    "ResourceRate",
    "ExtendedCost",
    "ResourceLocation",
    "ConsumedService",
    "InstanceId",
    "ServiceInfo1",
    "ServiceInfo2",
    "AdditionalInfo",
    "Tags",
    "StoreServiceIdentifier",
    "DepartmentName",
    "CostCenter",
    "UnitOfMeasure",
    "ResourceGroup",
];

/// One seeded usage record and where it is booked.
#[derive(Clone, Debug)]
struct SeedRow {
    id: String,
    sub: &'static str,
    date: String,
    meter: &'static str,
    qty: String,
    tags: &'static str,
    booked: &'static str,
    correction: bool,
}

impl SeedRow {
    /// The order of a booked period's rows: own days first, then corrections,
    /// each by (Date, RecordId).
    fn key(&self) -> (bool, String, String) {
        (self.correction, self.date.clone(), self.id.clone())
    }
    fn instance(&self) -> String {
        format!("/subscriptions/{}/vm/{}", self.sub, self.id)
    }
}

fn seed_row(
    id: &str,
    sub: &'static str,
    date: &str,
    meter: &'static str,
    qty: &str,
    booked: &'static str,
) -> SeedRow {
    SeedRow {
        id: id.into(),
        sub,
        date: date.into(),
        meter,
        qty: qty.into(),
        tags: "",
        booked,
        correction: false,
    }
}

/// The account that owns `sub` on `date` (independent of the server's code).
fn account_of(sub: &str, date: &str) -> &'static str {
    match sub {
        G1 => "a1",
        G2 if date < MOVE_DAY => "a1",
        G2 => "b1",
        G3 => "b1",
        G4 => "c1",
        G5 => "a2",
        G9 => "x1",
        _ => panic!("unknown subscription {sub}"),
    }
}

fn department_of(account: &str) -> &'static str {
    match account {
        "a1" | "a2" => "A",
        "b1" => "B",
        "x1" => "X",
        _ => "",
    }
}

/// Usage of October 2025 (closed after ingest). TIER01 uses 130 units.
fn october_rows() -> Vec<SeedRow> {
    vec![
        seed_row("o1", G1, "2025-10-03", "TIER01", "50", "202510"),
        seed_row("o2", G3, "2025-10-07", "SEP01", "5", "202510"),
        seed_row("o3", G4, "2025-10-12", "MKT01", "2", "202510"),
        seed_row("o4", G5, "2025-10-20", "FLAT01", "100", "202510"),
        seed_row("o5", G2, "2025-10-25", "TIER01", "80", "202510"),
        seed_row("o6", G1, "2025-10-31", "FLAT01", "3.5", "202510"),
    ]
}

/// 300 rows of November 2025 over every subscription, meter and day; record
/// ids deliberately not in date order.
fn november_rows() -> Vec<SeedRow> {
    const SUBS: [&str; 5] = [G1, G2, G3, G4, G5];
    const METERS: [&str; 4] = ["TIER01", "FLAT01", "SEP01", "MKT01"];
    (0..300)
        .map(|i| SeedRow {
            id: format!("u{:04}", (i * 613) % 1000),
            sub: SUBS[i % 5],
            date: format!("2025-11-{:02}", 1 + (i * 7) % 30),
            meter: METERS[(i / 5) % 4],
            qty: format!("{}.{:03}", 1 + i % 9, (i * 37) % 1000),
            tags: if i % 3 == 0 {
                r#"{"env":"prod","team":"web, ops"}"#
            } else {
                ""
            },
            booked: "202511",
            correction: false,
        })
        .collect()
}

/// December 2025 (the current period: the term ends 2025-12-31). TIER01 uses
/// 150 units: C = 90 × 1.00 + 50 × 0.50 = 115, rate 0.766666666667.
fn december_rows() -> Vec<SeedRow> {
    vec![
        seed_row("d-1", G1, "2025-12-03", "TIER01", "60", "202512"),
        seed_row("d-2", G3, "2025-12-05", "TIER01", "90", "202512"),
        seed_row("d-3", G2, "2025-12-04", "SEP01", "1.5", "202512"),
    ]
}

/// Late usage of October, ingested after it closed: booked into November.
fn correction_rows() -> Vec<SeedRow> {
    let mut rows = vec![
        seed_row("c1", G1, "2025-10-15", "TIER01", "10", "202511"),
        seed_row("c2", G4, "2025-10-28", "MKT01", "1", "202511"),
        seed_row("c3", G3, "2025-10-05", "SEP01", "2.5", "202511"),
        seed_row("c4", G5, "2025-10-30", "FLAT01", "7", "202511"),
    ];
    for r in &mut rows {
        r.correction = true;
    }
    rows
}

fn usage_csv(rows: &[SeedRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "RecordId",
        "SubscriptionGuid",
        "Date",
        "MeterId",
        "ConsumedQuantity",
        "InstanceId",
        "ResourceGroup",
        "ResourceLocation",
        "ConsumedService",
        "Tags",
        "AdditionalInfo",
    ])
    .expect("csv header");
    for r in rows {
        let instance = r.instance();
        w.write_record([
            r.id.as_str(),
            r.sub,
            r.date.as_str(),
            r.meter,
            r.qty.as_str(),
            instance.as_str(),
            "rg-web",
            "westeurope",
            "Microsoft.Compute",
            r.tags,
            "",
        ])
        .expect("csv row");
    }
    String::from_utf8(w.into_inner().expect("csv")).expect("utf8")
}

/// Ingests `rows` as a CSV file through the ingest loop; all must be stored.
fn ingest_rows(store: &SqliteStore, n: &str, rows: &[SeedRow]) {
    let csv = usage_csv(rows);
    let mut src = UsageReader::open(csv.as_bytes(), None).expect("usage header");
    let sum = ingest(
        store,
        &num(n),
        &mut src,
        IngestOptions::default(),
        &mut |_, _| {},
    )
    .expect("ingest");
    assert_eq!(sum.stored, rows.len() as u64, "{sum:?}");
}

fn hierarchy_row(line: u64, dept: &str, account: &str, guid: &str) -> HierarchyRow {
    HierarchyRow {
        department_cost_center: if dept.is_empty() {
            String::new()
        } else {
            format!("CC-{dept}")
        },
        subscription_name: format!("sub-{}", &guid[guid.len() - 1..]),
        ..seed::hierarchy_row(line, dept, account, guid)
    }
}

/// TIER01 (10 included, 1.00 then 0.50 from 100 units), FLAT01, SEP01 (billed
/// separately) and, when `marketplace`, MKT01 (publisher Fabrikam).
fn price_sheet(marketplace: bool) -> Vec<MeterPrice> {
    let mut rows: Vec<PriceRow> = Vec::new();
    let mut add = |id: &str, included: &str, min: &str, price: &str, sep: bool, publisher: &str| {
        let line = rows.len() as u64 + 2;
        let (offer, plan) = if publisher.is_empty() {
            ("", "")
        } else {
            ("Fabrikam Firewall", "Standard")
        };
        rows.push(PriceRow {
            charges_billed_separately: sep,
            publisher_name: publisher.into(),
            offer_name: offer.into(),
            plan_name: plan.into(),
            ..seed::price_row(line, id, included, min, price)
        })
    };
    add("TIER01", "10", "0", "1.00", false, "");
    add("TIER01", "10", "100", "0.50", false, "");
    add("FLAT01", "0", "0", "0.123456", false, "");
    add("SEP01", "0", "0", "2.00", true, "");
    if marketplace {
        add("MKT01", "0", "0", "3.00", false, "Fabrikam");
    }
    build_price_sheet(&rows).expect("valid price sheet")
}

#[derive(Clone, Debug)]
struct Ids {
    dept_a: i64,
    dept_b: i64,
    a1: i64,
    b1: i64,
    c1: i64,
}

/// API keys (full `mbk_...` strings) of the seed.
#[derive(Clone, Debug)]
struct Keys {
    /// Enterprise administrator (read-write), primary slot.
    ent: String,
    /// Enterprise administrator, read-only, secondary slot.
    ro: String,
    /// Department A administrator.
    dept_a: String,
    /// Owner of account b1.
    acct_b1: String,
    /// Department B, expired 2023-11-14T22:13:20Z.
    expired: String,
    /// Account c1, disabled.
    disabled: String,
    /// Enterprise administrator of E200.
    other: String,
}

const EXPIRED_AT: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

#[allow(clippy::too_many_arguments)]
fn put_key(
    store: &SqliteStore,
    n: &str,
    scope: Scope,
    slot: Slot,
    read_only: bool,
    created_at: i64,
    expires_at: i64,
    disabled: bool,
) -> String {
    seed::put_key(
        store,
        n,
        scope,
        KeySpec {
            slot,
            read_only,
            created_at,
            expires_at,
            disabled,
        },
    )
}

fn seed(store: &SqliteStore, clock: &ManualClock) -> (Ids, Keys, Vec<SeedRow>) {
    let n = num(N);
    store
        .create_enrollment(&NewEnrollment {
            number: n.clone(),
            name: "Contoso".into(),
            currency: Currency::parse("USD").expect("currency"),
            start: day("2025-01-01"),
            end: day("2025-12-31"),
            visibility: ChargeVisibility::default(),
        })
        .expect("create enrollment");
    store
        .upsert_hierarchy(
            &n,
            &[
                hierarchy_row(2, "A", "a1", G1),
                hierarchy_row(3, "A", "a1", G2),
                hierarchy_row(4, "A", "a2", G5),
                hierarchy_row(5, "B", "b1", G3),
                hierarchy_row(6, "", "c1", G4),
            ],
        )
        .expect("hierarchy");
    for (p, marketplace) in [("202510", true), ("202511", true), ("202512", false)] {
        store
            .import_prices(&n, period(p), &price_sheet(marketplace))
            .expect("prices");
    }
    store
        .add_entry(
            &n,
            EntryKind::Purchase,
            &CommitmentEntry {
                date: day("2025-01-05"),
                amount: Money::parse("5000.00", 2).expect("money"),
                description: "Commitment year 1".into(),
            },
        )
        .expect("purchase");
    store
        .add_entry(
            &n,
            EntryKind::Adjustment,
            &CommitmentEntry {
                date: day("2025-11-15"),
                amount: Money::parse("-12.50", 2).expect("money"),
                description: "Debit".into(),
            },
        )
        .expect("adjustment");
    let mut rows = october_rows();
    rows.extend(november_rows());
    rows.extend(december_rows());
    ingest_rows(store, N, &rows);
    for p in period("202501").through(period("202510")) {
        meterbook_core::ledger::close_period(store, &n, p, clock.today()).expect("close period");
    }
    let corrections = correction_rows();
    ingest_rows(store, N, &corrections);
    rows.extend(corrections);
    store
        .move_subscription(&n, G2, "b1", day(MOVE_DAY))
        .expect("move subscription");
    store.set_watermark(&n, day(WATERMARK)).expect("watermark");

    // A second enrollment, in another currency, without a watermark.
    let o = num(OTHER);
    store
        .create_enrollment(&NewEnrollment {
            number: o.clone(),
            name: "Other".into(),
            currency: Currency::parse("EUR").expect("currency"),
            start: day("2025-01-01"),
            end: day("2025-12-31"),
            visibility: ChargeVisibility::default(),
        })
        .expect("create enrollment");
    store
        .upsert_hierarchy(&o, &[hierarchy_row(2, "X", "x1", G9)])
        .expect("hierarchy");
    store
        .import_prices(&o, period("202511"), &price_sheet(false))
        .expect("prices");
    ingest_rows(
        store,
        OTHER,
        &[seed_row("z1", G9, "2025-11-02", "TIER01", "5", "202511")],
    );

    let h = store.hierarchy(&n).expect("hierarchy");
    let dept = |name: &str| h.department_by_name(name).expect("department").id;
    let account = |name: &str| h.account_by_name(name).expect("account").id;
    let ids = Ids {
        dept_a: dept("A"),
        dept_b: dept("B"),
        a1: account("a1"),
        b1: account("b1"),
        c1: account("c1"),
    };
    let now = clock.now_unix();
    let (from, to) = (now - 60, now + 365 * 86_400);
    let keys = Keys {
        ent: put_key(
            store,
            N,
            Scope::Enrollment,
            Slot::Primary,
            false,
            from,
            to,
            false,
        ),
        ro: put_key(
            store,
            N,
            Scope::Enrollment,
            Slot::Secondary,
            true,
            from,
            to,
            false,
        ),
        dept_a: put_key(
            store,
            N,
            Scope::Department(ids.dept_a),
            Slot::Primary,
            false,
            from,
            to,
            false,
        ),
        acct_b1: put_key(
            store,
            N,
            Scope::Account(ids.b1),
            Slot::Primary,
            false,
            from,
            to,
            false,
        ),
        expired: put_key(
            store,
            N,
            Scope::Department(ids.dept_b),
            Slot::Primary,
            false,
            EXPIRED_AT - 86_400,
            EXPIRED_AT,
            false,
        ),
        disabled: put_key(
            store,
            N,
            Scope::Account(ids.c1),
            Slot::Primary,
            false,
            from,
            to,
            true,
        ),
        other: put_key(
            store,
            OTHER,
            Scope::Enrollment,
            Slot::Primary,
            false,
            from,
            to,
            false,
        ),
    };
    (ids, keys, rows)
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// The shared harness, with this file's seed.
struct TestApp {
    app: meterbook_testkit::TestApp,
    keys: Keys,
    ids: Ids,
    /// Every usage row of E100, with where it is booked.
    rows: Vec<SeedRow>,
}

impl std::ops::Deref for TestApp {
    type Target = meterbook_testkit::TestApp;
    fn deref(&self) -> &Self::Target {
        &self.app
    }
}

async fn spawn_app() -> TestApp {
    spawn_app_with(roomy()).await
}

async fn spawn_app_with(settings: ServerSettings) -> TestApp {
    let (app, (ids, keys, rows)) = meterbook_testkit::spawn()
        .settings(settings)
        .seed(seed)
        .await;
    TestApp {
        app,
        keys,
        ids,
        rows,
    }
}

/// This file's readings of a whole response.
trait RespExt {
    fn obj(&self) -> Obj;
    fn objs(&self) -> Vec<Obj>;
    fn page(&self) -> Page;
}

impl RespExt for Resp {
    fn obj(&self) -> Obj {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {}", self.text()))
    }
    fn objs(&self) -> Vec<Obj> {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not a JSON array of objects ({e}): {}", self.text()))
    }
    fn page(&self) -> Page {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not a usage page ({e}): {}", self.text()))
    }
}

/// A JSON object with its fields in order and each value's exact JSON text.
#[derive(Debug)]
struct Obj(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Obj {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Obj, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Obj;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Obj, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(Obj(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Obj {
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
    fn has(&self, k: &str) -> bool {
        self.0.iter().any(|(n, _)| n == k)
    }
    /// The exact JSON text of a field.
    fn raw(&self, k: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("no field {k} in {:?}", self.keys()))
            .1
            .get()
    }
    /// A string field's value.
    fn s(&self, k: &str) -> String {
        serde_json::from_str(self.raw(k))
            .unwrap_or_else(|_| panic!("{k} is not a string: {}", self.raw(k)))
    }
    /// The value as a CSV report writes it: strings decoded, null empty,
    /// numbers, booleans and objects as their JSON text.
    fn norm(&self, k: &str) -> String {
        let r = self.raw(k);
        if r.starts_with('"') {
            self.s(k)
        } else if r == "null" {
            String::new()
        } else {
            r.to_string()
        }
    }
    /// A number field: must be a JSON number, returns its exact text.
    fn number(&self, k: &str) -> &str {
        let r = self.raw(k);
        assert!(
            r.starts_with(|c: char| c == '-' || c.is_ascii_digit()),
            "{k} is not a JSON number: {r}"
        );
        r
    }
    fn objs(&self, k: &str) -> Vec<Obj> {
        serde_json::from_str(self.raw(k)).expect("array of objects")
    }
}

/// A usage-details or marketplace-charges page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    id: String,
    #[serde(rename = "usageCompleteThrough")]
    watermark: Option<String>,
    data: Vec<Obj>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

/// A CSV document.
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    fn parse(text: &str) -> Csv {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let header = r
            .headers()
            .expect("csv header")
            .iter()
            .map(str::to_string)
            .collect();
        let rows = r
            .records()
            .map(|rec| {
                rec.expect("csv record")
                    .iter()
                    .map(str::to_string)
                    .collect()
            })
            .collect();
        Csv { header, rows }
    }
    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }
    fn column(&self, name: &str) -> Vec<String> {
        let i = self.col(name);
        self.rows.iter().map(|r| r[i].clone()).collect()
    }
}

/// JSON rows must carry exactly the values of the CSV rows (JSON key = the
/// CSV column with a lower-case first letter unless `verbatim`).
#[track_caller]
fn assert_rows_match_csv(rows: &[Obj], csv: &Csv, verbatim: bool) {
    assert_eq!(rows.len(), csv.rows.len(), "row count");
    for (i, (row, rec)) in rows.iter().zip(&csv.rows).enumerate() {
        for (c, name) in csv.header.iter().enumerate() {
            let key = if verbatim {
                name.clone()
            } else {
                let mut k = name[..1].to_ascii_lowercase();
                k.push_str(&name[1..]);
                k
            };
            assert_eq!(row.norm(&key), rec[c], "row {i}, {key}");
        }
    }
}

/// An error response: the status, `{"error":{"code","message"}}` and nothing
/// that leaks internals. Returns the message.
#[track_caller]
fn assert_error(r: &Resp, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "body: {}", r.text());
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v = r.json();
    let o = v.as_object().expect("object");
    assert_eq!(o.keys().collect::<Vec<_>>(), ["error"], "{v}");
    let e = v["error"].as_object().expect("error object");
    let mut keys: Vec<&String> = e.keys().collect();
    keys.sort();
    assert_eq!(keys, ["code", "message"], "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    let message = v["error"]["message"].as_str().expect("message").to_string();
    assert!(!message.is_empty());
    let lower = r.text().to_ascii_lowercase();
    for leak in [
        "select ",
        "sqlite",
        "panicked",
        "rusqlite",
        "backtrace",
        "stack",
    ] {
        assert!(
            !lower.contains(leak),
            "error body leaks `{leak}`: {}",
            r.text()
        );
    }
    message
}

impl TestApp {
    /// A URL under E100's v3 base.
    fn e(&self, suffix: &str) -> String {
        format!("{}/v3/enrollments/{N}{suffix}", self.base)
    }
    async fn get(&self, url: &str, key: &str) -> Resp {
        self.send(
            self.client
                .get(url)
                .header("authorization", format!("bearer {key}")),
        )
        .await
    }

    /// GET with exactly these headers (no Authorization unless given).
    async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Resp {
        let mut rb = self.client.get(url);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb).await
    }

    async fn post(&self, url: &str, key: &str, body: &serde_json::Value) -> Resp {
        self.send(
            self.client
                .post(url)
                .header("authorization", format!("bearer {key}"))
                .json(body),
        )
        .await
    }

    /// A 200 of E100 with ETag and the watermark header.
    #[track_caller]
    fn ok(&self, r: &Resp) {
        assert_eq!(r.status, 200, "body: {}", r.text());
        assert!(r.header("etag").is_some(), "no ETag");
        assert_eq!(
            r.header("x-usage-complete-through").as_deref(),
            Some(WATERMARK)
        );
    }

    /// Follows nextLink to the end; returns the rows and the number of pages.
    async fn walk(&self, url: &str, key: &str) -> (Vec<Obj>, usize) {
        let mut rows = Vec::new();
        let mut next = Some(url.to_string());
        let mut pages = 0;
        while let Some(u) = next {
            let r = self.get(&u, key).await;
            self.ok(&r);
            let p = r.page();
            pages += 1;
            assert!(pages < 5_000, "nextLink never ends");
            if let Some(l) = &p.next_link {
                assert!(l.starts_with(&self.base), "nextLink {l}");
                assert!(!p.data.is_empty(), "a page with a nextLink is empty");
            }
            rows.extend(p.data);
            next = p.next_link;
        }
        (rows, pages)
    }

    /// Record ids booked in `p`, in the API's order, limited to `accounts`
    /// (None: all) and to one meter.
    fn expected_booked(
        &self,
        p: &str,
        accounts: Option<&[&str]>,
        meter: Option<&str>,
    ) -> Vec<String> {
        let mut rows: Vec<&SeedRow> = self
            .rows
            .iter()
            .filter(|r| r.booked == p)
            .filter(|r| accounts.is_none_or(|a| a.contains(&account_of(r.sub, &r.date))))
            .filter(|r| meter.is_none_or(|m| r.meter == m))
            .collect();
        rows.sort_by_key(|r| r.key());
        rows.iter().map(|r| r.id.clone()).collect()
    }

    /// Record ids dated from `from` to `to`, by (Date, RecordId).
    fn expected_range(
        &self,
        from: &str,
        to: &str,
        accounts: Option<&[&str]>,
        meter: Option<&str>,
    ) -> Vec<String> {
        let mut rows: Vec<&SeedRow> = self
            .rows
            .iter()
            .filter(|r| r.date.as_str() >= from && r.date.as_str() <= to)
            .filter(|r| accounts.is_none_or(|a| a.contains(&account_of(r.sub, &r.date))))
            .filter(|r| meter.is_none_or(|m| r.meter == m))
            .collect();
        rows.sort_by_key(|r| (r.date.clone(), r.id.clone()));
        rows.iter().map(|r| r.id.clone()).collect()
    }

    fn seed_of(&self, id: &str) -> &SeedRow {
        self.rows
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no seed row {id}"))
    }

    /// The usage report `meterbook_io` writes for `filter` (the reference).
    fn io_report(&self, filter: UsageFilter, format: ReportFormat) -> String {
        let meta = ReportMeta {
            enrollment: N.into(),
            scope: ReportScope::Period("-".into()),
            generated_at: "-".into(),
            watermark: None,
            currency: "USD".into(),
        };
        let store: &SqliteStore = &self.store;
        let r = UsageReport::prepare(store, &num(N), filter, meta).expect("prepare report");
        let mut out = Vec::new();
        r.write(store, &num(N), format, &mut out)
            .expect("write report");
        String::from_utf8(out).expect("utf8")
    }

    fn statement(&self, p: &str) -> Statement {
        meterbook_core::ledger::statement(&*self.store, &num(N), period(p)).expect("statement")
    }

    /// Ingests rows into E100 on the blocking pool.
    async fn ingest(&self, rows: Vec<SeedRow>) {
        let s = self.store.clone();
        tokio::task::spawn_blocking(move || ingest_rows(&s, N, &rows))
            .await
            .expect("ingest task");
    }
}

fn booked(p: &str) -> UsageSelection {
    UsageSelection {
        booked: Some(period(p)),
        ..Default::default()
    }
}

fn range(from: &str, to: &str) -> UsageSelection {
    UsageSelection {
        from: Some(day(from)),
        to: Some(day(to)),
        ..Default::default()
    }
}

/// What an enterprise administrator's report holds.
fn enterprise(selection: UsageSelection) -> UsageFilter {
    UsageFilter::within(Scope::Enrollment, true, selection)
}

fn record_ids(rows: &[Obj]) -> Vec<String> {
    rows.iter().map(|r| r.s("recordId")).collect()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .expect("valid gzip");
    out
}

#[track_caller]
fn assert_statement(o: &Obj, st: &Statement) {
    let money = |m: Money| m.format(2);
    assert_eq!(o.number("billingPeriodId"), st.period.to_string());
    assert_eq!(o.s("currencyCode"), "USD");
    for (k, v) in [
        ("beginningBalance", st.beginning_balance),
        ("endingBalance", st.ending_balance),
        ("newPurchases", st.new_purchases),
        ("adjustments", st.adjustments),
        ("utilized", st.utilized),
        ("serviceOverage", st.service_overage),
        ("chargesBilledSeparately", st.charges_billed_separately),
        ("totalOverage", st.total_overage),
        ("totalUsage", st.total_usage),
        ("azureMarketplaceServiceCharges", st.marketplace_charges),
    ] {
        assert_eq!(o.number(k), money(v), "{k} of {}", st.period);
    }
    for (k, entries) in [
        ("newPurchasesDetails", &st.purchase_details),
        ("adjustmentDetails", &st.adjustment_details),
    ] {
        let got = o.objs(k);
        assert_eq!(got.len(), entries.len(), "{k}");
        for (g, e) in got.iter().zip(entries) {
            assert_eq!(g.s("name"), e.description);
            assert_eq!(g.number("value"), money(e.amount));
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Every endpoint, with the documented fields and correct figures
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthz_needs_no_key() {
    let app = spawn_app().await;
    let r = app.get_with(&app.url("/healthz"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": "ok"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn billing_periods_newest_first_with_links() {
    let app = spawn_app().await;
    let r = app.get(&app.e("/billingPeriods"), &app.keys.ent).await;
    app.ok(&r);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let items = r.objs();
    let ids: Vec<String> = items.iter().map(|i| i.s("billingPeriodId")).collect();
    let want: Vec<String> = (1..=12).rev().map(|m| format!("2025{m:02}")).collect();
    assert_eq!(
        ids, want,
        "the term's periods through the current one, newest first"
    );
    let link =
        |p: &str, what: &str| format!("{}/v3/enrollments/{N}/billingPeriods/{p}/{what}", app.base);
    for it in &items {
        let p = it.s("billingPeriodId");
        let first = period(&p).first_day();
        let last = period(&p).last_day();
        assert_eq!(it.s("billingStart"), format!("{first}T00:00:00Z"));
        assert_eq!(it.s("billingEnd"), format!("{last}T23:59:59Z"));
        assert_eq!(it.s("balanceSummary"), link(&p, "balancesummary"));
        assert_eq!(it.s("usageDetails"), link(&p, "usagedetails"));
        let priced = ["202510", "202511", "202512"].contains(&p.as_str());
        if priced {
            assert_eq!(it.s("priceSheet"), link(&p, "pricesheet"));
        } else {
            assert_eq!(it.raw("priceSheet"), "null", "{p} has no price sheet");
        }
        if p == "202510" || p == "202511" {
            assert_eq!(it.s("marketplaceCharges"), link(&p, "marketplacecharges"));
        } else {
            assert_eq!(
                it.raw("marketplaceCharges"),
                "null",
                "{p} has no marketplace meter"
            );
        }
        // Every link works.
        for k in [
            "balanceSummary",
            "usageDetails",
            "priceSheet",
            "marketplaceCharges",
        ] {
            if it.raw(k) != "null" {
                let f = app.get(&it.s(k), &app.keys.ent).await;
                app.ok(&f);
            }
        }
    }
    // A department administrator never gets balance or price sheet links.
    let r = app.get(&app.e("/billingPeriods"), &app.keys.dept_a).await;
    app.ok(&r);
    let items = r.objs();
    assert_eq!(items.len(), 12);
    for it in &items {
        assert_eq!(it.raw("balanceSummary"), "null");
        assert_eq!(it.raw("priceSheet"), "null");
        let u = app.get(&it.s("usageDetails"), &app.keys.dept_a).await;
        app.ok(&u);
    }
    assert_eq!(
        items[1].s("marketplaceCharges"),
        link("202511", "marketplacecharges")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn balance_summary_matches_the_ledger() {
    let app = spawn_app().await;
    for p in ["202501", "202505", "202510", "202511", "202512"] {
        let r = app
            .get(
                &app.e(&format!("/billingPeriods/{p}/balancesummary")),
                &app.keys.ent,
            )
            .await;
        app.ok(&r);
        let o = r.obj();
        for k in [
            "id",
            "billingPeriodId",
            "currencyCode",
            "beginningBalance",
            "endingBalance",
            "newPurchases",
            "adjustments",
            "utilized",
            "serviceOverage",
            "chargesBilledSeparately",
            "totalOverage",
            "totalUsage",
            "azureMarketplaceServiceCharges",
            "newPurchasesDetails",
            "adjustmentDetails",
        ] {
            assert!(o.has(k), "{p}: no {k}");
        }
        assert_eq!(
            o.s("id"),
            format!("enrollments/{N}/billingperiods/{p}/balancesummaries")
        );
        assert_eq!(o.s("usageCompleteThrough"), WATERMARK);
        assert_statement(&o, &app.statement(p));
    }
    // Hand-checked figures.
    let o = app
        .get(
            &app.e("/billingPeriods/202501/balancesummary"),
            &app.keys.ent,
        )
        .await
        .obj();
    assert_eq!(o.number("newPurchases"), "5000.00");
    assert_eq!(o.number("beginningBalance"), "0.00");
    let d = o.objs("newPurchasesDetails");
    assert_eq!(
        (d[0].s("name").as_str(), d[0].number("value")),
        ("Commitment year 1", "5000.00")
    );
    let o = app
        .get(
            &app.e("/billingPeriods/202511/balancesummary"),
            &app.keys.ent,
        )
        .await
        .obj();
    assert_eq!(o.number("adjustments"), "-12.50");
    let d = o.objs("adjustmentDetails");
    assert_eq!(
        (d[0].s("name").as_str(), d[0].number("value")),
        ("Debit", "-12.50")
    );
    // The current period (the term's last): TIER01 150 units = 115.00,
    // SEP01 1.5 × 2.00 = 3.00 billed separately, no marketplace.
    let r = app.get(&app.e("/balancesummary"), &app.keys.ent).await;
    app.ok(&r);
    let o = r.obj();
    assert_statement(&o, &app.statement("202512"));
    assert_eq!(o.number("utilized"), "115.00");
    assert_eq!(o.number("serviceOverage"), "0.00");
    assert_eq!(o.number("chargesBilledSeparately"), "3.00");
    assert_eq!(o.number("totalOverage"), "3.00");
    assert_eq!(o.number("totalUsage"), "118.00");
    assert_eq!(o.number("azureMarketplaceServiceCharges"), "0.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_details_by_period_current_and_custom_date() {
    let app = spawn_app().await;

    // By period: own days in (Date, RecordId) order, then corrections.
    let r = app
        .get(
            &app.e("/billingPeriods/202511/usagedetails?$top=10000"),
            &app.keys.ent,
        )
        .await;
    app.ok(&r);
    let page = r.page();
    assert_eq!(page.id, format!("enrollments/{N}/usagedetails"));
    assert_eq!(page.watermark.as_deref(), Some(WATERMARK));
    assert!(page.next_link.is_none());
    assert_eq!(
        record_ids(&page.data),
        app.expected_booked("202511", None, None)
    );
    for row in &page.data {
        assert_eq!(row.keys(), V3_USAGE_FIELDS, "v3 field names, in order");
        let seed = app.seed_of(&row.s("recordId"));
        let account = account_of(seed.sub, &seed.date);
        assert_eq!(row.s("accountName"), account);
        assert_eq!(row.s("departmentName"), department_of(account));
        assert_eq!(row.s("subscriptionGuid"), seed.sub);
        assert_eq!(row.s("date"), seed.date);
        assert_eq!(row.s("meterId"), seed.meter);
        assert_eq!(row.s("instanceId"), seed.instance());
        assert_eq!(row.raw("isCorrection"), seed.correction.to_string());
        assert_eq!(
            row.raw("chargesBilledSeparately"),
            (seed.meter == "SEP01").to_string()
        );
        assert_eq!(
            row.number("consumedQuantity").parse::<f64>().unwrap(),
            seed.qty.parse::<f64>().unwrap()
        );
        row.number("cost");
        row.number("resourceRate");
        if seed.tags.is_empty() {
            assert_eq!(row.raw("tags"), "null");
        } else {
            assert_eq!(row.raw("tags"), seed.tags, "tags are a JSON object");
        }
    }
    // Same rows, values and exact costs as the usage-details report.
    let reference = Csv::parse(&app.io_report(enterprise(booked("202511")), ReportFormat::Csv));
    assert_rows_match_csv(&page.data, &reference, false);

    // Current period (202512: the term's last), figures by hand.
    let r = app.get(&app.e("/usagedetails"), &app.keys.ent).await;
    app.ok(&r);
    let page = r.page();
    assert_eq!(record_ids(&page.data), ["d-1", "d-3", "d-2"]);
    let by_id: HashMap<String, &Obj> = page.data.iter().map(|r| (r.s("recordId"), r)).collect();
    assert_eq!(by_id["d-1"].number("resourceRate"), "0.766666666667");
    assert_eq!(by_id["d-1"].number("cost"), "46.00000000002");
    assert_eq!(by_id["d-2"].number("cost"), "69.00000000003");
    assert_eq!(by_id["d-3"].number("resourceRate"), "2");
    assert_eq!(by_id["d-3"].number("cost"), "3");
    assert_eq!(
        by_id["d-3"].s("accountName"),
        "b1",
        "G2 moved to b1 on {MOVE_DAY}"
    );
    assert_eq!(by_id["d-1"].number("consumedQuantity"), "60");
    assert_eq!(
        by_id["d-1"].s("product"),
        "Virtual Machines - D2 v3 - TIER01 hours - EU West"
    );
    assert_eq!(by_id["d-1"].s("unitOfMeasure"), "1 Hour");
    assert_eq!(by_id["d-1"].s("accountOwnerEmail"), "a1@example.com");
    assert_eq!(by_id["d-1"].s("costCenter"), "CC-a1");
    assert_eq!(by_id["d-1"].s("subscriptionName"), "sub-1");
    assert_eq!(by_id["d-1"].number("accountId"), app.ids.a1.to_string());
    assert_eq!(
        by_id["d-2"].number("departmentId"),
        app.ids.dept_b.to_string()
    );
    let reference = Csv::parse(&app.io_report(enterprise(booked("202512")), ReportFormat::Csv));
    assert_rows_match_csv(&page.data, &reference, false);

    // By custom date: rows dated in the range, corrections at their own date.
    for (from, to, q) in [
        (
            "2025-10-20",
            "2025-11-05",
            "startTime=2025-10-20&endTime=2025-11-05",
        ),
        (
            "2025-11-28",
            "2025-12-04",
            "startTime=2025-11-28T00:00:00Z&endTime=2025-12-04T23:59:59Z",
        ),
    ] {
        let r = app
            .get(
                &app.e(&format!("/usagedetailsbycustomdate?{q}&$top=10000")),
                &app.keys.ent,
            )
            .await;
        app.ok(&r);
        let page = r.page();
        let want = app.expected_range(from, to, None, None);
        assert!(!want.is_empty());
        assert_eq!(record_ids(&page.data), want, "{q}");
        let reference = Csv::parse(&app.io_report(enterprise(range(from, to)), ReportFormat::Csv));
        assert_rows_match_csv(&page.data, &reference, false);
    }
    // The October corrections are in the range with IsCorrection true.
    let r = app
        .get(
            &app.e("/usagedetailsbycustomdate?startTime=2025-10-28&endTime=2025-10-28"),
            &app.keys.ent,
        )
        .await;
    let page = r.page();
    assert_eq!(record_ids(&page.data), ["c2"]);
    assert_eq!(page.data[0].raw("isCorrection"), "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_download_is_the_report_csv_plain_and_gzip() {
    let app = spawn_app().await;
    let want = app.io_report(enterprise(booked("202511")), ReportFormat::Csv);
    let url = app.e("/usagedetails/download?billingPeriod=202511");

    let r = app.get(&url, &app.keys.ent).await;
    app.ok(&r);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(r.header("content-encoding"), None);
    assert!(r
        .header("content-disposition")
        .unwrap()
        .contains(&format!("usage-details_{N}_202511.csv")));
    assert_eq!(r.text(), want, "the download is the usage-details report");
    let csv = Csv::parse(&r.text());
    let header: Vec<String> = V3_USAGE_FIELDS
        .iter()
        .map(|f| format!("{}{}", f[..1].to_ascii_uppercase(), &f[1..]))
        .collect();
    assert_eq!(csv.header, header, "design §4 columns, no preamble");
    assert_eq!(
        csv.column("RecordId"),
        app.expected_booked("202511", None, None)
    );

    // The JSON pages carry the same costs.
    let (rows, _) = app
        .walk(
            &app.e("/billingPeriods/202511/usagedetails?$top=100"),
            &app.keys.ent,
        )
        .await;
    let costs: Vec<String> = rows.iter().map(|r| r.number("cost").to_string()).collect();
    assert_eq!(costs, csv.column("Cost"));

    // gzip when accepted; the decompressed body is the same CSV.
    let r = app
        .get_with(
            &url,
            &[
                ("authorization", &format!("Bearer {}", app.keys.ent)),
                ("accept-encoding", "gzip"),
            ],
        )
        .await;
    app.ok(&r);
    assert_eq!(r.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(&r.body[..2], &[0x1f, 0x8b], "gzip magic");
    assert!(r.body.len() < want.len());
    assert_eq!(gunzip(&r.body), want);

    // A date range, and the current period by default.
    let r = app
        .get(
            &app.e("/usagedetails/download?startTime=2025-11-10&endTime=2025-12-04"),
            &app.keys.ent,
        )
        .await;
    app.ok(&r);
    assert_eq!(
        r.text(),
        app.io_report(
            enterprise(range("2025-11-10", "2025-12-04")),
            ReportFormat::Csv
        )
    );
    assert_eq!(
        Csv::parse(&r.text()).column("RecordId"),
        app.expected_range("2025-11-10", "2025-12-04", None, None)
    );
    let r = app
        .get(&app.e("/usagedetails/download"), &app.keys.ent)
        .await;
    app.ok(&r);
    let csv = Csv::parse(&r.text());
    assert_eq!(csv.column("RecordId"), ["d-1", "d-3", "d-2"]);
    assert_eq!(
        csv.column("Cost"),
        ["46.00000000002", "3", "69.00000000003"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn price_sheet_lists_every_tier() {
    let app = spawn_app().await;
    let r = app
        .get(&app.e("/billingPeriods/202511/pricesheet"), &app.keys.ent)
        .await;
    app.ok(&r);
    let items = r.objs();
    let got: Vec<(String, String, String, String)> = items
        .iter()
        .map(|i| {
            (
                i.s("meterId"),
                i.number("tierMinimumUnits").to_string(),
                i.number("unitPrice").to_string(),
                i.number("includedQuantity").to_string(),
            )
        })
        .collect();
    let want = [
        ("FLAT01", "0", "0.123456", "0"),
        ("MKT01", "0", "3", "0"),
        ("SEP01", "0", "2", "0"),
        ("TIER01", "0", "1", "10"),
        ("TIER01", "100", "0.5", "10"),
    ]
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()));
    assert_eq!(got, want);
    let mut ids = HashSet::new();
    for i in &items {
        for k in [
            "id",
            "billingPeriodId",
            "meterId",
            "meterName",
            "unitOfMeasure",
            "includedQuantity",
            "partNumber",
            "unitPrice",
            "currencyCode",
        ] {
            assert!(i.has(k), "no {k}");
        }
        assert!(ids.insert(i.s("id")), "ids are unique");
        assert_eq!(i.s("billingPeriodId"), "202511");
        assert_eq!(i.s("currencyCode"), "USD");
        assert_eq!(i.s("unitOfMeasure"), "1 Hour");
        assert_eq!(i.s("meterName"), format!("{} hours", i.s("meterId")));
        assert_eq!(i.s("partNumber"), format!("PN-{}", i.s("meterId")));
    }
    // Current period: 202512, without the marketplace meter.
    let r = app.get(&app.e("/pricesheet"), &app.keys.ent).await;
    app.ok(&r);
    let items = r.objs();
    let meters: Vec<String> = items.iter().map(|i| i.s("meterId")).collect();
    assert_eq!(meters, ["FLAT01", "SEP01", "TIER01", "TIER01"]);
    assert!(items.iter().all(|i| i.s("billingPeriodId") == "202512"));
    // A period of the term without a sheet: an empty list.
    let r = app
        .get(&app.e("/billingPeriods/202503/pricesheet"), &app.keys.ent)
        .await;
    app.ok(&r);
    assert!(r.objs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn marketplace_charges_by_period_current_and_custom_date() {
    let app = spawn_app().await;
    let fields = [
        "accountId",
        "accountName",
        "accountOwnerEmail",
        "costCenter",
        "departmentName",
        "subscriptionGuid",
        "subscriptionName",
        "date",
        "meterId",
        "meterName",
        "publisherName",
        "offerName",
        "planName",
        "consumedQuantity",
        "unitOfMeasure",
        "resourceRate",
        "cost",
        "instanceId",
        "resourceGroup",
        "tags",
        "recordId",
        "isCorrection",
    ];
    let r = app
        .get(
            &app.e("/billingPeriods/202511/marketplacecharges?$top=10000"),
            &app.keys.ent,
        )
        .await;
    app.ok(&r);
    let page = r.page();
    assert_eq!(page.id, format!("enrollments/{N}/marketplacecharges"));
    assert_eq!(
        record_ids(&page.data),
        app.expected_booked("202511", None, Some("MKT01"))
    );
    assert!(page.data.iter().any(|r| r.raw("isCorrection") == "true"));
    for row in &page.data {
        assert_eq!(row.keys(), fields);
        assert_eq!(row.s("publisherName"), "Fabrikam");
        assert_eq!(row.s("offerName"), "Fabrikam Firewall");
        assert_eq!(row.s("planName"), "Standard");
        assert_eq!(row.s("meterId"), "MKT01");
    }
    let mut filter = enterprise(booked("202511"));
    filter.marketplace_only = true;
    let reference = Csv::parse(&app.io_report(filter, ReportFormat::Csv));
    assert_rows_match_csv(&page.data, &reference, false);
    // Flat 3.00: cost = quantity × 3 exactly.
    for row in &page.data {
        assert_eq!(row.number("resourceRate"), "3");
    }

    // Current period (202512): no marketplace meter, no rows.
    let r = app.get(&app.e("/marketplacecharges"), &app.keys.ent).await;
    app.ok(&r);
    let page = r.page();
    assert!(page.data.is_empty());
    assert!(page.next_link.is_none());

    // By custom date, across October (closed) and November.
    let r = app
        .get(
            &app.e("/marketplacechargesbycustomdate?startTime=2025-10-01&endTime=2025-11-10&$top=10000"),
            &app.keys.ent,
        )
        .await;
    app.ok(&r);
    let page = r.page();
    let want = app.expected_range("2025-10-01", "2025-11-10", None, Some("MKT01"));
    assert!(want.contains(&"o3".to_string()) && want.contains(&"c2".to_string()));
    assert_eq!(record_ids(&page.data), want);
    let mut filter = enterprise(range("2025-10-01", "2025-11-10"));
    filter.marketplace_only = true;
    assert_rows_match_csv(
        &page.data,
        &Csv::parse(&app.io_report(filter, ReportFormat::Csv)),
        false,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_usage_report_json_and_csv() {
    let app = spawn_app().await;
    let url = app.url(&format!(
        "/rest/{N}/usage-report?month=2025-12&type=detail&fmt=json"
    ));
    let r = app
        .get_with(
            &url,
            &[
                ("authorization", &format!("bearer {}", app.keys.ent)),
                ("api-version", "2014-09-02"),
            ],
        )
        .await;
    app.ok(&r);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert!(r.text().trim_start().starts_with('['), "a bare JSON array");
    let rows = r.objs();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(
            row.keys(),
            LEGACY_FIELDS,
            "EA detail-report columns, in order"
        );
        for k in [
            "ConsumedQuantity",
            "ResourceRate",
            "ExtendedCost",
            "Month",
            "Day",
            "Year",
            "SubscriptionId",
        ] {
            row.number(k);
        }
    }
    let d1 = &rows[0];
    assert_eq!(d1.s("InstanceId"), app.seed_of("d-1").instance());
    assert_eq!(d1.s("AccountOwnerId"), "a1@example.com");
    assert_eq!(d1.s("AccountName"), "a1");
    assert_eq!(d1.s("SubscriptionGuid"), G1);
    assert_eq!(d1.s("Date"), "2025-12-03");
    assert_eq!(
        (d1.number("Month"), d1.number("Day"), d1.number("Year")),
        ("12", "3", "2025")
    );
    assert_eq!(d1.number("ConsumedQuantity"), "60");
    assert_eq!(d1.number("ResourceRate"), "0.766666666667");
    assert_eq!(d1.number("ExtendedCost"), "46.00000000002");
    assert_eq!(d1.s("DepartmentName"), "A");
    assert_eq!(d1.s("ResourceGroup"), "rg-web");

    // A whole period: the same rows as the legacy CSV of the report writer.
    let legacy = |p: &str| UsageFilter {
        legacy: true,
        ..enterprise(booked(p))
    };
    let want_csv = app.io_report(legacy("202511"), ReportFormat::Csv);
    let r = app
        .get(
            &app.url(&format!(
                "/rest/{N}/usage-report?month=2025-11&type=detail&fmt=json"
            )),
            &app.keys.ent,
        )
        .await;
    app.ok(&r);
    let rows = r.objs();
    assert_rows_match_csv(&rows, &Csv::parse(&want_csv), true);
    let instances: Vec<String> = rows.iter().map(|r| r.s("InstanceId")).collect();
    let want: Vec<String> = app
        .expected_booked("202511", None, None)
        .iter()
        .map(|id| app.seed_of(id).instance())
        .collect();
    assert_eq!(instances, want);

    // fmt=csv: that header, no preamble, the same rows.
    let r = app
        .get(
            &app.url(&format!(
                "/rest/{N}/usage-report?month=2025-11&type=detail&fmt=csv"
            )),
            &app.keys.ent,
        )
        .await;
    app.ok(&r);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(r.text().lines().next().unwrap(), LEGACY_FIELDS.join(","));
    assert_eq!(r.text(), want_csv);

    // type=summary: the statement.
    let r = app
        .get(
            &app.url(&format!(
                "/rest/{N}/usage-report?month=2025-12&type=summary&fmt=json"
            )),
            &app.keys.ent,
        )
        .await;
    app.ok(&r);
    let st = app.statement("202512");
    assert_statement(&r.obj(), &st);
    let r = app
        .get(
            &app.url(&format!(
                "/rest/{N}/usage-report?month=2025-12&type=summary&fmt=csv"
            )),
            &app.keys.ent,
        )
        .await;
    app.ok(&r);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let csv = Csv::parse(&r.text());
    assert_eq!(csv.column("BillingPeriodId"), ["202512"]);
    assert_eq!(csv.column("CurrencyCode"), ["USD"]);
    assert_eq!(csv.column("Utilized"), ["115.00"]);
    assert_eq!(
        csv.column("BeginningBalance"),
        [st.beginning_balance.format(2)]
    );
    assert_eq!(csv.column("EndingBalance"), [st.ending_balance.format(2)]);
}

// ---------------------------------------------------------------------------
// 2. Paging
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_walks_every_row_once_in_order() {
    let app = spawn_app().await;
    let all = app.expected_booked("202511", None, None);
    assert_eq!(all.len(), 304);
    for (q, size) in [
        ("$top=7", 7),
        ("pageSize=25", 25),
        ("$top=304", 304),
        ("$top=303", 303),
        ("pageSize=1", 1),
    ] {
        let (rows, pages) = app
            .walk(
                &app.e(&format!("/billingPeriods/202511/usagedetails?{q}")),
                &app.keys.ent,
            )
            .await;
        assert_eq!(record_ids(&rows), all, "{q}");
        assert_eq!(pages, all.len().div_ceil(size), "{q}");
    }
    // The default page size is 1,000: this period fits in one page.
    let r = app
        .get(&app.e("/billingPeriods/202511/usagedetails"), &app.keys.ent)
        .await;
    let page = r.page();
    assert_eq!(page.data.len(), 304);
    assert!(page.next_link.is_none());
    // The nextLink keeps the other parameters.
    let r = app
        .get(
            &app.e("/billingPeriods/202511/usagedetails?pageSize=2"),
            &app.keys.ent,
        )
        .await;
    let next = r.page().next_link.expect("nextLink");
    assert!(
        next.contains("pageSize=2") && next.contains("skiptoken="),
        "{next}"
    );

    // Custom dates, marketplace, and a department key's rows.
    let (rows, _) = app
        .walk(
            &app.e("/usagedetailsbycustomdate?startTime=2025-10-01&endTime=2025-12-31&$top=11"),
            &app.keys.ent,
        )
        .await;
    assert_eq!(
        record_ids(&rows),
        app.expected_range("2025-10-01", "2025-12-31", None, None)
    );
    let (rows, _) = app
        .walk(
            &app.e("/billingPeriods/202511/marketplacecharges?$top=3"),
            &app.keys.ent,
        )
        .await;
    assert_eq!(
        record_ids(&rows),
        app.expected_booked("202511", None, Some("MKT01"))
    );
    let (rows, _) = app
        .walk(
            &app.e("/billingPeriods/202511/usagedetails?$top=4"),
            &app.keys.dept_a,
        )
        .await;
    assert_eq!(
        record_ids(&rows),
        app.expected_booked("202511", Some(&["a1", "a2"]), None)
    );

    // With more than 1,000 rows the default page is 1,000 rows.
    let more: Vec<SeedRow> = (0..750)
        .map(|i| {
            seed_row(
                &format!("v{i:04}"),
                [G1, G3, G4][i % 3],
                &format!("2025-11-{:02}", 1 + i % 30),
                "FLAT01",
                "1",
                "202511",
            )
        })
        .collect();
    let mut want: Vec<(bool, String, String)> = app
        .rows
        .iter()
        .filter(|r| r.booked == "202511")
        .chain(&more)
        .map(SeedRow::key)
        .collect();
    want.sort();
    let want: Vec<String> = want.into_iter().map(|k| k.2).collect();
    app.ingest(more).await;
    let r = app
        .get(&app.e("/billingPeriods/202511/usagedetails"), &app.keys.ent)
        .await;
    app.ok(&r);
    let page = r.page();
    assert_eq!(page.data.len(), 1000);
    assert_eq!(record_ids(&page.data), want[..1000]);
    let next = page.next_link.expect("a second page");
    let page = app.get(&next, &app.keys.ent).await.page();
    assert_eq!(record_ids(&page.data), want[1000..]);
    assert!(page.next_link.is_none());
    let r = app
        .get(
            &app.e("/billingPeriods/202511/usagedetails?$top=10000"),
            &app.keys.ent,
        )
        .await;
    assert_eq!(record_ids(&r.page().data), want);
}

/// New usage of the period arrives while a client walks it: rows that existed
/// at the start come exactly once, nothing repeats, the order holds, and rows
/// added after the cursor's position are not skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_is_stable_while_usage_arrives() {
    let app = spawn_app().await;
    let original: Vec<String> = app.expected_booked("202511", None, None);
    let original_set: HashSet<&String> = original.iter().collect();

    // Six batches of ten new rows dated over the whole period, each with a
    // correction of October (read after the period's own days).
    let batches: Vec<Vec<SeedRow>> = (0..6)
        .map(|k| {
            (0..10)
                .map(|j| {
                    let mut r = seed_row(
                        &format!("n{k}{j:02}"),
                        [G1, G3, G5][j % 3],
                        &format!("2025-11-{:02}", 1 + (k * 7 + j * 3) % 30),
                        ["TIER01", "FLAT01"][j % 2],
                        "1.5",
                        "202511",
                    );
                    if j == 0 {
                        r.date = format!("2025-10-{:02}", 10 + k);
                        r.correction = true;
                    }
                    r
                })
                .collect()
        })
        .collect();
    let new_rows: HashMap<String, SeedRow> = batches
        .iter()
        .flatten()
        .map(|r| (r.id.clone(), r.clone()))
        .collect();

    // The first three batches commit between pages (after page 1, 2, 3); the
    // last three run concurrently with the walk.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let store = app.store.clone();
    let writer_batches = batches.clone();
    let writer = tokio::task::spawn_blocking(move || {
        for (k, b) in writer_batches.iter().enumerate() {
            if k < 3 {
                go_rx.recv().expect("go");
            } else {
                std::thread::sleep(Duration::from_millis(15));
            }
            ingest_rows(&store, N, b);
            let _ = done_tx.send(k);
        }
    });

    let key_of = |r: &Obj| {
        (
            r.raw("isCorrection") == "true",
            r.s("date"),
            r.s("recordId"),
        )
    };
    let mut seen: Vec<(bool, String, String)> = Vec::new();
    let mut cursor_at_commit: Vec<(bool, String, String)> = Vec::new();
    let mut next = Some(app.e("/billingPeriods/202511/usagedetails?pageSize=9"));
    let mut pages = 0;
    while let Some(url) = next {
        let r = app.get(&url, &app.keys.ent).await;
        app.ok(&r);
        let page = r.page();
        pages += 1;
        seen.extend(page.data.iter().map(key_of));
        next = page.next_link;
        if pages <= 3 && next.is_some() {
            cursor_at_commit.push(seen.last().expect("rows").clone());
            go_tx.send(()).expect("writer alive");
            assert_eq!(done_rx.recv().await, Some(pages - 1));
        }
    }
    writer.await.expect("writer");
    assert_eq!(cursor_at_commit.len(), 3);

    let ids: Vec<&String> = seen.iter().map(|k| &k.2).collect();
    let unique: HashSet<&String> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no row is repeated");
    for w in seen.windows(2) {
        assert!(w[0] < w[1], "order broken: {:?} then {:?}", w[0], w[1]);
    }
    for id in &original {
        assert!(unique.contains(id), "row {id} was lost");
    }
    for id in &unique {
        assert!(
            original_set.contains(id) || new_rows.contains_key(*id),
            "unknown row {id}"
        );
    }
    // Rows committed between pages: present exactly when after the cursor.
    for (k, cursor) in cursor_at_commit.iter().enumerate() {
        for r in &batches[k] {
            let after = r.key() > *cursor;
            assert_eq!(
                unique.contains(&r.id),
                after,
                "row {} ({:?}) committed with the cursor at {cursor:?}",
                r.id,
                r.key()
            );
        }
    }
    // Afterwards a fresh walk returns every row, old and new, in order.
    let mut want: Vec<(bool, String, String)> = app
        .rows
        .iter()
        .filter(|r| r.booked == "202511")
        .chain(new_rows.values())
        .map(SeedRow::key)
        .collect();
    want.sort();
    let (rows, _) = app
        .walk(
            &app.e("/billingPeriods/202511/usagedetails?$top=50"),
            &app.keys.ent,
        )
        .await;
    assert_eq!(rows.iter().map(key_of).collect::<Vec<_>>(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn page_size_limits() {
    let app = spawn_app().await;
    for q in [
        "$top=0",
        "$top=10001",
        "pageSize=0",
        "pageSize=10001",
        "$top=-1",
        "$top=ten",
    ] {
        for path in [
            "/billingPeriods/202511/usagedetails",
            "/usagedetails",
            "/billingPeriods/202511/marketplacecharges",
        ] {
            let r = app.get(&app.e(&format!("{path}?{q}")), &app.keys.ent).await;
            assert_error(&r, 400, "BadRequest");
        }
        let r = app
            .get(
                &app.e(&format!(
                    "/usagedetailsbycustomdate?startTime=2025-11-01&endTime=2025-11-02&{q}"
                )),
                &app.keys.ent,
            )
            .await;
        assert_error(&r, 400, "BadRequest");
    }
    for q in ["$top=10000", "pageSize=10000", "$top=1"] {
        let r = app
            .get(
                &app.e(&format!("/billingPeriods/202511/usagedetails?{q}")),
                &app.keys.ent,
            )
            .await;
        app.ok(&r);
        let page = r.page();
        if q == "$top=1" {
            assert_eq!(page.data.len(), 1);
            assert!(page.next_link.is_some());
        } else {
            assert_eq!(page.data.len(), 304);
            assert!(page.next_link.is_none());
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Status codes
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_are_400() {
    let app = spawn_app().await;
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let rest = |q: &str| app.url(&format!("/rest/{N}/usage-report?{q}"));
    let cases: Vec<(String, &str)> = vec![
        // Bad or out-of-term periods.
        (app.e("/billingPeriods/2025-13/usagedetails"), ""),
        (app.e("/billingPeriods/202513/usagedetails"), ""),
        (app.e("/billingPeriods/202513/balancesummary"), ""),
        (app.e("/billingPeriods/2025x1/pricesheet"), ""),
        (app.e("/billingPeriods/202601/usagedetails"), "outside"),
        (app.e("/billingPeriods/202412/pricesheet"), "outside"),
        (
            app.e("/billingPeriods/202412/marketplacecharges"),
            "outside",
        ),
        (app.e("/usagedetails/download?billingPeriod=2025-13"), ""),
        (
            app.e("/usagedetails/download?billingPeriod=202601"),
            "outside",
        ),
        (rest("month=2025-13&type=detail&fmt=json"), ""),
        (rest("month=2024-12&type=detail&fmt=json"), "outside"),
        (rest("type=detail&fmt=json"), "month"),
        // Bad dates.
        (
            app.e("/usagedetailsbycustomdate?startTime=2025-02-30&endTime=2025-03-01"),
            "startTime",
        ),
        (
            app.e("/usagedetailsbycustomdate?startTime=2025/11/01&endTime=2025-11-30"),
            "startTime",
        ),
        (
            app.e("/usagedetailsbycustomdate?startTime=2025-11-01&endTime=soon"),
            "endTime",
        ),
        (
            app.e("/usagedetailsbycustomdate?startTime=2025-11-01"),
            "endTime",
        ),
        (app.e("/usagedetailsbycustomdate"), "startTime"),
        (
            app.e("/marketplacechargesbycustomdate?startTime=x&endTime=y"),
            "startTime",
        ),
        // endTime before startTime.
        (
            app.e("/usagedetailsbycustomdate?startTime=2025-11-30&endTime=2025-11-01"),
            "before",
        ),
        (
            app.e("/marketplacechargesbycustomdate?startTime=2025-11-30&endTime=2025-11-01"),
            "before",
        ),
        (
            app.e("/usagedetails/download?startTime=2025-11-30&endTime=2025-11-01"),
            "before",
        ),
        // Outside the term.
        (
            app.e("/usagedetailsbycustomdate?startTime=2024-12-31&endTime=2025-01-31"),
            "outside",
        ),
        (
            app.e("/usagedetailsbycustomdate?startTime=2025-12-01&endTime=2026-01-01"),
            "outside",
        ),
        (
            app.e("/usagedetails/download?startTime=2024-01-01&endTime=2025-01-01"),
            "outside",
        ),
        // Unknown parameter values.
        (rest("month=2025-11&type=detail&fmt=xml"), "fmt"),
        (rest("month=2025-11&type=everything&fmt=json"), "type"),
        // Bad skiptoken.
        (
            app.e("/billingPeriods/202511/usagedetails?skiptoken=zz"),
            "skiptoken",
        ),
        (
            app.e("/billingPeriods/202511/usagedetails?skiptoken=abc"),
            "skiptoken",
        ),
        (
            app.e(&format!(
                "/billingPeriods/202511/usagedetails?skiptoken={}",
                hex("garbage")
            )),
            "skiptoken",
        ),
        (
            app.e(&format!(
                "/billingPeriods/202511/usagedetails?skiptoken={}",
                hex("0|notaday|u0001")
            )),
            "skiptoken",
        ),
        (
            app.e(&format!(
                "/usagedetailsbycustomdate?startTime=2025-11-01&endTime=2025-11-30&skiptoken={}",
                hex("0|99999999999|u")
            )),
            "skiptoken",
        ),
    ];
    for (url, needle) in &cases {
        let r = app.get(url, &app.keys.ent).await;
        let message = assert_error(&r, 400, "BadRequest");
        // Parameter names are matched case-insensitively (messages may spell them lower-case).
        assert!(
            message
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase()),
            "{url}: message `{message}` should mention `{needle}`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unauthorized_says_why() {
    let app = spawn_app().await;
    let url = app.e("/billingPeriods");
    let check = |r: &Resp, code: &str| {
        let m = assert_error(r, 401, code);
        assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
        m
    };
    let r = app.get_with(&url, &[]).await;
    check(&r, "MissingKey");

    let ent = app.keys.ent.clone();
    let (id, secret) = meterbook_server::keys::parse(&ent).expect("key shape");
    let wrong_secret = format!("mbk_{id}_{}", "0".repeat(64));
    let unknown_id = format!("mbk_{}_{secret}", "0123456789abcdef");
    for (header, code) in [
        (format!("Basic {ent}"), "MalformedKey"),
        (format!("Token {ent}"), "MalformedKey"),
        (ent.clone(), "MalformedKey"),
        ("bearer".to_string(), "MalformedKey"),
        ("bearer ".to_string(), "MalformedKey"),
        ("bearer mbk_123_abc".to_string(), "MalformedKey"),
        (
            format!("bearer {}", ent.replace("mbk_", "xyz_")),
            "MalformedKey",
        ),
        (format!("bearer {}", &ent[..ent.len() - 1]), "MalformedKey"),
        (format!("bearer {unknown_id}"), "UnknownKey"),
        (format!("bearer {wrong_secret}"), "UnknownKey"),
        (format!("bearer {}", app.keys.disabled), "DisabledKey"),
        (format!("bearer {}", app.keys.expired), "ExpiredKey"),
    ] {
        let r = app.get_with(&url, &[("authorization", &header)]).await;
        let m = check(&r, code);
        assert!(!m.contains(secret), "the message never echoes the key");
        if code == "ExpiredKey" {
            assert!(m.contains("2023-11-14"), "the expiry date is in `{m}`");
        }
    }

    // Every endpoint checks the key the same way.
    for url in every_endpoint(&app, N) {
        let r = app.get_with(&url, &[]).await;
        check(&r, "MissingKey");
        let r = app.get(&url, &app.keys.expired).await;
        check(&r, "ExpiredKey");
        let r = app.get(&url, &app.keys.disabled).await;
        check(&r, "DisabledKey");
        let r = app.get(&url, &wrong_secret).await;
        check(&r, "UnknownKey");
    }
    let r = app
        .post(
            &app.e("/keys"),
            &app.keys.disabled,
            &json!({"scope": "account", "name": "c1"}),
        )
        .await;
    check(&r, "DisabledKey");
}

/// A key is valid from its creation to its expiry by the server's clock:
/// not before (KeyNotYetValid), not from the expiry on (ExpiredKey).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_expire_and_start_by_the_servers_clock() {
    let app = spawn_app().await;
    let url = app.e("/billingPeriods");
    app.ok(&app.get(&url, &app.keys.ent).await);
    // The seeded keys were made a minute ago and expire 365 days from now.
    app.clock.advance(Duration::from_secs(365 * 86_400 - 1));
    app.ok(&app.get(&url, &app.keys.ent).await);
    app.clock.advance(Duration::from_secs(2));
    let m = assert_error(&app.get(&url, &app.keys.ent).await, 401, "ExpiredKey");
    let expiry = (app.clock.now() - chrono::Duration::seconds(1)).date_naive();
    assert!(
        m.contains(&expiry.to_string()),
        "the expiry date is in `{m}`"
    );
    // Back before the key was made.
    app.clock
        .set_millis(app.clock.now_millis() - 366 * 86_400 * 1000);
    assert_error(&app.get(&url, &app.keys.ent).await, 401, "KeyNotYetValid");
}

/// Every GET endpoint of an enrollment, with valid parameters.
fn every_endpoint(app: &TestApp, n: &str) -> Vec<String> {
    let v3 = |s: &str| format!("{}/v3/enrollments/{n}{s}", app.base);
    vec![
        v3("/billingPeriods"),
        v3("/balancesummary"),
        v3("/billingPeriods/202511/balancesummary"),
        v3("/usagedetails"),
        v3("/billingPeriods/202511/usagedetails"),
        v3("/usagedetailsbycustomdate?startTime=2025-11-01&endTime=2025-11-30"),
        v3("/usagedetails/download?billingPeriod=202511"),
        v3("/pricesheet"),
        v3("/billingPeriods/202511/pricesheet"),
        v3("/marketplacecharges"),
        v3("/billingPeriods/202511/marketplacecharges"),
        v3("/marketplacechargesbycustomdate?startTime=2025-11-01&endTime=2025-11-30"),
        v3("/keys"),
        format!(
            "{}/rest/{n}/usage-report?month=2025-11&type=detail&fmt=json",
            app.base
        ),
        format!(
            "{}/rest/{n}/usage-report?month=2025-11&type=summary&fmt=json",
            app.base
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forbidden_scopes_and_other_enrollments() {
    let app = spawn_app().await;
    // Balance and price sheet are for enterprise administrators only.
    for key in [&app.keys.dept_a, &app.keys.acct_b1] {
        for url in [
            app.e("/balancesummary"),
            app.e("/billingPeriods/202511/balancesummary"),
            app.e("/pricesheet"),
            app.e("/billingPeriods/202511/pricesheet"),
            app.url(&format!(
                "/rest/{N}/usage-report?month=2025-11&type=summary&fmt=json"
            )),
            app.url(&format!(
                "/rest/{N}/usage-report?month=2025-11&type=summary&fmt=csv"
            )),
        ] {
            let r = app.get(&url, key).await;
            assert_error(&r, 403, "Forbidden");
        }
    }
    // The read-only enterprise key reads everything.
    for url in every_endpoint(&app, N) {
        let r = app.get(&url, &app.keys.ro).await;
        app.ok(&r);
    }
    // The other enrollment's key works there (no watermark: "none")...
    let r = app
        .get(
            &format!(
                "{}/v3/enrollments/{OTHER}/billingPeriods/202511/usagedetails",
                app.base
            ),
            &app.keys.other,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-usage-complete-through").as_deref(),
        Some("none")
    );
    assert_eq!(record_ids(&r.page().data), ["z1"]);
    // ...and nowhere else; an enrollment that does not exist answers the same 403.
    let mut bodies = HashSet::new();
    for (key, n) in [
        (&app.keys.other, N),
        (&app.keys.ent, OTHER),
        (&app.keys.ent, "E999"),
        (&app.keys.dept_a, OTHER),
        (&app.keys.dept_a, "E999"),
        (&app.keys.acct_b1, "E999"),
        (&app.keys.ro, "E999"),
    ] {
        for url in every_endpoint(&app, n) {
            let r = app.get(&url, key).await;
            assert_error(&r, 403, "Forbidden");
            if url.contains("/billingPeriods/202511/usagedetails") {
                bodies.insert(r.text());
            }
        }
        let r = app
            .post(
                &format!("{}/v3/enrollments/{n}/keys", app.base),
                key,
                &json!({"scope": "enrollment"}),
            )
            .await;
        assert_error(&r, 403, "Forbidden");
        let r = app
            .post(
                &format!("{}/v3/enrollments/{n}/keys/disable", app.base),
                key,
                &json!({"scope": "enrollment"}),
            )
            .await;
        assert_error(&r, 403, "Forbidden");
    }
    assert_eq!(
        bodies.len(),
        1,
        "no hint whether an enrollment exists: {bodies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_routes_are_404_json() {
    let app = spawn_app().await;
    for path in [
        "/nope".to_string(),
        "/v2/enrollments/E100/billingPeriods".to_string(),
        format!("/v3/enrollments/{N}/nothing"),
        format!("/v3/enrollments/{N}/billingPeriods/202511/nothing"),
        format!("/v3/enrollments/{N}/usagedetails/download/more"),
        "/rest".to_string(),
    ] {
        for key in [None, Some(&app.keys.ent)] {
            let r = match key {
                None => app.get_with(&app.url(&path), &[]).await,
                Some(k) => app.get(&app.url(&path), k).await,
            };
            assert_error(&r, 404, "NotFound");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_is_per_key_with_retry_after() {
    let app = spawn_app_with(ServerSettings {
        rate_limit_per_sec: 1.0,
        rate_limit_burst: 3.0,
        ..Default::default()
    })
    .await;
    let url = app.e("/billingPeriods");
    for _ in 0..3 {
        let r = app.get(&url, &app.keys.ent).await;
        app.ok(&r);
    }
    let r = app.get(&url, &app.keys.ent).await;
    assert_error(&r, 429, "TooManyRequests");
    let secs: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&secs), "Retry-After {secs}");
    // Other keys have their own budget; requests without a valid key are not counted.
    let r = app.get(&url, &app.keys.dept_a).await;
    app.ok(&r);
    let r = app.get_with(&url, &[]).await;
    assert_error(&r, 401, "MissingKey");
    // The bucket refills by the server's clock: a millisecond short of the
    // promised time there is still no token, at it there is one.
    app.clock.advance(Duration::from_millis(secs * 1000 - 1));
    let r = app.get(&url, &app.keys.ent).await;
    assert_error(&r, 429, "TooManyRequests");
    app.clock.advance(Duration::from_millis(1));
    let r = app.get(&url, &app.keys.ent).await;
    app.ok(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etag_gives_304_and_changes_with_new_usage() {
    let app = spawn_app().await;
    let urls = [
        app.e("/billingPeriods"),
        app.e("/billingPeriods/202511/balancesummary"),
        app.e("/balancesummary"),
        app.e("/billingPeriods/202511/usagedetails?$top=50"),
        app.e("/usagedetailsbycustomdate?startTime=2025-11-01&endTime=2025-11-30"),
        app.e("/usagedetails/download?billingPeriod=202511"),
        app.e("/billingPeriods/202511/pricesheet"),
        app.e("/billingPeriods/202511/marketplacecharges"),
        app.url(&format!(
            "/rest/{N}/usage-report?month=2025-11&type=detail&fmt=csv"
        )),
    ];
    let mut before = Vec::new();
    for url in &urls {
        let r = app.get(url, &app.keys.ent).await;
        app.ok(&r);
        let etag = r.header("etag").unwrap();
        let auth = format!("bearer {}", app.keys.ent);
        for inm in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"nope\", {etag}"),
        ] {
            let r = app
                .get_with(url, &[("authorization", &auth), ("if-none-match", &inm)])
                .await;
            assert_eq!(r.status, 304, "{url} with If-None-Match {inm}");
            assert!(r.body.is_empty());
            assert_eq!(r.header("etag").as_deref(), Some(etag.as_str()));
            assert_eq!(
                r.header("x-usage-complete-through").as_deref(),
                Some(WATERMARK)
            );
        }
        let r = app
            .get_with(
                url,
                &[("authorization", &auth), ("if-none-match", "\"nope\"")],
            )
            .await;
        app.ok(&r);
        before.push(etag);
    }
    // The validator is per scope: a department key's copy is another one.
    let r = app.get(&urls[3], &app.keys.dept_a).await;
    assert_ne!(r.header("etag").unwrap(), before[3]);
    let r = app
        .get_with(
            &urls[3],
            &[
                ("authorization", &format!("bearer {}", app.keys.dept_a)),
                ("if-none-match", &before[3]),
            ],
        )
        .await;
    assert_eq!(r.status, 200);

    // New usage: every ETag changes; the old one no longer gives 304.
    app.ingest(vec![seed_row(
        "late-1",
        G1,
        "2025-11-30",
        "TIER01",
        "4",
        "202511",
    )])
    .await;
    for (url, old) in urls.iter().zip(&before) {
        let r = app
            .get_with(
                url,
                &[
                    ("authorization", &format!("bearer {}", app.keys.ent)),
                    ("if-none-match", old),
                ],
            )
            .await;
        app.ok(&r);
        let new = r.header("etag").unwrap();
        assert_ne!(&new, old, "{url}");
        let r = app
            .get_with(
                url,
                &[
                    ("authorization", &format!("bearer {}", app.keys.ent)),
                    ("if-none-match", &new),
                ],
            )
            .await;
        assert_eq!(r.status, 304, "{url}");
    }
    let r = app
        .get(
            &app.e("/billingPeriods/202511/usagedetails?$top=10000"),
            &app.keys.ent,
        )
        .await;
    assert!(record_ids(&r.page().data).contains(&"late-1".to_string()));
}

// ---------------------------------------------------------------------------
// 4. Case-insensitivity
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paths_parameters_and_scheme_are_case_insensitive() {
    let app = spawn_app().await;
    let same = |a: &Resp, b: &Resp| {
        app.ok(a);
        app.ok(b);
        assert_eq!(a.text(), b.text());
    };
    let k = &app.keys.ent;
    let lower = app.get(&app.e("/billingperiods"), k).await;
    let upper = app
        .get(
            &format!("{}/V3/Enrollments/{N}/BillingPeriods", app.base),
            k,
        )
        .await;
    same(&lower, &upper);

    let lower = app
        .get(&app.e("/billingperiods/202511/usagedetails?$top=10000"), k)
        .await;
    let mixed = app
        .get(&app.e("/billingPeriods/202511/usageDetails?$TOP=10000"), k)
        .await;
    same(&lower, &mixed);
    assert_eq!(mixed.page().data.len(), 304);

    let lower = app
        .get(
            &app.e("/usagedetailsbycustomdate?starttime=2025-11-01&endtime=2025-11-10"),
            k,
        )
        .await;
    let mixed = app
        .get(
            &app.e("/UsageDetailsByCustomDate?StartTime=2025-11-01&ENDTIME=2025-11-10"),
            k,
        )
        .await;
    same(&lower, &mixed);
    assert_eq!(
        record_ids(&mixed.page().data),
        app.expected_range("2025-11-01", "2025-11-10", None, None)
    );

    let lower = app
        .get(&app.e("/usagedetails/download?billingperiod=202511"), k)
        .await;
    let mixed = app
        .get(&app.e("/UsageDetails/Download?BillingPeriod=202511"), k)
        .await;
    same(&lower, &mixed);

    let lower = app
        .get(
            &app.url(&format!(
                "/rest/{N}/usage-report?month=2025-11&type=detail&fmt=json"
            )),
            k,
        )
        .await;
    let mixed = app
        .get(
            &app.url(&format!(
                "/REST/{N}/Usage-Report?Month=2025-11&Type=Detail&Fmt=Json"
            )),
            k,
        )
        .await;
    same(&lower, &mixed);
    let csv = app
        .get(
            &app.url(&format!(
                "/rest/{N}/usage-report?month=2025-11&type=DETAIL&fmt=CSV"
            )),
            k,
        )
        .await;
    app.ok(&csv);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));

    // The scheme: bearer, Bearer, BEARER.
    for scheme in ["bearer", "Bearer", "BEARER", "bEaReR"] {
        let r = app
            .get_with(
                &app.e("/billingPeriods"),
                &[("authorization", &format!("{scheme} {k}"))],
            )
            .await;
        app.ok(&r);
    }
    // The nextLink of a mixed-case request still walks the whole period.
    let (rows, _) = app
        .walk(&app.e("/BillingPeriods/202511/UsageDetails?PageSize=50"), k)
        .await;
    assert_eq!(record_ids(&rows), app.expected_booked("202511", None, None));
}

// ---------------------------------------------------------------------------
// 5. Permission matrix
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permission_matrix_rows_and_costs_by_scope() {
    let app = spawn_app().await;
    let all_range = ("2025-10-01", "2025-12-31");

    // The real cost and rate of every row, from the enterprise key.
    let r = app
        .get(
            &app.e(&format!(
                "/usagedetailsbycustomdate?startTime={}&endTime={}&$top=10000",
                all_range.0, all_range.1
            )),
            &app.keys.ent,
        )
        .await;
    app.ok(&r);
    let real: HashMap<String, (String, String)> = r
        .page()
        .data
        .iter()
        .map(|row| {
            (
                row.s("recordId"),
                (
                    row.number("cost").to_string(),
                    row.number("resourceRate").to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(real.len(), app.rows.len());
    let instance_to_id: HashMap<String, String> = app
        .rows
        .iter()
        .map(|r| (r.instance(), r.id.clone()))
        .collect();

    type Allowed = Option<&'static [&'static str]>;
    let scopes: [(&str, &String, Allowed); 3] = [
        ("enterprise", &app.keys.ent, None),
        ("department A", &app.keys.dept_a, Some(&["a1", "a2"])),
        ("account b1", &app.keys.acct_b1, Some(&["b1"])),
    ];
    for (dept_view, acct_view) in [(false, false), (true, false), (false, true), (true, true)] {
        app.store
            .set_visibility(
                &num(N),
                ChargeVisibility {
                    department_admins_view_charges: dept_view,
                    account_owners_view_charges: acct_view,
                },
            )
            .expect("visibility");
        for (name, key, allowed) in &scopes {
            let sees = match *name {
                "enterprise" => true,
                "department A" => dept_view,
                _ => acct_view,
            };
            let ctx = format!("{name}, dept view {dept_view}, account view {acct_view}");
            let check_costs = |id: &str, cost: &str, rate: &str, what: &str| {
                if sees {
                    let (c, r) = &real[id];
                    assert_eq!((cost, rate), (c.as_str(), r.as_str()), "{ctx} {what} {id}");
                } else {
                    assert_eq!((cost, rate), ("0", "0"), "{ctx} {what} {id}: hidden");
                }
            };
            let pages = [
                (
                    "/billingPeriods/202511/usagedetails?$top=10000".to_string(),
                    app.expected_booked("202511", *allowed, None),
                ),
                (
                    "/usagedetails?$top=10000".to_string(),
                    app.expected_booked("202512", *allowed, None),
                ),
                (
                    format!(
                        "/usagedetailsbycustomdate?startTime={}&endTime={}&$top=10000",
                        all_range.0, all_range.1
                    ),
                    app.expected_range(all_range.0, all_range.1, *allowed, None),
                ),
                (
                    "/billingPeriods/202511/marketplacecharges?$top=10000".to_string(),
                    app.expected_booked("202511", *allowed, Some("MKT01")),
                ),
                (
                    "/marketplacechargesbycustomdate?startTime=2025-10-01&endTime=2025-11-30"
                        .to_string(),
                    app.expected_range("2025-10-01", "2025-11-30", *allowed, Some("MKT01")),
                ),
            ];
            for (path, want) in &pages {
                let r = app.get(&app.e(path), key).await;
                app.ok(&r);
                let rows = r.page().data;
                assert_eq!(&record_ids(&rows), want, "{ctx}: {path}");
                assert!(!want.is_empty(), "{ctx}: {path} has rows to check");
                for row in &rows {
                    if let Some(a) = allowed {
                        assert!(a.contains(&row.s("accountName").as_str()), "{ctx}: {path}");
                    }
                    check_costs(
                        &row.s("recordId"),
                        row.number("cost"),
                        row.number("resourceRate"),
                        path,
                    );
                }
                if sees {
                    assert!(
                        rows.iter().any(|r| r.number("cost") != "0"),
                        "{ctx}: {path}"
                    );
                }
            }
            // The CSV download.
            let r = app
                .get(&app.e("/usagedetails/download?billingPeriod=202511"), key)
                .await;
            app.ok(&r);
            let csv = Csv::parse(&r.text());
            assert_eq!(
                csv.column("RecordId"),
                app.expected_booked("202511", *allowed, None),
                "{ctx}"
            );
            for ((id, cost), rate) in csv
                .column("RecordId")
                .iter()
                .zip(csv.column("Cost"))
                .zip(csv.column("ResourceRate"))
            {
                check_costs(id, &cost, &rate, "download");
            }
            // The legacy report.
            let r = app
                .get(
                    &app.url(&format!(
                        "/rest/{N}/usage-report?month=2025-11&type=detail&fmt=json"
                    )),
                    key,
                )
                .await;
            app.ok(&r);
            let rows = r.objs();
            let ids: Vec<String> = rows
                .iter()
                .map(|r| instance_to_id[&r.s("InstanceId")].clone())
                .collect();
            assert_eq!(
                ids,
                app.expected_booked("202511", *allowed, None),
                "{ctx}: legacy"
            );
            for (row, id) in rows.iter().zip(&ids) {
                check_costs(
                    id,
                    row.number("ExtendedCost"),
                    row.number("ResourceRate"),
                    "legacy",
                );
            }
            // Balance and price sheet: enterprise only.
            for path in [
                "/balancesummary",
                "/billingPeriods/202511/balancesummary",
                "/pricesheet",
                "/billingPeriods/202511/pricesheet",
            ] {
                let r = app.get(&app.e(path), key).await;
                if allowed.is_none() {
                    app.ok(&r);
                } else {
                    assert_error(&r, 403, "Forbidden");
                }
            }
            let r = app.get(&app.e("/billingPeriods"), key).await;
            app.ok(&r);
        }
    }
}

// ---------------------------------------------------------------------------
// 6. Keys over the API
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_generate_regenerate_list_disable() {
    let app = spawn_app().await;
    let keys_url = app.e("/keys");
    let dept_a_secondary =
        json!({"scope": "department", "name": "A", "slot": "secondary", "expiresInDays": 30});
    let usage = app.e("/billingPeriods/202511/usagedetails?$top=10000");
    let dept_a_rows = app.expected_booked("202511", Some(&["a1", "a2"]), None);

    let r = app.post(&keys_url, &app.keys.ent, &dept_a_secondary).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let key1 = v["key"].as_str().expect("the key, shown once").to_string();
    let (id1, secret1) = meterbook_server::keys::parse(&key1).expect("mbk_<id>_<secret>");
    let (id1, secret1) = (id1.to_string(), secret1.to_string());
    assert_eq!(v["id"], format!("mbk_{id1}"));
    assert_eq!(v["scope"], "department");
    assert_eq!(v["name"], "A");
    assert_eq!(v["slot"], "secondary");
    assert_eq!(v["readOnly"], false);
    assert_eq!(v["disabled"], false);
    let expires = chrono::DateTime::parse_from_rfc3339(v["expiresOn"].as_str().unwrap()).unwrap();
    let in_30 = app.clock.now() + chrono::Duration::days(30);
    assert!(
        (expires.timestamp() - in_30.timestamp()).abs() < 120,
        "{expires}"
    );
    // Stored as the hash of the secret only.
    let rec = app.store.key(&id1).unwrap().expect("stored");
    assert_eq!(
        rec.secret_hash,
        meterbook_server::keys::hash_secret(&secret1)
    );
    assert_eq!(rec.scope, Scope::Department(app.ids.dept_a));
    assert_eq!(rec.slot, Slot::Secondary);

    // The new key works with the department's scope.
    let r = app.get(&usage, &key1).await;
    app.ok(&r);
    assert_eq!(record_ids(&r.page().data), dept_a_rows);
    assert_error(
        &app.get(&app.e("/balancesummary"), &key1).await,
        403,
        "Forbidden",
    );

    // Regenerating the slot replaces the key: the previous one is unknown.
    let r = app.post(&keys_url, &app.keys.ent, &dept_a_secondary).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key2 = r.json()["key"].as_str().unwrap().to_string();
    assert_ne!(key1, key2);
    let secret2 = meterbook_server::keys::parse(&key2).unwrap().1.to_string();
    assert_error(&app.get(&usage, &key1).await, 401, "UnknownKey");
    app.ok(&app.get(&usage, &key2).await);
    // The primary slot is untouched.
    app.ok(&app.get(&usage, &app.keys.dept_a).await);

    // The list: every key of the caller's scope, never a secret or a hash.
    let fields: BTreeSet<&str> = [
        "id",
        "scope",
        "name",
        "slot",
        "readOnly",
        "startsOn",
        "expiresOn",
        "expired",
        "expiresSoon",
        "disabled",
        "lastUsedOn",
    ]
    .into_iter()
    .collect();
    let list = |r: &Resp| -> Vec<serde_json::Value> {
        app.ok(r);
        let text = r.text();
        for s in [&secret1, &secret2] {
            assert!(!text.contains(s.as_str()), "a secret in the list");
            let hash: String = meterbook_server::keys::hash_secret(s)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert!(!text.contains(&hash), "a hash in the list");
        }
        let items = r.json().as_array().expect("array").clone();
        for it in &items {
            let keys: BTreeSet<&str> = it.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            assert_eq!(keys, fields, "{it}");
        }
        items
    };
    let all = list(&app.get(&keys_url, &app.keys.ent).await);
    let token_id = |t: &str| format!("mbk_{}", meterbook_server::keys::parse(t).unwrap().0);
    let ids: BTreeSet<String> = all
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = [
        &app.keys.ent,
        &app.keys.ro,
        &app.keys.dept_a,
        &app.keys.acct_b1,
        &app.keys.expired,
        &app.keys.disabled,
        &key2,
    ]
    .iter()
    .map(|t| token_id(t))
    .collect();
    assert_eq!(
        ids, want,
        "the enrollment's keys, not E200's, not the replaced one"
    );
    let secondary = all.iter().find(|i| i["id"] == token_id(&key2)).unwrap();
    assert_eq!(
        (&secondary["scope"], &secondary["name"], &secondary["slot"]),
        (&json!("department"), &json!("A"), &json!("secondary"))
    );
    let expired = all
        .iter()
        .find(|i| i["id"] == token_id(&app.keys.expired))
        .unwrap();
    assert!(expired["expiresOn"]
        .as_str()
        .unwrap()
        .starts_with("2023-11-14"));
    // A department key sees only its department's keys (and its accounts').
    let mine = list(&app.get(&keys_url, &app.keys.dept_a).await);
    let ids: BTreeSet<String> = mine
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        [token_id(&app.keys.dept_a), token_id(&key2)]
            .into_iter()
            .collect()
    );
    let mine = list(&app.get(&keys_url, &app.keys.acct_b1).await);
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], token_id(&app.keys.acct_b1));

    // The last use is recorded (off the request path: poll briefly); an unused key has none.
    let mut used = None;
    for _ in 0..60 {
        let all = list(&app.get(&keys_url, &app.keys.ent).await);
        let k = all.iter().find(|i| i["id"] == token_id(&key2)).unwrap();
        if let Some(t) = k["lastUsedOn"].as_str() {
            used = Some(t.to_string());
            let ro = all
                .iter()
                .find(|i| i["id"] == token_id(&app.keys.ro))
                .unwrap();
            assert!(ro["lastUsedOn"].is_null(), "{ro}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let used = used.expect("lastUsedOn is set once the key was used");
    chrono::DateTime::parse_from_rfc3339(&used).expect("ISO 8601");

    // Disable: the key then gets 401 DisabledKey; the other slot still works.
    let r = app
        .post(
            &app.e("/keys/disable"),
            &app.keys.ent,
            &json!({"scope": "department", "name": "A", "slot": "secondary"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_error(&app.get(&usage, &key2).await, 401, "DisabledKey");
    app.ok(&app.get(&usage, &app.keys.dept_a).await);
    let all = list(&app.get(&keys_url, &app.keys.ent).await);
    let secondary = all.iter().find(|i| i["id"] == token_id(&key2)).unwrap();
    assert_eq!(secondary["disabled"], true);
    // Disabling an empty slot.
    let r = app
        .post(
            &app.e("/keys/disable"),
            &app.keys.ent,
            &json!({"scope": "account", "name": "a2"}),
        )
        .await;
    assert_error(&r, 404, "NotFound");

    // Without expiresInDays: the default 183 days.
    let r = app
        .post(
            &keys_url,
            &app.keys.ent,
            &json!({"scope": "account", "name": "a2"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["slot"], "primary");
    let expires = chrono::DateTime::parse_from_rfc3339(v["expiresOn"].as_str().unwrap()).unwrap();
    let in_183 = app.clock.now() + chrono::Duration::days(183);
    assert!((expires.timestamp() - in_183.timestamp()).abs() < 120);
    let r = app.get(&usage, v["key"].as_str().unwrap()).await;
    app.ok(&r);
    assert_eq!(
        record_ids(&r.page().data),
        app.expected_booked("202511", Some(&["a2"]), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_can_only_be_made_within_the_callers_scope() {
    let app = spawn_app().await;
    let keys_url = app.e("/keys");
    let usage = app.e("/billingPeriods/202511/usagedetails?$top=10000");

    // A read-only administrator cannot create or disable keys (but can list).
    let r = app
        .post(
            &keys_url,
            &app.keys.ro,
            &json!({"scope": "account", "name": "a1"}),
        )
        .await;
    assert_error(&r, 403, "Forbidden");
    let r = app
        .post(
            &app.e("/keys/disable"),
            &app.keys.ro,
            &json!({"scope": "department", "name": "A"}),
        )
        .await;
    assert_error(&r, 403, "Forbidden");
    app.ok(&app.get(&keys_url, &app.keys.ro).await);
    app.ok(&app.get(&usage, &app.keys.dept_a).await);

    // A department administrator: not the enrollment, not another department
    // or its accounts; yes an account of its own department.
    for body in [
        json!({"scope": "enrollment"}),
        json!({"scope": "department", "name": "B"}),
        json!({"scope": "account", "name": "b1"}),
        json!({"scope": "account", "name": "c1"}),
    ] {
        let r = app.post(&keys_url, &app.keys.dept_a, &body).await;
        assert_error(&r, 403, "Forbidden");
    }
    let r = app
        .post(
            &app.e("/keys/disable"),
            &app.keys.dept_a,
            &json!({"scope": "department", "name": "B"}),
        )
        .await;
    assert_error(&r, 403, "Forbidden");
    let r = app
        .post(
            &app.e("/keys/disable"),
            &app.keys.dept_a,
            &json!({"scope": "enrollment"}),
        )
        .await;
    assert_error(&r, 403, "Forbidden");
    app.ok(&app.get(&usage, &app.keys.ent).await);
    let r = app
        .post(
            &keys_url,
            &app.keys.dept_a,
            &json!({"scope": "account", "name": "a1", "slot": "secondary", "expiresInDays": 7}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let a1_key = r.json()["key"].as_str().unwrap().to_string();
    let r = app.get(&usage, &a1_key).await;
    app.ok(&r);
    assert_eq!(
        record_ids(&r.page().data),
        app.expected_booked("202511", Some(&["a1"]), None)
    );

    // An account owner: its own account only.
    let r = app
        .post(
            &keys_url,
            &app.keys.acct_b1,
            &json!({"scope": "department", "name": "B"}),
        )
        .await;
    assert_error(&r, 403, "Forbidden");
    let r = app
        .post(
            &keys_url,
            &app.keys.acct_b1,
            &json!({"scope": "account", "name": "a1"}),
        )
        .await;
    assert_error(&r, 403, "Forbidden");
    let r = app
        .post(
            &keys_url,
            &app.keys.acct_b1,
            &json!({"scope": "account", "name": "b1", "slot": "secondary"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // Lifetimes: 1 to the operator's maximum (730 by default).
    for days in [0, 731, 100_000] {
        let r = app
            .post(
                &keys_url,
                &app.keys.ent,
                &json!({"scope": "department", "name": "B", "expiresInDays": days}),
            )
            .await;
        let m = assert_error(&r, 400, "BadRequest");
        assert!(m.contains("expiresInDays"), "{m}");
    }
    let r = app
        .post(
            &keys_url,
            &app.keys.ent,
            &json!({"scope": "department", "name": "B", "expiresInDays": 730}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Bad values.
    for body in [
        json!({"scope": "planet"}),
        json!({"scope": "department"}),
        json!({"scope": "department", "name": "A", "slot": "tertiary"}),
    ] {
        let r = app.post(&keys_url, &app.keys.ent, &body).await;
        assert_error(&r, 400, "BadRequest");
    }
    let r = app
        .post(
            &keys_url,
            &app.keys.ent,
            &json!({"scope": "department", "name": "Nope"}),
        )
        .await;
    assert_error(&r, 404, "NotFound");
}

// ---------------------------------------------------------------------------
// Error bodies everywhere
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_input_gets_json_errors() {
    let app = spawn_app().await;
    let keys_url = app.e("/keys");
    let auth = format!("bearer {}", app.keys.ent);
    // Key requests that are not the expected JSON.
    for (body, content_type) in [
        (
            r#"{"scope":"department","name":"A","colour":"red"}"#,
            "application/json",
        ),
        (
            r#"{"scope":"department","name":"A","expiresInDays":-5}"#,
            "application/json",
        ),
        (r#"{"scope":"department","#, "application/json"),
        (r#"{"scope":"department","name":"A"}"#, "text/plain"),
        ("", "application/json"),
    ] {
        let r = app
            .send(
                app.client
                    .post(&keys_url)
                    .header("authorization", &auth)
                    .header("content-type", content_type)
                    .body(body),
            )
            .await;
        assert_error(&r, 400, "BadRequest");
    }
    // A query string that does not decode.
    let r = app
        .get(
            &app.e("/usagedetailsbycustomdate?startTime=%zz&endTime=2025-11-02"),
            &app.keys.ent,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_error(&r, 400, "BadRequest");
}

// ---------------------------------------------------------------------------
// 500: a generic body, the cause only in the log
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn internal_errors_are_generic_500s() {
    let app = spawn_app().await;
    let urls = [
        app.e("/billingPeriods/202511/usagedetails"),
        app.e("/usagedetailsbycustomdate?startTime=2025-11-01&endTime=2025-11-30"),
        app.e("/billingPeriods/202511/marketplacecharges"),
        app.e("/usagedetails/download?billingPeriod=202511"),
        app.e("/billingPeriods/202511/balancesummary"),
        app.url(&format!(
            "/rest/{N}/usage-report?month=2025-11&type=detail&fmt=csv"
        )),
    ];
    for failure in [UsageReads::Fail, UsageReads::Panic] {
        app.faults.set_usage_reads(failure);
        for url in &urls {
            let r = app.get(url, &app.keys.ent).await;
            let message = assert_error(&r, 500, "InternalError");
            assert_eq!(message, "internal error; the cause is in the server log");
            let text = r.text();
            for leak in ["usage_fact", "malformed", "/var/lib", "exploded", "panic"] {
                assert!(
                    !text.contains(leak),
                    "{url}: 500 body leaks `{leak}`: {text}"
                );
            }
        }
        // Requests that read no usage still work.
        app.ok(&app.get(&app.e("/billingPeriods"), &app.keys.ent).await);
    }
    // The server survives; every URL works again.
    app.faults.set_usage_reads(UsageReads::Work);
    for url in &urls {
        app.ok(&app.get(url, &app.keys.ent).await);
    }
}

// ---------------------------------------------------------------------------
// Regression tests for bugs found while writing this suite (now fixed)
// ---------------------------------------------------------------------------

/// routes/legacy.rs answers `If-None-Match` (ctx.not_modified) before
/// `type=summary` checks `caller.require_balance()`, so a department or
/// account key gets 304 (with the summary's ETag) where it must get 403.
/// (The v3 balancesummary/pricesheet handlers check the scope first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bug_legacy_summary_checks_scope_before_if_none_match() {
    let app = spawn_app().await;
    let url = app.url(&format!(
        "/rest/{N}/usage-report?month=2025-11&type=summary&fmt=json"
    ));
    for key in [&app.keys.dept_a, &app.keys.acct_b1] {
        let r = app
            .get_with(
                &url,
                &[
                    ("authorization", &format!("bearer {key}")),
                    ("if-none-match", "*"),
                ],
            )
            .await;
        assert_error(&r, 403, "Forbidden");
    }
}

/// axum's own rejections bypass the JSON error body: a wrong method gets 405
/// with an empty body.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bug_method_not_allowed_has_a_json_error_body() {
    let app = spawn_app().await;
    let r = app
        .send(
            app.client
                .delete(app.e("/billingPeriods"))
                .header("authorization", format!("bearer {}", app.keys.ent)),
        )
        .await;
    assert_error(&r, 405, "MethodNotAllowed");
}

/// An enrollment number that percent-decodes to invalid UTF-8 is rejected by
/// axum's `Path` extractor with a plain-text body.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bug_undecodable_path_has_a_json_error_body() {
    let app = spawn_app().await;
    let r = app
        .get(
            &format!("{}/v3/enrollments/E%FF/billingPeriods", app.base),
            &app.keys.ent,
        )
        .await;
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json"),
        "{}",
        r.text()
    );
    assert!(r.status == 400 || r.status == 403, "{}", r.status);
}

/// `Ctx::range` parses only the first 10 characters of startTime/endTime
/// (`v.get(..10)`), so any trailing text is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bug_dates_with_trailing_garbage_are_rejected() {
    let app = spawn_app().await;
    for q in [
        "startTime=2025-11-01xyz&endTime=2025-11-02",
        "startTime=2025-11-01&endTime=2025-11-02!!",
    ] {
        let r = app
            .get(
                &app.e(&format!("/usagedetailsbycustomdate?{q}")),
                &app.keys.ent,
            )
            .await;
        assert_error(&r, 400, "BadRequest");
    }
}

/// routes/legacy.rs parses `month` with `month.replace('-', "")`, so any
/// placement of dashes passes (`20-25-11` is read as 2025-11).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bug_legacy_month_must_be_yyyy_mm() {
    let app = spawn_app().await;
    for m in ["20-25-11", "2025-1-1", "-202511-"] {
        let r = app
            .get(
                &app.url(&format!("/rest/{N}/usage-report?month={m}")),
                &app.keys.ent,
            )
            .await;
        assert_error(&r, 400, "BadRequest");
    }
}

/// With `--public-url`, every absolute link is made on it: a client that
/// forges its `Host` header gets links to the deployment, not to its host.
/// Without it, links follow the request's host (as before).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_use_the_public_url_whatever_the_host_header_says() {
    let mut settings = roomy();
    settings.public_url = Some(
        meterbook_server::PublicUrl::parse("https://usage.example.com/").expect("a public URL"),
    );
    let app = spawn_app_with(settings).await;
    let forged = [
        ("authorization", format!("bearer {}", app.keys.ent)),
        ("host", "evil.example".to_string()),
    ];
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app
        .get_with(
            &app.e("/billingPeriods/202511/usagedetails?pageSize=2"),
            &forged,
        )
        .await;
    app.ok(&r);
    let next = r.page().next_link.expect("nextLink");
    assert!(
        next.starts_with(&format!("https://usage.example.com/v3/enrollments/{N}/")),
        "{next}"
    );
    let r = app.get_with(&app.e("/billingPeriods"), &forged).await;
    app.ok(&r);
    let text = r.text();
    assert!(!text.contains("evil.example"), "{text}");
    assert!(
        text.contains(&format!(
            "https://usage.example.com/v3/enrollments/{N}/billingPeriods/202511/usagedetails"
        )),
        "{text}"
    );

    let plain = spawn_app().await;
    let forged = [
        ("authorization", format!("bearer {}", plain.keys.ent)),
        ("host", "evil.example".to_string()),
    ];
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = plain
        .get_with(
            &plain.e("/billingPeriods/202511/usagedetails?pageSize=2"),
            &forged,
        )
        .await;
    let next = r.page().next_link.expect("nextLink");
    assert!(next.starts_with("http://evil.example/"), "{next}");
}
