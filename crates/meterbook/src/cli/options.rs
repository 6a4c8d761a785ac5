//! Groups of flags shared by several commands, and the arguments of `serve`,
//! `demo` and `bench`.

use clap::{Args, ValueEnum};
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
    /// Keep finished advanced reports in an S3-compatible bucket instead, for
    /// several serve nodes: s3://BUCKET[/PREFIX][?endpoint=URL][&region=REGION],
    /// credentials from the AWS_* environment variables. Needs a build with
    /// `--features s3`.
    #[arg(long, env = "MB_REPORT_STORE", value_name = "URL")]
    pub report_store: Option<String>,
}

/// How budget alerts and data-event notifications go out (part of `serve`
/// and `demo`). Every node runs the notifier; each event fires once and each
/// delivery is sent by one node (docs/notifications.md).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Alerts and notifications")]
pub struct NotifyOpts {
    /// The SMTP relay for e-mail, `HOST:PORT` (usually the host's own MTA,
    /// which relays onwards with TLS). Unset: e-mail deliveries are retried
    /// and then fail, and the delivery log says why.
    #[arg(long, env = "MB_SMTP_RELAY")]
    pub smtp_relay: Option<String>,
    /// The sender of e-mail.
    #[arg(
        long,
        env = "MB_SMTP_FROM",
        default_value = "Meterbook <meterbook@localhost>"
    )]
    pub smtp_from: String,
    /// Require STARTTLS to the relay (a build with `--features tls`).
    #[arg(long, env = "MB_SMTP_STARTTLS")]
    pub smtp_starttls: bool,
    /// Log in to the relay as this user (only over STARTTLS or to a relay on loopback).
    #[arg(long, env = "MB_SMTP_USER", requires = "smtp_password")]
    pub smtp_user: Option<String>,
    /// The relay password for `--smtp-user` (prefer the environment variable).
    #[arg(
        long,
        env = "MB_SMTP_PASSWORD",
        hide_env_values = true,
        requires = "smtp_user"
    )]
    pub smtp_password: Option<String>,
    /// Seconds a webhook receiver (or the relay) has to answer.
    #[arg(long, env = "MB_NOTIFY_TIMEOUT_SECS", default_value_t = 10)]
    pub notify_timeout_secs: u64,
    /// Let webhooks reach loopback and private addresses. Off, they are
    /// refused, so that an administrator's webhook cannot reach into the
    /// provider's own network.
    #[arg(long, env = "MB_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Seconds between notifier rounds (budgets and data events checked,
    /// due deliveries sent); new usage, entries and closes start one at
    /// once. 0: no notifier on this node.
    #[arg(long, env = "MB_NOTIFY_INTERVAL_SECS", default_value_t = 60)]
    pub notify_interval_secs: u64,
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
    /// How often due scheduled exports are run, in seconds (0: never; run
    /// `meterbook exports run-due` from cron instead).
    #[arg(long, env = "MB_EXPORT_INTERVAL_SECONDS", default_value_t = 300)]
    pub export_interval_seconds: u64,
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
    /// Where clients reach Meterbook, e.g. `https://usage.example.com`: every
    /// absolute link (set-password, download, job and next-page links) is made
    /// on it. Unset: on the request's Host header, which a client can forge;
    /// set it in production and behind a load balancer.
    #[arg(long, env = "MB_PUBLIC_URL", value_parser = meterbook_server::PublicUrl::parse)]
    pub public_url: Option<meterbook_server::PublicUrl>,
    // The groups come last: each sets the help heading of what follows it.
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub notify: NotifyOpts,
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
    /// The data set's shape: `realistic` (random UUID record ids, about 30k
    /// resources per million rows, 72 subscriptions, 40 meters, six months) or
    /// `ordered` (the demo's ordered ids, 19 subscriptions, few resources, a year).
    #[arg(long, value_enum, default_value_t = BenchShape::Realistic)]
    pub shape: BenchShape,
}

/// The shape of `meterbook bench`'s generated usage (docs/benchmarks.md).
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BenchShape {
    Realistic,
    Ordered,
}

/// What `forecast` projects to.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum HorizonArg {
    /// The end of the current billing period.
    Period,
    /// The end of the enrollment's term.
    Term,
}

/// The arguments of `forecast`.
#[derive(Args, Debug, Clone)]
pub struct ForecastArgs {
    /// Enrollment number.
    #[arg(long)]
    pub enrollment: String,
    /// To the end of the current billing period, or of the term.
    #[arg(long, value_enum, default_value = "period")]
    pub horizon: HorizonArg,
    /// Print the Reporting API's JSON (`GET .../forecast`) instead of text.
    #[arg(long)]
    pub json: bool,
}
