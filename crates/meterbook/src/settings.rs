//! The one typed settings struct, built once in `main` from defaults, `MB_*`
//! environment variables and flags (clap reads both), and passed down.

use crate::cli::Cli;
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
        let focus = meterbook_io::report::focus::FocusSettings {
            provider_name: cli.provider_name.clone(),
            invoice_issuer_name: cli.invoice_issuer_name.clone(),
        };
        let report_dir = cli.report_dir.clone().unwrap_or_else(|| {
            let mut p = cli.db.clone().into_os_string();
            p.push(".reports");
            PathBuf::from(p)
        });
        let secs = std::time::Duration::from_secs;
        Settings {
            db: cli.db.clone(),
            jobs: meterbook_jobs::JobSettings {
                workers: 2,
                time_limit: secs(cli.report_time_limit_minutes.max(1) * 60),
                lease: secs(cli.report_lease_seconds.max(1)),
                retention: secs(cli.report_retention_days * 24 * 3600),
                poll: secs(1),
                focus: focus.clone(),
                // Quotas: `serve` sets them from its flags.
                ..Default::default()
            },
            focus,
            report_dir,
        }
    }
}
