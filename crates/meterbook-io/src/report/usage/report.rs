//! Usage details and Marketplace charges: one row per usage record, streamed
//! from the store's ordered scan.

use super::export::ProgressFn;
use super::table::{Cell, ColType, Column};
use super::{json_str, ReportFormat, ReportMeta};
use meterbook_core::fixed::Amount;
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::ledger::period_rates;
use meterbook_core::prices::{ChargeKind, MeterPrice};
use meterbook_core::store::{
    Flow, MetadataStore, StoreError, StoreResult, UsageFact, UsageSelection, UsageStore,
};
use meterbook_core::{EnrollmentNumber, Period, Price};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::mpsc;

/// Bytes encoded before a chunk goes to the writer thread.
const CHUNK: usize = 1 << 20;

/// Rows scanned between two progress calls.
pub const TICK: u64 = 256;

fn stopped_io() -> std::io::Error {
    std::io::Error::other("the export was stopped")
}

fn stopped_error() -> ReportError {
    ReportError::Io(stopped_io())
}

/// A report column: the CSV name; the JSON name is its camelCase form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Col {
    AccountId,
    AccountName,
    AccountOwnerEmail,
    AdditionalInfo,
    ChargesBilledSeparately,
    ConsumedQuantity,
    ConsumedService,
    Cost,
    CostCenter,
    Date,
    DepartmentId,
    DepartmentName,
    InstanceId,
    Location,
    MeterCategory,
    MeterId,
    MeterName,
    MeterRegion,
    MeterSubCategory,
    OfferId,
    PartNumber,
    Product,
    ResourceGroup,
    ResourceGuid,
    ResourceLocation,
    ResourceRate,
    ServiceInfo1,
    ServiceInfo2,
    ServiceName,
    ServiceTier,
    SubscriptionGuid,
    SubscriptionName,
    Tags,
    UnitOfMeasure,
    RecordId,
    IsCorrection,
    PublisherName,
    OfferName,
    PlanName,
    // The Enterprise Agreement's detail report (the legacy endpoint).
    AccountOwnerId,
    ServiceAdministratorId,
    SubscriptionId,
    Month,
    Day,
    Year,
    ExtendedCost,
    StoreServiceIdentifier,
}

impl Col {
    pub fn name(self) -> &'static str {
        use Col::*;
        match self {
            AccountId => "AccountId",
            AccountName => "AccountName",
            AccountOwnerEmail => "AccountOwnerEmail",
            AdditionalInfo => "AdditionalInfo",
            ChargesBilledSeparately => "ChargesBilledSeparately",
            ConsumedQuantity => "ConsumedQuantity",
            ConsumedService => "ConsumedService",
            Cost => "Cost",
            CostCenter => "CostCenter",
            Date => "Date",
            DepartmentId => "DepartmentId",
            DepartmentName => "DepartmentName",
            InstanceId => "InstanceId",
            Location => "Location",
            MeterCategory => "MeterCategory",
            MeterId => "MeterId",
            MeterName => "MeterName",
            MeterRegion => "MeterRegion",
            MeterSubCategory => "MeterSubCategory",
            OfferId => "OfferId",
            PartNumber => "PartNumber",
            Product => "Product",
            ResourceGroup => "ResourceGroup",
            ResourceGuid => "ResourceGuid",
            ResourceLocation => "ResourceLocation",
            ResourceRate => "ResourceRate",
            ServiceInfo1 => "ServiceInfo1",
            ServiceInfo2 => "ServiceInfo2",
            ServiceName => "ServiceName",
            ServiceTier => "ServiceTier",
            SubscriptionGuid => "SubscriptionGuid",
            SubscriptionName => "SubscriptionName",
            Tags => "Tags",
            UnitOfMeasure => "UnitOfMeasure",
            RecordId => "RecordId",
            IsCorrection => "IsCorrection",
            PublisherName => "PublisherName",
            OfferName => "OfferName",
            PlanName => "PlanName",
            AccountOwnerId => "AccountOwnerId",
            ServiceAdministratorId => "ServiceAdministratorId",
            SubscriptionId => "SubscriptionId",
            Month => "Month",
            Day => "Day",
            Year => "Year",
            ExtendedCost => "ExtendedCost",
            StoreServiceIdentifier => "StoreServiceIdentifier",
        }
    }

    /// camelCase, as the Reporting API v3 spells JSON fields.
    pub fn json_name(self) -> String {
        let n = self.name();
        let mut s = n[..1].to_ascii_lowercase();
        s.push_str(&n[1..]);
        s
    }
}

