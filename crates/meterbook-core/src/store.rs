//! The storage traits. Small and split by capability so a backend (SQLite
//! today; PostgreSQL for metadata and ClickHouse for usage facts later) can be
//! swapped without touching anything above them. One conformance suite
//! (`meterbook-sqlite/tests/conformance.rs` drives it) is written against these traits.

use crate::calendar::{Day, Period};
use crate::enrollment::{
    ChargeVisibility, Enrollment, EnrollmentNumber, NewEnrollment, PeriodInfo,
};
use crate::fixed::{Amount, Price, Quantity};
use crate::hierarchy::{Hierarchy, HierarchyRow};
use crate::prices::MeterPrice;
use crate::statement::CommitmentEntry;
use crate::usage::{Catalog, Classified, OwnedUsage};
use std::sync::Arc;

/// Errors of the storage layer. Messages are safe to show to an operator;
/// backend details (SQL, paths) stay in `Backend`, which callers log, not show.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("storage error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A purchase adds to the commitment; an adjustment credits (+) or debits (−) it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Purchase,
    Adjustment,
}

/// What an upsert of the hierarchy changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HierarchySummary {
    pub departments: usize,
    pub accounts: usize,
    pub subscriptions_created: usize,
    pub subscriptions_updated: usize,
}

/// Enrollments, hierarchy, price sheets, commitment entries, periods.
pub trait MetadataStore {
    fn create_enrollment(&self, e: &NewEnrollment) -> StoreResult<Enrollment>;
    fn enrollment(&self, n: &EnrollmentNumber) -> StoreResult<Enrollment>;
    fn enrollments(&self) -> StoreResult<Vec<Enrollment>>;
    fn set_visibility(&self, n: &EnrollmentNumber, v: ChargeVisibility) -> StoreResult<()>;
    fn set_watermark(&self, n: &EnrollmentNumber, through: Day) -> StoreResult<()>;
    /// Whether the store can serve: a read answers and (where the backend has
    /// one) its schema is the one this build knows. Err says why not.
    fn check_ready(&self) -> StoreResult<()> {
        self.enrollments().map(|_| ())
    }

    /// Upserts departments, accounts and subscriptions. A subscription whose
    /// account changes is refused: moves go through [`MetadataStore::move_subscription`].
    fn upsert_hierarchy(
        &self,
        n: &EnrollmentNumber,
        rows: &[HierarchyRow],
    ) -> StoreResult<HierarchySummary>;
    /// Usage dated on or after `effective` belongs to `account`.
    fn move_subscription(
        &self,
        n: &EnrollmentNumber,
        guid: &str,
        account: &str,
        effective: Day,
    ) -> StoreResult<()>;
    /// Renames a department or an account (ids, and so all usage, stay with it).
    /// NotFound if `old` does not exist, Conflict if `new` does.
    fn rename(&self, n: &EnrollmentNumber, what: Renamed, old: &str, new: &str) -> StoreResult<()>;
    fn hierarchy(&self, n: &EnrollmentNumber) -> StoreResult<Hierarchy>;

    /// Replaces the price sheet of an open period.
    fn import_prices(
        &self,
        n: &EnrollmentNumber,
        period: Period,
        sheet: &[MeterPrice],
    ) -> StoreResult<usize>;
    /// The price sheet of a period with each meter's key, sorted by MeterId.
    fn price_sheet(
        &self,
        n: &EnrollmentNumber,
        period: Period,
    ) -> StoreResult<Vec<(i64, MeterPrice)>>;

    fn add_entry(
        &self,
        n: &EnrollmentNumber,
        kind: EntryKind,
        e: &CommitmentEntry,
    ) -> StoreResult<()>;
    /// All purchases and adjustments, by date.
    fn entries(&self, n: &EnrollmentNumber) -> StoreResult<Vec<(EntryKind, CommitmentEntry)>>;

    fn periods(&self, n: &EnrollmentNumber) -> StoreResult<Vec<PeriodInfo>>;
    /// Closes `period` (the oldest open one) and locks the given rates, atomically.
    fn close_period(
        &self,
        n: &EnrollmentNumber,
        period: Period,
        rates: &[(i64, Price)],
    ) -> StoreResult<()>;
    /// Rates locked when `period` closed, by meter key.
    fn locked_rates(&self, n: &EnrollmentNumber, period: Period) -> StoreResult<Vec<(i64, Price)>>;
}

