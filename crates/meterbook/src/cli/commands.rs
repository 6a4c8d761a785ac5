//! The command line: the top-level parser and its commands.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

use super::options::*;
use super::report::*;

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
    /// The scale-out ledger instead of the embedded file: PostgreSQL at
    /// postgres://USER[:PASSWORD]@HOST:PORT/DATABASE (the database must
    /// exist; Meterbook creates its schema). Needs --usage-store.
    #[arg(long, global = true, env = "MB_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Where usage facts are kept with --store: a ClickHouse cluster at
    /// clickhouse://HOST:HTTP_PORT[,HOST:HTTP_PORT...]/DATABASE[?cluster=NAME]
    /// (the shards' HTTP endpoints, in shard order; `cluster` names the
    /// remote_servers cluster of its Distributed tables).
    #[arg(long, global = true, env = "MB_USAGE_STORE", value_name = "URL")]
    pub usage_store: Option<String>,
    /// With --store: seconds an ingest holds its enrollment's writer slot
    /// between renewals. After a node dies mid-ingest, the next ingest of
    /// that enrollment waits this long before it takes over.
    #[arg(
        long,
        global = true,
        env = "MB_INGEST_LEASE_SECONDS",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub ingest_lease_seconds: u64,
    /// Where scheduled exports are written: a directory (default `<db>.exports`
    /// beside the database), or with `--features s3` an S3-compatible bucket,
    /// s3://BUCKET[/PREFIX][?endpoint=URL][&region=REGION]. Schedules name only
    /// a folder under it.
    #[arg(long, global = true, env = "MB_EXPORT_ROOT", value_name = "DIR|URL")]
    pub export_root: Option<String>,
    #[command(subcommand)]
    pub command: Command,
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
    /// Forecast an enrollment's charges to the end of the billing period (or
    /// the term), and when its commitment runs out.
    #[command(
        after_help = "Examples:\n  meterbook forecast --enrollment 8608480\n  meterbook forecast --enrollment 8608480 --horizon term --json"
    )]
    Forecast(ForecastArgs),
    /// Serve the Reporting API, the operator API and the portal over HTTP.
    #[command(after_help = "Example:\n  meterbook serve --listen 0.0.0.0:8080 --log-format json")]
    Serve(ServeArgs),
    /// Create API access keys for an enrollment's people.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Scheduled exports: list, add, remove schedules, see runs, run the due ones.
    #[command(subcommand)]
    Exports(super::ExportsCmd),
    /// Portal users: create them and grant roles.
    #[command(subcommand)]
    User(UserCmd),
    /// Budgets with alert thresholds: list them with their figures, add, remove.
    #[command(subcommand)]
    Budgets(BudgetsCmd),
    /// Budget alerts and data events: record what the enrollment's state
    /// calls for now, queued for delivery.
    #[command(subcommand)]
    Notifications(NotificationsCmd),
    /// Create operator tokens for the operator API (`/operator/...`).
    #[command(subcommand, name = "operator-token")]
    OperatorToken(OperatorTokenCmd),
    /// Check that the configured store answers: connectivity, server
    /// versions and schema, one line per problem (exit status 1 if any).
    #[command(
        after_help = "Examples:\n  meterbook doctor\n  MB_STORE=postgres://meterbook@db:5432/meterbook MB_USAGE_STORE=clickhouse://ch1:8123,ch2:8123/meterbook?cluster=meterbook meterbook doctor"
    )]
    Doctor,
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
    /// Copy every enrollment, its usage, users, keys and tokens to another
    /// store (the embedded file to the cluster, typically), then verify.
    #[command(subcommand)]
    Store(StoreCmd),
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
pub enum StoreCmd {
    /// Copy one store into another (that holds none of its enrollments),
    /// then compare them: statements, reports, price lists, hierarchy and
    /// counts of users, keys and tokens (exit status 1 on any difference).
    /// Report jobs and sessions are not copied.
    #[command(
        after_help = "Examples:\n  meterbook store copy --from sqlite:meterbook.db --to postgres://meterbook@db:5432/meterbook --to-usage-store clickhouse://ch1:8123,ch2:8123/meterbook?cluster=meterbook\n  meterbook store copy --verify-only --from sqlite:meterbook.db --to sqlite:copy.db"
    )]
    Copy(StoreCopyArgs),
}

