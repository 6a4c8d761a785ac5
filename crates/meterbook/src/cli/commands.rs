//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The flags' defaults are the settings structs' own: one place for each
/// default, whether Meterbook runs from the CLI or as a library in tests.
mod defaults {
    pub fn server() -> meterbook_server::ServerSettings {
        meterbook_server::ServerSettings::default()
    }
    pub fn portal() -> meterbook_server::portal::PortalSettings {
        meterbook_server::portal::PortalSettings::default()
    }
    pub fn limits() -> meterbook_server::Limits {
        meterbook_server::Limits::default()
    }
    pub fn jobs() -> meterbook_jobs::JobSettings {
        meterbook_jobs::JobSettings::default()
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "meterbook",
    version,
    about = "Self-hosted enterprise usage portal: operator CLI, API server and portal",
    after_help = "Start with `meterbook demo`; every command has its own --help.\nInput formats and a walkthrough: docs/operator-guide.md"
)]
pub struct Cli {
    /// SQLite database file (created if missing).
    #[arg(long, global = true, env = "MB_DB", default_value = "meterbook.db")]
    pub db: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// The provider's names in FOCUS exports: for `serve`, `demo` and the
/// commands that write FOCUS (`report usage`, `report request`).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "FOCUS exports")]
pub struct FocusOpts {
    /// The provider's name, as FOCUS exports state it (ProviderName).
    #[arg(long, env = "MB_PROVIDER_NAME", default_value = DEFAULT_PROVIDER)]
    pub provider_name: String,
    /// Who issues the invoices, as FOCUS exports state it (InvoiceIssuerName).
    #[arg(long, env = "MB_INVOICE_ISSUER_NAME", default_value = DEFAULT_PROVIDER)]
    pub invoice_issuer_name: String,
}

const DEFAULT_PROVIDER: &str = "Meterbook Cloud";

impl Default for FocusOpts {
    /// The flags' defaults, for commands that take none.
    fn default() -> Self {
        FocusOpts {
            provider_name: DEFAULT_PROVIDER.into(),
            invoice_issuer_name: DEFAULT_PROVIDER.into(),
        }
    }
}

/// Where advanced reports' files are kept: for the commands that write or read them.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Advanced reports")]
pub struct ReportDirOpt {
    /// Where finished advanced reports are kept (default: `<db>.reports` beside the database).
    #[arg(long, env = "MB_REPORT_DIR")]
    pub report_dir: Option<PathBuf>,
}

/// How advanced report jobs run: for `serve`, `demo` and `report request`.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Advanced reports")]
pub struct JobOpts {
    #[command(flatten)]
    pub dir: ReportDirOpt,
    /// An advanced report running longer than this ends as TimedOut (minutes).
    #[arg(long, env = "MB_REPORT_TIME_LIMIT_MINUTES", default_value_t = defaults::jobs().time_limit.as_secs() / 60)]
    pub report_time_limit_minutes: u64,
    /// Finished advanced reports and their files are removed after this many days.
    #[arg(long, env = "MB_REPORT_RETENTION_DAYS", default_value_t = defaults::jobs().retention.as_secs() / 86_400)]
    pub report_retention_days: u64,
    /// A report worker that has not reported for this long is presumed dead and
    /// its job is restarted (seconds).
    #[arg(long, env = "MB_REPORT_LEASE_SECONDS", default_value_t = defaults::jobs().lease.as_secs())]
    pub report_lease_seconds: u64,
}

impl Default for JobOpts {
    /// The flags' defaults, for commands that take none.
    fn default() -> Self {
        JobOpts {
            dir: ReportDirOpt::default(),
            report_time_limit_minutes: defaults::jobs().time_limit.as_secs() / 60,
            report_retention_days: defaults::jobs().retention.as_secs() / 86_400,
            report_lease_seconds: defaults::jobs().lease.as_secs(),
        }
    }
}

/// How the server logs (to stderr).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// `text` (coloured only when stderr is a terminal) or `json` (one object a line).
    #[arg(long, env = "MB_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to log, as a tracing filter (`info`, `warn`, `meterbook_server=debug`).
    #[arg(long, env = "MB_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply pending schema migrations (they also run at every start).
    #[command(after_help = "Example:\n  meterbook --db /var/lib/meterbook/meterbook.db migrate")]
    Migrate,
    /// Create, change and list enrollments (customer contracts).
    #[command(subcommand)]
    Enrollment(EnrollmentCmd),
    /// Import departments, accounts and subscriptions from a CSV file.
    #[command(subcommand)]
    Hierarchy(HierarchyCmd),
    /// Move a subscription to another account from a date on.
    #[command(subcommand)]
    Subscription(SubscriptionCmd),
    /// Import a billing period's price sheet from a CSV file.
    #[command(subcommand)]
    Prices(PricesCmd),
    /// Ingest metered usage; set the "usage complete through" watermark.
    #[command(subcommand)]
    Usage(UsageCmd),
    /// Record a purchase (adds to the prepaid commitment).
    #[command(subcommand)]
    Purchase(EntryCmd),
    /// Record an adjustment (a credit if positive, a debit if negative).
    #[command(subcommand)]
    Adjustment(EntryCmd),
    /// Close billing periods (locking their rates) and list their state.
    #[command(subcommand)]
    Period(PeriodCmd),
    /// Produce a report (balance, usage, prices, marketplace), or request,
    /// follow and fetch an advanced report prepared in the background.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Serve the Reporting API, the operator API and the portal over HTTP.
    #[command(after_help = "Example:\n  meterbook serve --listen 0.0.0.0:8080 --log-format json")]
    Serve(ServeArgs),
    /// Create API access keys for an enrollment's people.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Portal users: create them and grant roles.
    #[command(subcommand)]
    User(UserCmd),
    /// Create operator tokens for the operator API (`/operator/...`).
    #[command(subcommand, name = "operator-token")]
    OperatorToken(OperatorTokenCmd),
    /// Write a consistent copy of the database while it is in use.
    #[command(after_help = "Example:\n  meterbook backup --to meterbook-2026-11-30.db")]
    Backup {
        /// The copy to write (must not exist yet).
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace the database with a backup (refused while `meterbook serve` has it open).
    #[command(after_help = "Example:\n  meterbook restore --from meterbook-2026-11-30.db")]
    Restore {
        /// The backup to restore (a file `meterbook backup` wrote).
        #[arg(long)]
        from: PathBuf,
    },
    /// Create a realistic demo enrollment, show what to try, and serve it.
    #[command(
        after_help = "Examples:\n  meterbook demo\n  meterbook --db demo.db demo --rows 20000 --no-serve"
    )]
    Demo(DemoArgs),
    /// Measure ingest, export and statement speed on generated data.
    #[command(
        after_help = "Example (scripts/bench.sh also runs DuckDB on the same data):\n  meterbook bench --rows 1000000 --dir bench-data/1000000"
    )]
    Bench(BenchArgs),
    /// Measure advanced report jobs (and, with --api, API latency while four
    /// run) on the database `bench` made.
    #[command(
        after_help = "Example:\n  meterbook bench-reports --dir bench-data/1000000 --format parquet"
    )]
    BenchReports(BenchReportsArgs),
}