/// Outcome of writing one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// The same record was already stored (same RecordId, same content).
    Duplicate,
    /// The RecordId is stored with different content.
    Conflict,
}

/// A write transaction over usage facts. Nothing is visible to readers, or
/// durable, until `commit`; dropping it without committing stores nothing.
pub trait UsageWriter {
    /// The catalog, read inside the transaction so periods cannot close under it.
    fn catalog(&self) -> Arc<Catalog>;
    /// Every rollup of the enrollment as committed before this transaction
    /// began (nothing this writer wrote), read inside it: where the range
    /// checks of the ingest start from.
    fn stored_rollups(&self) -> StoreResult<Vec<Rollup>>;
    /// Writes a batch of classified records, pushing one outcome per record to `out`.
    fn write_batch(
        &mut self,
        rows: &[(OwnedUsage, Classified)],
        out: &mut Vec<Written>,
    ) -> StoreResult<()>;
    /// Makes everything written durable, rollups included, in one step.
    fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// Totals maintained with every write: the statement's only input from usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rollup {
    pub booked: Period,
    pub meter: i64,
    /// The period whose rate prices these rows (differs from `booked` for corrections).
    pub rate_period: Period,
    pub correction: bool,
    pub quantity: Quantity,
    /// Exact cost of correction rows (their rate is fixed when written); zero otherwise.
    pub fixed_cost: Amount,
    pub rows: i64,
}

/// Which usage rows a scan returns. Rows come in (Date, RecordId) order, so a
/// report never depends on the order records arrived in; a booked period lists
/// its own days first, then the corrections booked into it.
#[derive(Clone, Debug, Default)]
pub struct UsageSelection {
    /// Rows booked in this period (corrections booked in it included).
    pub booked: Option<Period>,
    /// Rows dated on or after (inclusive).
    pub from: Option<Day>,
    /// Rows dated on or before (inclusive).
    pub to: Option<Day>,
    /// Resume after this row (keyset paging: stable while new usage arrives).
    pub after: Option<ScanCursor>,
}

/// Where a scan stopped: the key of the last row it returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanCursor {
    /// In a booked period's scan, whether the row was one of the corrections
    /// (read after the period's own days).
    pub correction_phase: bool,
    pub day: Day,
    pub record_id: String,
}

/// Whether a scan goes on after a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// One stored usage row, borrowed from the scan.
#[derive(Clone, Copy, Debug)]
pub struct UsageFact<'a> {
    pub record_id: &'a str,
    pub subscription: i64,
    pub day: Day,
    pub meter: i64,
    pub quantity: Quantity,
    pub booked: Period,
    pub rate_period: Period,
    pub correction_rate: Option<Price>,
    pub instance_id: &'a str,
    pub resource_group: &'a str,
    pub resource_location: &'a str,
    pub consumed_service: &'a str,
    pub tags: &'a str,
    pub additional_info: &'a str,
    pub service_info1: &'a str,
    pub service_info2: &'a str,
}

/// What [`MetadataStore::rename`] renames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renamed {
    Department,
    Account,
}

/// Usage of one day, subscription and meter, as booked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyUsage {
    pub day: Day,
    pub subscription: i64,
    pub meter: i64,
    /// The period the rows are booked in (the day's own unless a correction).
    pub booked: Period,
    /// The locked rate of corrections; `None` for rows priced at their period's rate.
    pub correction_rate: Option<Price>,
    pub quantity: Quantity,
    pub rows: i64,
}

