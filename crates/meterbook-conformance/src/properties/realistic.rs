//! Usage shaped like a real Enterprise Agreement feed, small enough for a
//! property test (the bench's data set, `meterbook bench`, at a few dozen
//! rows):
//!
//! - RecordIds are random UUIDv4s, mostly canonical lower case, some upper
//!   case, some differing from another row's id only in case, and some not
//!   UUIDs at all (plain keys, no hyphens, braces, near misses, a UUID with a
//!   suffix): every way a store may encode an id, and ids whose text order
//!   crosses encodings.
//! - Resources each live for a few days with one row a day, on one meter, in
//!   one subscription and resource group; the InstanceId holds the
//!   subscription's GUID, and each resource has JSON tags of its own.
//! - Several subscriptions with GUIDs over two departments and an account
//!   without one; meters with GUID ids, some tiered, one with an included
//!   quantity and one billed separately.
//! - Rows over three months (2025-01 to 2025-03), the rows of a day in no
//!   order, and late rows dated in January to send after it closed
//!   (corrections booked in February).

use crate::fixture::*;
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::hierarchy::HierarchyRow;
use meterbook_core::ingest::{ingest, IngestError, IngestOptions, IngestSummary, UsageSource};
use meterbook_core::statement::{CommitmentEntry, Statement};
use meterbook_core::store::{EntryKind, Store, UsageSelection};
use meterbook_core::usage::{RawUsage, Reject};
use meterbook_core::{Currency, Money};
use meterbook_io::report::usage::{UsageFilter, UsageReport};
use meterbook_io::report::ReportScope;
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::HashSet;

/// The periods the data spans, each priced.
pub const PERIODS: [&str; 3] = ["202501", "202502", "202503"];
/// Days the on-time rows may fall on: 2025-01-01 and the 89 after it.
const DAYS: i32 = 90;
const SUBSCRIPTIONS: usize = 6;
const METERS: usize = 6;

/// A random UUIDv4 (version 4, RFC 4122 variant), lower case, from 128 bits.
pub fn uuid4(bits: u128) -> String {
    let mut b = bits;
    b = (b & !(0xf << 76)) | (0x4 << 76);
    b = (b & !(0x3 << 62)) | (0x2 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (b >> 96) as u32,
        (b >> 80) as u16,
        (b >> 64) as u16,
        (b >> 48) as u16,
        (b & 0xffff_ffff_ffff) as u64
    )
}

/// splitmix64: distinct inputs give distinct outputs.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A GUID for the `i`th thing of a kind (`salt`), distinct for distinct `i`.
fn guid(seed: u64, salt: u64, i: usize) -> String {
    let hi = mix(seed ^ mix(salt ^ (i as u64) << 8));
    uuid4(((hi as u128) << 64) | mix(i as u64 ^ (salt << 32)) as u128)
}

/// A meter of the price sheet, the same in every period.
#[derive(Clone, Debug)]
pub struct RealMeter {
    pub id: String,
    pub included: u32,
    /// (minimum units, unit price in 10^-6)
    pub tiers: Vec<(u32, u64)>,
    pub separately: bool,
}

/// Subscriptions and meters.
#[derive(Clone, Debug)]
pub struct World {
    pub subscriptions: Vec<String>,
    pub meters: Vec<RealMeter>,
}

/// One usage record as a feed sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealRow {
    pub record_id: String,
    pub subscription: String,
    pub date: String,
    pub meter: String,
    pub quantity: String,
    pub instance: String,
    pub resource_group: String,
    pub location: String,
    pub service: String,
    pub tags: String,
    pub additional_info: String,
}

/// A generated data set: the rows sent on time (by day, the rows of a day in
/// no order) and the late ones, dated in January, sent after it closed.
#[derive(Clone, Debug)]
pub struct RealUsage {
    pub world: World,
    pub rows: Vec<RealRow>,
    pub late: Vec<RealRow>,
}

const PROVIDERS: [(&str, &str, &str); 6] = [
    (
        "Microsoft.Compute/virtualMachines",
        "Microsoft.Compute",
        "vm",
    ),
    ("Microsoft.Compute/disks", "Microsoft.Compute", "disk"),
    (
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Storage",
        "st",
    ),
    ("Microsoft.Sql/servers", "Microsoft.Sql", "sql"),
    ("Microsoft.Web/sites", "Microsoft.Web", "func"),
    (
        "Microsoft.ContainerService/managedClusters",
        "Microsoft.ContainerService",
        "aks",
    ),
];
const LOCATIONS: [&str; 4] = ["westeurope", "northeurope", "eastus2", "japaneast"];
const ENVS: [&str; 4] = ["prod", "dev", "test", "staging"];
/// Owners, some needing escapes in CSV and JSON.
const OWNERS: [&str; 4] = [
    "team1@contoso.example",
    "Zoë Müller",
    "ops, \"night\" shift",
    "team7@contoso.example",
];

