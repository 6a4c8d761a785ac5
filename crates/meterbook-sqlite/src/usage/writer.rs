//! The ingest transaction: usage rows buffered per day and written as fact
//! blocks, the key index, daily sums and rollups, all in one transaction.

use super::codec::{
    cmp_keys, decode_day, encode_block, encode_day, merged_order, Block, DaySum, FactRow, KeyRef,
    OwnedKey,
};
use super::keys::{code_day, day_code, hash_id, KeySet, ANY_DAY};
use super::profiles::ProfileEncoder;
use super::store::read_rollups;
use crate::{backend, i128_from_sql, i128_to_sql};
use meterbook_core::fixed::Amount;
use meterbook_core::store::{Rollup, StoreError, StoreResult, UsageWriter, Written};
use meterbook_core::usage::{Catalog, Classified, OwnedUsage};
use meterbook_core::{Day, Period};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, MutexGuard};

/// Rows a block holds at most.
pub(super) const BLOCK_ROWS: usize = 16_384;
/// Rows buffered across days before the largest days are written out.
const MAX_BUFFERED: usize = 1 << 18;
/// Blocks a day may gather before a commit merges them.
const MAX_DAY_BLOCKS: usize = 8;
/// Decoded rows kept for confirming ids (about 70 bytes each): enough for a
/// re-sent file whose rows cycle through a month of busy days.
const CACHED_ROWS: usize = 1 << 20;

type RollupKey = (Period, i64, Period, bool);
/// (subscription, meter, booked period id or 0, correction rate or none).
type DaySumKey = (i64, i64, u32, Option<i128>);
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The rows of one day not written yet, with their ids' hashes.
#[derive(Default)]
struct DayBuffer {
    rows: Vec<FactRow>,
    by_hash: Map<u64, u32>,
    /// Rows whose hash another row of the day already has.
    clash: Vec<u32>,
}

/// What a stored row is compared on to tell a duplicate from a conflict.
#[derive(PartialEq, Eq)]
struct Content {
    day: i32,
    subscription: i64,
    meter: i64,
    quantity: i64,
    profile: i64,
}

pub(super) struct SqliteUsageWriter<'a> {
    pub(super) conn: MutexGuard<'a, Connection>,
    pub(super) eid: i64,
    pub(super) catalog: Arc<Catalog>,
    pub(super) profiles: ProfileEncoder,
    pub(super) seed: i64,
    pub(super) keys: KeySet,
    buffers: Map<i32, DayBuffer>,
    buffered: usize,
    /// Decoded days (their stored blocks) with when each was last used.
    cache: Map<i32, (Vec<Block>, u64)>,
    cached_rows: usize,
    uses: u64,
    /// Days given a block by this ingest.
    touched: BTreeSet<i32>,
    /// Pending sums of this transaction. Quantities are summed in i128 so a
    /// batch cannot overflow before the ingest's range check names the row.
    rollups: Map<RollupKey, (i128, Amount, i64)>,
    /// A day's sum went out of range (the file is refused before commit).
    day_sums_out_of_range: bool,
    candidates: Vec<u16>,
    block_buf: Vec<u8>,
    pub(super) open: bool,
}

impl<'a> SqliteUsageWriter<'a> {
    pub(super) fn new(
        conn: MutexGuard<'a, Connection>,
        eid: i64,
        catalog: Arc<Catalog>,
        seed: i64,
        keys: KeySet,
    ) -> Self {
        SqliteUsageWriter {
            conn,
            eid,
            catalog,
            profiles: ProfileEncoder::new(seed),
            seed,
            keys,
            buffers: Map::default(),
            buffered: 0,
            cache: Map::default(),
            cached_rows: 0,
            uses: 0,
            touched: BTreeSet::new(),
            rollups: Map::default(),
            day_sums_out_of_range: false,
            candidates: Vec::new(),
            block_buf: Vec::new(),
            open: true,
        }
    }

