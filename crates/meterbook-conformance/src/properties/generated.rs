//! Generated meters and usage, and the enrollment they are loaded into.

use crate::fixture::*;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, Store};
use meterbook_core::Money;
use proptest::prelude::*;

pub const SUBS: [&str; 4] = [G1, G2, G3, G4];

#[derive(Clone, Debug)]
pub struct Meter {
    included: u32,
    /// (minimum, price in 10^-4)
    tiers: Vec<(u32, u32)>,
    pub kind: u8,
}

pub fn meter_strategy() -> impl Strategy<Value = Meter> {
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

pub fn rows_strategy() -> impl Strategy<Value = Vec<Row>> {
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

pub fn setup<S: Store>(s: &S, meters: &[Meter]) {
    setup_in(s, meters, "USD")
}

pub fn setup_in<S: Store>(s: &S, meters: &[Meter], currency: &str) {
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

/// Usage quantities near the range: whole fractions of it, the range itself,
/// and small ones.
pub fn quantity_near_the_range() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u64..=4).prop_map(|k| format!("{}", 250_000_000_000 * k)),
        (0u64..=1_000_000_000_000).prop_map(|q| q.to_string()),
        (0u64..1_000_000).prop_map(|q| format!("0.{q:06}")),
        Just("1000000000000.000001".to_string()),
    ]
}

/// Late rows: dated in January, ingested after it closed, so booked in
/// February as corrections.
pub fn late_rows_strategy() -> impl Strategy<Value = Vec<Row>> {
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
