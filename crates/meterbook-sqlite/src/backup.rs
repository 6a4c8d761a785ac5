//! Online backup and restore of the database file.
//!
//! A backup is taken with `VACUUM INTO` on a read connection: one read
//! transaction, so the copy is a consistent snapshot of the last committed
//! state (an ingest in progress is either wholly in it or not at all), and in
//! WAL mode it blocks no writer — `serve` and ingests go on while it runs. The
//! copy is written beside its destination under a temporary name, checked
//! (`PRAGMA quick_check`, schema version), fsynced and renamed into place, so
//! a crash never leaves a half-written file under the backup's name.
//!
//! A restore copies a checked backup into the database with SQLite's backup
//! API. The destination is written in one exclusive transaction: anyone else
//! opening the database sees the old state or the restored one, never a mix.
//! Every enrollment's data version is then moved past both the old and the
//! restored values, so nothing cached against the old data (ETags, statement
//! caches of a server that was not stopped) is ever taken for current.

use crate::{backend, migrate, SqliteStore, SCHEMA_VERSION};
use meterbook_core::store::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a backup or restore copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInfo {
    /// Size of the copy in bytes.
    pub bytes: u64,
    /// Schema version of the copy (before migrations, for a restore).
    pub schema_version: usize,
    /// Enrollments in the copy.
    pub enrollments: u64,
}

impl SqliteStore {
    /// Writes a consistent copy of the database to `dest`, which must not exist.
    pub fn backup_to(&self, dest: &Path) -> StoreResult<CopyInfo> {
        if dest.exists() {
            return Err(StoreError::Conflict(format!(
                "{} already exists; choose a new file name",
                dest.display()
            )));
        }
        let tmp = partial_path(dest);
        let result = (|| {
            {
                let conn = self.read_conn()?;
                conn.execute("VACUUM INTO ?1", [tmp.to_string_lossy().as_ref()])
                    .map_err(|e| io_error("writing the backup", dest, e.to_string()))?;
            }
            let info = check_copy(&tmp)?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_error("syncing the backup", dest, e.to_string()))?;
            std::fs::rename(&tmp, dest)
                .map_err(|e| io_error("renaming the backup", dest, e.to_string()))?;
            sync_dir(dest);
            Ok(info)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Replaces the contents of the database at `db` (created if missing) with
    /// the backup at `src`, then applies pending migrations. Refused while a
    /// server holds [`ServerLock::shared`]: the file would stay consistent, but
    /// a running server's report workers would carry on with jobs of the
    /// replaced state.
    pub fn restore_from(db: &Path, src: &Path) -> StoreResult<CopyInfo> {
        // Held (exclusively) until the restore is done, so no server starts meanwhile.
        let _alone = ServerLock::exclusive(db)?;
        let info = check_copy(src)?;
        let source = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| io_error("opening the backup", src, e.to_string()))?;
        let mut dest = Connection::open(db)
            .map_err(|e| io_error("opening the database", db, e.to_string()))?;
        dest.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(backend)?;
        let before = data_versions(&dest).unwrap_or_default();
        {
            let copy = rusqlite::backup::Backup::new(&source, &mut dest).map_err(backend)?;
            // One step copies every page inside one destination transaction.
            copy.step(-1).map_err(backend)?;
        }
        dest.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        migrate(&dest)?;
        let tx = dest.unchecked_transaction().map_err(backend)?;
        for (number, restored) in data_versions(&tx)? {
            let next = restored.max(before.get(&number).copied().unwrap_or(0)) + 1;
            tx.execute(
                "UPDATE enrollment SET data_version = ?1 WHERE number = ?2",
                rusqlite::params![next, number],
            )
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(info)
    }
}

/// A lock on the database file that says a server has it open: `serve` holds
/// it shared for its lifetime, `restore` needs it exclusively. It is an
/// `flock` lock, independent of SQLite's own (POSIX) locks on the file, and
/// the file handle is only closed once the process is done with the database.
pub struct ServerLock {
    _file: Option<std::fs::File>,
}

impl ServerLock {
    /// Taken by `serve`: any number of servers may share the database.
    pub fn shared(db: &Path) -> StoreResult<ServerLock> {
        let file = match std::fs::File::open(db) {
            Ok(f) => f,
            // Not created yet: the store creates it, and a restore cannot race
            // a server that has not opened it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ServerLock { _file: None })
            }
            Err(e) => return Err(io_error("opening", db, e.to_string())),
        };
        file.lock_shared()
            .map_err(|e| io_error("locking", db, e.to_string()))?;
        Ok(ServerLock { _file: Some(file) })
    }

    /// Taken by `restore`: refused while a server holds the database.
    fn exclusive(db: &Path) -> StoreResult<ServerLock> {
        let file = match std::fs::File::open(db) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ServerLock { _file: None })
            }
            Err(e) => return Err(io_error("opening", db, e.to_string())),
        };
        match file.try_lock() {
            Ok(()) => Ok(ServerLock { _file: Some(file) }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Conflict(format!(
                "a running `meterbook serve` has {} open; stop it before restoring",
                db.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error("locking", db, e.to_string())),
        }
    }
}

/// `dir/.name.partial-<pid>`: beside the destination, so the rename stays on one file system.
fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    dest.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Opens a copy read-only and checks it is a whole Meterbook database this
/// build can read.
fn check_copy(path: &Path) -> StoreResult<CopyInfo> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| io_error("reading", path, e.to_string()))?
        .len();
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| io_error("opening", path, e.to_string()))?;
    let not_ours = |why: String| {
        StoreError::Invalid(format!(
            "{} is not a usable Meterbook database: {why}",
            path.display()
        ))
    };
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    if check != "ok" {
        return Err(not_ours(format!("integrity check says {check}")));
    }
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    if version < 1 {
        return Err(not_ours("it has no Meterbook schema".into()));
    }
    if version as usize > SCHEMA_VERSION {
        return Err(not_ours(format!(
            "its schema version {version} is newer than this build's {SCHEMA_VERSION}"
        )));
    }
    let enrollments: i64 = conn
        .query_row("SELECT count(*) FROM enrollment", [], |r| r.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    Ok(CopyInfo {
        bytes,
        schema_version: version as usize,
        enrollments: enrollments as u64,
    })
}

/// Every enrollment's data version; empty for a database without the table yet.
fn data_versions(conn: &Connection) -> StoreResult<HashMap<String, i64>> {
    let mut stmt = match conn.prepare("SELECT number, data_version FROM enrollment") {
        Ok(s) => s,
        Err(_) => return Ok(HashMap::new()),
    };
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

fn io_error(what: &str, path: &Path, why: String) -> StoreError {
    StoreError::Backend(format!("{what} {}: {why}", path.display()))
}

/// Makes a rename durable (best effort where directories cannot be opened).
fn sync_dir(file: &Path) {
    if let Some(dir) = file.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}
