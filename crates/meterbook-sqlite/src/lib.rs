//! The embedded store: one SQLite file in WAL mode implementing
//! [`meterbook_core::store`]'s traits.
//!
//! Writes go through one connection (SQLite has one writer); reports read
//! through their own connections, so a long export never blocks ingestion.
//! Commits are `synchronous=FULL`: once an ingest says "stored", a crash or
//! power loss cannot take it back.
//!
//! ```no_run
//! use meterbook_sqlite::SqliteStore;
//! let store = SqliteStore::open("meterbook.db").unwrap();
//! ```
#![forbid(unsafe_code)]

mod backup;
mod exports;
mod jobs;
mod keys;
mod metadata;
mod notify;
mod profile;
mod shared;
mod usage;
mod users;

pub use backup::{CopyInfo, ServerLock};
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::EnrollmentNumber;
use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Embedded migrations, applied in order at open; `PRAGMA user_version` records progress.
/// Each is a script, and for a change of layout the code that converts the
/// rows, run after the script in the same transaction.
type Migration = (&'static str, Option<fn(&Connection) -> StoreResult<()>>);
const MIGRATIONS: &[Migration] = &[
    (include_str!("../migrations/0001_init.sql"), None),
    (include_str!("../migrations/0002_api_keys.sql"), None),
    (include_str!("../migrations/0003_operator_tokens.sql"), None),
    (include_str!("../migrations/0004_report_jobs.sql"), None),
    (include_str!("../migrations/0005_users.sql"), None),
    (include_str!("../migrations/0006_usage_daily.sql"), None),
    (
        include_str!("../migrations/0007_report_job_period.sql"),
        None,
    ),
    (
        include_str!("../migrations/0008_usage_blocks.sql"),
        Some(usage::to_blocks),
    ),
    (include_str!("../migrations/0009_notify.sql"), None),
    (include_str!("../migrations/0010_exports.sql"), None),
];

/// The schema version once every migration is applied.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Profiles decoded for scans, shared by all of them.
    profiles: usage::ProfileDecoder,
    /// Throttles, rate limits and key flashes: in memory, since an embedded
    /// deployment is one process (nothing else can share them).
    shared: meterbook_core::shared::MemSharedState,
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Page cache of the writer. Fact blocks are appended and the key index
/// is held in memory, so an ingest no longer inserts at random into B-trees
/// and needs little cache (it was 160 MiB for the row-per-record layout).
const WRITER_CACHE_KIB: i64 = 32 * 1024;
/// Readers scan in key order and need little cache.
const READER_CACHE_KIB: i64 = 16 * 1024;

fn configure(conn: &Connection, cache_kib: i64) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path).map_err(|e| {
            StoreError::Backend(format!("cannot open database {}: {e}", path.display()))
        })?;
        configure(&conn, WRITER_CACHE_KIB).map_err(backend)?;
        migrate(&conn)?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            profiles: usage::ProfileDecoder::new(),
            shared: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version after migrations.
    pub fn schema_version(&self) -> StoreResult<usize> {
        let c = self.write_conn();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(backend)?;
        Ok(v as usize)
    }

    pub(crate) fn write_conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls back).
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A read connection from the pool (opened on demand), returned on drop.
    pub(crate) fn read_conn(&self) -> StoreResult<Reader<'_>> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.path).map_err(backend)?;
                configure(&c, READER_CACHE_KIB).map_err(backend)?;
                c
            }
        };
        Ok(Reader {
            store: self,
            conn: Some(conn),
        })
    }

    /// The enrollment's row id, or NotFound naming the number.
    pub(crate) fn enrollment_id(conn: &Connection, n: &EnrollmentNumber) -> StoreResult<i64> {
        conn.query_row(
            "SELECT id FROM enrollment WHERE number = ?1",
            [n.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?
        .ok_or_else(|| StoreError::NotFound(format!("no enrollment {n}")))
    }
}

pub(crate) struct Reader<'a> {
    store: &'a SqliteStore,
    conn: Option<Connection>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            let mut pool = self.store.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < 8 {
                pool.push(c);
            }
        }
    }
}

fn migrate(conn: &Connection) -> StoreResult<()> {
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    for (i, (sql, convert)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.unchecked_transaction().map_err(backend)?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Backend(format!("migration {} failed: {e}", i + 1)))?;
        if let Some(convert) = convert {
            convert(&tx)
                .map_err(|e| StoreError::Backend(format!("migration {} failed: {e}", i + 1)))?;
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

/// Encodes an i128 (rates, exact amounts) for a TEXT column.
pub(crate) fn i128_to_sql(v: i128) -> String {
    v.to_string()
}

pub(crate) fn i128_from_sql(s: &str) -> StoreResult<i128> {
    s.parse()
        .map_err(|_| StoreError::Backend(format!("corrupt integer {s:?} in database")))
}

impl SqliteStore {
    /// Moves the write-ahead log into the database file (for measuring its size, backups).
    pub fn checkpoint(&self) -> StoreResult<()> {
        self.write_conn()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .map_err(backend)
    }
}