    /// The stored content of record `id` if day `day` holds it.
    fn find_on(&mut self, day: i32, id: &str, hash: u64) -> StoreResult<Option<Content>> {
        let key = KeyRef::of(id);
        if let Some(buf) = self.buffers.get(&day) {
            let hits = buf.by_hash.get(&hash).into_iter().chain(buf.clash.iter());
            for &i in hits {
                let r = &buf.rows[i as usize];
                if r.key.as_ref() == key {
                    return Ok(Some(Content {
                        day,
                        subscription: r.subscription,
                        meter: r.meter,
                        quantity: r.quantity,
                        profile: r.profile,
                    }));
                }
            }
        }
        self.uses += 1;
        if !self.cache.contains_key(&day) {
            let blocks = load_blocks(&self.conn, self.eid, day)?;
            let rows: usize = blocks.iter().map(Block::len).sum();
            // Make room: least recently used days first.
            while self.cached_rows + rows > CACHED_ROWS && !self.cache.is_empty() {
                let oldest = *self
                    .cache
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .expect("not empty")
                    .0;
                self.uncache(oldest);
            }
            self.cached_rows += rows;
            self.cache.insert(day, (blocks, 0));
        }
        let (blocks, used) = self.cache.get_mut(&day).expect("cached above");
        *used = self.uses;
        for b in blocks.iter() {
            if let Some(i) = b.find(&key) {
                return Ok(Some(Content {
                    day,
                    subscription: b.subscription[i],
                    meter: b.meter[i],
                    quantity: b.quantity[i],
                    profile: b.profile[i],
                }));
            }
        }
        Ok(None)
    }

    fn uncache(&mut self, day: i32) {
        if let Some((blocks, _)) = self.cache.remove(&day) {
            self.cached_rows -= blocks.iter().map(Block::len).sum::<usize>();
        }
    }

