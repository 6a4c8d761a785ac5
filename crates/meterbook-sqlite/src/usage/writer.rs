//! The ingest transaction: usage rows with their profiles, daily sums and
//! rollups, written in one transaction.

use super::store::*;
use crate::profile;
use crate::{backend, i128_from_sql, i128_to_sql};
use meterbook_core::fixed::Amount;
use meterbook_core::store::{Rollup, StoreError, StoreResult, UsageWriter, Written};
use meterbook_core::usage::{Catalog, Classified, OwnedUsage};
use meterbook_core::Period;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

/// Profile caches are dropped when they reach this many entries, keeping memory flat…
pub(super) const CACHE_LIMIT: usize = 200_000;
/// …or this many bytes of profile text (a profile may be 75 KB: InstanceId,
/// Tags and AdditionalInfo at their limits).
pub(super) const CACHE_BYTES: usize = 32 << 20;

/// Profile text → id, inserting unseen profiles.
#[derive(Default)]
pub(super) struct ProfileEncoder {
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

pub(super) struct SqliteUsageWriter<'a> {
    pub(super) conn: MutexGuard<'a, Connection>,
    pub(super) eid: i64,
    pub(super) catalog: Arc<Catalog>,
    pub(super) profiles: ProfileEncoder,
    /// Pending sums of this transaction. Quantities are summed in i128 so a
    /// batch cannot overflow before the ingest's range check names the row.
    pub(super) rollups: HashMap<RollupKey, (i128, Amount, i64)>,
    pub(super) daily: HashMap<DailyKey, (i128, i64)>,
    pub(super) open: bool,
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