#[derive(clap::Args, Debug)]
pub struct StoreCopyArgs {
    /// The store to copy: sqlite:PATH or postgres://... (with --from-usage-store).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The source's ClickHouse cluster, with a postgres:// --from.
    #[arg(long, value_name = "URL")]
    pub from_usage_store: Option<String>,
    /// The store to copy into: sqlite:PATH or postgres://... (with --to-usage-store).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// The target's ClickHouse cluster, with a postgres:// --to.
    #[arg(long, value_name = "URL")]
    pub to_usage_store: Option<String>,
    /// Compare the two stores without writing anything.
    #[arg(long)]
    pub verify_only: bool,
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

#[derive(Subcommand, Debug)]
pub enum BudgetsCmd {
    /// Every budget with its figures now (actual, forecast, % used, crossed thresholds).
    #[command(after_help = "Example:\n  meterbook budgets list --enrollment 8608480")]
    List {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
    },
    /// Add a budget of the enrollment, a department or an account.
    #[command(
        after_help = "Examples:\n  meterbook budgets add --enrollment 8608480 --name Company --amount 250000 --threshold actual:80 --threshold forecast:100 --threshold balance:10\n  meterbook budgets add --enrollment 8608480 --name Research --department Research --cadence term --amount 1200000 --threshold actual:50"
    )]
    Add {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// The budget's name.
        #[arg(long)]
        name: String,
        /// A department's budget.
        #[arg(long, conflicts_with = "account")]
        department: Option<String>,
        /// An account's budget.
        #[arg(long)]
        account: Option<String>,
        /// `monthly` (each billing period) or `term`.
        #[arg(long, default_value = "monthly")]
        cadence: String,
        /// The amount, in the enrollment's currency.
        #[arg(long)]
        amount: String,
        /// `BASIS:PERCENT`, BASIS one of actual, forecast, balance (repeat it).
        #[arg(long = "threshold", required = true)]
        thresholds: Vec<String>,
    },
    /// Remove a budget (its recorded events stay).
    #[command(after_help = "Example:\n  meterbook budgets remove --enrollment 8608480 --id 3")]
    Remove {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// The budget's id (see `budgets list`).
        #[arg(long)]
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum NotificationsCmd {
    /// Record every alert and data event due now, with its deliveries (each
    /// once: running it again records nothing new). `serve` does this on its own.
    #[command(after_help = "Example:\n  meterbook notifications evaluate --enrollment 8608480")]
    Evaluate {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
    },
    /// The enrollment's notification channels: id, kind, address, events.
    #[command(after_help = "Example:\n  meterbook notifications channels --enrollment 8608480")]
    Channels {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
    },
    /// The delivery log, newest first: status, attempts, target, event, the
    /// last error and when the next attempt is due.
    #[command(
        after_help = "Example:\n  meterbook notifications deliveries --enrollment 8608480 --limit 20"
    )]
    Deliveries {
        /// The enrollment number.
        #[arg(long)]
        enrollment: String,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
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
        self.report_dir_opt().and_then(|d| d.report_dir.as_ref())
    }

    pub fn report_store(&self) -> Option<&String> {
        self.report_dir_opt().and_then(|d| d.report_store.as_ref())
    }

    fn report_dir_opt(&self) -> Option<&ReportDirOpt> {
        match self {
            Command::Report(ReportCmd::Fetch { dir, .. }) => Some(dir),
            _ => self.job_opts().map(|j| &j.dir),
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

    /// `--public-url` on `serve` and `demo`: a scheme and a host, nothing
    /// else; unset by default (links follow the Host header, as the
    /// server's default settings say).
    #[test]
    fn the_public_url_is_checked_when_given() {
        use super::Command;
        use clap::Parser;
        let url = |args: &[&str]| {
            Cli::try_parse_from(args).map(|c| match c.command {
                Command::Serve(a) => a.public_url,
                Command::Demo(a) => a.serve.public_url,
                _ => panic!("not serve or demo"),
            })
        };
        assert_eq!(
            url(&["meterbook", "serve"]).unwrap(),
            meterbook_server::ServerSettings::default().public_url
        );
        let given = url(&[
            "meterbook",
            "serve",
            "--public-url",
            "https://usage.example.com/",
        ]);
        assert_eq!(
            given.unwrap().map(|u| u.to_string()).as_deref(),
            Some("https://usage.example.com")
        );
        let demo = url(&["meterbook", "demo", "--public-url", "http://10.0.0.5:8080"]);
        assert!(demo.unwrap().is_some());
        for bad in ["usage.example.com", "https://usage.example.com/portal"] {
            assert!(
                url(&["meterbook", "serve", "--public-url", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
