//! Opening the configured store: the embedded SQLite file, or PostgreSQL
//! with a ClickHouse cluster. Everything above this module sees `dyn Store`.

use crate::settings::{redact, StoreConfig};
use anyhow::{Context, Result};
use meterbook_core::facts::FactStore;
use meterbook_core::store::{MetadataStore, Store};
use meterbook_postgres::PgStore;
use meterbook_sqlite::SqliteStore;
use std::sync::Arc;

/// An open store, by kind, for the commands that depend on it (migrate,
/// backup, doctor); the rest use [`Backend::store`].
pub enum Backend {
    Embedded(Arc<SqliteStore>),
    Cluster(Arc<PgStore>),
}

impl Backend {
    pub fn open(cfg: &StoreConfig) -> Result<Backend> {
        match cfg {
            StoreConfig::Embedded(path) => Ok(Backend::Embedded(Arc::new(
                SqliteStore::open(path).with_context(|| format!("opening {}", path.display()))?,
            ))),
            StoreConfig::Cluster { ledger, facts } => {
                let facts = open_facts(facts)?;
                let store = PgStore::open(ledger, facts)
                    .with_context(|| format!("opening the ledger at {}", redact(ledger)))?;
                Ok(Backend::Cluster(Arc::new(store)))
            }
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Embedded(s) => s.clone(),
            Backend::Cluster(s) => s.clone(),
        }
    }

    /// The schema versions, for `migrate`.
    pub fn schema(&self) -> Result<String> {
        Ok(match self {
            Backend::Embedded(s) => format!("schema at version {}", s.schema_version()?),
            Backend::Cluster(s) => format!(
                "PostgreSQL schema at version {}; ClickHouse tables created on every shard",
                s.schema_version()?
            ),
        })
    }
}

fn open_facts(url: &str) -> Result<Arc<dyn FactStore>> {
    let facts = meterbook_clickhouse::ChFacts::open(url)
        .with_context(|| format!("opening the usage store at {}", redact(url)))?;
    Ok(Arc::new(facts))
}

/// `meterbook doctor`: one line per check, problems marked; Err when any.
pub fn doctor(cfg: &StoreConfig) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    match cfg {
        StoreConfig::Embedded(path) => {
            if !path.exists() {
                problems.push(format!(
                    "no database at {} (see --db or MB_DB; `meterbook demo` makes one)",
                    path.display()
                ));
            } else {
                match SqliteStore::open(path).and_then(|s| {
                    s.check_ready()?;
                    s.schema_version()
                }) {
                    Ok(v) => println!("ok   {}: SQLite, schema version {v}", path.display()),
                    Err(e) => problems.push(format!("{}: {e}", path.display())),
                }
            }
        }
        StoreConfig::Cluster { ledger, facts } => {
            let found = meterbook_postgres::doctor(ledger);
            if found.is_empty() {
                println!("ok   {}: PostgreSQL ledger", redact(ledger));
            }
            problems.extend(
                found
                    .into_iter()
                    .map(|p| format!("PostgreSQL {}: {p}", redact(ledger))),
            );
            let found = match meterbook_clickhouse::ChFacts::open(facts) {
                Ok(f) => f.doctor(),
                Err(e) => vec![e.to_string()],
            };
            if found.is_empty() {
                println!("ok   {}: ClickHouse usage store", redact(facts));
            }
            problems.extend(
                found
                    .into_iter()
                    .map(|p| format!("ClickHouse {}: {p}", redact(facts))),
            );
        }
    }
    for p in &problems {
        println!("FAIL {p}");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} problem(s) found", problems.len())
    }
}
