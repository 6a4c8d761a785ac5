//! Conformance of a [`FactStore`] to the in-memory reference
//! ([`crate::mem_facts::MemFacts`]): the same random but realistic facts and
//! day sums go into both, and every read must answer the same, in the same
//! order. A fact database has its own query language and its own idea of
//! sorting, paging and summing; comparing it with a reference over many
//! shapes of data finds where they part.
//!
//! The data (fixed seeds, so a failure repeats): RecordIds as random UUIDs in
//! lower and upper case and other shapes (quotes, backslashes, non-ASCII),
//! six ingests per enrollment (one abandoned and hidden, whose rows reuse
//! RecordIds of the first; one not yet visible), corrections of January booked
//! into February and March at rates beyond 64 bits, and texts up to 20 KB.
//!
//! Each check takes a store with no facts of the enrollments it uses
//! (`8608480`, `8608481`, `8608482`), for instance a fresh database:
//!
//! ```ignore
//! #[test]
//! fn scans() {
//!     meterbook_conformance::fact_store::scans(&fresh_store());
//! }
//! ```

use crate::mem_facts::MemFacts;
use meterbook_core::calendar::{Day, Period};
use meterbook_core::enrollment::EnrollmentNumber;
use meterbook_core::facts::{FactStore, IngestId, Visibility};
use meterbook_core::fixed::{Price, Quantity};
use meterbook_core::store::{
    DailyUsage, Flow, OwnedBatch, ScanCursor, StoreError, UsageFact, UsageSelection,
};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A fact with its texts owned, comparable.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fact {
    pub day: Day,
    pub record_id: String,
    pub subscription: i64,
    pub meter: i64,
    pub quantity: Quantity,
    pub booked: Period,
    pub rate_period: Period,
    pub correction_rate: Option<Price>,
    pub texts: [String; 8],
}

impl Fact {
    pub fn of(f: &UsageFact<'_>) -> Fact {
        Fact {
            day: f.day,
            record_id: f.record_id.to_owned(),
            subscription: f.subscription,
            meter: f.meter,
            quantity: f.quantity,
            booked: f.booked,
            rate_period: f.rate_period,
            correction_rate: f.correction_rate,
            texts: [
                f.instance_id,
                f.resource_group,
                f.resource_location,
                f.consumed_service,
                f.tags,
                f.additional_info,
                f.service_info1,
                f.service_info2,
            ]
            .map(str::to_owned),
        }
    }

    pub fn fact(&self) -> UsageFact<'_> {
        let t = &self.texts;
        UsageFact {
            record_id: &self.record_id,
            subscription: self.subscription,
            day: self.day,
            meter: self.meter,
            quantity: self.quantity,
            booked: self.booked,
            rate_period: self.rate_period,
            correction_rate: self.correction_rate,
            instance_id: &t[0],
            resource_group: &t[1],
            resource_location: &t[2],
            consumed_service: &t[3],
            tags: &t[4],
            additional_info: &t[5],
            service_info1: &t[6],
            service_info2: &t[7],
        }
    }
}

/// What one enrollment holds: rows and day sums per ingest.
#[derive(Clone, Debug, Default)]
pub struct Data {
    pub facts: Vec<(IngestId, Vec<Fact>)>,
    pub sums: Vec<(IngestId, Vec<DailyUsage>)>,
}

/// The ingest abandoned before its commit (hidden) and the one not yet committed.
pub const HIDDEN: IngestId = 4;
pub const PENDING: IngestId = 6;

/// The visibility the ledger would give after ingests 1-5 with 4 abandoned.
pub fn main_vis() -> Visibility {
    Visibility {
        through: 5,
        hidden: vec![HIDDEN],
    }
}

/// Visibilities every read is checked under: no two visible rows of one
/// enrollment share a RecordId in any of them (as the ledger guarantees).
pub fn visibilities() -> Vec<Visibility> {
    vec![
        main_vis(),
        Visibility {
            through: 3,
            hidden: vec![],
        },
        Visibility {
            through: PENDING,
            hidden: vec![HIDDEN],
        },
        Visibility {
            through: PENDING,
            hidden: vec![2, HIDDEN],
        },
        Visibility {
            through: 0,
            hidden: vec![],
        },
    ]
}

pub fn enrollment(i: usize) -> EnrollmentNumber {
    EnrollmentNumber::parse(&format!("860848{i}")).expect("valid")
}

