//! [`UsageStore`] on SQLite: the ingest transaction, rollups and ordered scans.

use crate::metadata::{last_closed, load_sheet};
use crate::profile::{self, Profile};
use crate::{backend, i128_from_sql, i128_to_sql, SqliteStore};
use meterbook_core::fixed::Amount;
use meterbook_core::store::{
    DailyUsage, Flow, Rollup, StoreError, StoreResult, UsageFact, UsageSelection, UsageStore,
    UsageWriter, Written,
};
use meterbook_core::usage::{Catalog, Classified, OwnedUsage, SheetIndex};
use meterbook_core::{Day, EnrollmentNumber, Period, Price, Quantity};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

/// Profile caches are dropped when they reach this many entries, keeping memory flat…
const CACHE_LIMIT: usize = 200_000;
/// …or this many bytes of profile text (a profile may be 75 KB: InstanceId,
/// Tags and AdditionalInfo at their limits).
const CACHE_BYTES: usize = 32 << 20;

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

/// Profile text → id, inserting unseen profiles.
#[derive(Default)]
struct ProfileEncoder {
    cache: HashMap<Box<str>, i64, foldhash::fast::RandomState>,
    cached_bytes: usize,
    key: String,
}

impl ProfileEncoder {
    fn id(&mut self, conn: &Connection, fields: &[&str; 8]) -> StoreResult<i64> {
        if fields.iter().all(|f| f.is_empty()) {
            return Ok(0);
        }
        self.key.clear();
        profile::encode(fields, &mut self.key);
        if let Some(id) = self.cache.get(self.key.as_str()) {
            return Ok(*id);
        }
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM usage_profile WHERE value = ?1")
            .map_err(backend)?
            .query_row([&self.key], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        let id = match found {
            Some(id) => id,
            None => {
                conn.prepare_cached("INSERT INTO usage_profile (value) VALUES (?1)")
                    .map_err(backend)?
                    .execute([&self.key])
                    .map_err(backend)?;
                conn.last_insert_rowid()
            }
        };
        if self.cache.len() >= CACHE_LIMIT || self.cached_bytes >= CACHE_BYTES {
            self.cache.clear();
            self.cached_bytes = 0;
        }
        self.cached_bytes += self.key.len();
        self.cache.insert(self.key.as_str().into(), id);
        Ok(id)
    }
}

type RollupKey = (Period, i64, Period, bool);

struct SqliteUsageWriter<'a> {
    conn: MutexGuard<'a, Connection>,
    eid: i64,
    catalog: Arc<Catalog>,
    profiles: ProfileEncoder,
    /// Pending sums of this transaction. Quantities are summed in i128 so a
    /// batch cannot overflow before the ingest's range check names the row.
    rollups: HashMap<RollupKey, (i128, Amount, i64)>,
    daily: HashMap<DailyKey, (i128, i64)>,
    open: bool,
}

/// (day, subscription, meter, booked period id or 0, correction rate or none).
type DailyKey = (i32, i64, i64, u32, Option<i128>);

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
            // The ingest's range check refuses a file before these can fail.
            let out_of_range = || {
                StoreError::Invalid(format!(
                    "the totals of a meter in period {booked} exceed the supported range"
                ))
            };
            let nq = i64::try_from(oq as i128 + q).map_err(|_| out_of_range())?;
            let ncost = ocost.checked_add(cost.raw()).ok_or_else(out_of_range)?;
            write
                .execute(params![
                    self.eid,
                    booked.id(),
                    meter,
                    rate_period.id(),
                    corr,
                    nq,
                    i128_to_sql(ncost),
                    orows + rows
                ])
                .map_err(backend)?;
        }
        Ok(())
    }
}

