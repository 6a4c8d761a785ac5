//! [`MetadataStore`](meterbook_core::store::MetadataStore) on PostgreSQL:
//! enrollments, hierarchy, prices, commitment, periods — a port of the
//! embedded store's, with the helpers the usage ledger shares (the
//! enrollment's id, its catalog, its versions).
//!
//! Writes within an enrollment lock its row first. Those that change what an
//! ingest validates against (subscriptions, price sheets, closed periods and
//! their locked rates) take `FOR UPDATE` and bump `catalog_version` as well
//! as `data_version`, so an ingest that read the catalog before them can see
//! that it changed; the others take `FOR NO KEY UPDATE`, which leaves rows
//! that refer to the enrollment free to be added meanwhile.

mod enrollment;
mod hierarchy;
mod sheets;
mod store;

use crate::tx::pg;
use meterbook_core::fixed::Amount;
use meterbook_core::store::{Rollup, StoreError, StoreResult};
use meterbook_core::usage::Catalog;
use meterbook_core::{Day, EnrollmentNumber, Period, Price, Quantity};
use postgres::types::Type;
use postgres::GenericClient;
use std::sync::Arc;

/// The enrollment's row id, or NotFound naming the number.
pub(crate) fn enrollment_id(c: &mut impl GenericClient, n: &EnrollmentNumber) -> StoreResult<i64> {
    c.query_typed_opt(
        "SELECT id FROM enrollment WHERE number = $1",
        &[(&n.as_str(), Type::TEXT)],
    )
    .map_err(pg)?
    .map(|r| r.get(0))
    .ok_or_else(|| StoreError::NotFound(format!("no enrollment {n}")))
}

/// How a write holds the enrollment's row until it commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lock {
    /// For writes that change the catalog: excludes every other lock on the
    /// row, the key-share locks of rows being added that refer to it included.
    Catalog,
    /// For other check-then-write changes of the enrollment's data.
    Data,
}

/// The enrollment's row id, its row locked as `lock` says; NotFound as
/// [`enrollment_id`].
pub(crate) fn lock_enrollment(
    c: &mut impl GenericClient,
    n: &EnrollmentNumber,
    lock: Lock,
) -> StoreResult<i64> {
    let sql = match lock {
        Lock::Catalog => "SELECT id FROM enrollment WHERE number = $1 FOR UPDATE",
        Lock::Data => "SELECT id FROM enrollment WHERE number = $1 FOR NO KEY UPDATE",
    };
    c.query_opt(sql, &[&n.as_str()])
        .map_err(pg)?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::NotFound(format!("no enrollment {n}")))
}

/// Marks the enrollment's data as changed (see `Enrollment::data_version`).
pub(crate) fn bump_version(c: &mut impl GenericClient, eid: i64) -> StoreResult<()> {
    c.execute(
        "UPDATE enrollment SET data_version = data_version + 1 WHERE id = $1",
        &[&eid],
    )
    .map_err(pg)?;
    Ok(())
}

/// Marks the enrollment's data and its catalog as changed: for writes to
/// subscriptions, price sheets, closed periods and locked rates.
pub(crate) fn bump_catalog(c: &mut impl GenericClient, eid: i64) -> StoreResult<()> {
    c.execute(
        "UPDATE enrollment SET data_version = data_version + 1, \
         catalog_version = catalog_version + 1 WHERE id = $1",
        &[&eid],
    )
    .map_err(pg)?;
    Ok(())
}

/// The enrollment's term as raw day numbers (first, last).
pub(crate) fn term(c: &mut impl GenericClient, eid: i64) -> StoreResult<(i32, i32)> {
    let r = c
        .query_typed_one(
            "SELECT start_day, end_day FROM enrollment WHERE id = $1",
            &[(&eid, Type::INT8)],
        )
        .map_err(pg)?;
    Ok((r.get(0), r.get(1)))
}

/// The latest closed period (periods close in order).
pub(crate) fn last_closed(c: &mut impl GenericClient, eid: i64) -> StoreResult<Option<Period>> {
    let p: Option<i32> = c
        .query_typed_one(
            "SELECT MAX(period) FROM closed_period WHERE enrollment_id = $1",
            &[(&eid, Type::INT8)],
        )
        .map_err(pg)?
        .get(0);
    p.map(period_from_sql).transpose()
}

