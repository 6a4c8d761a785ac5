//! [`UsageStore`] on SQLite: the ingest transaction, rollups and ordered scans.

use crate::metadata::{last_closed, load_sheet};
use crate::{backend, i128_from_sql, i128_to_sql, SqliteStore};
use meterbook_core::fixed::Amount;
use meterbook_core::store::{
    Rollup, StoreError, StoreResult, UsageFact, UsageSelection, UsageStore, UsageWriter, Written,
};
use meterbook_core::usage::{Catalog, Classified, RawUsage, SheetIndex};
use meterbook_core::{Day, EnrollmentNumber, Period, Price, Quantity};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

/// Dictionary caches are dropped when they reach this many entries, keeping memory flat.
const DICT_CACHE_LIMIT: usize = 200_000;

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

fn load_catalog(conn: &Connection, eid: i64) -> StoreResult<Catalog> {
    let (start, end): (i32, i32) = conn
        .query_row(
            "SELECT start_day, end_day FROM enrollment WHERE id = ?1",
            [eid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(backend)?;
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

/// String → dictionary id, inserting unseen values.
#[derive(Default)]
struct DictEncoder {
    cache: HashMap<String, i64>,
}

impl DictEncoder {
    fn id(&mut self, conn: &Connection, v: &str) -> StoreResult<i64> {
        if v.is_empty() {
            return Ok(0);
        }
        if let Some(id) = self.cache.get(v) {
            return Ok(*id);
        }
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM dict WHERE value = ?1")
            .map_err(backend)?
            .query_row([v], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        let id = match found {
            Some(id) => id,
            None => {
                conn.prepare_cached("INSERT INTO dict (value) VALUES (?1)")
                    .map_err(backend)?
                    .execute([v])
                    .map_err(backend)?;
                conn.last_insert_rowid()
            }
        };
        if self.cache.len() >= DICT_CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(v.to_owned(), id);
        Ok(id)
    }
}

type RollupKey = (Period, i64, Period, bool);

struct SqliteUsageWriter<'a> {
    conn: MutexGuard<'a, Connection>,
    eid: i64,
    catalog: Catalog,
    dict: DictEncoder,
    rollups: HashMap<RollupKey, (Quantity, Amount, i64)>,
    open: bool,
}

impl SqliteUsageWriter<'_> {
    fn flush_rollups(&mut self) -> StoreResult<()> {
        let mut read = self
            .conn
            .prepare_cached(
                "SELECT quantity, fixed_cost, rows FROM usage_rollup WHERE enrollment_id = ?1 \
                 AND booked = ?2 AND meter_key = ?3 AND rate_period = ?4 AND correction = ?5",
            )
            .map_err(backend)?;
        let mut write = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO usage_rollup (enrollment_id, booked, meter_key, rate_period, \
                 correction, quantity, fixed_cost, rows) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(backend)?;
        for ((booked, meter, rate_period, corr), (q, cost, rows)) in self.rollups.drain() {
            let key = params![self.eid, booked.id(), meter, rate_period.id(), corr];
            let old: Option<(i64, String, i64)> = read
                .query_row(key, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(backend)?;
            let (oq, ocost, orows) = match old {
                Some((q, c, n)) => (q, i128_from_sql(&c)?, n),
                None => (0, 0, 0),
            };
            let nq = oq.checked_add(q.raw()).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "total quantity of a meter in period {booked} exceeds the supported range"
                ))
            })?;
            write
                .execute(params![
                    self.eid,
                    booked.id(),
                    meter,
                    rate_period.id(),
                    corr,
                    nq,
                    i128_to_sql(ocost + cost.raw()),
                    orows + rows
                ])
                .map_err(backend)?;
        }
        Ok(())
    }
}

