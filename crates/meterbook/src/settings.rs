//! The one typed settings struct, built once in `main` from defaults, `MB_*`
//! environment variables and flags (clap reads both), and passed down.

use crate::cli::{Cli, FocusOpts, JobOpts};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Where the data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded SQLite file (the default).
    Embedded(PathBuf),
    /// PostgreSQL for the ledger, ClickHouse for usage facts.
    Cluster { ledger: String, facts: String },
}

impl StoreConfig {
    /// From `--db`, `--store` and `--usage-store`: both URLs or neither.
    pub fn from_args(db: &Path, store: Option<&str>, usage: Option<&str>) -> Result<StoreConfig> {
        match (store, usage) {
            (None, None) => Ok(StoreConfig::Embedded(db.to_path_buf())),
            (Some(s), None) if s.starts_with("sqlite:") => {
                Ok(StoreConfig::Embedded(PathBuf::from(&s["sqlite:".len()..])))
            }
            (Some(s), Some(u))
                if s.starts_with("postgres://") || s.starts_with("postgresql://") =>
            {
                if !u.starts_with("clickhouse://") {
                    bail!(
                        "--usage-store (MB_USAGE_STORE) must be a clickhouse:// URL, not {}",
                        redact(u)
                    );
                }
                Ok(StoreConfig::Cluster {
                    ledger: s.to_string(),
                    facts: u.to_string(),
                })
            }
            (Some(s), None) if s.starts_with("postgres") => bail!(
                "--store (MB_STORE) {} needs --usage-store (MB_USAGE_STORE): \
                 the ClickHouse cluster that keeps usage facts",
                redact(s)
            ),
            (Some(s), _) => bail!(
                "--store (MB_STORE) must be postgres://USER[:PASSWORD]@HOST:PORT/DATABASE \
                 or sqlite:PATH, not {}",
                redact(s)
            ),
            (None, Some(_)) => bail!(
                "--usage-store (MB_USAGE_STORE) is only used with --store (MB_STORE) postgres://..."
            ),
        }
    }

    /// Where the data is, for messages: no password.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Embedded(p) => p.display().to_string(),
            StoreConfig::Cluster { ledger, facts } => {
                format!("{} + {}", redact(ledger), redact(facts))
            }
        }
    }

    /// The options that select this store on a command line (the cluster's
    /// come from MB_STORE and MB_USAGE_STORE, which the shell already has).
    pub fn cli_args(&self) -> String {
        match self {
            StoreConfig::Embedded(p) => format!("--db {} ", p.display()),
            StoreConfig::Cluster { .. } => String::new(),
        }
    }
}

/// A URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(split) => split,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// The SQLite database file (the embedded store's, and the base name of
    /// the default report directory).
    pub db: PathBuf,
    pub store: StoreConfig,
    /// How long a cluster ingest holds its writer slot between renewals.
    pub ingest_lease: std::time::Duration,
    /// Provider and invoice-issuer names in FOCUS exports.
    pub focus: meterbook_io::report::focus::FocusSettings,
    /// Advanced report jobs (workers are set by `serve`).
    pub jobs: meterbook_jobs::JobSettings,
    pub report_dir: PathBuf,
    /// An object store for report files instead of `report_dir`.
    pub report_store: Option<String>,
    /// Where scheduled exports go: a directory or an `s3://` URL.
    pub export_root: String,
}

impl Settings {
    pub fn load(cli: &Cli) -> Result<Settings> {
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
        let store =
            StoreConfig::from_args(&cli.db, cli.store.as_deref(), cli.usage_store.as_deref())?;
        Ok(Settings {
            db: cli.db.clone(),
            store,
            ingest_lease: std::time::Duration::from_secs(cli.ingest_lease_seconds.max(1)),
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
            report_store: cli.command.report_store().cloned(),
            // `<db>.exports` beside the database, as the report directory is
            // `<db>.reports`: one convention for what lives next to it.
            export_root: cli.export_root.clone().unwrap_or_else(|| {
                let mut p = cli.db.clone().into_os_string();
                p.push(".exports");
                PathBuf::from(p).to_string_lossy().into_owned()
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_urls_or_neither() {
        let db = Path::new("m.db");
        assert_eq!(
            StoreConfig::from_args(db, None, None).unwrap(),
            StoreConfig::Embedded(db.into())
        );
        assert_eq!(
            StoreConfig::from_args(db, Some("sqlite:/x/y.db"), None).unwrap(),
            StoreConfig::Embedded("/x/y.db".into())
        );
        let pg = "postgres://mb:secret@db:5432/mb";
        let ch = "clickhouse://a:8123,b:8123/mb?cluster=c";
        assert!(matches!(
            StoreConfig::from_args(db, Some(pg), Some(ch)).unwrap(),
            StoreConfig::Cluster { .. }
        ));
        let alone = StoreConfig::from_args(db, Some(pg), None)
            .unwrap_err()
            .to_string();
        assert!(alone.contains("MB_USAGE_STORE"), "{alone}");
        assert!(!alone.contains("secret"), "{alone}");
        assert!(StoreConfig::from_args(db, None, Some(ch)).is_err());
        assert!(StoreConfig::from_args(db, Some("mysql://x"), Some(ch)).is_err());
        assert!(StoreConfig::from_args(db, Some(pg), Some("http://x")).is_err());
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redact("postgres://u:pw@h:1/d"), "postgres://u:***@h:1/d");
        assert_eq!(redact("postgres://u@h:1/d"), "postgres://u@h:1/d");
        assert_eq!(redact("clickhouse://h:1/d"), "clickhouse://h:1/d");
    }
}