#[derive(Subcommand, Debug)]
pub enum EnrollmentCmd {
    /// Create an enrollment: a customer's contract with a currency and a term.
    #[command(
        after_help = "Example:\n  meterbook enrollment create --number 8608480 --name \"Northwind Traders\" --currency USD --start 2025-01-01 --end 2027-12-31"
    )]
    Create {
        /// The enrollment number (letters, digits, `-` and `_`; up to 32), e.g. 8608480.
        #[arg(long)]
        number: String,
        /// The customer's name, as reports and the portal show it.
        #[arg(long)]
        name: String,
        /// ISO 4217 currency code; amounts use its minor units (USD 2, JPY 0).
        #[arg(long, default_value = "USD")]
        currency: String,
        /// First day of the term (YYYY-MM-DD).
        #[arg(long)]
        start: String,
        /// Last day of the term (YYYY-MM-DD).
        #[arg(long)]
        end: String,
    },
    /// Change who may see charges (costs and rates); the rest see 0.
    #[command(
        after_help = "Example:\n  meterbook enrollment set 8608480 --department-admins-view-charges true --account-owners-view-charges false"
    )]
    Set {
        /// The enrollment number.
        number: String,
        /// Whether department administrators see costs.
        #[arg(long)]
        department_admins_view_charges: Option<bool>,
        /// Whether account owners see costs.
        #[arg(long)]
        account_owners_view_charges: Option<bool>,
    },
    /// List the enrollments with their term and watermark.
    #[command(after_help = "Example:\n  meterbook enrollment list")]
    List,
}