fn period(y: i32, m: u32) -> Period {
    Period::new(y, m).expect("valid")
}

fn day(y: i32, m: u32, d: u32) -> Day {
    Day::from_ymd(y, m, d).expect("valid")
}

/// A random lower-case UUID.
pub fn uuid(rng: &mut fastrand::Rng) -> String {
    let hex = |rng: &mut fastrand::Rng, n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(rng.u32(0..16), 16).expect("hex"))
            .collect()
    };
    format!(
        "{}-{}-4{}-{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 3),
        hex(rng, 4),
        hex(rng, 12)
    )
}

fn record_id(rng: &mut fastrand::Rng, taken: &mut BTreeSet<String>) -> String {
    loop {
        let id = match rng.u32(0..20) {
            0..=10 => uuid(rng),
            11..=16 => uuid(rng).to_uppercase(),
            17 => match rng.u32(0..2) {
                0 => format!("rec'{}\\x", rng.u32(..)),
                // Control characters and a NUL: an id is text to compare,
                // never SQL.
                _ => format!("ctl\t\n\r\0\x01{}\x7f", rng.u32(..)),
            },
            18 => format!("Ünïcødé-{}-漢字", rng.u32(0..100_000)),
            _ => format!("{}", rng.u64(..)),
        };
        if taken.insert(id.clone()) {
            return id;
        }
    }
}

const LOCATIONS: [&str; 5] = ["westeurope", "eastus", "EastUS2", "northeurope", ""];
const SERVICES: [&str; 4] = [
    "Microsoft.Compute",
    "Microsoft.Storage",
    "microsoft.sql",
    "Microsoft.Network",
];

fn text(rng: &mut fastrand::Rng, kind: usize) -> String {
    match kind {
        0 => format!(
            "/subscriptions/{}/resourceGroups/rg-{}/providers/Microsoft.Compute/virtualMachines/vm{}",
            uuid(rng),
            rng.u32(0..10),
            rng.u32(0..50)
        ),
        1 => format!("rg-{}", rng.u32(0..10)),
        2 => LOCATIONS[rng.usize(..LOCATIONS.len())].to_owned(),
        3 => SERVICES[rng.usize(..SERVICES.len())].to_owned(),
        4 => match rng.u32(0..50) {
            // A big tag set (rows may carry tens of KB).
            0 => format!(
                "{{\"note\":\"{}\"}}",
                "ü'\t\"\\n".repeat(rng.usize(2_000..4_000))
            ),
            1..=20 => String::new(),
            _ => format!(
                "{{\"env\":\"prod\",\"owner\":\"team-{}\",\"cost-center\":\"Ö{}\"}}",
                rng.u32(0..9),
                rng.u32(0..999)
            ),
        },
        5 => match rng.u32(0..3) {
            0 => String::new(),
            _ => format!(
                "{{\"ImageType\":null,\"ServiceType\":\"Standard_D{}s_v3\",\"VMName\":\"\"}}\n",
                rng.u32(1..64)
            ),
        },
        _ => match rng.u32(0..4) {
            0 => "DataTransferOut\r\n(GB)".into(),
            _ => String::new(),
        },
    }
}

/// A random fact on `d` (a correction when `booked` is a later period), with
/// texts of the sizes real usage exports carry (one row in 50 has a tag set
/// of 12-20 KB): what benchmarks load too.
pub fn random_fact(rng: &mut fastrand::Rng, id: String, d: Day, booked: Option<Period>) -> Fact {
    let correction_rate = booked.map(|_| {
        Price(match rng.u32(0..3) {
            0 => rng.i128(1..1_000_000_000_000_000),
            1 => rng.i128(1 << 64..1 << 100),
            _ => rng.i128(1..1 << 40),
        })
    });
    Fact {
        day: d,
        record_id: id,
        subscription: rng.i64(1..6),
        meter: rng.i64(1..40),
        quantity: Quantity(match rng.u32(0..10) {
            0 => rng.i64(-1_000_000_000..0),
            1 => rng.i64(i64::MAX / 4..i64::MAX / 2),
            _ => rng.i64(0..100_000_000_000),
        }),
        booked: booked.unwrap_or(d.period()),
        rate_period: d.period(),
        correction_rate,
        texts: std::array::from_fn(|k| text(rng, k)),
    }
}

fn random_day(rng: &mut fastrand::Rng) -> Day {
    day(2026, rng.u32(1..=3), rng.u32(1..=28))
}