/// How a RecordId is drawn (out of 20).
fn record_id(bits: u128, kind: u8, last_lower: Option<&str>) -> String {
    let u = uuid4(bits);
    match kind {
        // Canonical lower case, most of them.
        0..=12 => u,
        // Upper case.
        13 | 14 => u.to_ascii_uppercase(),
        // Another row's id with one letter (or all of it) in the other case.
        15 | 16 => {
            let base = last_lower.unwrap_or(&u);
            match base.find(|c: char| c.is_ascii_lowercase()) {
                Some(i) if kind == 15 => {
                    let mut s = base.to_string();
                    s[i..=i].make_ascii_uppercase();
                    s
                }
                _ => base.to_ascii_uppercase(),
            }
        }
        // Not UUIDs.
        17 => format!("rec-{:06}", bits % 1_000_000),
        18 => match bits % 4 {
            0 => u.replace('-', ""),
            1 => format!("{{{u}}}"),
            2 => format!("{u}x"),
            // A near miss: 36 characters, hyphens where they belong, one not hex.
            _ => format!("{}g", &u[..35]),
        },
        // A hyphen out of place, or a prefix of a UUID.
        _ => match bits % 2 {
            0 => format!("{}-{}", &u[..7], &u[7..35].replace('-', "")),
            _ => u[..20].to_string(),
        },
    }
}

/// A resource: where its rows come from.
#[derive(Clone, Debug)]
struct Resource {
    sub: usize,
    meter: usize,
    app: u32,
    env: usize,
    provider: usize,
    location: usize,
    owner: usize,
    tagged: bool,
    start: i32,
    /// Per day of its life: (quantity in 10^-6, RecordId bits, RecordId kind).
    days: Vec<(u64, u128, u8)>,
}

fn meter_strategy() -> impl Strategy<Value = (u32, u64, bool)> {
    (0u32..20, 1u64..600_000, any::<bool>())
}

fn resource_strategy() -> impl Strategy<Value = Resource> {
    (
        // Skewed to the first subscriptions, as in real enrollments.
        (0usize..SUBSCRIPTIONS, 0usize..SUBSCRIPTIONS).prop_map(|(a, b)| a.min(b)),
        0usize..METERS,
        (0u32..40, 0usize..ENVS.len(), 0usize..PROVIDERS.len()),
        (0usize..LOCATIONS.len(), 0usize..OWNERS.len(), 0u8..5),
        0i32..DAYS,
        prop::collection::vec((0u64..30_000_000, any::<u128>(), 0u8..20), 1..6),
    )
        .prop_map(
            |(sub, meter, (app, env, provider), (location, owner, tagged), start, days)| Resource {
                sub,
                meter,
                app,
                env,
                provider,
                location,
                owner,
                tagged: tagged > 0,
                start: start.min(DAYS - days.len() as i32),
                days,
            },
        )
}

impl Resource {
    fn row(&self, w: &World, i: usize, record_id: String, offset: i32, q: u64) -> RealRow {
        let (provider, service, short) = PROVIDERS[self.provider];
        let env = ENVS[self.env];
        let sub = &w.subscriptions[self.sub];
        let group = format!("rg-app{:03}-{env}", self.app);
        let tags = if self.tagged {
            serde_json::json!({
                "env": env,
                "app": format!("app{:03}", self.app),
                "costCenter": format!("CC-{}", self.sub % 3),
                "owner": OWNERS[self.owner],
            })
            .to_string()
        } else {
            String::new()
        };
        let additional_info = if self.provider == 0 {
            format!(
                r#"{{"ImageType":"Canonical","ServiceType":"Standard_D{}s_v5","VCPUs":{}}}"#,
                2 << self.meter,
                2 << self.meter
            )
        } else {
            String::new()
        };
        RealRow {
            record_id,
            subscription: sub.clone(),
            date: day("2025-01-01").add_days(offset).to_string(),
            meter: w.meters[self.meter].id.clone(),
            quantity: format!("{}.{:06}", q / 1_000_000, q % 1_000_000),
            instance: format!(
                "/subscriptions/{sub}/resourceGroups/{group}/providers/{provider}/{short}-{i:x}"
            ),
            resource_group: group,
            location: LOCATIONS[self.location].into(),
            service: service.into(),
            tags,
            additional_info,
        }
    }
}

