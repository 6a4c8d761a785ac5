//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "meterbook",
    version,
    about = "Self-hosted enterprise usage portal: operator CLI"
)]
pub struct Cli {
    /// SQLite database file (created if missing).
    #[arg(long, global = true, env = "MB_DB", default_value = "meterbook.db")]
    pub db: PathBuf,
    /// The provider's name, as FOCUS exports state it (ProviderName).
    #[arg(
        long,
        global = true,
        env = "MB_PROVIDER_NAME",
        default_value = "Meterbook Cloud"
    )]
    pub provider_name: String,
    /// Who issues the invoices, as FOCUS exports state it (InvoiceIssuerName).
    #[arg(
        long,
        global = true,
        env = "MB_INVOICE_ISSUER_NAME",
        default_value = "Meterbook Cloud"
    )]
    pub invoice_issuer_name: String,
    /// Where finished advanced reports are kept (default: `<db>.reports` beside the database).
    #[arg(long, global = true, env = "MB_REPORT_DIR")]
    pub report_dir: Option<PathBuf>,
    /// An advanced report running longer than this ends as TimedOut (minutes).
    #[arg(
        long,
        global = true,
        env = "MB_REPORT_TIME_LIMIT_MINUTES",
        default_value_t = 120
    )]
    pub report_time_limit_minutes: u64,
    /// Finished advanced reports and their files are removed after this many days.
    #[arg(
        long,
        global = true,
        env = "MB_REPORT_RETENTION_DAYS",
        default_value_t = 30
    )]
    pub report_retention_days: u64,
    /// A report worker that has not reported for this long is presumed dead and
    /// its job is restarted (seconds).
    #[arg(
        long,
        global = true,
        env = "MB_REPORT_LEASE_SECONDS",
        default_value_t = 30
    )]
    pub report_lease_seconds: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply pending schema migrations (they also run at every start).
    Migrate,
    /// Create, change and list enrollments.
    #[command(subcommand)]
    Enrollment(EnrollmentCmd),
    /// Import departments, accounts and subscriptions.
    #[command(subcommand)]
    Hierarchy(HierarchyCmd),
    /// Move a subscription to another account from a date on.
    #[command(subcommand)]
    Subscription(SubscriptionCmd),
    /// Import a billing period's price sheet.
    #[command(subcommand)]
    Prices(PricesCmd),
    /// Ingest metered usage; set the "complete through" watermark.
    #[command(subcommand)]
    Usage(UsageCmd),
    /// Record a purchase (adds to the commitment).
    #[command(subcommand)]
    Purchase(EntryCmd),
    /// Record an adjustment (credit > 0, debit < 0).
    #[command(subcommand)]
    Adjustment(EntryCmd),
    /// Close billing periods and list their state.
    #[command(subcommand)]
    Period(PeriodCmd),
    /// Produce a report (balance, usage, prices, marketplace), or request,
    /// follow and fetch an advanced report prepared in the background.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Serve the Reporting API over HTTP.
    Serve(ServeArgs),
    /// Create API access keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Portal users: create them and grant roles.
    #[command(subcommand)]
    User(UserCmd),
    /// Create operator tokens for the operator API.
    #[command(subcommand, name = "operator-token")]
    OperatorToken(OperatorTokenCmd),
    /// Write a consistent copy of the database while it is in use.
    ///
    /// Example: meterbook backup --to backups/meterbook-2026-11-30.db
    Backup {
        /// The copy to write (must not exist yet).
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace the database with a backup (stop `meterbook serve` first).
    ///
    /// Example: meterbook restore --from backups/meterbook-2026-11-30.db
    Restore {
        /// The backup to restore (a file `meterbook backup` wrote).
        #[arg(long)]
        from: PathBuf,
    },
    /// Create a realistic demo enrollment, show what to try, and serve it.
    Demo(DemoArgs),
    /// Measure ingest, export and statement speed on generated data.
    Bench(BenchArgs),
    /// Measure advanced report jobs (and, with --api, API latency while four
    /// run) on the database `bench` made.
    BenchReports(BenchReportsArgs),
}

#[derive(Subcommand, Debug)]
pub enum EnrollmentCmd {
    Create {
        #[arg(long)]
        number: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "USD")]
        currency: String,
        /// First day of the term (YYYY-MM-DD).
        #[arg(long)]
        start: String,
        /// Last day of the term (YYYY-MM-DD).
        #[arg(long)]
        end: String,
    },
    /// Change who may see charges.
    Set {
        number: String,
        #[arg(long)]
        department_admins_view_charges: Option<bool>,
        #[arg(long)]
        account_owners_view_charges: Option<bool>,
    },
    List,
}

