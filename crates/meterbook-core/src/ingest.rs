//! The ingest loop, written once for every backend: read a record, classify it
//! against the catalog, write it, and commit the whole file or nothing.
//!
//! Reading and classifying run on their own thread, feeding batches through a
//! small bounded channel to the thread that owns the write transaction: the
//! two halves overlap, and memory stays bounded whatever the file's size.

use crate::enrollment::EnrollmentNumber;
use crate::limits::{RangeError, UsageGuard};
use crate::quote::quote;
use crate::store::{StoreError, UsageStore, Written};
use crate::usage::{Classified, OwnedUsage, RawUsage, Reject};
use std::sync::mpsc;

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

/// The reject for a stored row that takes a total out of range: its line and meter.
fn range_reject(raw: &RawUsage<'_>, e: RangeError) -> Reject {
    let column = match e {
        RangeError::RowQuantity | RangeError::PeriodQuantity => Some("ConsumedQuantity"),
        _ => None,
    };
    Reject::new(raw.line, column, format!("meter {}: {e}", raw.meter_id))
}

/// Records per batch handed to the writer…
const BATCH: usize = 2048;
/// …and bytes of record text: 2,048 records at their field limits would be
/// 150 MB, and six batches can be alive at once (one filling, four queued,
/// one being written).
const BATCH_BYTES: usize = 4 << 20;
/// A recycled record buffer larger than this is freed rather than kept, so
/// a few large records cannot leave every pooled buffer large.
const SPARE_CAPACITY: usize = 2048;

enum Msg {
    Batch(Vec<(OwnedUsage, Classified)>),
    Reject(Reject, Option<OwnedUsage>),
    /// The reader is done; this many records were read.
    Done(u64),
}

/// Ingests every record of `source` into enrollment `n`.
///
/// `on_reject` sees each rejected record (for a reject file) with the raw
/// record when it could be read.
pub fn ingest(
    store: &dyn UsageStore,
    n: &EnrollmentNumber,
    source: &mut (dyn UsageSource + Send),
    opts: IngestOptions,
    on_reject: &mut dyn FnMut(&Reject, Option<&RawUsage<'_>>),
) -> Result<IngestSummary, IngestError> {
    let mut writer = store.begin_usage(n)?;
    let catalog = writer.catalog();
    let mut guard = UsageGuard::new(catalog.clone(), &writer.stored_rollups()?).map_err(|e| {
        StoreError::Invalid(format!(
            "the usage already stored for enrollment {n} is outside the supported range: {e}"
        ))
    })?;
    let mut sum = IngestSummary::default();
    let mut errors: Vec<Reject> = Vec::new();
    // A row that takes the stored totals out of range refuses the whole file,
    // also with `skip_invalid`: which rows to drop instead would be arbitrary.
    let mut out_of_range: Option<Reject> = None;
    let (tx, rx) = mpsc::sync_channel::<Msg>(4);
    let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<(OwnedUsage, Classified)>>();
    std::thread::scope(|scope| -> Result<(), IngestError> {
        scope.spawn(move || {
            let mut read = 0u64;
            let mut batch: Vec<(OwnedUsage, Classified)> = Vec::with_capacity(BATCH);
            let mut spare: Vec<OwnedUsage> = Vec::new();
            let mut batch_bytes = 0;
            while let Some(next) = source.next_record() {
                read += 1;
                let msg = match next {
                    Err(mut rej) => {
                        let raw = rej.raw.take().map(|b| *b);
                        Some(Msg::Reject(rej, raw))
                    }
                    Ok(raw) => match catalog.classify(&raw) {
                        Err(rej) => Some(Msg::Reject(rej, Some(OwnedUsage::from_raw(&raw)))),
                        Ok(c) => {
                            let mut owned = spare.pop().unwrap_or_default();
                            owned.set(&raw);
                            batch_bytes += owned.len();
                            batch.push((owned, c));
                            None
                        }
                    },
                };
                // Keep arrival order: a pending batch goes out before a reject.
                if msg.is_some() || batch.len() == BATCH || batch_bytes >= BATCH_BYTES {
                    if !batch.is_empty() {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        batch_bytes = 0;
                        if tx.send(Msg::Batch(full)).is_err() {
                            return;
                        }
                        if let Ok(used) = recycle_rx.try_recv() {
                            spare.extend(
                                used.into_iter()
                                    .map(|(o, _)| o)
                                    .filter(|o| o.capacity() <= SPARE_CAPACITY),
                            );
                        }
                    }
                    if let Some(m) = msg {
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                }
            }
            if !batch.is_empty() && tx.send(Msg::Batch(batch)).is_err() {
                return;
            }
            let _ = tx.send(Msg::Done(read));
        });
        let mut outcomes = Vec::with_capacity(BATCH);
        let mut reject = |rej: Reject,
                          raw: Option<&RawUsage<'_>>,
                          sum: &mut IngestSummary,
                          errors: &mut Vec<Reject>| {
            sum.rejected += 1;
            on_reject(&rej, raw);
            if !opts.skip_invalid || rej.fatal {
                errors.push(rej);
            }
        };
        for msg in rx {
            match msg {
                Msg::Done(read) => sum.read = read,
                Msg::Reject(rej, raw) => {
                    let raw = raw.as_ref().map(|o| o.as_raw());
                    reject(rej, raw.as_ref(), &mut sum, &mut errors);
                }
                // Once an all-or-nothing ingest has failed, only validate the rest.
                Msg::Batch(rows) if !errors.is_empty() => {
                    sum.stored += rows.len() as u64;
                    let _ = recycle_tx.send(rows);
                }
                Msg::Batch(rows) => {
                    outcomes.clear();
                    writer.write_batch(&rows, &mut outcomes)?;
                    for ((owned, c), w) in rows.iter().zip(&outcomes) {
                        match w {
                            Written::Stored => {
                                sum.stored += 1;
                                if let Err(e) = guard.admit(c) {
                                    out_of_range = Some(range_reject(&owned.as_raw(), e));
                                    break;
                                }
                            }
                            Written::Duplicate => sum.duplicates += 1,
                            Written::Conflict => {
                                let raw = owned.as_raw();
                                let rej = Reject::new(
                                    raw.line,
                                    Some("RecordId"),
                                    format!(
                                        "record {} is already stored with different content",
                                        quote(raw.record_id)
                                    ),
                                );
                                reject(rej, Some(&raw), &mut sum, &mut errors);
                            }
                        }
                    }
                    let _ = recycle_tx.send(rows);
                }
            }
            if out_of_range.is_some() || errors.len() >= opts.max_errors {
                // Dropping the receiver stops the reader at its next send.
                break;
            }
        }
        Ok(())
    })?;
    // If the loop stopped early the reader's count never arrived.
    sum.read = sum.read.max(sum.stored + sum.duplicates + sum.rejected);
    if let Some(rej) = out_of_range {
        errors.push(rej);
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