/// Rates locked when their period closed: of `period`, or of every period.
pub(crate) fn locked_rates(
    c: &mut impl GenericClient,
    eid: i64,
    period: Option<Period>,
) -> StoreResult<Vec<((Period, i64), Price)>> {
    let rows = c
        .query_typed(
            "SELECT period, meter_key, rate::text FROM locked_rate WHERE enrollment_id = $1 \
             AND ($2::integer IS NULL OR period = $2) ORDER BY period, meter_key",
            &[(&eid, Type::INT8), (&period.map(period_to_sql), Type::INT4)],
        )
        .map_err(pg)?;
    rows.iter()
        .map(|r| {
            Ok((
                (period_from_sql(r.get(0))?, r.get(1)),
                Price(i128_from_sql(r.get(2))?),
            ))
        })
        .collect()
}

/// What an ingest validates against: the term, subscriptions, every price
/// sheet, the last closed period and the locked rates — the catalog the
/// embedded store's usage writer builds.
pub(crate) fn catalog(c: &mut impl GenericClient, eid: i64) -> StoreResult<Catalog> {
    let (start, end) = term(c, eid)?;
    let mut cat = Catalog {
        term_start: Some(Day::from_raw(start)),
        term_end: Some(Day::from_raw(end)),
        last_closed: last_closed(c, eid)?,
        ..Default::default()
    };
    for r in c
        .query_typed(
            "SELECT guid, id FROM subscription WHERE enrollment_id = $1",
            &[(&eid, Type::INT8)],
        )
        .map_err(pg)?
    {
        cat.subscriptions.insert(r.get(0), r.get(1));
    }
    for (period, key, m) in sheets::load_sheets(c, eid, None)? {
        cat.sheets
            .entry(period)
            .or_default()
            .insert(m.info.meter_id.clone(), (key, Arc::new(m)));
    }
    cat.locked_rates = locked_rates(c, eid, None)?.into_iter().collect();
    Ok(cat)
}

/// The rollups of one booked period, or of all periods, as committed (what
/// a repricing checks its ranges against).
pub(crate) fn read_rollups(
    c: &mut impl GenericClient,
    eid: i64,
    booked: Option<Period>,
) -> StoreResult<Vec<Rollup>> {
    let rows = c
        .query_typed(
            "SELECT booked, meter_key, rate_period, correction, quantity, fixed_cost::text, rows \
             FROM usage_rollup WHERE enrollment_id = $1 AND ($2::integer IS NULL OR booked = $2) \
             ORDER BY booked, meter_key, rate_period, correction",
            &[(&eid, Type::INT8), (&booked.map(period_to_sql), Type::INT4)],
        )
        .map_err(pg)?;
    rows.iter()
        .map(|r| {
            Ok(Rollup {
                booked: period_from_sql(r.get(0))?,
                meter: r.get(1),
                rate_period: period_from_sql(r.get(2))?,
                correction: r.get(3),
                quantity: Quantity(r.get(4)),
                fixed_cost: Amount(i128_from_sql(r.get(5))?),
                rows: r.get(6),
            })
        })
        .collect()
}

/// A period as stored: its YYYYMM id.
pub(crate) fn period_to_sql(p: Period) -> i32 {
    // YYYYMM of a year below 214748 fits.
    p.id() as i32
}

pub(crate) fn period_from_sql(id: i32) -> StoreResult<Period> {
    u32::try_from(id)
        .ok()
        .and_then(Period::from_id)
        .ok_or_else(|| StoreError::Backend(format!("corrupt period {id} in database")))
}

/// An i128 (rate, exact amount) as the decimal text a NUMERIC(40, 0) column
/// is written from (`$n::text::numeric`) and read as (`col::text`).
pub(crate) fn i128_to_sql(v: i128) -> String {
    v.to_string()
}

pub(crate) fn i128_from_sql(s: &str) -> StoreResult<i128> {
    s.parse()
        .map_err(|_| StoreError::Backend(format!("corrupt integer {s:?} in database")))
}