#[derive(Subcommand, Debug)]
pub enum HierarchyCmd {
    Import {
        #[arg(long)]
        enrollment: String,
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum SubscriptionCmd {
    Move {
        #[arg(long)]
        enrollment: String,
        #[arg(long)]
        subscription: String,
        #[arg(long)]
        account: String,
        /// Usage dated on or after this day belongs to the new account.
        #[arg(long)]
        effective: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PricesCmd {
    Import {
        #[arg(long)]
        enrollment: String,
        /// Billing period (YYYYMM).
        #[arg(long)]
        period: String,
        file: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum InputFormat {
    Csv,
    Ndjson,
}

#[derive(Subcommand, Debug)]
pub enum UsageCmd {
    /// Ingest a CSV or NDJSON file (`-` for stdin). All-or-nothing unless --skip-invalid.
    Ingest {
        #[arg(long)]
        enrollment: String,
        file: String,
        /// Input format; detected from the content when absent.
        #[arg(long, value_enum)]
        format: Option<InputFormat>,
        /// Store the valid records and write the invalid ones to --rejects.
        #[arg(long)]
        skip_invalid: bool,
        /// Where rejected records go (CSV with line, column and reason).
        #[arg(long, requires = "skip_invalid")]
        rejects: Option<PathBuf>,
    },
    /// Set the watermark: usage is complete through this day.
    CompleteThrough {
        #[arg(long)]
        enrollment: String,
        date: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum EntryCmd {
    Add {
        #[arg(long)]
        enrollment: String,
        #[arg(long)]
        date: String,
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        #[arg(long)]
        description: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PeriodCmd {
    /// Close the oldest open period (it must have ended); its rates are locked.
    Close {
        #[arg(long)]
        enrollment: String,
        #[arg(long)]
        period: String,
    },
    List {
        #[arg(long)]
        enrollment: String,
    },
}

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
    #[arg(long, value_enum, default_value = "csv")]
    pub format: OutputFormat,
    /// Write to this file (atomically) instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// Balance and charges.
    Balance(ReportArgs),
    /// Usage details.
    Usage(ReportArgs),
    /// The price list.
    Prices(ReportArgs),
    /// Marketplace charges.
    Marketplace(ReportArgs),
    /// Request an advanced report: any date range and accounts/departments, in
    /// CSV, gzip CSV, Parquet or FOCUS. Prints the job id. Runs the job here and
    /// waits, unless --detach leaves it to a running server's workers.
    Request(RequestArgs),
    /// Show a report job: status, progress, manifest (JSON).
    Status { id: String },
    /// Copy a finished report's file, checking its sha256 against the manifest.
    Fetch {
        id: String,
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Cancel a queued or running report job.
    Cancel { id: String },
    /// List an enrollment's report jobs.
    Jobs {
        #[arg(long)]
        enrollment: String,
    },
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    #[arg(long)]
    pub enrollment: String,
    /// First day (YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub from: String,
    /// Last day (YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub to: String,
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
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Default lifetime of new API keys, in days.
    #[arg(long, env = "MB_KEY_DEFAULT_DAYS", default_value_t = 183)]
    pub key_default_days: u32,
    /// Longest lifetime an API key may be given, in days.
    #[arg(long, env = "MB_KEY_MAX_DAYS", default_value_t = 730)]
    pub key_max_days: u32,
    /// Requests per second allowed per API key (sustained).
    #[arg(long, env = "MB_RATE_LIMIT", default_value_t = 100.0)]
    pub rate_limit: f64,
    /// Requests a key may make in a burst.
    #[arg(long, env = "MB_RATE_BURST", default_value_t = 200.0)]
    pub rate_burst: f64,
    /// Advanced reports prepared at once (background worker threads).
    #[arg(long, env = "MB_REPORT_WORKERS", default_value_t = 2)]
    pub report_workers: usize,
    /// How long a download link works, in days.
    #[arg(long, env = "MB_LINK_LIFETIME_DAYS", default_value_t = 7)]
    pub link_lifetime_days: u64,
    /// A portal session unused this long ends (minutes).
    #[arg(long, env = "MB_SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: u64,
    /// A portal session ends this long after sign-in (hours).
    #[arg(long, env = "MB_SESSION_MAX_HOURS", default_value_t = 12)]
    pub session_max_hours: u64,
    /// Mark session cookies Secure (set it when TLS ends at a proxy that does not send X-Forwarded-Proto).
    #[arg(long, env = "MB_SECURE_COOKIES")]
    pub secure_cookies: bool,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// What protects the server from its clients: bounds, timeouts, proxies,
/// report quotas (part of `serve` and `demo`).
#[derive(Args, Debug, Clone)]
pub struct GuardArgs {
    /// Reverse proxies whose X-Forwarded-For names the client: comma-separated
    /// IPs or CIDRs (e.g. `10.0.0.0/8,::1`). Empty: the socket's peer is the client.
    #[arg(long, env = "MB_TRUSTED_PROXIES", default_value = "", value_parser = meterbook_server::TrustedProxies::parse)]
    pub trusted_proxies: meterbook_server::TrustedProxies,
    /// Largest operator upload (usage, price sheet, hierarchy), in bytes.
    #[arg(long, env = "MB_MAX_UPLOAD_BYTES", default_value_t = 8 << 30)]
    pub max_upload_bytes: u64,
    /// Largest JSON or form body of any other request, in bytes.
    #[arg(long, env = "MB_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Longest query string, in bytes.
    #[arg(long, env = "MB_MAX_QUERY_BYTES", default_value_t = 4096)]
    pub max_query_bytes: usize,
    /// Most query-string parameters.
    #[arg(long, env = "MB_MAX_QUERY_PARAMS", default_value_t = 32)]
    pub max_query_params: usize,
    /// Largest total size of a request's headers, in bytes.
    #[arg(long, env = "MB_MAX_HEADER_BYTES", default_value_t = 32 << 10)]
    pub max_header_bytes: usize,
    /// Most headers in one request.
    #[arg(long, env = "MB_MAX_HEADERS", default_value_t = 64)]
    pub max_headers: usize,
    /// An upload that sends nothing for this long is refused with 408 (seconds).
    #[arg(long, env = "MB_BODY_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    pub body_idle_timeout_secs: u64,
    /// Every request but uploads must have its answer started within this (seconds).
    #[arg(long, env = "MB_REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// A connection must send a request's headers within this (seconds).
    #[arg(long, env = "MB_HEADER_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub header_read_timeout_secs: u64,
    /// Advanced report jobs one requester (API key, portal user) may have queued or running.
    #[arg(long, env = "MB_REPORT_MAX_ACTIVE_PER_REQUESTER", default_value_t = 4)]
    pub report_max_active_per_requester: usize,
    /// Bytes of finished report files one requester may keep.
    #[arg(long, env = "MB_REPORT_MAX_BYTES_PER_REQUESTER", default_value_t = 5 << 30)]
    pub report_max_bytes_per_requester: u64,
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Generate the primary (or secondary) key of a scope; prints it once.
    Create {
        #[arg(long)]
        enrollment: String,
        /// A department administrator's key.
        #[arg(long, conflicts_with = "account")]
        department: Option<String>,
        /// An account owner's key.
        #[arg(long)]
        account: Option<String>,
        #[arg(long, default_value = "primary")]
        slot: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = 183)]
        expires_in_days: u32,
        /// A read-only administrator's key (cannot manage keys).
        #[arg(long)]
        read_only: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a portal user (or grant an existing one a role) in an enrollment.
    /// Without --password-stdin, prints a one-time set-password link path.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        enrollment: String,
        /// enterprise-admin, enterprise-reader, department-admin, department-reader or account-owner.
        #[arg(long)]
        role: String,
        /// The department of a department role.
        #[arg(long)]
        department: Option<String>,
        /// The account of an account owner.
        #[arg(long)]
        account: Option<String>,
        /// Read the password from standard input instead.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OperatorTokenCmd {
    /// Generate an operator token; prints it once.
    Create {
        /// What the token is for (shown in logs and listings).
        #[arg(long)]
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Approximate number of usage rows to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Enrollment number of the demo.
    #[arg(long, default_value = "8608480")]
    pub enrollment: String,
    /// Seed and print, but do not start the server.
    #[arg(long)]
    pub no_serve: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Args, Debug)]
pub struct BenchReportsArgs {
    /// The directory `bench` used.
    #[arg(long, default_value = "bench-data")]
    pub dir: PathBuf,
    /// csv, csv.gz, parquet, focus-csv or focus-parquet.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Measure balancesummary latency while four reports run instead.
    #[arg(long)]
    pub api: bool,
    /// Keep the report file.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Directory for the generated CSV, database and export (kept for comparison runs).
    #[arg(long, default_value = "bench-data")]
    pub dir: PathBuf,
}