#[derive(Subcommand, Debug)]
pub enum HierarchyCmd {
    /// Import (upsert) departments, accounts and subscriptions: one CSV row per subscription.
    #[command(
        after_help = "Columns: DepartmentName, DepartmentCostCenter, AccountName, AccountOwnerEmail,\nAccountCostCenter, SubscriptionGuid, SubscriptionName (docs/operator-guide.md).\n\nExample:\n  meterbook hierarchy import --enrollment 8608480 examples/hierarchy.csv"
    )]
    Import {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// The hierarchy CSV file.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum SubscriptionCmd {
    /// Move a subscription to another account; earlier usage stays where it was.
    #[command(
        after_help = "Example:\n  meterbook subscription move --enrollment 8608480 --subscription 3b9e5d20-6f4a-4e8c-b1d7-90a2c3e4f522 --account ops-web --effective 2025-03-10"
    )]
    Move {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// The subscription's GUID.
        #[arg(long)]
        subscription: String,
        /// The name of the account it moves to.
        #[arg(long)]
        account: String,
        /// Usage dated on or after this day (YYYY-MM-DD) belongs to the new account.
        #[arg(long)]
        effective: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PricesCmd {
    /// Import (or replace) the price sheet of an open billing period.
    #[command(
        after_help = "Columns: MeterId, MeterName, MeterCategory, MeterSubCategory, MeterRegion,\nUnitOfMeasure, PartNumber, UnitPrice, IncludedQuantity, TierMinimumUnits,\nChargesBilledSeparately, PublisherName, OfferName, PlanName (docs/operator-guide.md).\n\nExample:\n  meterbook prices import --enrollment 8608480 --period 202501 examples/prices-2025.csv"
    )]
    Import {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// Billing period (YYYYMM).
        #[arg(long)]
        period: String,
        /// The price sheet CSV file.
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
    /// Ingest a CSV or NDJSON usage file (`-` for stdin). All-or-nothing unless --skip-invalid.
    #[command(
        after_help = "Required columns: RecordId, SubscriptionGuid, Date, MeterId, ConsumedQuantity\n(docs/operator-guide.md lists the optional ones).\n\nExamples:\n  meterbook usage ingest --enrollment 8608480 examples/usage-2025q1.csv\n  meterbook usage ingest --enrollment 8608480 late.ndjson --skip-invalid --rejects rejects.csv"
    )]
    Ingest {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// The usage file, or `-` to read standard input.
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
    #[command(
        after_help = "Example:\n  meterbook usage complete-through --enrollment 8608480 2025-12-31"
    )]
    CompleteThrough {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// The last day whose usage is all in (YYYY-MM-DD).
        date: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum EntryCmd {
    /// Add an entry dated in an open period.
    #[command(
        after_help = "Examples:\n  meterbook purchase add --enrollment 8608480 --date 2025-01-01 --amount 20000 --description \"Commitment year 1\"\n  meterbook adjustment add --enrollment 8608480 --date 2025-03-15 --amount -120.50 --description \"Debit\""
    )]
    Add {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// The entry's date (YYYY-MM-DD); its period must be open.
        #[arg(long)]
        date: String,
        /// Amount in the enrollment's currency, at most its minor-unit decimals (negative: a debit).
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// What it is, as the balance report shows it.
        #[arg(long)]
        description: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PeriodCmd {
    /// Close ended periods in order (oldest open first); their rates are locked.
    #[command(
        after_help = "Examples:\n  meterbook period close --enrollment 8608480 --through 202510   # every open period up to 202510\n  meterbook period close --enrollment 8608480 --period 202511     # exactly the oldest open one"
    )]
    Close {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// Close this period (YYYYMM); it must be the oldest open one.
        #[arg(long, required_unless_present = "through", conflicts_with = "through")]
        period: Option<String>,
        /// Close every open period up to and including this one (YYYYMM), in order.
        #[arg(long)]
        through: Option<String>,
    },
    /// List the term's periods: open or closed, and whether a price sheet is in.
    #[command(after_help = "Example:\n  meterbook period list --enrollment 8608480")]
    List {
        /// The enrollment number.
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

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Default lifetime of new API keys, in days.
    #[arg(long, env = "MB_KEY_DEFAULT_DAYS", default_value_t = defaults::server().key_default_days)]
    pub key_default_days: u32,
    /// Longest lifetime an API key may be given, in days.
    #[arg(long, env = "MB_KEY_MAX_DAYS", default_value_t = defaults::server().key_max_days)]
    pub key_max_days: u32,
    /// Requests per second allowed per API key (sustained).
    #[arg(long, env = "MB_RATE_LIMIT", default_value_t = defaults::server().rate_limit_per_sec)]
    pub rate_limit: f64,
    /// Requests a key may make in a burst.
    #[arg(long, env = "MB_RATE_BURST", default_value_t = defaults::server().rate_limit_burst)]
    pub rate_burst: f64,
    /// Advanced reports prepared at once (background worker threads).
    #[arg(long, env = "MB_REPORT_WORKERS", default_value_t = defaults::jobs().workers)]
    pub report_workers: usize,
    /// How long a download link works, in days.
    #[arg(long, env = "MB_LINK_LIFETIME_DAYS", default_value_t = defaults::server().link_lifetime.as_secs() / 86_400)]
    pub link_lifetime_days: u64,
    /// A portal session unused this long ends (minutes).
    #[arg(long, env = "MB_SESSION_IDLE_MINUTES", default_value_t = defaults::portal().idle_timeout.as_secs() / 60)]
    pub session_idle_minutes: u64,
    /// A portal session ends this long after sign-in (hours).
    #[arg(long, env = "MB_SESSION_MAX_HOURS", default_value_t = defaults::portal().absolute_timeout.as_secs() / 3600)]
    pub session_max_hours: u64,
    /// Mark session cookies Secure (set it when TLS ends at a proxy that does not send X-Forwarded-Proto).
    #[arg(long, env = "MB_SECURE_COOKIES")]
    pub secure_cookies: bool,
    // The groups come last: each sets the help heading of what follows it.
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub jobs: JobOpts,
    #[command(flatten)]
    pub focus: FocusOpts,
    #[command(flatten)]
    pub log: LogArgs,
}