    /// The stored content of record `id`, wherever the key index points.
    fn find(&mut self, id: &str, hash: u64) -> StoreResult<Option<Content>> {
        let mut candidates = std::mem::take(&mut self.candidates);
        self.keys.days(hash, &mut candidates);
        let mut found = None;
        'search: for &code in &candidates {
            let days = match code_day(code) {
                Some(d) => vec![d.raw()],
                None => self.uncoded_days()?,
            };
            for day in days {
                found = self.find_on(day, id, hash)?;
                if found.is_some() {
                    break 'search;
                }
            }
        }
        self.candidates = candidates;
        Ok(found)
    }

    /// Days that have no day code (outside 2000–2179), stored or buffered.
    fn uncoded_days(&self) -> StoreResult<Vec<i32>> {
        let (first, last) = (
            code_day(0).expect("code 0 is a day").raw(),
            code_day(ANY_DAY - 1).expect("the last code is a day").raw(),
        );
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT day FROM usage_block WHERE enrollment_id = ?1 \
                 AND (day < ?2 OR day > ?3)",
            )
            .map_err(backend)?;
        let stored = st
            .query_map(params![self.eid, first, last], |r| r.get::<_, i32>(0))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        let buffered = self
            .buffers
            .keys()
            .copied()
            .filter(|d| *d < first || *d > last);
        let days: BTreeSet<i32> = stored.into_iter().chain(buffered).collect();
        Ok(days.into_iter().collect())
    }

    fn buffer(&mut self, day: i32, hash: u64, row: FactRow) -> StoreResult<()> {
        let buf = self.buffers.entry(day).or_default();
        let i = buf.rows.len() as u32;
        buf.rows.push(row);
        match buf.by_hash.entry(hash) {
            Entry::Vacant(v) => {
                v.insert(i);
            }
            // Another id of the day has the same hash: kept aside.
            Entry::Occupied(_) => buf.clash.push(i),
        }
        self.buffered += 1;
        if buf.rows.len() >= BLOCK_ROWS {
            self.flush_day(day)?;
        }
        if self.buffered > MAX_BUFFERED {
            // Write the largest day: one block at a time, so the ingest's
            // reading thread never waits long on a burst of writes.
            let largest = self
                .buffers
                .iter()
                .max_by_key(|(d, b)| (b.rows.len(), **d))
                .map(|(d, _)| *d);
            if let Some(d) = largest {
                self.flush_day(d)?;
            }
        }
        Ok(())
    }

    /// Writes a day's buffered rows as one block.
    fn flush_day(&mut self, day: i32) -> StoreResult<()> {
        let Some(buf) = self.buffers.remove(&day) else {
            return Ok(());
        };
        self.buffered -= buf.rows.len();
        let mut rows = buf.rows;
        rows.sort_unstable_by(|a, b| cmp_keys(&a.key.as_ref(), &b.key.as_ref()));
        self.write_block(day, &rows)?;
        self.add_day_sums(day, &rows)?;
        self.uncache(day);
        self.touched.insert(day);
        Ok(())
    }

    fn write_block(&mut self, day: i32, rows: &[FactRow]) -> StoreResult<()> {
        write_block(&self.conn, self.eid, day, rows, &mut self.block_buf)
    }

    /// Merges the blocks of days that gathered too many into sorted blocks.
    fn compact(&mut self) -> StoreResult<()> {
        for day in std::mem::take(&mut self.touched) {
            let (count, rows): (usize, i64) = self
                .conn
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(rows), 0) FROM usage_block \
                     WHERE enrollment_id = ?1 AND day = ?2",
                )
                .map_err(backend)?
                .query_row(params![self.eid, day], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?;
            let needed = (rows as usize).div_ceil(BLOCK_ROWS);
            if count <= MAX_DAY_BLOCKS || count <= needed + 1 {
                continue;
            }
            let blocks = load_blocks(&self.conn, self.eid, day)?;
            let order = merged_order(&blocks);
            self.conn
                .prepare_cached("DELETE FROM usage_block WHERE enrollment_id = ?1 AND day = ?2")
                .map_err(backend)?
                .execute(params![self.eid, day])
                .map_err(backend)?;
            for chunk in order.chunks(BLOCK_ROWS) {
                let rows: Vec<FactRow> = chunk
                    .iter()
                    .map(|&(b, i)| blocks[b as usize].row(i as usize))
                    .collect();
                self.write_block(day, &rows)?;
            }
        }
        Ok(())
    }

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

    /// Adds the sums of rows being written for `day` to its stored sums
    /// (`usage_day`), and those of rows booked in their own period (all but
    /// corrections) to the pending rollups. A sum out of range is not
    /// written: the ingest's range check refuses the file, and a commit
    /// would fail.
    fn add_day_sums(&mut self, day: i32, rows: &[FactRow]) -> StoreResult<()> {
        let mut sums: Map<DaySumKey, (i128, i64)> = Map::default();
        for r in rows {
            let key = (
                r.subscription,
                r.meter,
                r.correction.map_or(0, |c| c.0),
                r.correction.map(|c| c.1),
            );
            let e = sums.entry(key).or_insert((0, 0));
            // i128 sums of i64 quantities: no block is long enough to overflow them.
            e.0 += r.quantity as i128;
            e.1 += 1;
        }
        let p = Day::from_raw(day).period();
        let mut new = Vec::with_capacity(sums.len());
        for ((subscription, meter, booked, rate), (q, n)) in sums {
            if booked == 0 {
                let e = self
                    .rollups
                    .entry((p, meter, p, false))
                    .or_insert((0, Amount::ZERO, 0));
                e.0 += q;
                e.2 += n;
            }
            let Ok(quantity) = i64::try_from(q) else {
                self.day_sums_out_of_range = true;
                return Ok(());
            };
            new.push(DaySum {
                subscription,
                meter,
                booked,
                rate,
                quantity,
                rows: n,
            });
        }
        let stored: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT data FROM usage_day WHERE enrollment_id = ?1 AND day = ?2")
            .map_err(backend)?
            .query_row(params![self.eid, day], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        let mut sums = match stored {
            Some(d) => decode_day(&d)?,
            None => Vec::new(),
        };
        let Ok(sums) = add_sums(&mut sums, new) else {
            self.day_sums_out_of_range = true;
            return Ok(());
        };
        encode_day(&sums, &mut self.block_buf);
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO usage_day (enrollment_id, day, data) VALUES (?1, ?2, ?3)",
            )
            .map_err(backend)?
            .execute(params![self.eid, day, self.block_buf])
            .map_err(backend)?;
        Ok(())
    }
}