/// Subscriptions and meters for a seed, with the meters' figures drawn.
fn world(seed: u64, meters: &[(u32, u64, bool)]) -> World {
    World {
        subscriptions: (0..SUBSCRIPTIONS).map(|i| guid(seed, 1, i)).collect(),
        meters: meters
            .iter()
            .enumerate()
            .map(|(i, &(included, base, separately))| RealMeter {
                id: guid(seed, 2, i),
                // One meter has an included quantity.
                included: if i == 1 { included } else { 0 },
                // Every third meter has three tiers, as a fifth of the bench's do.
                tiers: if i % 3 == 2 {
                    vec![(0, base), (5, base * 95 / 100), (40, base * 88 / 100)]
                } else {
                    vec![(0, base)]
                },
                separately: i == 4 && separately,
            })
            .collect(),
    }
}

/// Drops every row whose RecordId an earlier row has (shrinking can make
/// generated ids equal).
pub fn unique_ids(rows: &mut Vec<RealRow>, seen: &mut HashSet<String>) {
    rows.retain(|r| seen.insert(r.record_id.clone()));
}

/// The realistic data set: 4 to 15 resources alive 1 to 5 days each, and up
/// to 7 late rows.
pub fn real_usage_strategy() -> impl Strategy<Value = RealUsage> {
    (
        any::<u64>(),
        prop::collection::vec(meter_strategy(), METERS),
        prop::collection::vec(resource_strategy(), 4..16),
        prop::collection::vec(
            (
                any::<Index>(),
                0i32..31,
                0u64..30_000_000,
                any::<u128>(),
                0u8..20,
            ),
            0..8,
        ),
    )
        .prop_map(|(seed, meters, resources, late)| {
            let w = world(seed, &meters);
            let mut rows = Vec::new();
            let mut last_lower: Option<String> = None;
            for (i, r) in resources.iter().enumerate() {
                for (d, &(q, bits, kind)) in r.days.iter().enumerate() {
                    let id = record_id(bits, kind, last_lower.as_deref());
                    if kind <= 12 {
                        last_lower = Some(id.clone());
                    }
                    rows.push((r.start + d as i32, r.row(&w, i, id, r.start + d as i32, q)));
                }
            }
            // By day; within a day in the order drawn, which is no order of
            // the (random) ids.
            rows.sort_by_key(|(d, _)| *d);
            let mut rows: Vec<RealRow> = rows.into_iter().map(|(_, r)| r).collect();
            let mut late: Vec<RealRow> = late
                .iter()
                .map(|(res, d, q, bits, kind)| {
                    let i = res.index(resources.len());
                    let id = record_id(*bits, *kind, last_lower.as_deref());
                    resources[i].row(&w, i, id, *d, *q)
                })
                .collect();
            let mut seen = HashSet::new();
            unique_ids(&mut rows, &mut seen);
            unique_ids(&mut late, &mut seen);
            RealUsage {
                world: w,
                rows,
                late,
            }
        })
}

/// Many rows on one day, 2025-02-10 (and a few on the days either side),
/// from 3 to 7 resources: 40 to 159 rows, ids of every form.
pub fn real_day_strategy() -> impl Strategy<Value = RealUsage> {
    (
        any::<u64>(),
        prop::collection::vec(meter_strategy(), METERS),
        prop::collection::vec(resource_strategy(), 3..8),
        prop::collection::vec(
            (
                any::<Index>(),
                0u8..10,
                0u64..30_000_000,
                any::<u128>(),
                0u8..20,
            ),
            40..160,
        ),
    )
        .prop_map(|(seed, meters, resources, rows)| {
            let w = world(seed, &meters);
            let mut last_lower: Option<String> = None;
            let mut rows: Vec<RealRow> = rows
                .iter()
                .map(|(res, d, q, bits, kind)| {
                    let id = record_id(*bits, *kind, last_lower.as_deref());
                    if *kind <= 12 {
                        last_lower = Some(id.clone());
                    }
                    let i = res.index(resources.len());
                    // February 10th is day 40 of the year.
                    let day = match d {
                        0 => 39,
                        1 => 41,
                        _ => 40,
                    };
                    resources[i].row(&w, i, id, day, *q)
                })
                .collect();
            unique_ids(&mut rows, &mut HashSet::new());
            RealUsage {
                world: w,
                rows,
                late: Vec::new(),
            }
        })
}

