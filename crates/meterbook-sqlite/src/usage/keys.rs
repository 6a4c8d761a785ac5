//! The per-enrollment RecordId index: which day may hold a record with this
//! id. It only ever narrows the search; the full id is confirmed in the
//! day's rows, so a hash collision costs a look and never an answer.
//!
//! A key packs 47 bits of a seeded 64-bit hash of the id, 16 bits of day
//! (days since 2000-01-01; [`ANY_DAY`] for a day outside 2000–2179, which
//! means "look everywhere") and one bit marking keys added by the running
//! ingest. The stored index is a few sorted runs of keys (8 bytes each) in
//! `usage_key`; an ingest loads them into one sorted array with a radix
//! directory over it, keeps its own new keys in a hash map that is merged
//! into the array as it grows, and writes them back as one new run at
//! commit. More than [`MAX_RUNS`] runs are rewritten as one.

use crate::backend;
use meterbook_core::store::StoreResult;
use meterbook_core::Day;
use rusqlite::{params, Connection};
use std::collections::HashMap;
use xxhash_rust::xxh3::xxh3_64_with_seed;

const HASH_SHIFT: u32 = 17;
const DAY_MASK: u64 = 0xffff << 1;
const NEW: u64 = 1;
/// The day code of a key whose day cannot be coded.
pub(super) const ANY_DAY: u16 = 0xffff;
/// Keys per stored part (512 KiB).
const PART_KEYS: usize = 65_536;
/// Runs kept before they are rewritten as one.
pub(super) const MAX_RUNS: usize = 8;

fn base_day() -> i32 {
    Day::from_ymd(2000, 1, 1).expect("a valid date").raw()
}

#[cfg(test)]
thread_local! {
    /// Tests keep only this many top bits of every hash on their thread, so
    /// collisions are common and the confirmation by full text is exercised.
    pub(super) static HASH_BITS: std::cell::Cell<u32> = const { std::cell::Cell::new(64) };
}

/// The index's hash of a RecordId (its exact text), seeded per database so
/// no one can choose ids that collide.
pub(super) fn hash_id(seed: i64, id: &str) -> u64 {
    let h = xxh3_64_with_seed(id.as_bytes(), seed as u64);
    #[cfg(test)]
    {
        let bits = HASH_BITS.with(|b| b.get());
        if bits < 64 {
            return h & !(u64::MAX >> bits);
        }
    }
    h
}

pub(super) fn day_code(day: Day) -> u16 {
    match u16::try_from(day.raw() - base_day()) {
        Ok(c) if c != ANY_DAY => c,
        _ => ANY_DAY,
    }
}

pub(super) fn code_day(code: u16) -> Option<Day> {
    (code != ANY_DAY).then(|| Day::from_raw(base_day() + code as i32))
}

fn pack(hash: u64, day: u16, new: bool) -> u64 {
    (hash >> HASH_SHIFT) << HASH_SHIFT | (day as u64) << 1 | new as u64
}

fn prefix(key: u64) -> u64 {
    key >> HASH_SHIFT
}

/// The database's hash seed (made at migration with SQLite's random()).
pub(super) fn seed(conn: &Connection) -> StoreResult<i64> {
    conn.query_row("SELECT seed FROM usage_seed", [], |r| r.get(0))
        .map_err(backend)
}

/// The keys of one enrollment while an ingest runs.
pub(super) struct KeySet {
    /// Sorted packed keys: the stored runs plus merged new ones.
    sorted: Vec<u64>,
    /// `dir[b]`: the first index of `sorted` whose prefix's top bits are ≥ b.
    dir: Vec<u32>,
    dir_shift: u32,
    /// New keys not merged yet: hash prefix → day code…
    recent: HashMap<u64, u16, foldhash::fast::RandomState>,
    /// …and new keys whose prefix is already in `recent` (another id).
    clash: Vec<u64>,
    /// Runs stored for the enrollment when the ingest began.
    stored_runs: usize,
    added: usize,
}

