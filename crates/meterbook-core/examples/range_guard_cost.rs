//! What the ingest's range check costs per stored row: 10M rows over 200
//! tiered meters through `UsageGuard::admit`.
//!
//! `cargo run --release -p meterbook-core --example range_guard_cost`

use meterbook_core::calendar::Period;
use meterbook_core::fixed::Quantity;
use meterbook_core::limits::UsageGuard;
use meterbook_core::prices::{MeterInfo, MeterPrice, Tier};
use meterbook_core::usage::{Catalog, Classified, SheetIndex};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let p: Period = "202501".parse().unwrap();
    let meters = 200;
    let index: SheetIndex = (0..meters)
        .map(|i| {
            let m = MeterPrice {
                info: MeterInfo {
                    meter_id: format!("m{i}"),
                    ..Default::default()
                },
                included: Quantity(5_000_000),
                tiers: vec![
                    Tier {
                        min: Quantity(0),
                        price: "0.0196".parse().unwrap(),
                    },
                    Tier {
                        min: Quantity(51_200_000_000),
                        price: "0.0188".parse().unwrap(),
                    },
                ],
            };
            (format!("m{i}"), (i as i64, Arc::new(m)))
        })
        .collect();
    let mut catalog = Catalog::default();
    catalog.sheets.insert(p, index);
    let catalog = Arc::new(catalog);
    let n = 10_000_000u64;
    let rows: Vec<Classified> = (0..n)
        .map(|i| Classified {
            subscription: 1,
            day: p.first_day(),
            meter: ((i.wrapping_mul(2654435761)) % meters) as i64,
            quantity: Quantity(24_000_000),
            booked: p,
            rate_period: p,
            correction_rate: None,
        })
        .collect();
    let mut guard = UsageGuard::new(catalog, &[]).unwrap();
    let t = Instant::now();
    for c in &rows {
        guard.admit(c).unwrap();
    }
    let e = t.elapsed();
    println!("{} rows: {:.1} ns/row", n, e.as_nanos() as f64 / n as f64);
}
