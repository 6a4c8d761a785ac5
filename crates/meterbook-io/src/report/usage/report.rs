//! The prepared report: hierarchy, price sheets and rates loaded once, rows
//! resolved and streamed.

use crate::report::export::ProgressFn;
use crate::report::{ReportFormat, ReportMeta};
use meterbook_core::fixed::Amount;
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::ledger::period_rates;
use meterbook_core::prices::{ChargeKind, MeterPrice};
use meterbook_core::store::{
    FactBatch, Flow, MetadataStore, StoreError, StoreResult, UsageFact, UsageStore,
};
use meterbook_core::{EnrollmentNumber, Period, Price};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};

use super::columns::*;
use super::encode::*;
use super::filter::*;

/// Bytes encoded before a chunk goes to the writer thread.
const CHUNK: usize = 1 << 20;

/// Threads that encode a CSV report.
const ENCODERS: usize = 2;
/// Batches handed out and not yet written.
const IN_FLIGHT: usize = 8;

/// Rows scanned between two progress calls.
pub const TICK: u64 = 256;

fn stopped_io() -> std::io::Error {
    std::io::Error::other("the export was stopped")
}

fn stopped_error() -> ReportError {
    ReportError::Io(stopped_io())
}

/// Sums of what a report wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportTotals {
    pub rows: u64,
    /// Sum of the rows' quantities in millionths (wider than one [`Quantity`]:
    /// a report may add up many meters).
    pub quantity_micro: i128,
    pub cost: Amount,
}

impl ReportTotals {
    /// Counts one row. Its cost is part of a range-checked charge (design
    /// notes, "Supported ranges"), so the sums cannot overflow; stored data
    /// out of range is still an error here, never a wrapped total.
    fn add(&mut self, row: &DetailRow<'_>) -> Result<(), StoreError> {
        let quantity = self
            .quantity_micro
            .checked_add(row.fact.quantity.raw() as i128);
        let cost = self.cost.checked_add(row.cost).ok();
        match (quantity, cost) {
            (Some(q), Some(c)) => {
                self.rows += 1;
                self.quantity_micro = q;
                self.cost = c;
                Ok(())
            }
            _ => Err(out_of_range()),
        }
    }
}

impl ReportTotals {
    /// Adds the totals of another part of the same report.
    fn merge(&mut self, o: ReportTotals) -> Result<(), StoreError> {
        let quantity = self.quantity_micro.checked_add(o.quantity_micro);
        let cost = self.cost.checked_add(o.cost).ok();
        match (quantity, cost) {
            (Some(q), Some(c)) => {
                self.rows += o.rows;
                self.quantity_micro = q;
                self.cost = c;
                Ok(())
            }
            _ => Err(out_of_range()),
        }
    }
}

fn out_of_range() -> StoreError {
    StoreError::Invalid("the report's totals exceed the supported range".into())
}

/// A meter as reports show it.
pub struct MeterView {
    pub price: MeterPrice,
    /// "Category - SubCategory - Name - Region", empty parts left out.
    pub product: String,
    pub kind: ChargeKind,
    /// Its text fields as CSV, encoded once.
    pub csv: MeterCsv,
}

/// A prepared usage report: hierarchy, sheets and rates loaded once, rows streamed.
pub struct UsageReport {
    pub meta: ReportMeta,
    hierarchy: Hierarchy,
    meters: HashMap<(Period, i64), MeterView>,
    rates: HashMap<(Period, i64), Price>,
    accounts: Option<HashSet<i64>>,
    departments: Option<HashSet<i64>>,
    filter: UsageFilter,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the report failed: {0}")]
    Io(#[from] std::io::Error),
}

impl UsageReport {
    pub fn prepare<S: MetadataStore + UsageStore + ?Sized>(
        store: &S,
        n: &EnrollmentNumber,
        filter: UsageFilter,
        meta: ReportMeta,
    ) -> StoreResult<UsageReport> {
        let e = store.enrollment(n)?;
        let hierarchy = store.hierarchy(n)?;
        let sel = &filter.selection;
        let (first, last) = match sel.booked {
            Some(p) => (p, p),
            None => (
                sel.from.map_or(e.first_period(), |d| d.period()),
                sel.to.map_or(e.last_period(), |d| d.period()),
            ),
        };
        let mut meters = HashMap::new();
        // The sheets that describe the selected rows: the span's periods, and for a
        // booked period also the (closed) periods its corrections are dated in.
        let mut periods: std::collections::BTreeSet<Period> = first
            .max(e.first_period())
            .through(last.min(e.last_period()))
            .collect();
        if let Some(p) = sel.booked {
            periods.extend(store.rollups(n, p)?.into_iter().map(|r| r.rate_period));
        }
        for p in periods {
            for (key, price) in store.price_sheet(n, p)? {
                let i = &price.info;
                let product = [
                    i.meter_category.as_str(),
                    i.meter_sub_category.as_str(),
                    i.meter_name.as_str(),
                    i.meter_region.as_str(),
                ]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" - ");
                let kind = i.kind();
                let csv = MeterCsv::new(i, &product);
                meters.insert(
                    (p, key),
                    MeterView {
                        price,
                        product,
                        kind,
                        csv,
                    },
                );
            }
        }
        let mut rates = HashMap::new();
        for p in first
            .max(e.first_period())
            .through(last.min(e.last_period()))
        {
            for (m, r) in period_rates(store, n, p)? {
                rates.insert((p, m), r);
            }
        }
        let ids = |names: &[String], find: &dyn Fn(&str) -> Option<i64>, what: &str| {
            if names.is_empty() {
                return Ok(None);
            }
            names
                .iter()
                .map(|nm| find(nm).ok_or_else(|| StoreError::NotFound(format!("no {what} {nm}"))))
                .collect::<StoreResult<HashSet<i64>>>()
                .map(Some)
        };
        let accounts = ids(
            &filter.accounts,
            &|nm| hierarchy.account_by_name(nm).map(|a| a.id),
            "account",
        )?;
        let departments = ids(
            &filter.departments,
            &|nm| hierarchy.department_by_name(nm).map(|d| d.id),
            "department",
        )?;
        Ok(UsageReport {
            meta,
            hierarchy,
            meters,
            rates,
            accounts,
            departments,
            filter,
        })
    }