impl SqliteUsageWriter<'_> {
    fn flush_daily(&mut self) -> StoreResult<()> {
        let mut write = self
            .conn
            .prepare_cached(
                "INSERT INTO usage_daily (enrollment_id, day, subscription_id, meter_key, booked, \
                 correction_rate, quantity, rows) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity, \
                 rows = rows + excluded.rows",
            )
            .map_err(backend)?;
        for ((day, sub, meter, booked, rate), (q, rows)) in self.daily.drain() {
            // Within its rollup's total, which was checked before.
            let q = i64::try_from(q).map_err(|_| {
                StoreError::Invalid("a day's quantity exceeds the supported range".into())
            })?;
            write
                .execute(params![
                    self.eid,
                    day,
                    sub,
                    meter,
                    booked,
                    rate.map_or(String::new(), i128_to_sql),
                    q,
                    rows
                ])
                .map_err(backend)?;
        }
        Ok(())
    }
}

impl UsageWriter for SqliteUsageWriter<'_> {
    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.clone()
    }

    fn stored_rollups(&self) -> StoreResult<Vec<Rollup>> {
        // This writer's own rollups stay in memory until commit.
        read_rollups(&self.conn, self.eid, None)
    }

    fn write_batch(
        &mut self,
        rows: &[(OwnedUsage, Classified)],
        out: &mut Vec<Written>,
    ) -> StoreResult<()> {
        let conn: &Connection = &self.conn;
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO usage_fact (enrollment_id, day, record_id, subscription_id, meter_key, \
                 quantity, profile_id, booked, correction_rate) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT DO NOTHING",
            )
            .map_err(backend)?;
        for (owned, c) in rows {
            let raw = owned.as_raw();
            let profile = self.profiles.id(conn, &raw.dimensions())?;
            let inserted = insert
                .execute(params![
                    self.eid,
                    c.day.raw(),
                    raw.record_id,
                    c.subscription,
                    c.meter,
                    c.quantity.raw(),
                    profile,
                    c.correction_rate.map(|_| c.booked.id()),
                    c.correction_rate.map(|r| i128_to_sql(r.raw())),
                ])
                .map_err(backend)?;
            if inserted == 0 {
                // Same RecordId stored: a duplicate if the content (as sent) matches.
                let same: bool = conn
                    .prepare_cached(
                        "SELECT day = ?3 AND subscription_id = ?4 AND meter_key = ?5 AND quantity = ?6 \
                         AND profile_id = ?7 FROM usage_fact WHERE enrollment_id = ?1 AND record_id = ?2",
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
                            profile
                        ],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                out.push(if same {
                    Written::Duplicate
                } else {
                    Written::Conflict
                });
                continue;
            }
            let key = (c.booked, c.meter, c.rate_period, c.is_correction());
            let e = self.rollups.entry(key).or_insert((0, Amount::ZERO, 0));
            // i128 sums of i64 quantities: no file is long enough to overflow them.
            e.0 += c.quantity.raw() as i128;
            if let Some(rate) = c.correction_rate {
                let cost = c
                    .quantity
                    .checked_mul(rate)
                    .and_then(|a| e.1.checked_add(a));
                e.1 = cost.map_err(|_| {
                    StoreError::Invalid(format!(
                        "line {}: meter {}: the cost of the correction exceeds the supported range",
                        raw.line, raw.meter_id
                    ))
                })?;
            }
            e.2 += 1;
            let dkey = (
                c.day.raw(),
                c.subscription,
                c.meter,
                c.correction_rate.map_or(0, |_| c.booked.id()),
                c.correction_rate.map(|r| r.raw()),
            );
            let d = self.daily.entry(dkey).or_insert((0, 0));
            d.0 += c.quantity.raw() as i128;
            d.1 += 1;
            out.push(Written::Stored);
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.flush_rollups()?;
        self.flush_daily()?;
        crate::metadata::bump_version(&self.conn, self.eid)?;
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

/// Decodes profile ids while scanning, with a bounded cache.
struct ProfileDecoder {
    cache: HashMap<i64, Profile, foldhash::fast::RandomState>,
    cached_bytes: usize,
    empty: Profile,
}

impl ProfileDecoder {
    fn load(&mut self, conn: &Connection, id: i64) -> StoreResult<()> {
        if id == 0 || self.cache.contains_key(&id) {
            return Ok(());
        }
        if self.cache.len() >= CACHE_LIMIT || self.cached_bytes >= CACHE_BYTES {
            self.cache.clear();
            self.cached_bytes = 0;
        }
        let v: String = conn
            .prepare_cached("SELECT value FROM usage_profile WHERE id = ?1")
            .map_err(backend)?
            .query_row([id], |r| r.get(0))
            .map_err(backend)?;
        self.cached_bytes += v.len();
        let p = Profile::decode(v)
            .ok_or_else(|| StoreError::Backend(format!("corrupt usage profile {id}")))?;
        self.cache.insert(id, p);
        Ok(())
    }
    fn get(&self, id: i64) -> &Profile {
        self.cache.get(&id).unwrap_or(&self.empty)
    }
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

const FACT_COLUMNS: &str =
    "record_id, subscription_id, day, meter_key, quantity, profile_id, booked, correction_rate";

impl UsageStore for SqliteStore {
    fn begin_usage(&self, n: &EnrollmentNumber) -> StoreResult<Box<dyn UsageWriter + '_>> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        // IMMEDIATE: take the write lock now, so the catalog cannot change under the ingest.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
        let mut w = SqliteUsageWriter {
            conn,
            eid,
            catalog: Arc::default(),
            profiles: ProfileEncoder::default(),
            rollups: HashMap::new(),
            daily: HashMap::new(),
            open: true,
        };
        w.catalog = Arc::new(load_catalog(&w.conn, eid)?);
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
                "SELECT day, subscription_id, meter_key, booked, correction_rate, quantity, rows \
                 FROM usage_daily WHERE enrollment_id = ?1 AND day BETWEEN ?2 AND ?3 ORDER BY day",
            )
            .map_err(backend)?;
        let rows = st
            .query_map(params![eid, from.raw(), to.raw()], |r| {
                Ok((
                    r.get::<_, i32>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (day, sub, meter, booked, rate, q, n) = row.map_err(backend)?;
            let day = Day::from_raw(day);
            out.push(DailyUsage {
                day,
                subscription: sub,
                meter,
                booked: if booked == 0 {
                    day.period()
                } else {
                    Period::from_id(booked)
                        .ok_or_else(|| StoreError::Backend("corrupt period".into()))?
                },
                correction_rate: if rate.is_empty() {
                    None
                } else {
                    Some(Price(i128_from_sql(&rate)?))
                },
                quantity: Quantity(q),
                rows: n,
            });
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
    visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<Flow, StoreError>,
) -> StoreResult<()> {
    let mut profiles = ProfileDecoder {
        cache: HashMap::default(),
        cached_bytes: 0,
        empty: Profile::empty(),
    };
    let from = sel.from.map_or(i32::MIN, |d| d.raw()) as i64;
    let to = sel.to.map_or(i32::MAX, |d| d.raw()) as i64;
    // A booked period reads its own days (rows not booked elsewhere), then the
    // corrections booked into it through the small partial index. A cursor
    // resumes strictly after its row: `(day, record_id) > (cursor)`.
    let after = sel.after.as_ref();
    let resume = |phase_is_correction: bool| -> Option<(bool, i64, String)> {
        match after {
            None => None,
            Some(c) if c.correction_phase == phase_is_correction => {
                Some((true, c.day.raw() as i64, c.record_id.clone()))
            }
            // Resuming in the corrections: the own-days phase is done.
            Some(c) if c.correction_phase => Some((false, 0, String::new())),
            Some(_) => None,
        }
    };
    let mut queries: Vec<(String, Vec<rusqlite::types::Value>)> = Vec::new();
    let cursor_sql = " AND (day, record_id) > (?8, ?9)";
    let mut push = |base: &str, mut args: Vec<rusqlite::types::Value>, phase: bool| {
        let sql = match resume(phase) {
            Some((false, _, _)) => return,
            Some((true, d, r)) => {
                // Start the day range at the cursor's day so the index seek skips
                // what earlier pages read (the row-value test alone would not).
                if let rusqlite::types::Value::Integer(from) = args[1] {
                    args[1] = from.max(d).into();
                }
                // The cursor binds as ?8 and ?9 whatever the query's own parameters.
                args.resize(7, rusqlite::types::Value::Null);
                args.push(d.into());
                args.push(r.into());
                format!("{base}{cursor_sql}")
            }
            None => base.to_string(),
        };
        queries.push((format!("{sql} ORDER BY day, record_id"), args));
    };
    match sel.booked {
        Some(p) => {
            push(
                &format!(
                    "SELECT {FACT_COLUMNS} FROM usage_fact WHERE enrollment_id = ?1 AND day BETWEEN ?2 AND ?3 \
                     AND booked IS NULL"
                ),
                vec![
                    eid.into(),
                    from.max(p.first_day().raw() as i64).into(),
                    to.min(p.last_day().raw() as i64).into(),
                ],
                false,
            );
            push(
                &format!(
                    "SELECT {FACT_COLUMNS} FROM usage_fact WHERE enrollment_id = ?1 AND booked = ?4 \
                     AND day BETWEEN ?2 AND ?3"
                ),
                vec![eid.into(), from.into(), to.into(), (p.id() as i64).into()],
                true,
            );
        }
        None => push(
            &format!(
                "SELECT {FACT_COLUMNS} FROM usage_fact WHERE enrollment_id = ?1 AND day BETWEEN ?2 AND ?3"
            ),
            vec![eid.into(), from.into(), to.into()],
            false,
        ),
    }
    for (sql, args) in queries {
        let mut st = conn.prepare(&sql).map_err(backend)?;
        let mut rows = st
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let profile_id: i64 = r.get(5).map_err(backend)?;
            profiles.load(conn, profile_id)?;
            let p = profiles.get(profile_id);
            let day = Day::from_raw(r.get(2).map_err(backend)?);
            let booked = match r.get::<_, Option<u32>>(6).map_err(backend)? {
                Some(b) => Period::from_id(b)
                    .ok_or_else(|| StoreError::Backend("corrupt period".into()))?,
                None => day.period(),
            };
            let correction_rate = match r.get_ref(7).map_err(backend)?.as_str_or_null() {
                Ok(Some(s)) => Some(Price(i128_from_sql(s)?)),
                Ok(None) => None,
                Err(e) => return Err(StoreError::Backend(e.to_string())),
            };
            let record_id = r
                .get_ref(0)
                .map_err(backend)?
                .as_str()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let fact = UsageFact {
                record_id,
                subscription: r.get(1).map_err(backend)?,
                day,
                meter: r.get(3).map_err(backend)?,
                quantity: Quantity(r.get(4).map_err(backend)?),
                booked,
                rate_period: day.period(),
                correction_rate,
                instance_id: p.field(0),
                resource_group: p.field(1),
                resource_location: p.field(2),
                consumed_service: p.field(3),
                tags: p.field(4),
                additional_info: p.field(5),
                service_info1: p.field(6),
                service_info2: p.field(7),
            };
            if visit(&fact)? == Flow::Stop {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct profiles near their size limit do not grow the cache past its byte budget.
    #[test]
    fn the_profile_cache_is_bounded_in_bytes() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE usage_profile (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE)",
        )
        .unwrap();
        let mut enc = ProfileEncoder::default();
        let tags = "t".repeat(64 * 1024);
        for i in 0..(CACHE_BYTES / tags.len()) * 2 {
            let id = i.to_string();
            enc.id(&conn, &[&id, "", "", "", &tags, "", "", ""])
                .unwrap();
            let held: usize = enc.cache.keys().map(|k| k.len()).sum();
            assert!(
                held <= CACHE_BYTES + 2 * tags.len(),
                "{held} bytes after {i}"
            );
        }
    }
}