impl KeySet {
    /// Loads the enrollment's stored runs.
    pub(super) fn load(conn: &Connection, eid: i64) -> StoreResult<KeySet> {
        let mut st = conn
            .prepare_cached(
                "SELECT run, data FROM usage_key WHERE enrollment_id = ?1 ORDER BY run, part",
            )
            .map_err(backend)?;
        let mut rows = st.query([eid]).map_err(backend)?;
        let mut runs: Vec<Vec<u64>> = Vec::new();
        let mut last_run = None;
        while let Some(r) = rows.next().map_err(backend)? {
            let run: i64 = r.get(0).map_err(backend)?;
            if last_run != Some(run) {
                runs.push(Vec::new());
                last_run = Some(run);
            }
            let data = r
                .get_ref(1)
                .map_err(backend)?
                .as_blob()
                .map_err(|e| meterbook_core::store::StoreError::Backend(e.to_string()))?;
            let cur = runs.last_mut().expect("pushed above");
            cur.extend(
                data.chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
        }
        let mut set = KeySet::empty();
        set.stored_runs = runs.len();
        set.sorted = runs.pop().unwrap_or_default();
        for run in runs {
            merge_into(&mut set.sorted, run);
        }
        set.rebuild_dir();
        Ok(set)
    }

    /// An index with no keys (what a finished ingest leaves behind).
    pub(super) fn empty() -> KeySet {
        let mut set = KeySet {
            sorted: Vec::new(),
            dir: Vec::new(),
            dir_shift: 64,
            recent: HashMap::default(),
            clash: Vec::new(),
            stored_runs: 0,
            added: 0,
        };
        set.rebuild_dir();
        set
    }

    fn rebuild_dir(&mut self) {
        // About four keys a bucket: one cache line to scan.
        let bits = (usize::BITS - (self.sorted.len() / 4).leading_zeros()).max(1);
        self.dir_shift = 64 - HASH_SHIFT - bits;
        let buckets = 1usize << bits;
        self.dir.clear();
        self.dir.reserve_exact(buckets + 1);
        let mut i = 0usize;
        for b in 0..=buckets as u64 {
            while i < self.sorted.len() && prefix(self.sorted[i]) >> self.dir_shift < b {
                i += 1;
            }
            self.dir.push(i as u32);
        }
    }

    /// The day codes of every key with `hash`'s prefix, stored or new.
    pub(super) fn days(&self, hash: u64, out: &mut Vec<u16>) {
        out.clear();
        let p = hash >> HASH_SHIFT;
        if let Some(d) = self.recent.get(&p) {
            out.push(*d);
        }
        for k in &self.clash {
            if prefix(*k) == p {
                out.push(((k & DAY_MASK) >> 1) as u16);
            }
        }
        let b = (p >> self.dir_shift) as usize;
        if b + 1 < self.dir.len() {
            let (start, end) = (self.dir[b] as usize, self.dir[b + 1] as usize);
            for k in &self.sorted[start..end] {
                if prefix(*k) == p {
                    out.push(((k & DAY_MASK) >> 1) as u16);
                }
            }
        }
    }

    /// Adds the key of a record this ingest stores.
    pub(super) fn add(&mut self, hash: u64, day: u16) {
        let p = hash >> HASH_SHIFT;
        match self.recent.entry(p) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(day);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.clash.push(pack(hash, day, true))
            }
        }
        self.added += 1;
        // The map grows to an eighth of the array (64Ki to 512Ki keys): big
        // enough that merges are rare, small enough to stay a few MB.
        let cap = (self.sorted.len() / 8).clamp(1 << 16, 1 << 19);
        if self.recent.len() >= cap {
            self.merge_recent();
        }
    }

    fn merge_recent(&mut self) {
        if self.recent.is_empty() && self.clash.is_empty() {
            return;
        }
        let mut new: Vec<u64> = self
            .recent
            .drain()
            .map(|(p, d)| p << HASH_SHIFT | (d as u64) << 1 | NEW)
            .chain(self.clash.drain(..))
            .collect();
        new.sort_unstable();
        merge_into(&mut self.sorted, new);
        self.rebuild_dir();
    }

    /// Writes the keys added by this ingest as a new run, or every key as one
    /// run when there would be more than [`MAX_RUNS`].
    pub(super) fn store(mut self, conn: &Connection, eid: i64) -> StoreResult<()> {
        if self.added == 0 {
            return Ok(());
        }
        self.merge_recent();
        let rewrite = self.stored_runs + 1 > MAX_RUNS;
        let run: i64 = if rewrite {
            conn.execute("DELETE FROM usage_key WHERE enrollment_id = ?1", [eid])
                .map_err(backend)?;
            0
        } else {
            conn.query_row(
                "SELECT COALESCE(MAX(run) + 1, 0) FROM usage_key WHERE enrollment_id = ?1",
                [eid],
                |r| r.get(0),
            )
            .map_err(backend)?
        };
        let keys = self
            .sorted
            .iter()
            .copied()
            .filter(|k| rewrite || k & NEW != 0);
        write_run(conn, eid, run, keys)
    }
}

