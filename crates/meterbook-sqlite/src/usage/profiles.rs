//! Usage profiles (the eight descriptive fields of a record, stored once per
//! distinct combination) found by a seeded hash of their text, with bounded
//! caches on both sides.

use super::keys::hash_id;
use crate::backend;
use crate::profile::{self, Profile};
use meterbook_core::store::{StoreError, StoreResult};
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::sync::Arc;

/// Profile caches hold at most this many entries, keeping memory flat…
pub(super) const CACHE_LIMIT: usize = 200_000;
/// …or this many bytes of profile text (a profile may be 75 KB: InstanceId,
/// Tags and AdditionalInfo at their limits).
pub(super) const CACHE_BYTES: usize = 48 << 20;

/// A cache in two generations: entries go to the young one; when it holds
/// half the budget the old one is dropped and the young one becomes old; a
/// hit in the old one moves back to the young. What is in use (a month of
/// resources) stays, what is not ages out, and nothing is dropped all at once.
struct Generations<K, V> {
    young: Map<K, V>,
    old: Map<K, V>,
    young_bytes: usize,
}

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

impl<K: std::hash::Hash + Eq, V: Clone> Generations<K, V> {
    fn new() -> Self {
        Generations {
            young: Map::default(),
            old: Map::default(),
            young_bytes: 0,
        }
    }

    fn get<Q>(&mut self, k: &Q, bytes: impl Fn(&K, &V) -> usize) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        if let Some(v) = self.young.get(k) {
            return Some(v.clone());
        }
        let (k, v) = self.old.remove_entry(k)?;
        let b = bytes(&k, &v);
        self.insert(k, v.clone(), b);
        Some(v)
    }

    fn insert(&mut self, k: K, v: V, bytes: usize) {
        if self.young.len() >= CACHE_LIMIT / 2 || self.young_bytes >= CACHE_BYTES / 2 {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.young_bytes += bytes;
        self.young.insert(k, v);
    }
}

/// Profile text → id, inserting unseen profiles.
pub(super) struct ProfileEncoder {
    seed: i64,
    /// By the text's hash (computed once a row): the text, to confirm, and its id.
    cache: Generations<u64, (Arc<str>, i64)>,
    key: String,
}

/// The id of profile `text`, inserting it if it is new.
pub(super) fn profile_id(conn: &Connection, seed: i64, text: &str) -> StoreResult<i64> {
    let hash = hash_id(seed, text) as i64;
    let mut st = conn
        .prepare_cached("SELECT id, value FROM usage_profile WHERE hash = ?1")
        .map_err(backend)?;
    let mut rows = st.query([hash]).map_err(backend)?;
    while let Some(r) = rows.next().map_err(backend)? {
        if r.get_ref(1).map_err(backend)?.as_str().ok() == Some(text) {
            return r.get(0).map_err(backend);
        }
    }
    conn.prepare_cached("INSERT INTO usage_profile (hash, value) VALUES (?1, ?2)")
        .map_err(backend)?
        .execute(params![hash, text])
        .map_err(backend)?;
    Ok(conn.last_insert_rowid())
}

impl ProfileEncoder {
    pub(super) fn new(seed: i64) -> ProfileEncoder {
        ProfileEncoder {
            seed,
            cache: Generations::new(),
            key: String::new(),
        }
    }

    pub(super) fn id(&mut self, conn: &Connection, fields: &[&str; 8]) -> StoreResult<i64> {
        if fields.iter().all(|f| f.is_empty()) {
            return Ok(0);
        }
        self.key.clear();
        profile::encode(fields, &mut self.key);
        let hash = hash_id(self.seed, &self.key);
        match self.cache.get(&hash, |_, v| v.0.len()) {
            Some((text, id)) if *text == *self.key => return Ok(id),
            // Another profile with the same hash: looked up, not cached.
            Some(_) => return profile_id(conn, self.seed, &self.key),
            None => {}
        }
        let id = profile_id(conn, self.seed, &self.key)?;
        self.cache
            .insert(hash, (self.key.as_str().into(), id), self.key.len());
        Ok(id)
    }
}

