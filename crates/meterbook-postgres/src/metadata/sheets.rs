//! Price sheets: stored with their tiers as two arrays (minimum quantities,
//! raw rates), loaded one period at a time or all at once for the catalog.

use super::{i128_from_sql, i128_to_sql, period_from_sql, period_to_sql};
use crate::tx::pg;
use meterbook_core::prices::{MeterInfo, MeterPrice, Tier};
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::{Period, Price, Quantity};
use postgres::types::Type;
use postgres::{GenericClient, Row};

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
pub(super) fn store_sheet(
    c: &mut impl GenericClient,
    eid: i64,
    period: Period,
    sheet: &[MeterPrice],
) -> StoreResult<()> {
    let p = period_to_sql(period);
    c.execute(
        "DELETE FROM price WHERE enrollment_id = $1 AND period = $2",
        &[&eid, &p],
    )
    .map_err(pg)?;
    // Found, else added: an upsert would take a sequence number for every
    // meter of every import (keys stay dense, as SQLite's). The caller holds
    // the catalog lock, so no other writer adds meters meanwhile.
    let find_meter = c
        .prepare("SELECT id FROM meter WHERE enrollment_id = $1 AND meter_id = $2")
        .map_err(pg)?;
    let add_meter = c
        .prepare("INSERT INTO meter (enrollment_id, meter_id) VALUES ($1, $2) RETURNING id")
        .map_err(pg)?;
    let insert = c
        .prepare(
            "INSERT INTO price (enrollment_id, period, meter_key, meter_name, meter_category, \
             meter_sub_category, meter_region, unit_of_measure, part_number, billed_separately, \
             publisher_name, offer_name, plan_name, included, tier_min, tier_price) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16::text[]::numeric[])",
        )
        .map_err(pg)?;
    for m in sheet {
        let found = c
            .query_opt(&find_meter, &[&eid, &m.info.meter_id])
            .map_err(pg)?;
        let key: i64 = match found {
            Some(r) => r.get(0),
            None => c
                .query_one(&add_meter, &[&eid, &m.info.meter_id])
                .map_err(pg)?
                .get(0),
        };
        let i = &m.info;
        let mins: Vec<i64> = m.tiers.iter().map(|t| t.min.raw()).collect();
        let prices: Vec<String> = m.tiers.iter().map(|t| i128_to_sql(t.price.raw())).collect();
        c.execute(
            &insert,
            &[
                &eid,
                &p,
                &key,
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
                &m.included.raw(),
                &mins,
                &prices,
            ],
        )
        .map_err(pg)?;
    }
    Ok(())
}