/// Usage facts: written in transactions, rolled up, scanned in order.
pub trait UsageStore {
    /// Opens a write transaction for one enrollment's usage.
    fn begin_usage(&self, n: &EnrollmentNumber) -> StoreResult<Box<dyn UsageWriter + '_>>;
    /// The rollups of rows booked in `booked`.
    fn rollups(&self, n: &EnrollmentNumber, booked: Period) -> StoreResult<Vec<Rollup>>;
    /// Usage summed per day, subscription and meter (and booking), for days
    /// `from..=to`: what summaries and charts read instead of the facts.
    fn daily_usage(&self, n: &EnrollmentNumber, from: Day, to: Day)
        -> StoreResult<Vec<DailyUsage>>;
    /// Streams the selected rows to `visit`, in order, without buffering them,
    /// until the rows run out or `visit` says stop.
    fn scan_usage(
        &self,
        n: &EnrollmentNumber,
        sel: &UsageSelection,
        visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<Flow, StoreError>,
    ) -> StoreResult<()>;
    /// The rows of [`UsageStore::scan_usage`], in the same order, handed out
    /// in batches that another thread may read (a report encodes them on
    /// several cores and writes them in order). The default copies rows into
    /// batches of [`OwnedBatch::ROWS`]; a backend may hand out its own.
    fn scan_usage_batches(
        &self,
        n: &EnrollmentNumber,
        sel: &UsageSelection,
        each: &mut dyn FnMut(Box<dyn FactBatch>) -> Result<Flow, StoreError>,
    ) -> StoreResult<()> {
        let mut batch = OwnedBatch::default();
        let mut stopped = false;
        self.scan_usage(n, sel, &mut |f: &UsageFact<'_>| {
            batch.push(f);
            if batch.len() == OwnedBatch::ROWS || batch.text.len() >= OwnedBatch::BYTES {
                let full = std::mem::take(&mut batch);
                if each(Box::new(full))? == Flow::Stop {
                    stopped = true;
                    return Ok(Flow::Stop);
                }
            }
            Ok(Flow::Continue)
        })?;
        if !stopped && !batch.is_empty() {
            each(Box::new(batch))?;
        }
        Ok(())
    }
}

/// Rows of a scan, in order, that can be read on another thread.
pub trait FactBatch: Send {
    /// Calls `visit` with each row in order, until the rows run out or it says stop.
    fn for_each(
        &self,
        visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<Flow, StoreError>,
    ) -> Result<Flow, StoreError>;
}

/// A [`FactBatch`] of copied rows: the texts of all rows in one string.
#[derive(Default)]
pub struct OwnedBatch {
    text: String,
    rows: Vec<(UsageFact<'static>, [(u32, u32); 9])>,
}

impl OwnedBatch {
    /// Rows a batch of the default [`UsageStore::scan_usage_batches`] holds.
    pub const ROWS: usize = 256;
    /// …or bytes of text (rows may carry 75 KB each).
    pub const BYTES: usize = 16 << 20;

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn push(&mut self, f: &UsageFact<'_>) {
        let texts = [
            f.record_id,
            f.instance_id,
            f.resource_group,
            f.resource_location,
            f.consumed_service,
            f.tags,
            f.additional_info,
            f.service_info1,
            f.service_info2,
        ];
        let mut spans = [(0u32, 0u32); 9];
        for (span, t) in spans.iter_mut().zip(texts) {
            let start = self.text.len();
            self.text.push_str(t);
            *span = (start as u32, self.text.len() as u32);
        }
        // The texts are kept as spans; the fact's own are left empty.
        let fact = UsageFact {
            record_id: "",
            instance_id: "",
            resource_group: "",
            resource_location: "",
            consumed_service: "",
            tags: "",
            additional_info: "",
            service_info1: "",
            service_info2: "",
            ..*f
        };
        self.rows.push((fact, spans));
    }
}

impl FactBatch for OwnedBatch {
    fn for_each(
        &self,
        visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<Flow, StoreError>,
    ) -> Result<Flow, StoreError> {
        for (fact, spans) in &self.rows {
            let t = |i: usize| &self.text[spans[i].0 as usize..spans[i].1 as usize];
            let f = UsageFact {
                record_id: t(0),
                instance_id: t(1),
                resource_group: t(2),
                resource_location: t(3),
                consumed_service: t(4),
                tags: t(5),
                additional_info: t(6),
                service_info1: t(7),
                service_info2: t(8),
                ..*fact
            };
            if visit(&f)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }
}

/// A complete store.
pub trait Store:
    MetadataStore
    + UsageStore
    + crate::access::KeyStore
    + crate::access::OperatorStore
    + crate::jobs::JobStore
    + crate::notify::NotifyStore
    + crate::exports::ExportStore
    + crate::users::UserStore
    + crate::shared::SharedState
    + Send
    + Sync
{
}
impl<T> Store for T where
    T: MetadataStore
        + UsageStore
        + crate::access::KeyStore
        + crate::access::OperatorStore
        + crate::jobs::JobStore
        + crate::notify::NotifyStore
        + crate::exports::ExportStore
        + crate::users::UserStore
        + crate::shared::SharedState
        + Send
        + Sync
{
}