/// What protects the server from its clients: bounds, timeouts, proxies,
/// report quotas (part of `serve` and `demo`).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Limits and protection")]
pub struct GuardArgs {
    /// Reverse proxies whose X-Forwarded-For names the client: comma-separated
    /// IPs or CIDRs (e.g. `10.0.0.0/8,::1`). Empty: the socket's peer is the client.
    #[arg(long, env = "MB_TRUSTED_PROXIES", default_value = "", value_parser = meterbook_server::TrustedProxies::parse)]
    pub trusted_proxies: meterbook_server::TrustedProxies,
    /// Largest operator upload (usage, price sheet, hierarchy), in bytes.
    #[arg(long, env = "MB_MAX_UPLOAD_BYTES", default_value_t = defaults::limits().max_upload_bytes)]
    pub max_upload_bytes: u64,
    /// Largest JSON or form body of any other request, in bytes.
    #[arg(long, env = "MB_MAX_BODY_BYTES", default_value_t = defaults::limits().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Longest query string, in bytes.
    #[arg(long, env = "MB_MAX_QUERY_BYTES", default_value_t = defaults::limits().max_query_bytes)]
    pub max_query_bytes: usize,
    /// Most query-string parameters.
    #[arg(long, env = "MB_MAX_QUERY_PARAMS", default_value_t = defaults::limits().max_query_params)]
    pub max_query_params: usize,
    /// Largest total size of a request's headers, in bytes.
    #[arg(long, env = "MB_MAX_HEADER_BYTES", default_value_t = defaults::limits().max_header_bytes)]
    pub max_header_bytes: usize,
    /// Most headers in one request.
    #[arg(long, env = "MB_MAX_HEADERS", default_value_t = defaults::limits().max_headers)]
    pub max_headers: usize,
    /// An upload that sends nothing for this long is refused with 408 (seconds).
    #[arg(long, env = "MB_BODY_IDLE_TIMEOUT_SECS", default_value_t = defaults::limits().body_idle_timeout.as_secs())]
    pub body_idle_timeout_secs: u64,
    /// Every request but uploads must have its answer started within this (seconds).
    #[arg(long, env = "MB_REQUEST_TIMEOUT_SECS", default_value_t = defaults::limits().request_timeout.as_secs())]
    pub request_timeout_secs: u64,
    /// A connection must send a request's headers within this (seconds).
    #[arg(long, env = "MB_HEADER_READ_TIMEOUT_SECS", default_value_t = defaults::limits().header_read_timeout.as_secs())]
    pub header_read_timeout_secs: u64,
    /// Advanced report jobs one requester (API key, portal user) may have queued or running.
    #[arg(long, env = "MB_REPORT_MAX_ACTIVE_PER_REQUESTER", default_value_t = defaults::jobs().max_active_per_requester)]
    pub report_max_active_per_requester: usize,
    /// Bytes of finished report files one requester may keep.
    #[arg(long, env = "MB_REPORT_MAX_BYTES_PER_REQUESTER", default_value_t = defaults::jobs().max_bytes_per_requester)]
    pub report_max_bytes_per_requester: u64,
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Generate the key of a scope's slot; prints it once. Generating into a
    /// slot that holds a key replaces it (the old key stops working): use
    /// `--slot secondary` to add a second key.
    #[command(
        after_help = "Examples:\n  meterbook keys create --enrollment 8608480 --slot secondary\n  meterbook keys create --enrollment 8608480 --department Research --expires-in-days 90"
    )]
    Create {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// A department administrator's key.
        #[arg(long, conflicts_with = "account")]
        department: Option<String>,
        /// An account owner's key.
        #[arg(long)]
        account: Option<String>,
        /// `primary` or `secondary`: each scope has two keys, so one can be
        /// rotated while the other works.
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
    #[command(
        after_help = "Examples:\n  meterbook user create --enrollment 8608480 --email ana@example.com --role department-admin --department Research\n  echo 'a long passphrase' | meterbook user create --enrollment 8608480 --email cfo@example.com --role enterprise-reader --password-stdin"
    )]
    Create {
        /// The user's e-mail address (their sign-in name).
        #[arg(long)]
        email: String,
        /// The user's display name.
        #[arg(long, default_value = "")]
        name: String,
        /// The enrollment number.
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
    /// Generate an operator token (`mbo_...`) for the operator API; prints it once.
    #[command(
        after_help = "Example:\n  TOKEN=$(meterbook operator-token create --name billing-feed)"
    )]
    Create {
        /// What the token is for (a label kept with the token, shown by `list`).
        #[arg(long)]
        name: String,
    },
    /// List operator tokens: id, name, when made, enabled or disabled (never secrets).
    #[command(after_help = "Example:\n  meterbook operator-token list")]
    List,
    /// Disable a token at once: requests with it get 401 `DisabledToken`.
    #[command(after_help = "Example:\n  meterbook operator-token disable 3f9c0a1b2c3d4e5f")]
    Disable {
        /// The token's id (the hex between `mbo_` and the next `_`; see `list`).
        id: String,
    },
    /// Enable a disabled token again.
    #[command(after_help = "Example:\n  meterbook operator-token enable 3f9c0a1b2c3d4e5f")]
    Enable {
        /// The token's id (see `list`).
        id: String,
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
    #[command(flatten)]
    pub jobs: JobOpts,
    #[command(flatten)]
    pub focus: FocusOpts,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Approximate number of usage rows to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Directory for the generated CSV, database and export (kept for comparison runs).
    #[arg(long, default_value = "bench-data")]
    pub dir: PathBuf,
}

