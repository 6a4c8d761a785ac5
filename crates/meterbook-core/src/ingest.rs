//! The ingest loop, written once for every backend: read a record, classify it
//! against the catalog, write it, and commit the whole file or nothing.

use crate::enrollment::EnrollmentNumber;
use crate::store::{StoreError, UsageStore, Written};
use crate::usage::{RawUsage, Reject};

/// A reader of usage records (CSV, NDJSON, …). A lending iterator: each record
/// borrows from the reader's buffer until the next call.
pub trait UsageSource {
    fn next_record(&mut self) -> Option<Result<RawUsage<'_>, Reject>>;
}

#[derive(Clone, Copy, Debug)]
pub struct IngestOptions {
    /// Store the valid records and report the rest, instead of all-or-nothing.
    pub skip_invalid: bool,
    /// In all-or-nothing mode, how many errors to collect before giving up.
    pub max_errors: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            skip_invalid: false,
            max_errors: 100,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestSummary {
    pub read: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// All-or-nothing ingest found invalid records: nothing was stored.
    #[error("{} invalid record(s); nothing was stored", .rejects.len())]
    Rejected { rejects: Vec<Reject>, read: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Ingests every record of `source` into enrollment `n`.
///
/// `on_reject` sees each rejected record (for a reject file) with the raw
/// record when it could be read.
pub fn ingest(
    store: &dyn UsageStore,
    n: &EnrollmentNumber,
    source: &mut dyn UsageSource,
    opts: IngestOptions,
    on_reject: &mut dyn FnMut(&Reject, Option<&RawUsage<'_>>),
) -> Result<IngestSummary, IngestError> {
    let mut writer = store.begin_usage(n)?;
    let mut sum = IngestSummary::default();
    let mut errors: Vec<Reject> = Vec::new();
    while let Some(next) = source.next_record() {
        sum.read += 1;
        let outcome = match next {
            Err(rej) => Err((rej, None)),
            Ok(raw) => match writer.catalog().classify(&raw) {
                Err(rej) => Err((rej, Some(raw))),
                // Once an all-or-nothing ingest has failed, only validate the rest.
                Ok(_) if !errors.is_empty() => Ok(Written::Stored),
                Ok(c) => match writer.write(&raw, &c)? {
                    Written::Conflict => Err((
                        Reject::new(
                            raw.line,
                            Some("RecordId"),
                            format!(
                                "record {} is already stored with different content",
                                raw.record_id
                            ),
                        ),
                        Some(raw),
                    )),
                    w => Ok(w),
                },
            },
        };
        match outcome {
            Ok(Written::Stored) => sum.stored += 1,
            Ok(Written::Duplicate) => sum.duplicates += 1,
            Ok(Written::Conflict) => unreachable!("conflicts become rejects above"),
            Err((rej, raw)) => {
                sum.rejected += 1;
                on_reject(&rej, raw.as_ref());
                if !opts.skip_invalid {
                    errors.push(rej);
                    if errors.len() >= opts.max_errors {
                        break;
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        // Dropping the writer rolls the transaction back.
        drop(writer);
        return Err(IngestError::Rejected {
            rejects: errors,
            read: sum.read,
        });
    }
    writer.commit()?;
    Ok(sum)
}
