//! `backup` and `restore`: the operator's copy of the database.

use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use meterbook_sqlite::{CopyInfo, SqliteStore};
use std::path::Path;

pub fn backup(settings: &Settings, to: &Path) -> Result<()> {
    // Opening creates a missing database: a mistyped --db would back up an empty one.
    if !settings.db.exists() {
        bail!(
            "no database at {} (see --db or MB_DB)",
            settings.db.display()
        );
    }
    let store = super::open(settings)?;
    let info = store
        .backup_to(to)
        .with_context(|| format!("backing up {}", store.path().display()))?;
    println!("backup written to {}", to.display());
    print_info(&info);
    Ok(())
}

pub fn restore(db: &Path, from: &Path) -> Result<()> {
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