/// Usage details columns (design §4), in order.
pub const USAGE_DETAIL_COLUMNS: [Col; 36] = {
    use Col::*;
    [
        AccountId,
        AccountName,
        AccountOwnerEmail,
        AdditionalInfo,
        ChargesBilledSeparately,
        ConsumedQuantity,
        ConsumedService,
        Cost,
        CostCenter,
        Date,
        DepartmentId,
        DepartmentName,
        InstanceId,
        Location,
        MeterCategory,
        MeterId,
        MeterName,
        MeterRegion,
        MeterSubCategory,
        OfferId,
        PartNumber,
        Product,
        ResourceGroup,
        ResourceGuid,
        ResourceLocation,
        ResourceRate,
        ServiceInfo1,
        ServiceInfo2,
        ServiceName,
        ServiceTier,
        SubscriptionGuid,
        SubscriptionName,
        Tags,
        UnitOfMeasure,
        RecordId,
        IsCorrection,
    ]
};

/// Marketplace charges columns.
pub const MARKETPLACE_COLUMNS: [Col; 22] = {
    use Col::*;
    [
        AccountId,
        AccountName,
        AccountOwnerEmail,
        CostCenter,
        DepartmentName,
        SubscriptionGuid,
        SubscriptionName,
        Date,
        MeterId,
        MeterName,
        PublisherName,
        OfferName,
        PlanName,
        ConsumedQuantity,
        UnitOfMeasure,
        ResourceRate,
        Cost,
        InstanceId,
        ResourceGroup,
        Tags,
        RecordId,
        IsCorrection,
    ]
};

/// The Enterprise Agreement detail report's columns, as the legacy
/// `usage-report` endpoint spells them.
pub const LEGACY_DETAIL_COLUMNS: [Col; 31] = {
    use Col::*;
    [
        AccountOwnerId,
        AccountName,
        ServiceAdministratorId,
        SubscriptionId,
        SubscriptionGuid,
        SubscriptionName,
        Date,
        Month,
        Day,
        Year,
        Product,
        MeterId,
        MeterCategory,
        MeterSubCategory,
        MeterRegion,
        MeterName,
        ConsumedQuantity,
        ResourceRate,
        ExtendedCost,
        ResourceLocation,
        ConsumedService,
        InstanceId,
        ServiceInfo1,
        ServiceInfo2,
        AdditionalInfo,
        Tags,
        StoreServiceIdentifier,
        DepartmentName,
        CostCenter,
        UnitOfMeasure,
        ResourceGroup,
    ]
};

/// Whose rows a report may show (design §5). There is no default: every
/// report states whether a viewer's scope bounds it or it is an operator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Only rows within this scope.
    Scope(meterbook_core::access::Scope),
    /// Every row of the enrollment: operators only.
    Everything,
}

/// What to include. There is no `Default`: a filter is made by
/// [`UsageFilter::within`] (a viewer's scope) or [`UsageFilter::operator`]
/// (everything), so no report sees everything by accident.
#[derive(Clone, Debug)]
pub struct UsageFilter {
    pub selection: UsageSelection,
    /// Account names; with `departments`, a row is kept if either matches. Both empty: all rows.
    pub accounts: Vec<String>,
    pub departments: Vec<String>,
    /// False where the viewer may not see costs: cost and rate read 0 (design §5).
    pub show_costs: bool,
    /// Only marketplace meters (the Marketplace charges report).
    pub marketplace_only: bool,
    /// Rows outside this reach are left out (design §5).
    pub reach: Reach,
    /// The legacy layout (overrides `marketplace_only`'s columns, not its rows).
    pub legacy: bool,
}

