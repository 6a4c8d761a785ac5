//! The arguments of `report`: kinds, formats and requests.

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

use super::options::*;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ReportKind {
    Balance,
    Usage,
    Prices,
    Marketplace,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Csv,
    Json,
    /// Usage details as gzip-compressed CSV (usage reports only).
    #[value(name = "csv.gz")]
    CsvGz,
    /// Usage details with typed columns (usage reports only).
    Parquet,
    /// The FinOps FOCUS 1.2 dataset as CSV (usage reports only).
    FocusCsv,
    /// The FinOps FOCUS 1.2 dataset as Parquet (usage reports only).
    FocusParquet,
}

impl OutputFormat {
    /// The file format of a usage export, for the formats only exports have.
    pub fn export(self) -> Option<meterbook_io::report::export::ExportFormat> {
        use meterbook_io::report::export::ExportFormat as E;
        match self {
            OutputFormat::Csv | OutputFormat::Json => None,
            OutputFormat::CsvGz => Some(E::CsvGzip),
            OutputFormat::Parquet => Some(E::Parquet),
            OutputFormat::FocusCsv => Some(E::FocusCsv),
            OutputFormat::FocusParquet => Some(E::FocusParquet),
        }
    }
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The enrollment number.
    #[arg(long)]
    pub enrollment: String,
    /// Billing period (YYYYMM).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    /// First day of a date range (YYYY-MM-DD), with --to.
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Last day of a date range (YYYY-MM-DD), with --from.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Only these accounts (repeatable).
    #[arg(long)]
    pub account: Vec<String>,
    /// Only these departments (repeatable).
    #[arg(long)]
    pub department: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: OutputFormat,
    /// Write to this file (atomically) instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

/// `report usage`: a report that may be a FOCUS export.
#[derive(Args, Debug)]
pub struct UsageReportArgs {
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub focus: FocusOpts,
}

#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// Balance and charges: the statement of a period.
    #[command(
        after_help = "Examples:\n  meterbook report balance --enrollment 8608480 --period 202503\n  meterbook report balance --enrollment 8608480 --period 202503 --format json"
    )]
    Balance(ReportArgs),
    /// Usage details: one row per usage record.
    #[command(
        after_help = "Examples:\n  meterbook report usage --enrollment 8608480 --period 202503 -o usage-202503.csv\n  meterbook report usage --enrollment 8608480 --from 2025-01-01 --to 2025-02-15 --department Research --format json"
    )]
    Usage(UsageReportArgs),
    /// The price list of a period.
    #[command(
        after_help = "Example:\n  meterbook report prices --enrollment 8608480 --period 202503"
    )]
    Prices(ReportArgs),
    /// Marketplace (third-party) charges.
    #[command(
        after_help = "Example:\n  meterbook report marketplace --enrollment 8608480 --period 202503 --format json"
    )]
    Marketplace(ReportArgs),
    /// Request an advanced report: any date range or a billing period, and
    /// accounts/departments, in CSV, gzip CSV, Parquet or FOCUS. Prints the job
    /// id. Runs the job here and waits, unless --detach leaves it to a running
    /// server's workers.
    #[command(
        after_help = "Examples:\n  id=$(meterbook report request --enrollment 8608480 --from 2025-01-01 --to 2025-03-31 --department Research --format parquet)\n  id=$(meterbook report request --enrollment 8608480 --billing-period 202503)"
    )]
    Request(RequestArgs),
    /// Show a report job: status, progress, manifest (JSON).
    #[command(after_help = "Example:\n  meterbook report status \"$id\"")]
    Status {
        /// The job id `report request` printed.
        id: String,
    },
    /// Copy a finished report's file, checking its sha256 against the manifest.
    #[command(after_help = "Example:\n  meterbook report fetch \"$id\" -o research.parquet")]
    Fetch {
        /// The job id.
        id: String,
        /// Where to write the file.
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[command(flatten)]
        dir: ReportDirOpt,
    },
    /// Cancel a queued or running report job.
    #[command(after_help = "Example:\n  meterbook report cancel \"$id\"")]
    Cancel {
        /// The job id.
        id: String,
    },
    /// List an enrollment's report jobs.
    #[command(after_help = "Example:\n  meterbook report jobs --enrollment 8608480")]
    Jobs {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
    },
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The enrollment number.
    #[arg(long)]
    pub enrollment: String,
    /// First day (YYYY-MM-DD), inclusive: rows by usage date, with --to.
    #[arg(long, required_unless_present = "billing_period", requires = "to")]
    pub from: Option<String>,
    /// Last day (YYYY-MM-DD), inclusive, with --from.
    #[arg(long, required_unless_present = "billing_period", requires = "from")]
    pub to: Option<String>,
    /// Billing period (YYYYMM) instead of a range: the rows booked in it, as
    /// `report usage --period` holds them (corrections booked in it included).
    #[arg(long, value_name = "YYYYMM", conflicts_with_all = ["from", "to"])]
    pub billing_period: Option<String>,
    /// Only these accounts (repeatable).
    #[arg(long)]
    pub account: Vec<String>,
    /// Only these departments (repeatable).
    #[arg(long)]
    pub department: Vec<String>,
    /// csv, csv.gz, parquet, focus-csv or focus-parquet.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Queue the job and return at once (a running `meterbook serve` prepares it).
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub jobs: JobOpts,
    #[command(flatten)]
    pub focus: FocusOpts,
}
