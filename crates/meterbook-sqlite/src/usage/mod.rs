//! [`UsageStore`](meterbook_core::store::UsageStore) on SQLite: the ingest transaction, rollups and ordered scans.

mod scan;
mod store;
mod writer;

pub(crate) use store::{load_catalog, locked_rates, read_rollups};
