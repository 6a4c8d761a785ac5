//! The one typed settings struct, built once in `main` from defaults, `MB_*`
//! environment variables and flags (clap reads both), and passed down.

use crate::cli::Cli;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Settings {
    /// The SQLite database file.
    pub db: PathBuf,
}

impl Settings {
    pub fn load(cli: &Cli) -> Settings {
        Settings { db: cli.db.clone() }
    }
}
