//! Price sheets: tiers encoded for storage, and a period's sheet loaded.

use crate::{backend, i128_from_sql, i128_to_sql};
use meterbook_core::prices::{MeterInfo, MeterPrice, Tier};
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::{Period, Price, Quantity};
use rusqlite::{params, Connection};

pub(super) fn encode_tiers(tiers: &[Tier]) -> String {
    tiers
        .iter()
        .map(|t| format!("{}:{}", t.min.raw(), i128_to_sql(t.price.raw())))
        .collect::<Vec<_>>()
        .join(";")
}

fn decode_tiers(s: &str) -> StoreResult<Vec<Tier>> {
    s.split(';')
        .map(|pair| {
            let (min, price) = pair
                .split_once(':')
                .ok_or_else(|| StoreError::Backend(format!("corrupt tiers {s:?}")))?;
            Ok(Tier {
                min: Quantity(i128_from_sql(min)? as i64),
                price: Price(i128_from_sql(price)?),
            })
        })
        .collect()
}

/// Loads a period's price sheet: (meter key, price), by MeterId.
pub(crate) fn load_sheet(
    conn: &Connection,
    eid: i64,
    period: Period,
) -> StoreResult<Vec<(i64, MeterPrice)>> {
    let mut st = conn
        .prepare_cached(
            "SELECT p.meter_key, m.meter_id, meter_name, meter_category, meter_sub_category, \
             meter_region, unit_of_measure, part_number, billed_separately, publisher_name, \
             offer_name, plan_name, included, tiers \
             FROM price p JOIN meter m ON m.id = p.meter_key \
             WHERE p.enrollment_id = ?1 AND p.period = ?2 ORDER BY m.meter_id",
        )
        .map_err(backend)?;
    let rows = st
        .query_map(params![eid, period.id()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                MeterInfo {
                    meter_id: r.get(1)?,
                    meter_name: r.get(2)?,
                    meter_category: r.get(3)?,
                    meter_sub_category: r.get(4)?,
                    meter_region: r.get(5)?,
                    unit_of_measure: r.get(6)?,
                    part_number: r.get(7)?,
                    charges_billed_separately: r.get(8)?,
                    publisher_name: r.get(9)?,
                    offer_name: r.get(10)?,
                    plan_name: r.get(11)?,
                },
                r.get::<_, i64>(12)?,
                r.get::<_, String>(13)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (key, info, included, tiers) = row.map_err(backend)?;
        out.push((
            key,
            MeterPrice {
                info,
                included: Quantity(included),
                tiers: decode_tiers(&tiers)?,
            },
        ));
    }
    Ok(out)
}
