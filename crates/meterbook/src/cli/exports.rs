//! `meterbook exports …`: scheduled exports for operators.

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ExportsCmd {
    /// An enrollment's export schedules, with each one's latest run.
    #[command(after_help = "Example:\n  meterbook exports list --enrollment 8608480")]
    List {
        /// Enrollment number.
        #[arg(long)]
        enrollment: String,
    },
    /// Add a schedule: files land in `<export root>/<enrollment>/<folder>/<run key>/`.
    #[command(
        after_help = "Examples:\n  meterbook exports add --enrollment 8608480 --name 'Daily CSV' --folder daily --schedule daily --format csv.gz\n  meterbook exports add --enrollment 8608480 --name 'Q1' --folder q1 --schedule once --from 2026-01-01 --to 2026-03-31 --format parquet"
    )]
    Add {
        /// Enrollment number.
        #[arg(long)]
        enrollment: String,
        /// A name for people, unique in the enrollment.
        #[arg(long)]
        name: String,
        /// The folder under the enrollment's: letters, digits, `-` and `_`.
        #[arg(long)]
        folder: String,
        /// `daily` (month to date, every day), `monthly` (each closed period) or `once` (--from, --to).
        #[arg(long)]
        schedule: String,
        /// csv, csv.gz, parquet, focus-csv or focus-parquet.
        #[arg(long, default_value = "csv")]
        format: String,
        /// First usage day of a `once` export (inside the term).
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: Option<String>,
        /// Last usage day of a `once` export (inclusive).
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: Option<String>,
    },
    /// Remove a schedule (files already written stay).
    #[command(
        after_help = "Example:\n  meterbook exports remove --enrollment 8608480 7b33193c50efc2b255b34653aad6e412"
    )]
    Remove {
        /// Enrollment number.
        #[arg(long)]
        enrollment: String,
        /// The schedule's id (`exports list` shows it).
        id: String,
    },
    /// A schedule's runs, newest first: status, attempts, error.
    #[command(
        after_help = "Example:\n  meterbook exports runs --enrollment 8608480 7b33193c50efc2b255b34653aad6e412"
    )]
    Runs {
        /// Enrollment number.
        #[arg(long)]
        enrollment: String,
        /// The schedule's id (`exports list` shows it).
        id: String,
    },
    /// Run every due export (of one enrollment, with --enrollment) and exit:
    /// for cron when no `serve` runs them. Exit status 1 if a run failed.
    #[command(
        name = "run-due",
        after_help = "Example (crontab):\n  15 * * * * meterbook exports run-due"
    )]
    RunDue {
        /// Only this enrollment's (default: every enrollment's).
        #[arg(long)]
        enrollment: Option<String>,
    },
}