/// Stored sums plus new ones, in the sums' order.
pub(super) fn add_sums(stored: &mut Vec<DaySum>, new: Vec<DaySum>) -> StoreResult<Vec<DaySum>> {
    let mut all = std::mem::take(stored);
    all.extend(new);
    all.sort_by(|a, b| a.cmp_key(b));
    let mut out: Vec<DaySum> = Vec::with_capacity(all.len());
    for s in all {
        match out.last_mut() {
            Some(last) if last.cmp_key(&s).is_eq() => {
                last.quantity = last.quantity.checked_add(s.quantity).ok_or_else(|| {
                    StoreError::Invalid("a day's quantity exceeds the supported range".into())
                })?;
                last.rows += s.rows;
            }
            _ => out.push(s),
        }
    }
    Ok(out)
}

/// The stored blocks of one day, oldest first.
pub(super) fn load_blocks(conn: &Connection, eid: i64, day: i32) -> StoreResult<Vec<Block>> {
    let mut st = conn
        .prepare_cached(
            "SELECT data FROM usage_block WHERE enrollment_id = ?1 AND day = ?2 ORDER BY id",
        )
        .map_err(backend)?;
    let mut rows = st.query(params![eid, day]).map_err(backend)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(backend)? {
        out.push(Block::decode(r.get(0).map_err(backend)?)?);
    }
    Ok(out)
}

/// Writes rows sorted by id as one block, noting the days that hold corrections.
pub(super) fn write_block(
    conn: &Connection,
    eid: i64,
    day: i32,
    rows: &[FactRow],
    buf: &mut Vec<u8>,
) -> StoreResult<()> {
    encode_block(rows, buf);
    conn.prepare_cached(
        "INSERT INTO usage_block (enrollment_id, day, rows, data) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(backend)?
    .execute(params![eid, day, rows.len() as i64, &buf[..]])
    .map_err(backend)?;
    let booked: BTreeSet<u32> = rows
        .iter()
        .filter_map(|r| r.correction.map(|c| c.0))
        .collect();
    for p in booked {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO usage_correction_day (enrollment_id, booked, day) VALUES (?1, ?2, ?3)",
        )
        .map_err(backend)?
        .execute(params![eid, p, day])
        .map_err(backend)?;
    }
    Ok(())
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
        for (owned, c) in rows {
            let raw = owned.as_raw();
            let profile = self.profiles.id(&self.conn, &raw.dimensions())?;
            let hash = hash_id(self.seed, raw.record_id);
            if let Some(stored) = self.find(raw.record_id, hash)? {
                // Same RecordId stored: a duplicate if the content (as sent) matches.
                let sent = Content {
                    day: c.day.raw(),
                    subscription: c.subscription,
                    meter: c.meter,
                    quantity: c.quantity.raw(),
                    profile,
                };
                out.push(if stored == sent {
                    Written::Duplicate
                } else {
                    Written::Conflict
                });
                continue;
            }
            // A correction's cost is fixed row by row at its locked rate; the
            // rollups of other rows are the day sums', added at commit.
            if let Some(rate) = c.correction_rate {
                let key = (c.booked, c.meter, c.rate_period, true);
                let e = self.rollups.entry(key).or_insert((0, Amount::ZERO, 0));
                e.0 += c.quantity.raw() as i128;
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
                e.2 += 1;
            }
            let correction = c.correction_rate.map(|r| (c.booked.id(), r.raw()));
            self.keys.add(hash, day_code(c.day));
            let row = FactRow {
                key: OwnedKey::of(raw.record_id),
                subscription: c.subscription,
                meter: c.meter,
                quantity: c.quantity.raw(),
                profile,
                correction,
            };
            self.buffer(c.day.raw(), hash, row)?;
            out.push(Written::Stored);
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let days: Vec<i32> = self.buffers.keys().copied().collect();
        for day in days {
            self.flush_day(day)?;
        }
        self.compact()?;
        let keys = std::mem::replace(&mut self.keys, KeySet::empty());
        keys.store(&self.conn, self.eid)?;
        if self.day_sums_out_of_range {
            return Err(StoreError::Invalid(
                "a day's quantity exceeds the supported range".into(),
            ));
        }
        self.flush_rollups()?;
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