impl Command {
    /// The FOCUS names the command was given, if it takes them.
    pub fn focus_opts(&self) -> Option<&FocusOpts> {
        match self {
            Command::Report(ReportCmd::Usage(a)) => Some(&a.focus),
            Command::Report(ReportCmd::Request(a)) => Some(&a.focus),
            Command::Serve(a) => Some(&a.focus),
            Command::Demo(a) => Some(&a.serve.focus),
            Command::BenchReports(a) => Some(&a.focus),
            _ => None,
        }
    }

    /// The job settings the command was given, if it takes them.
    pub fn job_opts(&self) -> Option<&JobOpts> {
        match self {
            Command::Report(ReportCmd::Request(a)) => Some(&a.jobs),
            Command::Serve(a) => Some(&a.jobs),
            Command::Demo(a) => Some(&a.serve.jobs),
            Command::BenchReports(a) => Some(&a.jobs),
            _ => None,
        }
    }

    /// The report directory the command was given, if it takes one.
    pub fn report_dir(&self) -> Option<&PathBuf> {
        match self {
            Command::Report(ReportCmd::Fetch { dir, .. }) => dir.report_dir.as_ref(),
            _ => self.job_opts().and_then(|j| j.dir.report_dir.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every command says what it is for and shows an example; every argument
    /// says what it takes (the help was once thin and noisy).
    #[test]
    fn every_command_and_argument_is_described() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", c.get_name());
            if c.get_about().is_none() {
                missing.push(format!("{path}: no description"));
            }
            let leaf = !c.has_subcommands();
            let example = c
                .get_after_help()
                .is_some_and(|h| h.to_string().contains("meterbook "));
            if leaf && !example && c.get_name() != "help" {
                missing.push(format!("{path}: no example"));
            }
            for a in c.get_arguments() {
                let builtin = ["help", "version"].contains(&a.get_id().as_str());
                if a.get_help().is_none() && !builtin {
                    missing.push(format!("{path} --{}: no description", a.get_id()));
                }
            }
            for s in c.get_subcommands() {
                walk(s, &path, missing);
            }
        }
        let mut missing = Vec::new();
        for s in Cli::command().get_subcommands() {
            walk(s, "meterbook", &mut missing);
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    /// Only `serve`, `demo` and the report commands take report settings.
    #[test]
    fn report_settings_are_not_on_every_command() {
        let cli = Cli::command();
        let find = |path: &[&str]| {
            let mut c = &cli;
            for p in path {
                c = c.find_subcommand(p).expect("subcommand");
            }
            c.get_arguments()
                .map(|a| a.get_id().to_string())
                .collect::<Vec<_>>()
        };
        for path in [
            &["enrollment", "create"][..],
            &["usage", "ingest"],
            &["period", "close"],
        ] {
            let args = find(path);
            assert!(
                !args
                    .iter()
                    .any(|a| a.starts_with("report_") || a == "provider_name"),
                "{path:?}: {args:?}"
            );
        }
        assert!(find(&["serve"]).contains(&"report_lease_seconds".to_string()));
        assert!(find(&["report", "request"]).contains(&"provider_name".to_string()));
    }
}