/// Stores sorted keys as run `run` of the enrollment, in parts.
pub(super) fn write_run(
    conn: &Connection,
    eid: i64,
    run: i64,
    keys: impl Iterator<Item = u64>,
) -> StoreResult<()> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO usage_key (enrollment_id, run, part, data) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(backend)?;
    let mut buf: Vec<u8> = Vec::with_capacity(PART_KEYS * 8);
    let mut part = 0i64;
    for k in keys {
        buf.extend_from_slice(&(k & !NEW).to_le_bytes());
        if buf.len() == PART_KEYS * 8 {
            insert
                .execute(params![eid, run, part, buf])
                .map_err(backend)?;
            buf.clear();
            part += 1;
        }
    }
    if !buf.is_empty() {
        insert
            .execute(params![eid, run, part, buf])
            .map_err(backend)?;
    }
    Ok(())
}

/// A key for the migration's bulk build: sort the keys, then [`write_run`].
pub(super) fn stored_key(hash: u64, day: Day) -> u64 {
    pack(hash, day_code(day), false)
}

/// Merges sorted `b` into sorted `a` in place, from the back: growing `a`
/// reallocates without a second copy of it.
fn merge_into(a: &mut Vec<u64>, b: Vec<u64>) {
    if b.is_empty() {
        return;
    }
    let n = a.len();
    a.resize(n + b.len(), 0);
    let (mut i, mut j, mut k) = (n, b.len(), n + b.len());
    while j > 0 {
        if i > 0 && a[i - 1] > b[j - 1] {
            a[k - 1] = a[i - 1];
            i -= 1;
        } else {
            a[k - 1] = b[j - 1];
            j -= 1;
        }
        k -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `usage_key` table alone in memory.
    fn key_table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE usage_key (enrollment_id INTEGER, run INTEGER, part INTEGER, data BLOB)",
        )
        .unwrap();
        conn
    }

    fn set() -> KeySet {
        KeySet::load(&key_table(), 1).unwrap()
    }

    #[test]
    fn finds_every_added_key_across_merges_and_clashes() {
        let mut s = set();
        let mut out = Vec::new();
        let n = 300_000u64;
        for i in 0..n {
            let h = hash_id(42, &i.to_string());
            s.add(h, (i % 1000) as u16);
        }
        // Two ids whose hashes share a prefix.
        s.add(7 << HASH_SHIFT, 1);
        s.add(7 << HASH_SHIFT | 5, 2);
        for i in (0..n).step_by(7) {
            s.days(hash_id(42, &i.to_string()), &mut out);
            assert!(out.contains(&((i % 1000) as u16)), "{i}");
        }
        s.days(7 << HASH_SHIFT, &mut out);
        out.sort();
        assert_eq!(out, vec![1, 2]);
        s.merge_recent();
        s.days(7 << HASH_SHIFT, &mut out);
        out.sort();
        assert_eq!(out, vec![1, 2]);
        s.days(hash_id(42, "absent"), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn runs_round_trip_and_compact() {
        let conn = key_table();
        let mut out = Vec::new();
        for round in 0..(MAX_RUNS as u64 + 2) {
            let mut s = KeySet::load(&conn, 1).unwrap();
            for i in 0..1000 {
                s.add(hash_id(1, &format!("{round}-{i}")), round as u16);
            }
            s.store(&conn, 1).unwrap();
            let runs: i64 = conn
                .query_row("SELECT COUNT(DISTINCT run) FROM usage_key", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert!(runs as usize <= MAX_RUNS);
        }
        let s = KeySet::load(&conn, 1).unwrap();
        assert_eq!(s.sorted.len(), 1000 * (MAX_RUNS + 2));
        for round in 0..(MAX_RUNS as u64 + 2) {
            s.days(hash_id(1, &format!("{round}-999")), &mut out);
            assert_eq!(out, vec![round as u16]);
        }
    }

    #[test]
    fn day_codes_round_trip_and_far_days_look_everywhere() {
        let d: Day = "2025-07-01".parse().unwrap();
        assert_eq!(code_day(day_code(d)), Some(d));
        assert_eq!(day_code(Day::from_ymd(1999, 12, 31).unwrap()), ANY_DAY);
        assert_eq!(day_code(Day::from_ymd(9999, 1, 1).unwrap()), ANY_DAY);
        assert_eq!(code_day(ANY_DAY), None);
    }
}
