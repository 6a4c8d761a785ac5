//! [`UsageStore`] on SQLite, with the rates, catalog and rollups it reads.

use crate::metadata::{last_closed, load_sheet};
use crate::{backend, i128_from_sql, SqliteStore};
use meterbook_core::fixed::Amount;
use meterbook_core::store::{
    DailyUsage, FactBatch, Flow, Rollup, StoreError, StoreResult, UsageFact, UsageSelection,
    UsageStore, UsageWriter,
};
use meterbook_core::usage::{Catalog, SheetIndex};
use meterbook_core::{Day, EnrollmentNumber, Period, Price, Quantity};
use rusqlite::{params, Connection};
use std::sync::Arc;

use super::codec::decode_day;
use super::keys::{seed, KeySet};
use super::profiles::ProfileEncoder;
use super::scan::*;
use super::writer::*;

pub(crate) fn locked_rates(
    conn: &Connection,
    eid: i64,
    period: Option<Period>,
) -> StoreResult<Vec<((Period, i64), Price)>> {
    let mut st = conn
        .prepare_cached(
            "SELECT period, meter_key, rate FROM locked_rate WHERE enrollment_id = ?1 \
             AND (?2 IS NULL OR period = ?2) ORDER BY period, meter_key",
        )
        .map_err(backend)?;
    let rows = st
        .query_map(params![eid, period.map(|p| p.id())], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (p, m, rate) = row.map_err(backend)?;
        let p = Period::from_id(p).ok_or_else(|| StoreError::Backend("corrupt period".into()))?;
        out.push(((p, m), Price(i128_from_sql(&rate)?)));
    }
    Ok(out)
}

pub(crate) fn load_catalog(conn: &Connection, eid: i64) -> StoreResult<Catalog> {
    let (start, end) = crate::metadata::term(conn, eid)?;
    let mut cat = Catalog {
        term_start: Some(Day::from_raw(start)),
        term_end: Some(Day::from_raw(end)),
        last_closed: last_closed(conn, eid)?,
        ..Default::default()
    };
    let mut st = conn
        .prepare("SELECT guid, id FROM subscription WHERE enrollment_id = ?1")
        .map_err(backend)?;
    for r in st
        .query_map([eid], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(backend)?
    {
        let (g, id) = r.map_err(backend)?;
        cat.subscriptions.insert(g, id);
    }
    let mut st = conn
        .prepare("SELECT DISTINCT period FROM price WHERE enrollment_id = ?1")
        .map_err(backend)?;
    let periods: Vec<u32> = st
        .query_map([eid], |r| r.get(0))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for p in periods.into_iter().filter_map(Period::from_id) {
        let sheet: SheetIndex = load_sheet(conn, eid, p)?
            .into_iter()
            .map(|(k, m)| (m.info.meter_id.clone(), (k, Arc::new(m))))
            .collect();
        cat.sheets.insert(p, sheet);
    }
    cat.locked_rates = locked_rates(conn, eid, None)?.into_iter().collect();
    Ok(cat)
}

/// The rollups of one booked period, or of all periods.
pub(crate) fn read_rollups(
    conn: &Connection,
    eid: i64,
    booked: Option<Period>,
) -> StoreResult<Vec<Rollup>> {
    let mut st = conn
        .prepare_cached(
            "SELECT booked, meter_key, rate_period, correction, quantity, fixed_cost, rows \
             FROM usage_rollup WHERE enrollment_id = ?1 AND (?2 IS NULL OR booked = ?2) \
             ORDER BY booked, meter_key, rate_period, correction",
        )
        .map_err(backend)?;
    let rows = st
        .query_map(params![eid, booked.map(|p| p.id())], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .map_err(backend)?;
    let period =
        |id| Period::from_id(id).ok_or_else(|| StoreError::Backend("corrupt period".into()));
    let mut out = Vec::new();
    for row in rows {
        let (b, meter, rp, correction, q, cost, n) = row.map_err(backend)?;
        out.push(Rollup {
            booked: period(b)?,
            meter,
            rate_period: period(rp)?,
            correction,
            quantity: Quantity(q),
            fixed_cost: Amount(i128_from_sql(&cost)?),
            rows: n,
        });
    }
    Ok(out)
}

impl UsageStore for SqliteStore {
    fn begin_usage(&self, n: &EnrollmentNumber) -> StoreResult<Box<dyn UsageWriter + '_>> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        // IMMEDIATE: take the write lock now, so the catalog cannot change under the ingest.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
        // The transaction is open: dropping the writer on an error rolls it back.
        let keys = KeySet::empty();
        let mut w = SqliteUsageWriter::new(conn, eid, Arc::default(), 0, keys);
        w.catalog = Arc::new(load_catalog(&w.conn, eid)?);
        w.seed = seed(&w.conn)?;
        w.profiles = ProfileEncoder::new(w.seed);
        w.keys = KeySet::load(&w.conn, eid)?;
        Ok(Box::new(w))
    }

    fn daily_usage(
        &self,
        n: &EnrollmentNumber,
        from: Day,
        to: Day,
    ) -> StoreResult<Vec<DailyUsage>> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        let mut st = conn
            .prepare_cached(
                "SELECT day, data FROM usage_day WHERE enrollment_id = ?1 \
                 AND day BETWEEN ?2 AND ?3 ORDER BY day",
            )
            .map_err(backend)?;
        let mut rows = st
            .query(params![eid, from.raw(), to.raw()])
            .map_err(backend)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(backend)? {
            let day = Day::from_raw(r.get(0).map_err(backend)?);
            let data = r
                .get_ref(1)
                .map_err(backend)?
                .as_blob()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let own = day.period();
            for s in decode_day(data)? {
                out.push(DailyUsage {
                    day,
                    subscription: s.subscription,
                    meter: s.meter,
                    booked: if s.booked == 0 {
                        own
                    } else {
                        Period::from_id(s.booked)
                            .ok_or_else(|| StoreError::Backend("corrupt period".into()))?
                    },
                    correction_rate: s.rate.map(Price),
                    quantity: Quantity(s.quantity),
                    rows: s.rows,
                });
            }
        }
        Ok(out)
    }

    fn rollups(&self, n: &EnrollmentNumber, booked: Period) -> StoreResult<Vec<Rollup>> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        read_rollups(&conn, eid, Some(booked))
    }

    fn scan_usage(
        &self,
        n: &EnrollmentNumber,
        sel: &UsageSelection,
        visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<Flow, StoreError>,
    ) -> StoreResult<()> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        // One read transaction (on the reading thread): one consistent snapshot.
        scan_pieces(conn, &self.profiles, eid, sel, &mut |piece| {
            piece.for_each(visit)
        })
    }

    fn scan_usage_batches(
        &self,
        n: &EnrollmentNumber,
        sel: &UsageSelection,
        each: &mut dyn FnMut(Box<dyn FactBatch>) -> Result<Flow, StoreError>,
    ) -> StoreResult<()> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        scan_pieces(conn, &self.profiles, eid, sel, each)
    }
}
