//! The one typed settings struct, built once in `main` from defaults, `MB_*`
//! environment variables and flags (clap reads both), and passed down.

use crate::cli::{Cli, FocusOpts, JobOpts};
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Settings {
    /// The SQLite database file.
    pub db: PathBuf,
    /// Provider and invoice-issuer names in FOCUS exports.
    pub focus: meterbook_io::report::focus::FocusSettings,
    /// Advanced report jobs (workers are set by `serve`).
    pub jobs: meterbook_jobs::JobSettings,
    pub report_dir: PathBuf,
}

impl Settings {
    pub fn load(cli: &Cli) -> Settings {
        // Commands that take none of these options get the flags' defaults.
        let (focus_defaults, job_defaults) = (FocusOpts::default(), JobOpts::default());
        let f = cli.command.focus_opts().unwrap_or(&focus_defaults);
        let opts = cli.command.job_opts().unwrap_or(&job_defaults);
        let focus = meterbook_io::report::focus::FocusSettings {
            provider_name: f.provider_name.clone(),
            invoice_issuer_name: f.invoice_issuer_name.clone(),
        };
        let report_dir = cli.command.report_dir().cloned().unwrap_or_else(|| {
            let mut p = cli.db.clone().into_os_string();
            p.push(".reports");
            PathBuf::from(p)
        });
        let secs = std::time::Duration::from_secs;
        Settings {
            db: cli.db.clone(),
            jobs: meterbook_jobs::JobSettings {
                time_limit: secs(opts.report_time_limit_minutes.max(1) * 60),
                lease: secs(opts.report_lease_seconds.max(1)),
                retention: secs(opts.report_retention_days * 24 * 3600),
                focus: focus.clone(),
                // Quotas: `serve` sets them from its flags.
                ..Default::default()
            },
            focus,
            report_dir,
        }
    }
}