/// `rows` facts over six ingests and day sums for each, from `seed`.
pub fn generate(seed: u64, rows: usize) -> Data {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut taken = BTreeSet::new();
    let mut data = Data::default();
    for ingest in 1..=PENDING {
        let mut facts = Vec::new();
        let count = rows / PENDING as usize;
        for k in 0..count {
            // The abandoned ingest re-sends a third of the first one's
            // records, changed (what a retried upload looks like).
            let reused = ingest == HIDDEN && k % 3 == 0 && k / 3 < data.facts[0].1.len();
            if reused {
                let mut f = data.facts[0].1[k / 3].clone();
                f.quantity = Quantity(f.quantity.raw() / 2 + 1);
                f.texts[4] = "changed".into();
                facts.push(f);
                continue;
            }
            let id = record_id(&mut rng, &mut taken);
            let f = if rng.u32(0..8) == 0 {
                // A correction of a January or February day, booked later.
                let d = day(2026, rng.u32(1..=2), rng.u32(1..=28));
                let booked = period(2026, rng.u32(d.period().month() + 1..=3));
                random_fact(&mut rng, id, d, Some(booked))
            } else {
                let d = random_day(&mut rng);
                random_fact(&mut rng, id, d, None)
            };
            facts.push(f);
        }
        data.facts.push((ingest, facts));
        let mut sums = Vec::new();
        for _ in 0..rng.usize(20..80) {
            // Few keys, so the ingests' sums of one key are added up.
            let d = day(2026, rng.u32(1..=3), rng.u32(1..=4) * 7);
            let correction = rng.u32(0..4) == 0 && d.period().month() < 3;
            let key = (d, rng.i64(1..3), rng.i64(1..4));
            if sums
                .iter()
                .any(|s: &DailyUsage| (s.day, s.subscription, s.meter) == key)
            {
                continue;
            }
            sums.push(DailyUsage {
                day: d,
                subscription: key.1,
                meter: key.2,
                booked: if correction {
                    period(2026, 3)
                } else {
                    d.period()
                },
                correction_rate: correction.then(|| Price(rng.i128(1..1 << 70))),
                quantity: Quantity(rng.i64(-1_000_000_000_000..1_000_000_000_000_000)),
                rows: rng.i64(1..1000),
            });
        }
        data.sums.push((ingest, sums));
    }
    data
}

/// Asserts two row lists are equal, saying where they part (not printing
/// thousands of rows).
pub fn same(what: &str, got: &[Fact], want: &[Fact]) {
    if got == want {
        return;
    }
    let k = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    panic!(
        "{what}: {} rows, want {}; first difference at row {k}: got {:?}, want {:?}",
        got.len(),
        want.len(),
        got.get(k),
        want.get(k)
    );
}