/// Decodes profile ids for scans, with one bounded cache shared by every
/// scan of the store (pages of one report, concurrent reports); profiles are
/// shared with the threads that read the rows. A profile id never changes
/// its text while the store is open (profiles are only added, and a restore
/// is refused while a server holds the database), so a cached profile is
/// never stale.
pub struct ProfileDecoder {
    cache: std::sync::Mutex<Generations<i64, (Arc<Profile>, usize)>>,
    empty: Arc<Profile>,
}

impl ProfileDecoder {
    pub(crate) fn new() -> ProfileDecoder {
        ProfileDecoder {
            cache: std::sync::Mutex::new(Generations::new()),
            empty: Arc::new(Profile::empty()),
        }
    }

    /// The rows `part` (block, row) with the profile of each, read on first use.
    pub(super) fn resolve(
        &self,
        conn: &Connection,
        part: &[(u32, u32)],
        profile_of: impl Fn(u32, u32) -> i64,
    ) -> StoreResult<Vec<(u32, u32, Arc<Profile>)>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(part.len());
        for &(b, i) in part {
            let id = profile_of(b, i);
            out.push((b, i, self.get(&mut cache, conn, id)?));
        }
        Ok(out)
    }

    fn get(
        &self,
        cache: &mut Generations<i64, (Arc<Profile>, usize)>,
        conn: &Connection,
        id: i64,
    ) -> StoreResult<Arc<Profile>> {
        if id == 0 {
            return Ok(self.empty.clone());
        }
        // The size is kept with the profile, so an entry moving back from
        // the old generation is counted.
        if let Some((p, _)) = cache.get(&id, |_, v| v.1) {
            return Ok(p);
        }
        let v: String = conn
            .prepare_cached("SELECT value FROM usage_profile WHERE id = ?1")
            .map_err(backend)?
            .query_row([id], |r| r.get(0))
            .map_err(backend)?;
        let bytes = v.len();
        let p = Profile::decode(v)
            .ok_or_else(|| StoreError::Backend(format!("corrupt usage profile {id}")))?;
        let p = Arc::new(p);
        cache.insert(id, (p.clone(), bytes), bytes);
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `usage_profile` as migration 8 makes it, alone in memory.
    fn profile_table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE usage_profile (id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, value TEXT NOT NULL);
             CREATE INDEX usage_profile_hash ON usage_profile (hash);",
        )
        .unwrap();
        conn
    }

    /// Distinct profiles near their size limit do not grow the cache past its byte budget.
    #[test]
    fn the_profile_cache_is_bounded_in_bytes() {
        let conn = profile_table();
        let mut enc = ProfileEncoder::new(7);
        let tags = "t".repeat(64 * 1024);
        for i in 0..(CACHE_BYTES / tags.len()) * 2 {
            let id = i.to_string();
            enc.id(&conn, &[&id, "", "", "", &tags, "", "", ""])
                .unwrap();
            let held: usize = enc
                .cache
                .young
                .values()
                .chain(enc.cache.old.values())
                .map(|v| v.0.len())
                .sum();
            assert!(
                held <= CACHE_BYTES + 2 * tags.len(),
                "{held} bytes after {i}"
            );
        }
    }

    #[test]
    fn equal_text_gives_the_same_id_and_different_text_another() {
        let conn = profile_table();
        let a = profile_id(&conn, 1, "a").unwrap();
        assert_eq!(profile_id(&conn, 1, "a").unwrap(), a);
        assert_ne!(profile_id(&conn, 1, "b").unwrap(), a);
        // A row with c's hash but other text (a collision) is not taken for c.
        conn.execute(
            "INSERT INTO usage_profile (hash, value) VALUES (?1, 'x')",
            [hash_id(1, "c") as i64],
        )
        .unwrap();
        let c = profile_id(&conn, 1, "c").unwrap();
        let v: String = conn
            .query_row("SELECT value FROM usage_profile WHERE id = ?1", [c], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(v, "c");
    }
}
