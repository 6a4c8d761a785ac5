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

/// Profile caches are dropped when they reach this many entries, keeping memory flat…
pub(super) const CACHE_LIMIT: usize = 200_000;
/// …or this many bytes of profile text (a profile may be 75 KB: InstanceId,
/// Tags and AdditionalInfo at their limits).
pub(super) const CACHE_BYTES: usize = 32 << 20;

/// Profile text → id, inserting unseen profiles.
pub(super) struct ProfileEncoder {
    seed: i64,
    cache: HashMap<Box<str>, i64, foldhash::fast::RandomState>,
    cached_bytes: usize,
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
            cache: HashMap::default(),
            cached_bytes: 0,
            key: String::new(),
        }
    }

    pub(super) fn id(&mut self, conn: &Connection, fields: &[&str; 8]) -> StoreResult<i64> {
        if fields.iter().all(|f| f.is_empty()) {
            return Ok(0);
        }
        self.key.clear();
        profile::encode(fields, &mut self.key);
        if let Some(id) = self.cache.get(self.key.as_str()) {
            return Ok(*id);
        }
        let id = profile_id(conn, self.seed, &self.key)?;
        if self.cache.len() >= CACHE_LIMIT || self.cached_bytes >= CACHE_BYTES {
            self.cache.clear();
            self.cached_bytes = 0;
        }
        self.cached_bytes += self.key.len();
        self.cache.insert(self.key.as_str().into(), id);
        Ok(id)
    }
}

/// Decodes profile ids while scanning, with a bounded cache; profiles are
/// shared with the thread that reads the rows.
pub(super) struct ProfileDecoder {
    cache: HashMap<i64, Arc<Profile>, foldhash::fast::RandomState>,
    cached_bytes: usize,
    empty: Arc<Profile>,
}

impl ProfileDecoder {
    pub(super) fn new() -> ProfileDecoder {
        ProfileDecoder {
            cache: HashMap::default(),
            cached_bytes: 0,
            empty: Arc::new(Profile::empty()),
        }
    }

    /// The profile of `id`, read on first use.
    pub(super) fn get(&mut self, conn: &Connection, id: i64) -> StoreResult<Arc<Profile>> {
        if id == 0 {
            return Ok(self.empty.clone());
        }
        if let Some(p) = self.cache.get(&id) {
            return Ok(p.clone());
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
        let p = Arc::new(p);
        self.cache.insert(id, p.clone());
        Ok(p)
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
            "CREATE TABLE usage_profile (id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, value TEXT NOT NULL);
             CREATE INDEX usage_profile_hash ON usage_profile (hash);",
        )
        .unwrap();
        let mut enc = ProfileEncoder::new(7);
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

    #[test]
    fn equal_text_gives_the_same_id_and_different_text_another() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE usage_profile (id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, value TEXT NOT NULL);
             CREATE INDEX usage_profile_hash ON usage_profile (hash);",
        )
        .unwrap();
        let a = profile_id(&conn, 1, "a").unwrap();
        assert_eq!(profile_id(&conn, 1, "a").unwrap(), a);
        assert_ne!(profile_id(&conn, 1, "b").unwrap(), a);
        // A row with a's hash but other text (a collision) is not taken for a.
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
