//! One module per resource; each turns parsed arguments into calls on the
//! use-case layer (as the operator: whoever can open the database file), and
//! prints what happened. Only storage administration (migrate, backup,
//! restore) works on the database itself.

mod backup;
mod budgets;
mod enrollment;
mod exports;
mod forecast;
mod jobs;
mod keys;
mod ledger;
mod report;
mod serve;
pub mod store_copy;
mod usage;
pub mod users;

use crate::cli::Command;
use crate::settings::Settings;
use anyhow::{Context, Result};
use meterbook_app::{App, Operator};
use meterbook_core::store::Store;
use meterbook_core::{Day, EnrollmentNumber, Period};
use meterbook_jobs::{PendingFile, ReportFile, ReportFiles};
use std::sync::Arc;

pub use exports::app as exports_app;
pub use keys::create_key;
pub use serve::run as serve;
pub use usage::ingest_file;

/// The configured store (embedded file, or PostgreSQL with ClickHouse).
pub fn open(settings: &Settings) -> Result<Arc<dyn Store>> {
    let backend = crate::backend::Backend::open(&settings.store)?;
    if let crate::backend::Backend::Cluster(s) = &backend {
        s.set_ingest_lease(settings.ingest_lease);
    }
    Ok(backend.store())
}

/// The use-case layer over the database, keeping advanced reports in
/// `files`.
pub fn app_with(settings: &Settings, files: Arc<dyn ReportFiles>) -> Result<App> {
    Ok(App::new(
        open(settings)?,
        files,
        settings.jobs.clone(),
        meterbook_core::clock::system(),
    ))
}

/// The operator's handle over an open database (the benchmarks' own), for
/// work that makes no report files.
pub fn operator_over(store: Arc<dyn Store>) -> Operator {
    App::new(
        store,
        Arc::new(NoReportFiles),
        meterbook_jobs::JobSettings::default(),
        meterbook_core::clock::system(),
    )
    .local_operator()
}

/// The use-case layer over the database, with the configured report files.
pub fn app_with_reports(settings: &Settings) -> Result<App> {
    let files = match report_store(settings)? {
        Some(f) => f,
        None => Arc::new(
            meterbook_jobs::DirReportFiles::new(&settings.report_dir).with_context(|| {
                format!(
                    "cannot use the report directory {}",
                    settings.report_dir.display()
                )
            })?,
        ),
    };
    app_with(settings, files)
}

/// The object store for report files (`--report-store`), if one is set.
pub fn report_store(settings: &Settings) -> Result<Option<Arc<dyn ReportFiles>>> {
    let Some(url) = &settings.report_store else {
        return Ok(None);
    };
    #[cfg(feature = "s3")]
    {
        let files = meterbook_jobs::S3ReportFiles::from_url(url)
            .with_context(|| format!("cannot use the report store {url}"))?;
        Ok(Some(Arc::new(files)))
    }
    #[cfg(not(feature = "s3"))]
    {
        anyhow::bail!(
            "--report-store {url}: this build keeps report files in a directory only; \
             build with `cargo build --release --features s3` for an S3-compatible store"
        )
    }
}

/// The operator's handle over the database, for commands that make no
/// report files.
pub fn operator(settings: &Settings) -> Result<Operator> {
    Ok(app_with(settings, Arc::new(NoReportFiles))?.local_operator())
}

/// The report files of a command that makes none: there are none to open.
pub(crate) struct NoReportFiles;

impl ReportFiles for NoReportFiles {
    fn create(&self, _: &str) -> std::io::Result<Box<dyn PendingFile>> {
        Err(std::io::Error::other("this command keeps no report files"))
    }
    fn open(&self, _: &str) -> std::io::Result<Option<ReportFile>> {
        Ok(None)
    }
    fn remove(&self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn sweep_partial(&self) -> std::io::Result<usize> {
        Ok(0)
    }
}

pub fn run(settings: &Settings, cmd: Command) -> Result<()> {
    match cmd {
        Command::Migrate => {
            println!(
                "{}",
                crate::backend::Backend::open(&settings.store)?.schema()?
            );
            Ok(())
        }
        Command::Doctor => crate::backend::doctor(&settings.store),
        Command::Enrollment(c) => enrollment::enrollment(&operator(settings)?, c),
        Command::Hierarchy(c) => enrollment::hierarchy(&operator(settings)?, c),
        Command::Subscription(c) => enrollment::subscription(&operator(settings)?, c),
        Command::Prices(c) => enrollment::prices(&operator(settings)?, c),
        Command::Usage(c) => usage::usage(&operator(settings)?, c),
        Command::Purchase(c) => ledger::entry(
            &operator(settings)?,
            meterbook_core::store::EntryKind::Purchase,
            c,
        ),
        Command::Adjustment(c) => ledger::entry(
            &operator(settings)?,
            meterbook_core::store::EntryKind::Adjustment,
            c,
        ),
        Command::Period(c) => ledger::period(&operator(settings)?, c),
        Command::Report(c) => report::run(settings, c),
        Command::Forecast(a) => forecast::run(&operator(settings)?, &a),
        Command::Serve(a) => serve::run(settings, &a, None),
        Command::Keys(c) => keys::run(&operator(settings)?, c),
        Command::Exports(c) => exports::run(settings, c),
        Command::User(c) => users::run(&operator(settings)?, c),
        Command::Budgets(c) => budgets::run(&operator(settings)?, c),
        Command::Notifications(c) => budgets::notifications(&operator(settings)?, c),
        Command::OperatorToken(c) => keys::operator_token(&operator(settings)?, c),
        Command::Backup { to } => backup::backup(settings, &to),
        Command::Restore { from } => backup::restore(settings, &from),
        Command::Store(crate::cli::StoreCmd::Copy(a)) => store_copy::run(&a),
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
