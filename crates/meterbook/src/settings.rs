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
}

impl Settings {
    pub fn load(cli: &Cli) -> Settings {
        Settings {
            db: cli.db.clone(),
            focus: meterbook_io::report::focus::FocusSettings {
                provider_name: cli.provider_name.clone(),
                invoice_issuer_name: cli.invoice_issuer_name.clone(),
            },
        }
    }
}