fn must<T>(what: &str, r: Result<T, StoreError>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

/// Stores `data` for `n` in `store` (facts in batches, as an ingest does).
pub fn load(store: &dyn FactStore, n: &EnrollmentNumber, data: &Data) {
    for (ingest, facts) in &data.facts {
        for chunk in facts.chunks(300) {
            let mut batch = OwnedBatch::default();
            for f in chunk {
                batch.push(&f.fact());
            }
            must("insert_facts", store.insert_facts(n, *ingest, &batch));
        }
    }
    for (ingest, sums) in &data.sums {
        must("insert_day_sums", store.insert_day_sums(n, *ingest, sums));
    }
}

/// Loads three enrollments (two big, one small) into `store` and a fresh
/// reference.
fn loaded(store: &dyn FactStore) -> MemFacts {
    let mem = MemFacts::new();
    for (i, rows) in [(0, 2400), (1, 600), (2, 60)] {
        let data = generate(0x5eed + i as u64, rows);
        load(store, &enrollment(i), &data);
        load(&mem, &enrollment(i), &data);
    }
    mem
}

/// Every row of a scan, checking each batch holds rows.
pub fn scan_all(
    store: &dyn FactStore,
    n: &EnrollmentNumber,
    vis: &Visibility,
    sel: &UsageSelection,
) -> Vec<Fact> {
    let mut out = Vec::new();
    must(
        "scan",
        store.scan(n, vis, sel, &mut |b| {
            let before = out.len();
            let flow = b.for_each(&mut |f| {
                out.push(Fact::of(f));
                Ok(Flow::Continue)
            })?;
            assert_eq!(flow, Flow::Continue);
            assert!(out.len() > before, "a scan handed out an empty batch");
            Ok(Flow::Continue)
        }),
    );
    out
}

fn selections() -> Vec<UsageSelection> {
    let mut sels = vec![UsageSelection::default()];
    for m in 1..=4 {
        sels.push(UsageSelection {
            booked: Some(period(2026, m)),
            ..Default::default()
        });
    }
    let ranges = [
        (Some(day(2026, 1, 10)), Some(day(2026, 2, 20))),
        (Some(day(2026, 2, 14)), None),
        (None, Some(day(2026, 1, 31))),
        (Some(day(2026, 3, 7)), Some(day(2026, 3, 7))),
        (Some(day(2026, 3, 7)), Some(day(2026, 3, 6))),
    ];
    for (from, to) in ranges {
        sels.push(UsageSelection {
            from,
            to,
            ..Default::default()
        });
    }
    for m in [1, 3] {
        sels.push(UsageSelection {
            booked: Some(period(2026, m)),
            from: Some(day(2026, 1, 12)),
            to: Some(day(2026, 3, 20)),
            after: None,
        });
    }
    sels
}

fn cursor_of(sel: &UsageSelection, f: &Fact) -> ScanCursor {
    ScanCursor {
        correction_phase: sel.booked.is_some() && f.correction_rate.is_some(),
        day: f.day,
        record_id: f.record_id.clone(),
    }
}

/// Scans of every kind of selection, under every visibility, and resumed
/// after cursors in both phases of a booked period.
pub fn scans(store: &dyn FactStore) {
    let mem = loaded(store);
    for vis in visibilities() {
        for i in 0..3 {
            let n = enrollment(i);
            for sel in selections() {
                let want = scan_all(&mem, &n, &vis, &sel);
                let got = scan_all(store, &n, &vis, &sel);
                same(&format!("scan {sel:?} of {n} under {vis:?}"), &got, &want);
            }
        }
    }
    // Some selections must hold rows, or the comparisons above prove little.
    let n = enrollment(0);
    let all = scan_all(&mem, &n, &main_vis(), &UsageSelection::default());
    assert!(all.len() > 1500);
    let march = UsageSelection {
        booked: Some(period(2026, 3)),
        ..Default::default()
    };
    let rows = scan_all(&mem, &n, &main_vis(), &march);
    let corrections = rows.iter().filter(|f| f.correction_rate.is_some()).count();
    assert!(corrections > 20 && corrections < rows.len());
    assert!(rows
        .iter()
        .any(|f| f.record_id.chars().any(|c| c.is_ascii_uppercase())));
    // Resuming after a row, in each phase, and after keys no row has.
    for sel in [
        UsageSelection::default(),
        march.clone(),
        selections().pop().expect("one"),
    ] {
        let rows = scan_all(&mem, &n, &main_vis(), &sel);
        let first_correction = rows.iter().position(|f| f.correction_rate.is_some());
        let mut at: Vec<usize> = vec![0, rows.len() / 2, rows.len().saturating_sub(1)];
        at.extend(first_correction.into_iter().flat_map(|k| [k, k + 1]));
        let mut cursors: Vec<ScanCursor> = at
            .into_iter()
            .filter_map(|k| rows.get(k))
            .map(|f| cursor_of(&sel, f))
            .collect();
        if let Some(mid) = rows.get(rows.len() / 3) {
            let mut c = cursor_of(&sel, mid);
            c.record_id.pop();
            cursors.push(c.clone());
            c.record_id = "zz'\\".into();
            cursors.push(c.clone());
            c.correction_phase = !c.correction_phase;
            cursors.push(c);
        }
        for c in cursors {
            let sel = UsageSelection {
                after: Some(c),
                ..sel.clone()
            };
            let want = scan_all(&mem, &n, &main_vis(), &sel);
            let got = scan_all(store, &n, &main_vis(), &sel);
            same(&format!("scan {sel:?}"), &got, &want);
        }
    }
}

/// A scan stops when told to, and hands nothing out when nothing is selected.
pub fn scans_stop(store: &dyn FactStore) {
    let _mem = loaded(store);
    let n = enrollment(0);
    let mut calls = 0;
    must(
        "scan",
        store.scan(&n, &main_vis(), &UsageSelection::default(), &mut |_| {
            calls += 1;
            Ok(Flow::Stop)
        }),
    );
    assert_eq!(calls, 1);
    let nobody = enrollment(9);
    must(
        "scan",
        store.scan(
            &nobody,
            &main_vis(),
            &UsageSelection::default(),
            &mut |_| panic!("a batch of an enrollment with no rows"),
        ),
    );
}

fn lookup_all(
    store: &dyn FactStore,
    n: &EnrollmentNumber,
    vis: &Visibility,
    ids: &[&str],
) -> Vec<Fact> {
    let mut out = Vec::new();
    must(
        "lookup",
        store.lookup(n, vis, ids, &mut |f| {
            out.push(Fact::of(f));
            Ok(())
        }),
    );
    out.sort();
    out
}

/// Lookups by RecordId: visible rows only, exact case, on any day, in
/// batches up to 10,000 ids.
pub fn lookups(store: &dyn FactStore) {
    let mem = loaded(store);
    let n = enrollment(0);
    let data = generate(0x5eed, 2400);
    let other = generate(0x5eed + 1, 600);
    let mut ids: Vec<String> = Vec::new();
    for (ingest, facts) in &data.facts {
        for f in facts.iter().step_by(if *ingest == 1 { 2 } else { 7 }) {
            ids.push(f.record_id.clone());
            // The same id in the other case is another record.
            let swapped: String = f
                .record_id
                .chars()
                .map(|c| {
                    if c.is_ascii_uppercase() {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                })
                .collect();
            ids.push(swapped);
        }
    }
    ids.extend(
        other.facts[0]
            .1
            .iter()
            .take(20)
            .map(|f| f.record_id.clone()),
    );
    ids.extend(["", "missing", "it's", "back\\slash"].map(String::from));
    let small: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut big = small.clone();
    // Long missing ids too: 10,000 ids of this size are over 1 MB of query
    // text, beyond the default limits of SQL databases' parsers.
    let filler: Vec<String> = (0..10_000 - big.len().min(10_000))
        .map(|_| format!("{}/{}/{}", uuid(&mut rng), uuid(&mut rng), uuid(&mut rng)))
        .collect();
    big.extend(filler.iter().map(String::as_str));
    for vis in visibilities() {
        for ids in [&small[..], &big[..], &small[..3]] {
            let want = lookup_all(&mem, &n, &vis, ids);
            let got = lookup_all(store, &n, &vis, ids);
            same(
                &format!("lookup of {} ids under {vis:?}", ids.len()),
                &got,
                &want,
            );
        }
    }
    assert!(lookup_all(&mem, &n, &main_vis(), &small).len() > 300);
    assert!(lookup_all(store, &n, &main_vis(), &[]).is_empty());
    // Every visible (day, RecordId): what an ingest loads before it writes.
    for vis in visibilities() {
        let all = |s: &dyn FactStore| {
            let mut v: Vec<(Day, String)> = Vec::new();
            must(
                "ids",
                s.ids(&n, &vis, &mut |d, id| {
                    v.push((d, id.to_owned()));
                    Ok(())
                }),
            );
            v.sort();
            v
        };
        let want = all(&mem);
        assert!(vis.through == 0 || !want.is_empty() || vis.hidden.len() > 1);
        assert_eq!(all(store), want, "ids under {vis:?}");
    }
}

fn sums(
    store: &dyn FactStore,
    n: &EnrollmentNumber,
    vis: &Visibility,
    from: Day,
    to: Day,
) -> Vec<DailyUsage> {
    must("day_sums", store.day_sums(n, vis, from, to))
}

/// Day sums added up over visible ingests, by day, subscription, meter and
/// booking, in key order.
pub fn day_sums(store: &dyn FactStore) {
    let mem = loaded(store);
    let ranges = [
        (day(2026, 1, 1), day(2026, 3, 31)),
        (day(2026, 1, 14), day(2026, 2, 14)),
        (day(2026, 3, 7), day(2026, 3, 7)),
        (day(2026, 3, 7), day(2026, 3, 6)),
        (day(2025, 1, 1), day(2025, 12, 31)),
    ];
    for vis in visibilities() {
        for i in 0..3 {
            for (from, to) in ranges {
                let n = enrollment(i);
                let want = sums(&mem, &n, &vis, from, to);
                let got = sums(store, &n, &vis, from, to);
                assert_eq!(got, want, "day sums of {n} {from}..{to} under {vis:?}");
            }
        }
    }
    let all = sums(
        &mem,
        &enrollment(0),
        &main_vis(),
        day(2026, 1, 1),
        day(2026, 3, 31),
    );
    assert!(all.iter().any(|s| s.correction_rate.is_some()) && all.len() > 50);
}

/// A day whose summed quantity leaves i64 is refused, not wrapped.
pub fn day_sum_overflow(store: &dyn FactStore) {
    let n = enrollment(2);
    let d = day(2026, 1, 5);
    let sum = |q: i64| DailyUsage {
        day: d,
        subscription: 1,
        meter: 1,
        booked: d.period(),
        correction_rate: None,
        quantity: Quantity(q),
        rows: 1,
    };
    let low = DailyUsage {
        meter: 2,
        ..sum(i64::MIN + 5)
    };
    must(
        "insert",
        store.insert_day_sums(&n, 1, &[sum(i64::MAX - 10), low]),
    );
    must(
        "insert",
        store.insert_day_sums(
            &n,
            2,
            &[
                sum(10),
                DailyUsage {
                    quantity: Quantity(-5),
                    ..low
                },
            ],
        ),
    );
    must("insert", store.insert_day_sums(&n, 3, &[sum(1)]));
    must(
        "insert",
        store.insert_day_sums(
            &n,
            4,
            &[DailyUsage {
                quantity: Quantity(-1),
                ..low
            }],
        ),
    );
    let vis = |through, hidden: &[IngestId]| Visibility {
        through,
        hidden: hidden.to_vec(),
    };
    let got = sums(store, &n, &vis(2, &[]), d, d);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].quantity, got[0].rows), (Quantity(i64::MAX), 2));
    assert_eq!(got[1].quantity, Quantity(i64::MIN));
    for v in [vis(3, &[]), vis(4, &[3])] {
        match store.day_sums(&n, &v, d, d) {
            Err(StoreError::Invalid(m)) => {
                assert_eq!(m, "a day's quantity exceeds the supported range")
            }
            other => panic!("day sums beyond i64 under {v:?}: {other:?}"),
        }
    }
    let got = sums(store, &n, &vis(3, &[2]), d, d);
    assert_eq!(got[0].quantity, Quantity(i64::MAX - 9));
}

