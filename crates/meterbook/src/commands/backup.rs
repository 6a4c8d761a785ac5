//! `backup` and `restore`: the operator's copy of the database.

use anyhow::{Context, Result};
use meterbook_sqlite::{CopyInfo, SqliteStore};
use std::path::Path;

pub fn backup(store: &SqliteStore, to: &Path) -> Result<()> {
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