    /// Streams the report to `out`; returns what it wrote.
    ///
    /// Rows are encoded into 1 MiB chunks on this thread while a second thread
    /// writes the previous chunk, so encoding and the kernel's copy overlap;
    /// at most a few chunks are in flight (memory stays flat).
    pub fn write<S: UsageStore + ?Sized>(
        &self,
        store: &S,
        n: &EnrollmentNumber,
        format: ReportFormat,
        out: &mut (dyn Write + Send),
    ) -> Result<ReportTotals, ReportError> {
        self.write_with_progress(store, n, format, out, &mut |_| true)
    }

    /// [`UsageReport::write`], calling `progress` with the rows written so far
    /// every [`TICK`] rows scanned (kept or not, so a sparse filter still
    /// ticks); `false` stops the report with an error.
    pub fn write_with_progress<S: UsageStore + ?Sized>(
        &self,
        store: &S,
        n: &EnrollmentNumber,
        format: ReportFormat,
        out: &mut (dyn Write + Send),
        progress: &mut ProgressFn<'_>,
    ) -> Result<ReportTotals, ReportError> {
        if format == ReportFormat::Csv {
            return self.write_csv_parallel(store, n, out, progress);
        }
        let mut enc = Encoder::new(format, self.columns(), self.filter.legacy);
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(2);
        let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> std::io::Result<()> {
                for chunk in rx {
                    out.write_all(&chunk)?;
                    let _ = back_tx.send(chunk);
                }
                out.flush()
            });
            let mut chunk = Vec::with_capacity(CHUNK + 64 * 1024);
            let mut totals = ReportTotals::default();
            let mut closed = false;
            let mut stopped = false;
            let mut seen = 0u64;
            enc.start(&self.meta, &mut chunk);
            let scanned = store.scan_usage(n, &self.filter.selection, &mut |f: &UsageFact<'_>| {
                seen += 1;
                if let Some(row) = self.row(f)? {
                    totals.add(&row)?;
                    enc.row(&row, &mut chunk);
                    if chunk.len() >= CHUNK {
                        let next = back_rx
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(CHUNK + 64 * 1024));
                        let full = std::mem::replace(&mut chunk, next);
                        chunk.clear();
                        if tx.send(full).is_err() {
                            closed = true;
                            return Ok(Flow::Stop);
                        }
                    }
                }
                if seen.is_multiple_of(TICK) && !progress(totals.rows) {
                    stopped = true;
                    return Ok(Flow::Stop);
                }
                Ok(Flow::Continue)
            });
            if scanned.is_ok() && !closed && !stopped {
                enc.finish(&mut chunk);
                let _ = tx.send(chunk);
            }
            drop(tx);
            let written = writer.join().expect("report writer thread panicked");
            // An output error explains a closed channel better than the scan's view of it.
            written?;
            match scanned {
                Err(_) if closed => Err(ReportError::Io(std::io::Error::other(
                    "report output closed",
                ))),
                Err(e) => Err(ReportError::Store(e)),
                Ok(()) if stopped => Err(stopped_error()),
                Ok(()) => {
                    progress(totals.rows);
                    Ok(totals)
                }
            }
        })
    }

    /// A CSV report encoded on [`ENCODERS`] threads: the store hands out
    /// batches of rows, each is encoded on whichever thread is free, and a
    /// writer thread puts them out in the scan's order. CSV rows are encoded
    /// independently, so the bytes are those of one thread. At most
    /// [`IN_FLIGHT`] batches are between the scan and the output (memory
    /// stays flat); `progress` is called once a batch.
    fn write_csv_parallel<S: UsageStore + ?Sized>(
        &self,
        store: &S,
        n: &EnrollmentNumber,
        out: &mut (dyn Write + Send),
        progress: &mut ProgressFn<'_>,
    ) -> Result<ReportTotals, ReportError> {
        type Encoded = Result<(Vec<u8>, ReportTotals), StoreError>;
        let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Box<dyn FactBatch>)>(ENCODERS);
        let work_rx = Mutex::new(work_rx);
        let (done_tx, done_rx) = mpsc::sync_channel::<(u64, Encoded)>(IN_FLIGHT);
        let (token_tx, token_rx) = mpsc::sync_channel::<()>(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            let _ = token_tx.send(());
        }
        let written_rows = AtomicU64::new(0);
        let (cols, legacy) = (self.columns(), self.filter.legacy);
        std::thread::scope(|scope| {
            for _ in 0..ENCODERS {
                let done_tx = done_tx.clone();
                let work_rx = &work_rx;
                scope.spawn(move || {
                    let mut enc = Encoder::new(ReportFormat::Csv, cols, legacy);
                    loop {
                        let job = work_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((seq, batch)) = job else { break };
                        let mut buf = Vec::with_capacity(CHUNK);
                        let mut totals = ReportTotals::default();
                        let r = batch.for_each(&mut |f: &UsageFact<'_>| {
                            if let Some(row) = self.row(f)? {
                                totals.add(&row)?;
                                enc.row(&row, &mut buf);
                            }
                            Ok(Flow::Continue)
                        });
                        if done_tx.send((seq, r.map(|_| (buf, totals)))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            let written = &written_rows;
            let writer = scope.spawn(move || -> Result<ReportTotals, ReportError> {
                let mut head = Vec::new();
                Encoder::new(ReportFormat::Csv, cols, legacy).start(&self.meta, &mut head);
                out.write_all(&head)?;
                let mut pending = std::collections::BTreeMap::new();
                let (mut next, mut totals) = (0u64, ReportTotals::default());
                for (seq, encoded) in done_rx {
                    pending.insert(seq, encoded);
                    while let Some(encoded) = pending.remove(&next) {
                        let (buf, t) = encoded?;
                        out.write_all(&buf)?;
                        totals.merge(t)?;
                        written.store(totals.rows, Ordering::Relaxed);
                        next += 1;
                        let _ = token_tx.send(());
                    }
                }
                out.flush()?;
                Ok(totals)
            });
            let (mut seq, mut closed, mut stopped) = (0u64, false, false);
            let scanned = store.scan_usage_batches(n, &self.filter.selection, &mut |batch| {
                // A token is a free place among the batches in flight; none
                // comes when the writer has stopped (an output error).
                if token_rx.recv().is_err() || work_tx.send((seq, batch)).is_err() {
                    closed = true;
                    return Ok(Flow::Stop);
                }
                seq += 1;
                if !progress(written_rows.load(Ordering::Relaxed)) {
                    stopped = true;
                    return Ok(Flow::Stop);
                }
                Ok(Flow::Continue)
            });
            drop(work_tx);
            drop(token_rx);
            let written = writer.join().expect("report writer thread panicked");
            match (scanned, written) {
                // An output error explains a closed channel better than the scan's view of it.
                (_, Err(e)) => Err(e),
                (Err(_), Ok(_)) if closed => Err(ReportError::Io(std::io::Error::other(
                    "report output closed",
                ))),
                (Err(e), Ok(_)) => Err(ReportError::Store(e)),
                (Ok(()), Ok(_)) if stopped => Err(stopped_error()),
                (Ok(()), Ok(totals)) => {
                    progress(totals.rows);
                    Ok(totals)
                }
            }
        })
    }

    /// Calls `f` with every row of the report, in the store's order; returns the totals.
    /// For typed outputs (Parquet, FOCUS) that encode rows themselves. Calls
    /// `progress` as [`UsageReport::write_with_progress`] does.
    pub fn for_each_row<S: UsageStore + ?Sized>(
        &self,
        store: &S,
        n: &EnrollmentNumber,
        f: &mut dyn FnMut(&DetailRow<'_>) -> std::io::Result<Flow>,
        progress: &mut ProgressFn<'_>,
    ) -> Result<ReportTotals, ReportError> {
        let mut totals = ReportTotals::default();
        let mut failed: Option<std::io::Error> = None;
        let mut seen = 0u64;
        let scanned = store.scan_usage(n, &self.filter.selection, &mut |fact: &UsageFact<'_>| {
            seen += 1;
            if let Some(row) = self.row(fact)? {
                totals.add(&row)?;
                match f(&row) {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Stop) => return Ok(Flow::Stop),
                    Err(e) => {
                        failed = Some(e);
                        return Ok(Flow::Stop);
                    }
                }
            }
            if seen.is_multiple_of(TICK) && !progress(totals.rows) {
                failed = Some(stopped_io());
                return Ok(Flow::Stop);
            }
            Ok(Flow::Continue)
        });
        if let Some(e) = failed {
            return Err(ReportError::Io(e));
        }
        scanned?;
        Ok(totals)
    }

    /// The hierarchy the rows were resolved against.
    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// What the report includes (and whether its viewer sees costs): outputs
    /// that add rows of their own (FOCUS purchases and adjustments) follow it too.
    pub fn filter(&self) -> &UsageFilter {
        &self.filter
    }

    fn columns(&self) -> &'static [Col] {
        if self.filter.legacy {
            &LEGACY_DETAIL_COLUMNS
        } else if self.filter.marketplace_only {
            &MARKETPLACE_COLUMNS
        } else {
            &USAGE_DETAIL_COLUMNS
        }
    }

    /// Writes up to `limit` rows as JSON objects separated by commas (a page of
    /// the API), starting after `self.filter.selection.after`. Returns the rows
    /// written and, when more rows follow, the cursor of the last one.
    pub fn write_page<S: UsageStore + ?Sized>(
        &self,
        store: &S,
        n: &EnrollmentNumber,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(u64, Option<meterbook_core::store::ScanCursor>), ReportError> {
        let mut enc = Encoder::new(ReportFormat::Json, self.columns(), self.filter.legacy);
        let mut rows = 0u64;
        let mut last: Option<meterbook_core::store::ScanCursor> = None;
        let mut more = false;
        let by_period = self.filter.selection.booked.is_some();
        store.scan_usage(n, &self.filter.selection, &mut |f: &UsageFact<'_>| {
            let Some(row) = self.row(f)? else {
                return Ok(Flow::Continue);
            };
            if rows as usize == limit {
                more = true;
                return Ok(Flow::Stop);
            }
            enc.row(&row, out);
            rows += 1;
            last = Some(meterbook_core::store::ScanCursor {
                correction_phase: by_period && f.correction_rate.is_some(),
                day: f.day,
                record_id: f.record_id.to_string(),
            });
            Ok(Flow::Continue)
        })?;
        Ok((rows, if more { last } else { None }))
    }

    /// The report's row for `f`, or `None` where the filter leaves it out.
    fn row<'a>(&'a self, f: &'a UsageFact<'a>) -> Result<Option<DetailRow<'a>>, StoreError> {
        let account = self.hierarchy.account_on(f.subscription, f.day);
        let dept = account.and_then(|a| self.hierarchy.department(a.department_id));
        if let Reach::Scope(scope) = self.filter.reach {
            if !scope.covers_account(account) {
                return Ok(None);
            }
        }
        if self.accounts.is_some() || self.departments.is_some() {
            let a_ok = self
                .accounts
                .as_ref()
                .is_some_and(|s| account.is_some_and(|a| s.contains(&a.id)));
            let d_ok = self
                .departments
                .as_ref()
                .is_some_and(|s| dept.is_some_and(|d| s.contains(&d.id)));
            if !a_ok && !d_ok {
                return Ok(None);
            }
        }
        let Some(meter) = self.meters.get(&(f.rate_period, f.meter)) else {
            return Ok(None);
        };
        if self.filter.marketplace_only && meter.kind != ChargeKind::Marketplace {
            return Ok(None);
        }
        let rate = match f.correction_rate {
            Some(r) => r,
            None => self
                .rates
                .get(&(f.rate_period, f.meter))
                .copied()
                .unwrap_or(Price::ZERO),
        };
        let (rate, cost) = if self.filter.show_costs {
            let cost = f.quantity.checked_mul(rate).map_err(|_| out_of_range())?;
            (rate, cost)
        } else {
            (Price::ZERO, Amount::ZERO)
        };
        Ok(Some(DetailRow {
            fact: f,
            account,
            dept,
            sub: self.hierarchy.subscriptions.get(&f.subscription),
            meter,
            rate,
            cost,
        }))
    }
}

/// One usage-details row, resolved: the stored fact with its account,
/// department, subscription, meter, and its rate and cost (0 where costs are hidden).
pub struct DetailRow<'a> {
    pub fact: &'a UsageFact<'a>,
    pub account: Option<&'a meterbook_core::hierarchy::Account>,
    pub dept: Option<&'a meterbook_core::hierarchy::Department>,
    pub sub: Option<&'a meterbook_core::hierarchy::Subscription>,
    pub meter: &'a MeterView,
    pub rate: Price,
    pub cost: Amount,
}