/// Calls `purge` until it says done (it may finish in the background).
pub fn purge_until_done(store: &dyn FactStore, n: &EnrollmentNumber, ingest: IngestId) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !must("purge", store.purge(n, ingest)) {
        assert!(
            Instant::now() < deadline,
            "purge of ingest {ingest} of {n} never finished"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Purging an ingest deletes its rows and sums, and only them.
pub fn purge(store: &dyn FactStore) {
    let mem = loaded(store);
    let (n, other) = (enrollment(0), enrollment(1));
    let everything = Visibility {
        through: PENDING,
        hidden: vec![],
    };
    let mut other_before = scan_all(store, &other, &everything, &UsageSelection::default());
    purge_until_done(store, &n, HIDDEN);
    must("purge", mem.purge(&n, HIDDEN));
    // With the abandoned ingest gone, no RecordId is stored twice.
    let all = scan_all(&mem, &n, &everything, &UsageSelection::default());
    let got = scan_all(store, &n, &everything, &UsageSelection::default());
    same("a scan after the purge", &got, &all);
    let ids: Vec<&str> = all.iter().map(|f| f.record_id.as_str()).collect();
    same(
        "a lookup after the purge",
        &lookup_all(store, &n, &everything, &ids),
        &lookup_all(&mem, &n, &everything, &ids),
    );
    let (from, to) = (day(2026, 1, 1), day(2026, 3, 31));
    assert_eq!(
        sums(store, &n, &everything, from, to),
        sums(&mem, &n, &everything, from, to)
    );
    // Purging what is not there is done at once.
    assert!(must("purge", store.purge(&n, 99)));
    purge_until_done(store, &n, PENDING);
    must("purge", mem.purge(&n, PENDING));
    same(
        "a scan after the second purge",
        &scan_all(store, &n, &everything, &UsageSelection::default()),
        &scan_all(&mem, &n, &everything, &UsageSelection::default()),
    );
    // The other enrollment keeps its abandoned ingest (whose RecordIds
    // repeat others', so the order of equal keys is free: compared sorted).
    let mut after = scan_all(store, &other, &everything, &UsageSelection::default());
    after.sort();
    other_before.sort();
    same(
        "the other enrollment after the purge",
        &after,
        &other_before,
    );
    assert_eq!(other_before.len(), 600);
}