/// Enrollment `E100` in USD (2025-01-01 to 2027-12-31): departments Research
/// and Operations with two accounts of one subscription each, and an account
/// of two subscriptions without a department; the meters priced in every
/// period of [`PERIODS`]; a commitment.
pub fn real_setup<S: Store>(s: &S, w: &World) {
    s.create_enrollment(&NewEnrollment {
        number: n(),
        name: "Contoso".into(),
        currency: Currency::parse("USD").expect("currency"),
        start: day("2025-01-01"),
        end: day("2027-12-31"),
        visibility: ChargeVisibility::default(),
    })
    .expect("create enrollment");
    let hierarchy: Vec<HierarchyRow> = w
        .subscriptions
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (dept, cc) = match i / 2 {
                0 => ("Research", "RD-400"),
                1 => ("Operations", "OP-100"),
                _ => ("", ""),
            };
            // One account a subscription, the last two sharing one.
            let acct = format!("acct-{:02}", i.min(4));
            HierarchyRow {
                line: i as u64 + 2,
                department_name: dept.into(),
                department_cost_center: cc.into(),
                account_name: acct.clone(),
                account_owner_email: format!("{acct}@contoso.example"),
                account_cost_center: format!("{cc}-{acct}"),
                subscription_guid: g.clone(),
                subscription_name: format!("sub-{i:02}"),
            }
        })
        .collect();
    s.upsert_hierarchy(&n(), &hierarchy).expect("hierarchy");
    let owned: Vec<(String, Vec<(String, String)>)> = w
        .meters
        .iter()
        .map(|m| {
            (
                m.included.to_string(),
                m.tiers
                    .iter()
                    .map(|(min, p)| {
                        (
                            min.to_string(),
                            format!("{}.{:06}", p / 1_000_000, p % 1_000_000),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let tiers: Vec<Vec<(&str, &str)>> = owned
        .iter()
        .map(|(_, t)| t.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect())
        .collect();
    let sheet: Vec<M<'_>> = w
        .meters
        .iter()
        .zip(&owned)
        .zip(&tiers)
        .map(|((m, (included, _)), t)| M {
            id: &m.id,
            included,
            tiers: t,
            separately: m.separately,
            publisher: "",
        })
        .collect();
    for p in PERIODS {
        prices(s, p, &sheet);
    }
    s.add_entry(
        &n(),
        EntryKind::Purchase,
        &CommitmentEntry {
            date: day("2025-01-01"),
            amount: Money(2_000_000),
            description: "commitment".into(),
        },
    )
    .expect("purchase");
}

/// Realistic rows in memory as a [`UsageSource`]; line `i + 2` is `rows[i]`.
struct RealRows<'a> {
    rows: &'a [RealRow],
    next: usize,
}

impl UsageSource for RealRows<'_> {
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
            resource_group: &r.resource_group,
            resource_location: &r.location,
            consumed_service: &r.service,
            tags: &r.tags,
            additional_info: &r.additional_info,
            ..Default::default()
        }))
    }
}

/// Ingests one file of realistic rows, all or nothing.
pub fn real_ingest<S: Store>(s: &S, rows: &[RealRow]) -> Result<IngestSummary, IngestError> {
    ingest(
        s,
        &n(),
        &mut RealRows { rows, next: 0 },
        IngestOptions::default(),
        &mut |_, _| {},
    )
}

/// Everything a reader sees of one booked period: the usage-details CSV,
/// the JSON pages walked by cursor, and the statement.
#[derive(Debug, PartialEq)]
pub struct PeriodView {
    pub csv: String,
    pub pages: Vec<String>,
    pub statement: Statement,
}

/// The JSON pages of booked period `p`, `size` rows each, each page
/// prepared afresh and resumed after the cursor the previous one returned.
pub fn json_pages<S: Store>(s: &S, p: &str, size: usize) -> Vec<String> {
    let mut pages = Vec::new();
    let mut selection = UsageSelection {
        booked: Some(period(p)),
        ..Default::default()
    };
    loop {
        let r = UsageReport::prepare(
            s,
            &n(),
            UsageFilter::operator(selection.clone()),
            meta(ReportScope::Period(p.into())),
        )
        .expect("prepare a page");
        let mut out = Vec::new();
        let (rows, next) = r.write_page(s, &n(), size, &mut out).expect("write a page");
        assert!(
            rows as usize <= size,
            "a page of {rows} rows, asked for {size}"
        );
        pages.push(String::from_utf8(out).expect("utf-8"));
        match next {
            Some(c) => selection.after = Some(c),
            None => return pages,
        }
        assert!(pages.len() < 10_000, "paging {p} does not end");
    }
}

/// The views of every period of [`PERIODS`].
pub fn views<S: Store>(s: &S, page: usize) -> Vec<PeriodView> {
    PERIODS
        .iter()
        .map(|p| PeriodView {
            csv: usage_csv(s, p, &[], &[]).0,
            pages: json_pages(s, p, page),
            statement: statement(s, p),
        })
        .collect()
}

/// The RecordIds of JSON pages, in order.
pub fn page_ids(pages: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for page in pages {
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&format!("[{page}]")).expect("a page is JSON");
        ids.extend(
            rows.iter()
                .map(|r| r["recordId"].as_str().expect("recordId").to_string()),
        );
    }
    ids
}