impl UsageFilter {
    /// The rows of `selection` within `scope`, costs shown only if
    /// `show_costs`; no account or department filter, usage details layout.
    pub fn within(
        scope: meterbook_core::access::Scope,
        show_costs: bool,
        selection: UsageSelection,
    ) -> UsageFilter {
        UsageFilter::new(Reach::Scope(scope), show_costs, selection)
    }

    /// Every row of `selection`, costs shown: the operator's view.
    pub fn operator(selection: UsageSelection) -> UsageFilter {
        UsageFilter::new(Reach::Everything, true, selection)
    }

    fn new(reach: Reach, show_costs: bool, selection: UsageSelection) -> UsageFilter {
        UsageFilter {
            selection,
            accounts: Vec::new(),
            departments: Vec::new(),
            show_costs,
            marketplace_only: false,
            reach,
            legacy: false,
        }
    }
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

fn out_of_range() -> StoreError {
    StoreError::Invalid("the report's totals exceed the supported range".into())
}

/// A meter as reports show it.
pub struct MeterView {
    pub price: MeterPrice,
    /// "Category - SubCategory - Name - Region", empty parts left out.
    pub product: String,
    pub kind: ChargeKind,
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
                meters.insert(
                    (p, key),
                    MeterView {
                        price,
                        product,
                        kind,
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

/// A value of one cell, typed so that JSON gets numbers and objects, CSV text.
enum Val<'a> {
    Text(&'a str),
    Num(&'a str),
    Bool(bool),
    /// Raw JSON object text, or empty for none.
    Json(&'a str),
}

struct Encoder {
    format: ReportFormat,
    cols: Vec<Col>,
    json_keys: Vec<String>,
    first: bool,
    /// The legacy layout: JSON is a bare array of rows keyed by column name.
    legacy: bool,
    num: [String; 4],
}

impl Encoder {
    fn new(format: ReportFormat, cols: &[Col], verbatim_keys: bool) -> Encoder {
        Encoder {
            format,
            cols: cols.to_vec(),
            json_keys: cols
                .iter()
                .map(|c| {
                    if verbatim_keys {
                        format!("\"{}\":", c.name())
                    } else {
                        format!("\"{}\":", c.json_name())
                    }
                })
                .collect(),
            first: true,
            legacy: verbatim_keys,
            num: Default::default(),
        }
    }

    fn start(&mut self, meta: &ReportMeta, out: &mut Vec<u8>) {
        match self.format {
            ReportFormat::Csv => {
                let names: Vec<&str> = self.cols.iter().map(|c| c.name()).collect();
                out.extend_from_slice(names.join(",").as_bytes());
                out.push(b'\n');
            }
            ReportFormat::Json if self.legacy => out.push(b'['),
            ReportFormat::Json => {
                out.extend_from_slice(format!("{{{},\"data\":[", meta.json_fields()).as_bytes())
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.format == ReportFormat::Json {
            out.extend_from_slice(match (self.legacy, self.first) {
                (true, true) => b"]\n",
                (true, false) => b"\n]\n",
                (false, true) => b"]}\n",
                (false, false) => b"\n]}\n",
            });
        }
    }

    fn row(&mut self, r: &DetailRow<'_>, line: &mut Vec<u8>) {
        let f = r.fact;
        let info = &r.meter.price.info;
        let [qty, rate, cost, date] = &mut self.num;
        for s in [&mut *qty, &mut *rate, &mut *cost, &mut *date] {
            s.clear();
        }
        f.quantity.write_to(qty);
        r.rate.write_to(rate);
        r.cost.write_to(cost);
        f.day.write_iso(date);
        let mut ids = itoa_buf();
        let account_id = r.account.map(|a| write_int(&mut ids.0, a.id));
        let dept_id = r.dept.map(|d| write_int(&mut ids.1, d.id));
        let sub_id = write_int(&mut ids.2, f.subscription);
        if self.format == ReportFormat::Json {
            line.extend_from_slice(if self.first { b"\n{" } else { b",\n{" });
        }
        self.first = false;
        for (i, col) in self.cols.iter().enumerate() {
            use Col::*;
            let v = match col {
                AccountId => Val::Num(account_id.unwrap_or("")),
                AccountName => Val::Text(r.account.map_or("", |a| &a.name)),
                AccountOwnerEmail => Val::Text(r.account.map_or("", |a| &a.owner_email)),
                AdditionalInfo => Val::Json(f.additional_info),
                ChargesBilledSeparately => Val::Bool(info.charges_billed_separately),
                ConsumedQuantity => Val::Num(qty),
                ConsumedService => Val::Text(f.consumed_service),
                Cost => Val::Num(cost),
                CostCenter => Val::Text(r.account.map_or("", |a| &a.cost_center)),
                Date => Val::Text(date),
                DepartmentId => Val::Num(dept_id.unwrap_or("")),
                DepartmentName => Val::Text(r.dept.map_or("", |d| &d.name)),
                InstanceId => Val::Text(f.instance_id),
                Location | ResourceLocation => Val::Text(f.resource_location),
                MeterCategory | ServiceName => Val::Text(&info.meter_category),
                MeterId | ResourceGuid => Val::Text(&info.meter_id),
                MeterName => Val::Text(&info.meter_name),
                MeterRegion => Val::Text(&info.meter_region),
                MeterSubCategory | ServiceTier => Val::Text(&info.meter_sub_category),
                OfferId => Val::Text(&info.offer_name),
                PartNumber => Val::Text(&info.part_number),
                Product => Val::Text(&r.meter.product),
                ResourceGroup => Val::Text(f.resource_group),
                ResourceRate => Val::Num(rate),
                ServiceInfo1 => Val::Text(f.service_info1),
                ServiceInfo2 => Val::Text(f.service_info2),
                SubscriptionGuid => Val::Text(r.sub.map_or("", |s| &s.guid)),
                SubscriptionName => Val::Text(r.sub.map_or("", |s| &s.name)),
                Tags => Val::Json(f.tags),
                UnitOfMeasure => Val::Text(&info.unit_of_measure),
                RecordId => Val::Text(f.record_id),
                IsCorrection => Val::Bool(f.correction_rate.is_some()),
                PublisherName => Val::Text(&info.publisher_name),
                OfferName => Val::Text(&info.offer_name),
                PlanName => Val::Text(&info.plan_name),
                AccountOwnerId => Val::Text(r.account.map_or("", |a| &a.owner_email)),
                ServiceAdministratorId | StoreServiceIdentifier => Val::Text(""),
                SubscriptionId => Val::Num(sub_id),
                Month => Val::Num(date[5..7].trim_start_matches('0')),
                Day => Val::Num(date[8..10].trim_start_matches('0')),
                Year => Val::Num(&date[0..4]),
                ExtendedCost => Val::Num(cost),
            };
            match self.format {
                ReportFormat::Csv => {
                    if i > 0 {
                        line.push(b',');
                    }
                    match v {
                        Val::Text(s) | Val::Json(s) => csv_field(line, s),
                        Val::Num(s) => line.extend_from_slice(s.as_bytes()),
                        Val::Bool(b) => line.extend_from_slice(if b { b"true" } else { b"false" }),
                    }
                }
                ReportFormat::Json => {
                    if i > 0 {
                        line.push(b',');
                    }
                    line.extend_from_slice(self.json_keys[i].as_bytes());
                    match v {
                        Val::Text(s) => json_str(line, s),
                        Val::Num("") => line.extend_from_slice(b"null"),
                        Val::Num(s) => line.extend_from_slice(s.as_bytes()),
                        Val::Json("") => line.extend_from_slice(b"null"),
                        Val::Json(s) => line.extend_from_slice(s.as_bytes()),
                        Val::Bool(b) => line.extend_from_slice(if b { b"true" } else { b"false" }),
                    }
                }
            }
        }
        match self.format {
            ReportFormat::Csv => line.push(b'\n'),
            ReportFormat::Json => line.push(b'}'),
        }
    }
}

/// The usage-details columns typed (for Parquet): ids as integers, quantities,
/// rates and costs as exact decimals at their stored scale, dates as dates.
pub fn detail_schema() -> Vec<Column> {
    USAGE_DETAIL_COLUMNS
        .iter()
        .map(|&c| {
            use Col::*;
            let (ty, nullable) = match c {
                AccountId | DepartmentId => (ColType::Int, true),
                ConsumedQuantity => (ColType::Decimal { scale: 6 }, false),
                ResourceRate => (ColType::Decimal { scale: 12 }, false),
                Cost => (ColType::Decimal { scale: 18 }, false),
                Date => (ColType::Date, false),
                ChargesBilledSeparately | IsCorrection => (ColType::Bool, false),
                Tags | AdditionalInfo => (ColType::Text, true),
                _ => (ColType::Text, false),
            };
            Column::new(c.name(), ty, nullable)
        })
        .collect()
}

/// The cells of one row in [`detail_schema`]'s order.
pub fn detail_cells<'a>(r: &DetailRow<'a>, out: &mut Vec<Cell<'a>>) {
    let f = r.fact;
    let info = &r.meter.price.info;
    out.clear();
    let opt = |s: &'a str| {
        if s.is_empty() {
            Cell::Null
        } else {
            Cell::Text(s)
        }
    };
    for c in USAGE_DETAIL_COLUMNS {
        use Col::*;
        out.push(match c {
            AccountId => r.account.map_or(Cell::Null, |a| Cell::Int(a.id)),
            AccountName => Cell::Text(r.account.map_or("", |a| a.name.as_str())),
            AccountOwnerEmail => Cell::Text(r.account.map_or("", |a| a.owner_email.as_str())),
            AdditionalInfo => opt(f.additional_info),
            ChargesBilledSeparately => Cell::Bool(info.charges_billed_separately),
            ConsumedQuantity => Cell::Decimal(f.quantity.raw() as i128),
            ConsumedService => Cell::Text(f.consumed_service),
            Cost => Cell::Decimal(r.cost.raw()),
            CostCenter => Cell::Text(r.account.map_or("", |a| a.cost_center.as_str())),
            Date => Cell::Date(f.day),
            DepartmentId => r.dept.map_or(Cell::Null, |d| Cell::Int(d.id)),
            DepartmentName => Cell::Text(r.dept.map_or("", |d| d.name.as_str())),
            InstanceId => Cell::Text(f.instance_id),
            Location | ResourceLocation => Cell::Text(f.resource_location),
            MeterCategory | ServiceName => Cell::Text(info.meter_category.as_str()),
            MeterId | ResourceGuid => Cell::Text(info.meter_id.as_str()),
            MeterName => Cell::Text(info.meter_name.as_str()),
            MeterRegion => Cell::Text(info.meter_region.as_str()),
            MeterSubCategory | ServiceTier => Cell::Text(info.meter_sub_category.as_str()),
            OfferId | OfferName => Cell::Text(info.offer_name.as_str()),
            PartNumber => Cell::Text(info.part_number.as_str()),
            Product => Cell::Text(r.meter.product.as_str()),
            ResourceGroup => Cell::Text(f.resource_group),
            ResourceRate => Cell::Decimal(r.rate.raw()),
            ServiceInfo1 => Cell::Text(f.service_info1),
            ServiceInfo2 => Cell::Text(f.service_info2),
            SubscriptionGuid => Cell::Text(r.sub.map_or("", |s| s.guid.as_str())),
            SubscriptionName => Cell::Text(r.sub.map_or("", |s| s.name.as_str())),
            Tags => opt(f.tags),
            UnitOfMeasure => Cell::Text(info.unit_of_measure.as_str()),
            RecordId => Cell::Text(f.record_id),
            IsCorrection => Cell::Bool(f.correction_rate.is_some()),
            // Not in the usage-details layout.
            _ => Cell::Null,
        });
    }
}

fn itoa_buf() -> (String, String, String) {
    (String::new(), String::new(), String::new())
}

fn write_int(buf: &mut String, v: i64) -> &str {
    use std::fmt::Write as _;
    buf.clear();
    let _ = write!(buf, "{v}");
    buf
}

/// RFC 4180: quote a field that holds a comma, quote or line break; double inner quotes.
pub(crate) fn csv_field(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if memchr::memchr3(b',', b'"', b'\n', b).is_some() || memchr::memchr(b'\r', b).is_some() {
        out.push(b'"');
        for c in s.bytes() {
            if c == b'"' {
                out.push(b'"');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}
