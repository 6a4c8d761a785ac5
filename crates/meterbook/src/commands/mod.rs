//! One module per resource; each turns parsed arguments into calls on the
//! store and the ledger, and prints what happened.

mod backup;
mod enrollment;
mod jobs;
mod keys;
mod ledger;
mod report;
mod serve;
mod usage;
pub mod users;

use crate::cli::Command;
use crate::settings::Settings;
use anyhow::{Context, Result};
use meterbook_core::{Day, EnrollmentNumber, Period};
use meterbook_sqlite::SqliteStore;

pub use keys::create_key;
pub use serve::run as serve;
pub use usage::ingest_file;

pub fn open(settings: &Settings) -> Result<SqliteStore> {
    SqliteStore::open(&settings.db).with_context(|| format!("opening {}", settings.db.display()))
}

pub fn run(settings: &Settings, cmd: Command) -> Result<()> {
    match cmd {
        Command::Migrate => {
            let s = open(settings)?;
            println!("schema at version {}", s.schema_version()?);
            Ok(())
        }
        Command::Enrollment(c) => enrollment::enrollment(&open(settings)?, c),
        Command::Hierarchy(c) => enrollment::hierarchy(&open(settings)?, c),
        Command::Subscription(c) => enrollment::subscription(&open(settings)?, c),
        Command::Prices(c) => enrollment::prices(&open(settings)?, c),
        Command::Usage(c) => usage::usage(&open(settings)?, c),
        Command::Purchase(c) => ledger::entry(
            &open(settings)?,
            meterbook_core::store::EntryKind::Purchase,
            c,
        ),
        Command::Adjustment(c) => ledger::entry(
            &open(settings)?,
            meterbook_core::store::EntryKind::Adjustment,
            c,
        ),
        Command::Period(c) => ledger::period(&open(settings)?, c),
        Command::Report(c) => report::run(settings, c),
        Command::Serve(a) => serve::run(settings, &a, None),
        Command::Keys(c) => keys::run(&open(settings)?, c),
        Command::User(c) => users::run(&open(settings)?, c),
        Command::OperatorToken(c) => keys::operator_token(&open(settings)?, c),
        Command::Backup { to } => backup::backup(settings, &to),
        Command::Restore { from } => backup::restore(&settings.db, &from),
        Command::Demo(a) => crate::demo::run(settings, &a),
        Command::Bench(a) => crate::bench::run(&a),
        Command::BenchReports(a) => crate::bench_reports::run(settings, &a),
    }
}

pub fn enrollment_number(s: &str) -> Result<EnrollmentNumber> {
    EnrollmentNumber::parse(s).map_err(anyhow::Error::msg)
}

pub fn day(s: &str, what: &str) -> Result<Day> {
    s.parse()
        .map_err(|e: meterbook_core::calendar::DateError| anyhow::anyhow!("{what}: {}", e.0))
}

pub fn period(s: &str) -> Result<Period> {
    period_flag(s, "--period")
}

/// A `YYYYMM` value of the flag `what`.
pub fn period_flag(s: &str, what: &str) -> Result<Period> {
    s.parse()
        .map_err(|e: meterbook_core::calendar::DateError| anyhow::anyhow!("{what}: {}", e.0))
}

/// A temporary file beside `target`, to be renamed onto it once complete.
/// Created with mode 0666 less the umask, as the file `>` would make: the
/// temp file's own 0600 would otherwise stay on the report after the rename.
pub fn temp_beside(target: &std::path::Path) -> Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    tempfile::Builder::new()
        .prefix(".meterbook-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))
}

/// The generation timestamp every report states (RFC 3339, UTC, seconds).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