impl UsageWriter for SqliteUsageWriter<'_> {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn write(&mut self, raw: &RawUsage<'_>, c: &Classified) -> StoreResult<Written> {
        let dims = [
            raw.instance_id,
            raw.resource_group,
            raw.resource_location,
            raw.consumed_service,
            raw.tags,
            raw.additional_info,
            raw.service_info1,
            raw.service_info2,
        ];
        let mut ids = [0i64; 8];
        for (i, v) in dims.iter().enumerate() {
            ids[i] = self.dict.id(&self.conn, v)?;
        }
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO usage_fact (enrollment_id, record_id, day, subscription_id, meter_key, \
                 quantity, booked, correction_rate, instance_id, resource_group, resource_location, \
                 consumed_service, tags, additional_info, service_info1, service_info2) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
                 ON CONFLICT (enrollment_id, record_id) DO NOTHING",
            )
            .map_err(backend)?
            .execute(params![
                self.eid,
                raw.record_id,
                c.day.raw(),
                c.subscription,
                c.meter,
                c.quantity.raw(),
                c.booked.id(),
                c.correction_rate.map(|r| i128_to_sql(r.raw())),
                ids[0],
                ids[1],
                ids[2],
                ids[3],
                ids[4],
                ids[5],
                ids[6],
                ids[7],
            ])
            .map_err(backend)?;
        if inserted == 0 {
            // Same RecordId stored: a duplicate if the content (as sent) matches.
            let same: bool = self
                .conn
                .prepare_cached(
                    "SELECT day = ?3 AND subscription_id = ?4 AND meter_key = ?5 AND quantity = ?6 \
                     AND instance_id = ?7 AND resource_group = ?8 AND resource_location = ?9 \
                     AND consumed_service = ?10 AND tags = ?11 AND additional_info = ?12 \
                     AND service_info1 = ?13 AND service_info2 = ?14 \
                     FROM usage_fact WHERE enrollment_id = ?1 AND record_id = ?2",
                )
                .map_err(backend)?
                .query_row(
                    params![
                        self.eid,
                        raw.record_id,
                        c.day.raw(),
                        c.subscription,
                        c.meter,
                        c.quantity.raw(),
                        ids[0],
                        ids[1],
                        ids[2],
                        ids[3],
                        ids[4],
                        ids[5],
                        ids[6],
                        ids[7]
                    ],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            return Ok(if same {
                Written::Duplicate
            } else {
                Written::Conflict
            });
        }
        let key = (c.booked, c.meter, c.rate_period, c.is_correction());
        let e = self
            .rollups
            .entry(key)
            .or_insert((Quantity::ZERO, Amount::ZERO, 0));
        e.0 += c.quantity;
        if let Some(rate) = c.correction_rate {
            e.1 += c.quantity * rate;
        }
        e.2 += 1;
        Ok(Written::Stored)
    }

    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.flush_rollups()?;
        self.conn.execute_batch("COMMIT").map_err(backend)?;
        self.open = false;
        Ok(())
    }
}

impl Drop for SqliteUsageWriter<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing of an uncommitted ingest may remain.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Decodes dictionary ids while scanning, with a bounded cache.
struct DictDecoder {
    cache: HashMap<i64, Box<str>>,
}

impl DictDecoder {
    fn load(&mut self, conn: &Connection, id: i64) -> StoreResult<()> {
        if id == 0 || self.cache.contains_key(&id) {
            return Ok(());
        }
        if self.cache.len() >= DICT_CACHE_LIMIT {
            self.cache.clear();
        }
        let v: String = conn
            .prepare_cached("SELECT value FROM dict WHERE id = ?1")
            .map_err(backend)?
            .query_row([id], |r| r.get(0))
            .map_err(backend)?;
        self.cache.insert(id, v.into_boxed_str());
        Ok(())
    }
    fn get(&self, id: i64) -> &str {
        if id == 0 {
            ""
        } else {
            self.cache.get(&id).map_or("", |s| s)
        }
    }
}

const FACT_COLUMNS: &str = "record_id, subscription_id, day, meter_key, quantity, booked, \
     correction_rate, instance_id, resource_group, resource_location, consumed_service, tags, \
     additional_info, service_info1, service_info2";

