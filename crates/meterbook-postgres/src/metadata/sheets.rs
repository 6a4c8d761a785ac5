//! Price sheets: stored with their tiers as two arrays (minimum quantities,
//! raw rates), loaded one period at a time or all at once for the catalog.

use super::{i128_from_sql, i128_to_sql, period_from_sql, period_to_sql};
use crate::tx::pg;
use meterbook_core::prices::{MeterInfo, MeterPrice, Tier};
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::{Period, Price, Quantity};
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, Row};
use std::collections::{HashMap, HashSet};

const COLUMNS: &str = "p.period, p.meter_key, m.meter_id, meter_name, meter_category, \
     meter_sub_category, meter_region, unit_of_measure, part_number, billed_separately, \
     publisher_name, offer_name, plan_name, included, tier_min, tier_price::text[]";

fn price_from_row(r: &Row) -> StoreResult<(Period, i64, MeterPrice)> {
    let mins: Vec<i64> = r.get(14);
    let prices: Vec<String> = r.get(15);
    if mins.len() != prices.len() {
        return Err(StoreError::Backend("corrupt tiers in database".into()));
    }
    let tiers = mins
        .into_iter()
        .zip(&prices)
        .map(|(min, price)| {
            Ok(Tier {
                min: Quantity(min),
                price: Price(i128_from_sql(price)?),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((
        period_from_sql(r.get(0))?,
        r.get(1),
        MeterPrice {
            info: MeterInfo {
                meter_id: r.get(2),
                meter_name: r.get(3),
                meter_category: r.get(4),
                meter_sub_category: r.get(5),
                meter_region: r.get(6),
                unit_of_measure: r.get(7),
                part_number: r.get(8),
                charges_billed_separately: r.get(9),
                publisher_name: r.get(10),
                offer_name: r.get(11),
                plan_name: r.get(12),
            },
            included: Quantity(r.get(13)),
            tiers,
        },
    ))
}

/// The price sheets of `period`, or of every period: (period, meter key,
/// price), by period and MeterId.
pub(super) fn load_sheets(
    c: &mut impl GenericClient,
    eid: i64,
    period: Option<Period>,
) -> StoreResult<Vec<(Period, i64, MeterPrice)>> {
    let rows = c
        .query_typed(
            &format!(
                "SELECT {COLUMNS} FROM price p JOIN meter m ON m.id = p.meter_key \
                 WHERE p.enrollment_id = $1 AND ($2::integer IS NULL OR p.period = $2) \
                 ORDER BY p.period, m.meter_id"
            ),
            &[(&eid, Type::INT8), (&period.map(period_to_sql), Type::INT4)],
        )
        .map_err(pg)?;
    rows.iter().map(price_from_row).collect()
}

/// A period's price sheet: (meter key, price), by MeterId.
pub(crate) fn load_sheet(
    c: &mut impl GenericClient,
    eid: i64,
    period: Period,
) -> StoreResult<Vec<(i64, MeterPrice)>> {
    Ok(load_sheets(c, eid, Some(period))?
        .into_iter()
        .map(|(_, k, m)| (k, m))
        .collect())
}

/// Replaces the price sheet of `period` with `sheet`, adding meter keys for
/// MeterIds not seen before.
///
/// A sheet may hold tens of thousands of meters and the enrollment stays
/// locked meanwhile, so the rows go in a few statements, not one round trip
/// each: the known keys in one query, the new meters in one insert (in the
/// sheet's order, so keys are numbered as SQLite numbers them), the prices
/// in inserts of [`PRICE_ROWS`] rows.
pub(super) fn store_sheet(
    c: &mut impl GenericClient,
    eid: i64,
    period: Period,
    sheet: &[MeterPrice],
) -> StoreResult<()> {
    let p = period_to_sql(period);
    c.execute_typed(
        "DELETE FROM price WHERE enrollment_id = $1 AND period = $2",
        &[(&eid, Type::INT8), (&p, Type::INT4)],
    )
    .map_err(pg)?;
    let ids: Vec<&str> = sheet.iter().map(|m| m.info.meter_id.as_str()).collect();
    let mut keys: HashMap<String, i64> = c
        .query_typed(
            "SELECT meter_id, id FROM meter WHERE enrollment_id = $1 AND meter_id = ANY($2)",
            &[(&eid, Type::INT8), (&ids, Type::TEXT_ARRAY)],
        )
        .map_err(pg)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Looked up, then added: an upsert would take a sequence number for
    // every meter of every import. The caller holds the catalog lock, so no
    // other writer adds meters meanwhile.
    let mut seen = HashSet::new();
    let new: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| !keys.contains_key(*id) && seen.insert(*id))
        .collect();
    if !new.is_empty() {
        for r in c
            .query_typed(
                "INSERT INTO meter (enrollment_id, meter_id) \
                 SELECT $1, u.m FROM unnest($2::text[]) WITH ORDINALITY AS u(m, i) ORDER BY u.i \
                 RETURNING meter_id, id",
                &[(&eid, Type::INT8), (&new, Type::TEXT_ARRAY)],
            )
            .map_err(pg)?
        {
            keys.insert(r.get(0), r.get(1));
        }
    }
    for chunk in sheet.chunks(PRICE_ROWS) {
        insert_prices(c, eid, p, &keys, chunk)?;
    }
    Ok(())
}

/// Price rows per insert (16 parameters each, well under the protocol's
/// 65535).
const PRICE_ROWS: usize = 1000;

fn insert_prices(
    c: &mut impl GenericClient,
    eid: i64,
    p: i32,
    keys: &HashMap<String, i64>,
    chunk: &[MeterPrice],
) -> StoreResult<()> {
    let mut sql = String::from(
        "INSERT INTO price (enrollment_id, period, meter_key, meter_name, meter_category, \
         meter_sub_category, meter_region, unit_of_measure, part_number, billed_separately, \
         publisher_name, offer_name, plan_name, included, tier_min, tier_price) VALUES ",
    );
    struct Row {
        key: i64,
        included: i64,
        mins: Vec<i64>,
        prices: Vec<String>,
    }
    let rows: Vec<Row> = chunk
        .iter()
        .map(|m| {
            Ok(Row {
                key: *keys.get(&m.info.meter_id).ok_or_else(|| {
                    StoreError::Backend(format!("no key for meter {}", m.info.meter_id))
                })?,
                included: m.included.raw(),
                mins: m.tiers.iter().map(|t| t.min.raw()).collect(),
                prices: m.tiers.iter().map(|t| i128_to_sql(t.price.raw())).collect(),
            })
        })
        .collect::<StoreResult<_>>()?;
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * 16);
    for (n, (m, r)) in chunk.iter().zip(&rows).enumerate() {
        let b = n * 16;
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for j in 1..=15 {
            sql.push_str(&format!("${}, ", b + j));
        }
        sql.push_str(&format!("${}::text[]::numeric[])", b + 16));
        let i = &m.info;
        params.extend_from_slice(&[
            &eid as &(dyn ToSql + Sync),
            &p,
            &r.key,
            &i.meter_name,
            &i.meter_category,
            &i.meter_sub_category,
            &i.meter_region,
            &i.unit_of_measure,
            &i.part_number,
            &i.charges_billed_separately,
            &i.publisher_name,
            &i.offer_name,
            &i.plan_name,
            &r.included,
            &r.mins,
            &r.prices,
        ]);
    }
    c.execute(sql.as_str(), &params).map_err(pg)?;
    Ok(())
}
