//! `backup` and `restore`: the operator's copy of the database.

use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use meterbook_sqlite::{CopyInfo, SqliteStore};
use std::path::Path;

/// Backups of the scale-out deployment are the databases' own.
fn embedded_only(settings: &Settings, what: &str) -> Result<()> {
    if let crate::settings::StoreConfig::Cluster { .. } = settings.store {
        bail!(
            "`{what}` copies the embedded file; with PostgreSQL and ClickHouse use their own \
             backups (pg_dump or base backups, ClickHouse's BACKUP or frozen partitions): \
             see docs/deploy.md"
        );
    }
    Ok(())
}

pub fn backup(settings: &Settings, to: &Path) -> Result<()> {
    embedded_only(settings, "backup")?;
    // Opening creates a missing database: a mistyped --db would back up an empty one.
    if !settings.db.exists() {
        bail!(
            "no database at {} (see --db or MB_DB)",
            settings.db.display()
        );
    }
    let store = SqliteStore::open(&settings.db)
        .with_context(|| format!("opening {}", settings.db.display()))?;
    let info = store
        .backup_to(to)
        .with_context(|| format!("backing up {}", store.path().display()))?;
    println!("backup written to {}", to.display());
    print_info(&info);
    Ok(())
}

pub fn restore(settings: &Settings, from: &Path) -> Result<()> {
    embedded_only(settings, "restore")?;
    let db = settings.db.as_path();
    let info = SqliteStore::restore_from(db, from)
        .with_context(|| format!("restoring {} from {}", db.display(), from.display()))?;
    println!("{} restored from {}", db.display(), from.display());
    print_info(&info);
    Ok(())
}

fn print_info(info: &CopyInfo) {
    println!(
        "{} bytes, schema version {}, {} enrollment(s)",
        info.bytes, info.schema_version, info.enrollments
    );
}
