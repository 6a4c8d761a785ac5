//! Usage facts kept in a database of their own, beside the ledger: the
//! scale-out deployment keeps enrollments, periods, rollups and the ingest
//! ledger in PostgreSQL and the facts (and their day sums) in a ClickHouse
//! cluster. The ledger's backend implements [`crate::store::UsageStore`] over
//! a [`FactStore`], so the exactly-once protocol lives in one place and the
//! fact database only stores, finds, scans and deletes.
//!
//! Every fact and day sum carries the id of the ingest that wrote it. The
//! ledger decides which ingests are visible ([`Visibility`]): an ingest's rows
//! count only once the ledger has committed it, so a process that dies after
//! writing facts and before committing leaves rows no read ever sees, which
//! are deleted later ([`FactStore::purge`]). Nothing served depends on a
//! background merge of the fact database.

use crate::calendar::Day;
use crate::enrollment::EnrollmentNumber;
use crate::store::{
    DailyUsage, FactBatch, Flow, OwnedBatch, StoreError, StoreResult, UsageFact, UsageSelection,
};

/// The ledger's number for one ingest (one `usage ingest` run or API upload).
pub type IngestId = i64;

/// Which ingests' rows a read sees: those numbered `through` or lower, except
/// the `hidden` ones (ingests abandoned before their commit whose rows are
/// not yet all deleted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Visibility {
    pub through: IngestId,
    pub hidden: Vec<IngestId>,
}

impl Visibility {
    pub fn sees(&self, ingest: IngestId) -> bool {
        ingest <= self.through && !self.hidden.contains(&ingest)
    }
}

/// Where usage facts are stored apart from the ledger.
pub trait FactStore: Send + Sync {
    /// Stores rows of `ingest`. Durable and readable when it returns Ok; on
    /// Err any part of them may be stored (the ledger never makes them visible).
    fn insert_facts(
        &self,
        n: &EnrollmentNumber,
        ingest: IngestId,
        rows: &OwnedBatch,
    ) -> StoreResult<()>;
    /// Stores the day sums of `ingest` (one entry per day, subscription,
    /// meter and booking), under the same rules as [`FactStore::insert_facts`].
    fn insert_day_sums(
        &self,
        n: &EnrollmentNumber,
        ingest: IngestId,
        sums: &[DailyUsage],
    ) -> StoreResult<()>;
    /// The visible stored rows whose RecordId is among `ids` (on any day),
    /// in any order: what an ingest compares a re-sent record with. RecordIds
    /// are compared exactly (case and all).
    fn lookup(
        &self,
        n: &EnrollmentNumber,
        vis: &Visibility,
        ids: &[&str],
        found: &mut dyn FnMut(&UsageFact<'_>) -> StoreResult<()>,
    ) -> StoreResult<()>;
    /// Every visible (day, RecordId), in any order: what an ingest loads to
    /// know which records may be stored already. The default scans all rows;
    /// a backend should read only the two columns.
    fn ids(
        &self,
        n: &EnrollmentNumber,
        vis: &Visibility,
        each: &mut dyn FnMut(Day, &str) -> StoreResult<()>,
    ) -> StoreResult<()> {
        self.scan(n, vis, &UsageSelection::default(), &mut |batch| {
            batch.for_each(&mut |f| {
                each(f.day, f.record_id)?;
                Ok(Flow::Continue)
            })
        })
    }
    /// The visible selected rows in the order of
    /// [`crate::store::UsageStore::scan_usage`], in batches.
    fn scan(
        &self,
        n: &EnrollmentNumber,
        vis: &Visibility,
        sel: &UsageSelection,
        each: &mut dyn FnMut(Box<dyn FactBatch>) -> Result<Flow, StoreError>,
    ) -> StoreResult<()>;
    /// The visible day sums of days `from..=to`, summed over ingests: one
    /// entry per (day, subscription, meter, booked, correction rate), sorted
    /// by those keys.
    fn day_sums(
        &self,
        n: &EnrollmentNumber,
        vis: &Visibility,
        from: Day,
        to: Day,
    ) -> StoreResult<Vec<DailyUsage>>;
    /// Deletes every row of an abandoned ingest. Ok(true) once none is left
    /// anywhere (the deletion may finish in the background: call again).
    fn purge(&self, n: &EnrollmentNumber, ingest: IngestId) -> StoreResult<bool>;
    /// Problems that stop this store from serving, one line each
    /// (connectivity, server version, schema); empty when ready.
    fn doctor(&self) -> Vec<String>;
}
