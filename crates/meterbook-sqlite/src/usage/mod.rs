//! [`UsageStore`](meterbook_core::store::UsageStore) on SQLite: the ingest
//! transaction, rollups and ordered scans over fact blocks.
//!
//! Usage facts are kept as immutable blocks per (enrollment, day), each the
//! rows of one write sorted by RecordId and encoded column by column
//! ([`codec`]); whether a RecordId is stored is answered by a compact hashed
//! key index ([`keys`]) and confirmed on the day's rows. docs/design-notes.md
//! says why.

mod codec;
#[cfg(test)]
mod collisions;
mod keys;
mod migrate;
mod profiles;
mod scan;
mod store;
mod writer;

pub(crate) use migrate::to_blocks;
pub(crate) use profiles::ProfileDecoder;
pub(crate) use store::{load_catalog, locked_rates, read_rollups};