impl UsageStore for SqliteStore {
    fn begin_usage(&self, n: &EnrollmentNumber) -> StoreResult<Box<dyn UsageWriter + '_>> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        // IMMEDIATE: take the write lock now, so the catalog cannot change under the ingest.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
        let mut w = SqliteUsageWriter {
            conn,
            eid,
            catalog: Catalog::default(),
            dict: DictEncoder::default(),
            rollups: HashMap::new(),
            open: true,
        };
        w.catalog = load_catalog(&w.conn, eid)?;
        Ok(Box::new(w))
    }

    fn rollups(&self, n: &EnrollmentNumber, booked: Period) -> StoreResult<Vec<Rollup>> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        let mut st = conn
            .prepare_cached(
                "SELECT meter_key, rate_period, correction, quantity, fixed_cost, rows FROM usage_rollup \
                 WHERE enrollment_id = ?1 AND booked = ?2 ORDER BY meter_key, rate_period, correction",
            )
            .map_err(backend)?;
        let rows = st
            .query_map(params![eid, booked.id()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (meter, rp, correction, q, cost, n) = row.map_err(backend)?;
            out.push(Rollup {
                booked,
                meter,
                rate_period: Period::from_id(rp)
                    .ok_or_else(|| StoreError::Backend("corrupt period".into()))?,
                correction,
                quantity: Quantity(q),
                fixed_cost: Amount(i128_from_sql(&cost)?),
                rows: n,
            });
        }
        Ok(out)
    }

    fn scan_usage(
        &self,
        n: &EnrollmentNumber,
        sel: &UsageSelection,
        visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<(), StoreError>,
    ) -> StoreResult<()> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        // One read transaction: the scan sees one consistent snapshot.
        conn.execute_batch("BEGIN").map_err(backend)?;
        let result = scan_in_tx(&conn, eid, sel, visit);
        let _ = conn.execute_batch("COMMIT");
        result
    }
}

fn scan_in_tx(
    conn: &Connection,
    eid: i64,
    sel: &UsageSelection,
    visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<(), StoreError>,
) -> StoreResult<()> {
    let mut dict = DictDecoder {
        cache: HashMap::new(),
    };
    let from = sel.from.map_or(i32::MIN, |d| d.raw());
    let to = sel.to.map_or(i32::MAX, |d| d.raw());
    // A booked period reads its own days (minus rows booked elsewhere), then the
    // corrections booked into it through the small partial index.
    let mut queries: Vec<(String, Vec<i64>)> = Vec::new();
    match sel.booked {
        Some(p) => {
            let (a, b) = (
                p.first_day().raw().max(from) as i64,
                p.last_day().raw().min(to) as i64,
            );
            queries.push((
                format!(
                    "SELECT {FACT_COLUMNS} FROM usage_fact WHERE enrollment_id = ?1 AND day BETWEEN ?2 AND ?3 \
                     AND booked = ?4 ORDER BY day, record_id"
                ),
                vec![eid, a, b, p.id() as i64],
            ));
            queries.push((
                format!(
                    "SELECT {FACT_COLUMNS} FROM usage_fact WHERE enrollment_id = ?1 AND booked = ?4 \
                     AND correction_rate IS NOT NULL AND day BETWEEN ?2 AND ?3 ORDER BY day, record_id"
                ),
                vec![eid, from as i64, to as i64, p.id() as i64],
            ));
        }
        None => queries.push((
            format!(
                "SELECT {FACT_COLUMNS} FROM usage_fact WHERE enrollment_id = ?1 AND day BETWEEN ?2 AND ?3 \
                 ORDER BY day, record_id"
            ),
            vec![eid, from as i64, to as i64],
        )),
    }
    for (sql, args) in queries {
        let mut st = conn.prepare(&sql).map_err(backend)?;
        let mut rows = st
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let mut dims = [0i64; 8];
            for (i, d) in dims.iter_mut().enumerate() {
                *d = r.get(7 + i).map_err(backend)?;
                dict.load(conn, *d)?;
            }
            let rate: Option<String> = r.get(6).map_err(backend)?;
            let correction_rate = match rate {
                Some(s) => Some(Price(i128_from_sql(&s)?)),
                None => None,
            };
            let record_id = r
                .get_ref(0)
                .map_err(backend)?
                .as_str()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let day = Day::from_raw(r.get(2).map_err(backend)?);
            let booked = Period::from_id(r.get(5).map_err(backend)?)
                .ok_or_else(|| StoreError::Backend("corrupt period".into()))?;
            let fact = UsageFact {
                record_id,
                subscription: r.get(1).map_err(backend)?,
                day,
                meter: r.get(3).map_err(backend)?,
                quantity: Quantity(r.get(4).map_err(backend)?),
                booked,
                rate_period: day.period(),
                correction_rate,
                instance_id: dict.get(dims[0]),
                resource_group: dict.get(dims[1]),
                resource_location: dict.get(dims[2]),
                consumed_service: dict.get(dims[3]),
                tags: dict.get(dims[4]),
                additional_info: dict.get(dims[5]),
                service_info1: dict.get(dims[6]),
                service_info2: dict.get(dims[7]),
            };
            visit(&fact)?;
        }
    }
    Ok(())
}
