//! The FinOps FOCUS 1.2 cost and usage dataset: the usage-details rows of a
//! report, plus the enrollment's purchases and adjustments, in the columns and
//! values FOCUS defines, so FinOps tools read a Meterbook export like any
//! cloud's.
//!
//! Columns: all 21 mandatory FOCUS 1.2 columns, the 4 recommended ones
//! (AvailabilityZone, ChargeFrequency, InvoiceId, ServiceSubcategory), the
//! conditional ones that Meterbook's data supports (usage measurement, unit and
//! negotiated pricing, SKUs, regions, resources, sub accounts, tags, a pricing
//! category), then a few `x_` columns for Meterbook's own hierarchy. With the
//! FOCUS validator, declare the applicability criteria
//! [`APPLICABILITY_CRITERIA`].
//!
//! Mapping decisions (each column's details are at [`schema`] and the cell builders):
//!
//! * One `Usage` row per usage-details row, in the report's (store's) order, so
//!   the Usage rows' BilledCost adds up exactly to the usage report's Cost total
//!   and to the statement's charges. Purchases and adjustments follow, by date.
//! * Costs: BilledCost = EffectiveCost = ContractedCost = ListCost = the row's exact
//!   Cost (ConsumedQuantity × ResourceRate, design §3.3) at 18 decimals. Meterbook
//!   has one price per meter and period, the enrollment's price sheet, and no
//!   separate public list price; the blended ResourceRate is what that sheet charges
//!   per unit (tiers and included units folded in, design §3.2), so it is both the
//!   ListUnitPrice and the ContractedUnitPrice, and unit price × PricingQuantity
//!   equals each cost exactly, as FOCUS requires.
//! * A usage row dated in a closed period and booked in a later one (design §3.4)
//!   is a correction to a period already invoiced: ChargeClass `Correction`, the
//!   charge period its original day, the billing period the one it is booked in.
//! * Purchases (monetary commitment) are `Purchase` rows, `One-Time`: BilledCost the
//!   amount (it is invoiced), EffectiveCost 0 (the prepayment covers future usage,
//!   whose rows carry the effective cost; counting both would count it twice).
//!   BilledCost stays the row's Cost on Usage rows, as in usage details: the
//!   statement settles a period's eligible charges from the commitment in one sum,
//!   not per row, so summing BilledCost over Usage and Purchase rows counts the
//!   usage the commitment covers twice (EffectiveCost does not).
//!   Adjustments credit (+) or debit (−) the commitment: a credit is a `Credit` row
//!   with negative costs (money back to the customer), a debit an `Adjustment` row
//!   with positive costs. Both belong to the whole enrollment: they appear only in
//!   an unfiltered report whose viewer sees the balance (design §5).
//! * Accounts: BillingAccountId is the enrollment, fully qualified
//!   (`/enrollments/8608480`), BillingAccountName its name; sub accounts are
//!   subscriptions (GUID and name). Provider and invoice issuer come from the
//!   operator's settings; a marketplace meter's publisher is its PublisherName.
//! * Units: the price sheet's UnitOfMeasure, except the Enterprise Agreement's
//!   per-time forms, which FOCUS spells differently (`1/Month` → `Months`,
//!   `1 GB/Month` → `GB-Months`).
//! * Where the viewer may not see costs, every cost and unit price reads 0 (design §5).
//! * Nothing in a row depends on when the file was made: the same data gives the
//!   same file, byte for byte.

use super::export::ProgressFn;
use super::table::{Cell, ColType, Column, TableSink};
use super::usage::{DetailRow, Reach, ReportError, ReportTotals, UsageFilter, UsageReport};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, Flow, MetadataStore, UsageSelection, UsageStore};
use meterbook_core::{Day, EnrollmentNumber, Money, Period, Quantity};
use std::collections::HashMap;

/// Names the operator configures for FOCUS's provider columns. FOCUS reads a
/// provider that differs from the invoice issuer as "payments go to a third
/// party", where every BilledCost must be 0 (BilledCost-C-005-C), so the two are
/// normally the same name.
#[derive(Clone, Debug)]
pub struct FocusSettings {
    pub provider_name: String,
    pub invoice_issuer_name: String,
}

impl Default for FocusSettings {
    fn default() -> Self {
        FocusSettings {
            provider_name: "Meterbook".into(),
            invoice_issuer_name: "Meterbook".into(),
        }
    }
}

/// The FOCUS applicability criteria that describe a Meterbook export (the
/// validator's `--applicability-criteria`): the provider names billing accounts
/// (enrollments) and has sub accounts (subscriptions); it measures usage and
/// prices it per unit from the enrollment's price sheet, which holds negotiated
/// prices; usage carries regions and tags.
///
/// Not declared: availability zones, capacity reservations, commitment
/// discounts (the monetary commitment is a prepayment, not a discount), several
/// pricing categories, account types, pricing or virtual currencies, resource
/// types (usage records have none), and public price lists (price sheets are
/// per enrollment, not public). Also not declared, though it holds (usage is
/// billed per resource instance): BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED.
/// The validator (2.2.1) applies a rule when *any* of its criteria is declared,
/// where the spec means *all*, so declaring it would demand ResourceType, which
/// FOCUS requires only together with RESOURCE_TYPE_ASSIGNMENT_SUPPORTED (and
/// PUBLIC_PRICE_LIST_SUPPORTED would likewise demand the PricingCurrency columns).
/// The ResourceId and ResourceName columns are written all the same.
pub const APPLICABILITY_CRITERIA: &[&str] = &[
    "ACCOUNT_NAMING_SUPPORTED",
    "SUB_ACCOUNT_SUPPORTED",
    "USAGE_MEASUREMENT_SUPPORTED",
    "UNIT_PRICING_SUPPORTED",
    "NEGOTIATED_PRICING_SUPPORTED",
    "REGION_SUPPORTED",
    "TAGGING_SUPPORTED",
];

const COST_SCALE: u32 = meterbook_core::Amount::SCALE;
const UNIT_PRICE_SCALE: u32 = meterbook_core::Price::SCALE;
/// Costs: exact amounts (quantity × rate has 6 + 12 decimals).
const COST: ColType = ColType::Decimal { scale: COST_SCALE };
/// Unit prices, as the price sheet and ResourceRate hold them.
const UNIT_PRICE: ColType = ColType::Decimal {
    scale: UNIT_PRICE_SCALE,
};
/// Quantities, as usage records hold them.
const QUANTITY: ColType = ColType::Decimal {
    scale: Quantity::SCALE,
};

/// Calls the export's progress callback this often.
const PROGRESS_EVERY: u64 = 8192;

/// The SKU a monetary commitment is sold as (Purchase rows need a SkuId).
const COMMITMENT_SKU: &str = "MonetaryCommitment";
/// ServiceName of purchases and adjustments: the commitment is no cloud service.
const COMMITMENT_SERVICE: &str = "Monetary Commitment";

/// Declares the column enum and its list in file order from one list of names.
macro_rules! columns {
    ($($name:ident),* $(,)?) => {
        /// The dataset's columns, in file order: FOCUS columns alphabetically, then
        /// Meterbook's `x_` columns (FOCUS wants custom columns last, prefixed `x_`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum F {
            $($name),*
        }

        impl F {
            const ALL: &'static [F] = &[$(F::$name),*];
        }
    };
}

columns!(
    AvailabilityZone,
    BilledCost,
    BillingAccountId,
    BillingAccountName,
    BillingCurrency,
    BillingPeriodEnd,
    BillingPeriodStart,
    ChargeCategory,
    ChargeClass,
    ChargeDescription,
    ChargeFrequency,
    ChargePeriodEnd,
    ChargePeriodStart,
    CommitmentDiscountStatus,
    ConsumedQuantity,
    ConsumedUnit,
    ContractedCost,
    ContractedUnitPrice,
    EffectiveCost,
    InvoiceId,
    InvoiceIssuerName,
    ListCost,
    ListUnitPrice,
    PricingCategory,
    PricingQuantity,
    PricingUnit,
    ProviderName,
    PublisherName,
    RegionId,
    RegionName,
    ResourceId,
    ResourceName,
    ServiceCategory,
    ServiceName,
    ServiceSubcategory,
    SkuId,
    SkuMeter,
    SkuPriceDetails,
    SkuPriceId,
    SubAccountId,
    SubAccountName,
    Tags,
    XAccountName,
    XCostCenter,
    XDepartmentName,
    XRecordId,
);

const NCOLS: usize = F::ALL.len();

impl F {
    /// Name, type and whether nulls occur. Not-null columns are the ones FOCUS
    /// forbids nulls in (for every charge category Meterbook writes).
    fn column(self) -> Column {
        use ColType::{Text, Timestamp};
        use F::*;
        let (name, ty, nullable) = match self {
            // Meterbook knows no zones: always null (FOCUS: null when a charge is
            // not specific to a zone).
            AvailabilityZone => ("AvailabilityZone", Text, true),
            BilledCost => ("BilledCost", COST, false),
            BillingAccountId => ("BillingAccountId", Text, false),
            BillingAccountName => ("BillingAccountName", Text, false),
            BillingCurrency => ("BillingCurrency", Text, false),
            BillingPeriodEnd => ("BillingPeriodEnd", Timestamp, false),
            BillingPeriodStart => ("BillingPeriodStart", Timestamp, false),
            ChargeCategory => ("ChargeCategory", Text, false),
            ChargeClass => ("ChargeClass", Text, true),
            ChargeDescription => ("ChargeDescription", Text, false),
            ChargeFrequency => ("ChargeFrequency", Text, false),
            ChargePeriodEnd => ("ChargePeriodEnd", Timestamp, false),
            ChargePeriodStart => ("ChargePeriodStart", Timestamp, false),
            // Meterbook has no commitment discounts, so this is always null. It is
            // written because the validator's ConsumedQuantity rules read it for
            // every Usage row and fail when it is missing; null is the value FOCUS
            // gives charges without a commitment discount.
            CommitmentDiscountStatus => ("CommitmentDiscountStatus", Text, true),
            ConsumedQuantity => ("ConsumedQuantity", QUANTITY, true),
            ConsumedUnit => ("ConsumedUnit", Text, true),
            ContractedCost => ("ContractedCost", COST, false),
            ContractedUnitPrice => ("ContractedUnitPrice", UNIT_PRICE, true),
            EffectiveCost => ("EffectiveCost", COST, false),
            // Meterbook keeps statements, not invoices: the invoice the provider
            // issues from a statement has a number Meterbook never learns, and an
            // id made up per period would break "the BilledCost of an InvoiceId
            // adds up to the invoice's payable amount" (usage drawn from the
            // prepaid commitment is not payable again). So: always null.
            InvoiceId => ("InvoiceId", Text, true),
            InvoiceIssuerName => ("InvoiceIssuerName", Text, false),
            ListCost => ("ListCost", COST, false),
            ListUnitPrice => ("ListUnitPrice", UNIT_PRICE, true),
            PricingCategory => ("PricingCategory", Text, true),
            PricingQuantity => ("PricingQuantity", QUANTITY, true),
            PricingUnit => ("PricingUnit", Text, true),
            ProviderName => ("ProviderName", Text, false),
            PublisherName => ("PublisherName", Text, false),
            RegionId => ("RegionId", Text, true),
            RegionName => ("RegionName", Text, true),
            ResourceId => ("ResourceId", Text, true),
            ResourceName => ("ResourceName", Text, true),
            ServiceCategory => ("ServiceCategory", Text, false),
            ServiceName => ("ServiceName", Text, false),
            ServiceSubcategory => ("ServiceSubcategory", Text, false),
            SkuId => ("SkuId", Text, true),
            SkuMeter => ("SkuMeter", Text, true),
            // No FOCUS-defined SKU price property applies to a price-sheet meter:
            // always null (FOCUS allows it).
            SkuPriceDetails => ("SkuPriceDetails", Text, true),
            SkuPriceId => ("SkuPriceId", Text, true),
            SubAccountId => ("SubAccountId", Text, true),
            SubAccountName => ("SubAccountName", Text, true),
            Tags => ("Tags", Text, true),
            XAccountName => ("x_AccountName", Text, true),
            XCostCenter => ("x_CostCenter", Text, true),
            XDepartmentName => ("x_DepartmentName", Text, true),
            XRecordId => ("x_RecordId", Text, true),
        };
        Column::new(name, ty, nullable)
    }
}

/// The FOCUS 1.2 columns, typed: costs as exact decimals at 18 places, unit
/// prices at 12, quantities at 6 (the scales Meterbook computes at, so no value
/// is rounded); charge and billing periods as UTC timestamps.
pub fn schema() -> Vec<Column> {
    F::ALL.iter().map(|c| c.column()).collect()
}

/// One row's cells, indexed by [`F`].
struct Cells<'a>([Cell<'a>; NCOLS]);

impl<'a> Cells<'a> {
    fn new() -> Self {
        Cells([Cell::Null; NCOLS])
    }
    fn set(&mut self, c: F, v: Cell<'a>) {
        self.0[c as usize] = v;
    }
    fn text(&mut self, c: F, s: &'a str) {
        self.set(c, Cell::Text(s));
    }
    /// Text, or null when empty (FOCUS uses null, never "", for "no value").
    fn opt(&mut self, c: F, s: &'a str) {
        self.set(
            c,
            if s.is_empty() {
                Cell::Null
            } else {
                Cell::Text(s)
            },
        );
    }
}

/// Values that are the same on every row of a file.
struct Common<'s> {
    account_id: &'s str,
    account_name: &'s str,
    currency: &'s str,
    provider: &'s str,
    issuer: &'s str,
}

impl<'s> Common<'s> {
    fn fill<'a>(&self, cells: &mut Cells<'a>)
    where
        's: 'a,
    {
        cells.text(F::BillingAccountId, self.account_id);
        cells.text(F::BillingAccountName, self.account_name);
        cells.text(F::BillingCurrency, self.currency);
        cells.text(F::ProviderName, self.provider);
        cells.text(F::InvoiceIssuerName, self.issuer);
    }
}

/// Writes `report` as a FOCUS 1.2 dataset to `sink`: its usage rows, then (for
/// an unfiltered report whose viewer sees the balance) the purchases and
/// adjustments dated in its span. Calls `progress` with the rows written every
/// 8192 rows and at the end; `false` stops the export with an error. Returns the
/// usage rows' totals, with `rows` counting every row written.
pub fn write<S: MetadataStore + UsageStore + ?Sized>(
    report: &UsageReport,
    store: &S,
    n: &EnrollmentNumber,
    settings: &FocusSettings,
    mut sink: Box<dyn TableSink + '_>,
    progress: &mut ProgressFn<'_>,
) -> Result<ReportTotals, ReportError> {
    let e = store.enrollment(n)?;
    let filter = report.filter();
    // Fully qualified, as FOCUS recommends (BillingAccountId-C-005-O); the bare
    // number would also read as an integer, not a string, in CSV.
    let account_id = format!("/enrollments/{}", e.number);
    let common = Common {
        account_id: &account_id,
        account_name: &e.name,
        currency: e.currency.code(),
        provider: &settings.provider_name,
        issuer: &settings.invoice_issuer_name,
    };
    let stopped = || std::io::Error::other("the export was stopped");
    let mut services = ServiceCategories::default();
    let mut units = Units::default();
    let mut written = 0u64;
    let mut totals = report.for_each_row(
        store,
        n,
        &mut |r| {
            let mut cells = Cells::new();
            common.fill(&mut cells);
            usage_cells(r, &common, &mut services, &mut units, &mut cells);
            sink.row(&cells.0)?;
            Ok(Flow::Continue)
        },
        progress,
    )?;
    written += totals.rows;
    if includes_entries(filter) {
        let mut entries: Vec<(EntryKind, CommitmentEntry)> = store
            .entries(n)?
            .into_iter()
            .filter(|(_, en)| in_span(&filter.selection, en.date))
            .collect();
        // Stable: entries of one day keep the store's order.
        entries.sort_by_key(|(_, en)| en.date);
        let exponent = e.currency.exponent();
        for (kind, en) in &entries {
            let mut cells = Cells::new();
            common.fill(&mut cells);
            entry_cells(*kind, en, exponent, filter.show_costs, &common, &mut cells);
            sink.row(&cells.0)?;
            written += 1;
            if written.is_multiple_of(PROGRESS_EVERY) && !progress(written) {
                return Err(stopped().into());
            }
        }
    }
    sink.finish()?;
    progress(written);
    totals.rows = written;
    Ok(totals)
}

/// Purchases and adjustments change the enrollment's commitment, not any
/// account's usage: they belong in a report of the whole enrollment only, for a
/// viewer who may see the balance (operators and enterprise administrators).
fn includes_entries(f: &UsageFilter) -> bool {
    f.accounts.is_empty()
        && f.departments.is_empty()
        && !f.marketplace_only
        && !matches!(f.reach, Reach::Scope(s) if !s.sees_balance())
}

/// Whether a purchase or adjustment dated `d` falls in the report's span: its
/// booked period, or its date range.
fn in_span(sel: &UsageSelection, d: Day) -> bool {
    match sel.booked {
        Some(p) => d.period() == p,
        None => sel.from.is_none_or(|f| f <= d) && sel.to.is_none_or(|t| d <= t),
    }
}

/// The cells of one usage row.
fn usage_cells<'a>(
    r: &DetailRow<'a>,
    common: &'a Common<'_>,
    services: &mut ServiceCategories,
    units: &'a mut Units,
    cells: &mut Cells<'a>,
) {
    let f = r.fact;
    let info = &r.meter.price.info;
    let cost = Cell::Decimal(r.cost.raw());
    for c in [
        F::BilledCost,
        F::EffectiveCost,
        F::ContractedCost,
        F::ListCost,
    ] {
        cells.set(c, cost);
    }
    // The rate is the unit price of the whole quantity: list = contracted (see the module doc).
    let rate = Cell::Decimal(r.rate.raw());
    cells.set(F::ListUnitPrice, rate);
    cells.set(F::ContractedUnitPrice, rate);
    // The billing period is the one the row is booked in: for a correction, the
    // open period it was booked into, not the closed one it is dated in.
    billing_period(cells, f.booked);
    charge_day(cells, f.day);
    cells.text(F::ChargeCategory, "Usage");
    if f.correction_rate.is_some() {
        cells.text(F::ChargeClass, "Correction");
    }
    cells.text(F::ChargeFrequency, "Usage-Based");
    cells.text(
        F::ChargeDescription,
        first_nonempty(&[&r.meter.product, &info.meter_id]),
    );
    // Cost = quantity × rate: the consumed quantity is also the priced one.
    let q = Cell::Decimal(f.quantity.raw() as i128);
    let unit = units.get(&info.unit_of_measure);
    cells.set(F::ConsumedQuantity, q);
    cells.set(F::PricingQuantity, q);
    cells.set(F::ConsumedUnit, Cell::Text(unit));
    cells.set(F::PricingUnit, Cell::Text(unit));
    cells.text(F::PricingCategory, "Standard");
    // A marketplace meter's publisher sells through the provider; first-party
    // meters are published by the provider itself.
    cells.text(
        F::PublisherName,
        first_nonempty(&[&info.publisher_name, common.provider]),
    );
    // Regions: the resource's location (where it runs); "global" and empty mean
    // the charge is not regional. Meterbook has no display names for locations,
    // so the name repeats the id.
    let loc = f.resource_location;
    if !loc.is_empty() && !loc.eq_ignore_ascii_case("global") {
        cells.text(F::RegionId, loc);
        cells.text(F::RegionName, loc);
    }
    cells.opt(F::ResourceId, f.instance_id);
    if let Some(name) = resource_name(f.instance_id) {
        cells.text(F::ResourceName, name);
    }
    // ServiceName is the meter's category (what the Enterprise Agreement called
    // the service); each maps to exactly one FOCUS category and subcategory.
    let service = first_nonempty(&[&info.meter_category, &info.meter_name, &info.meter_id]);
    let (category, subcategory) = services.get(service);
    cells.text(F::ServiceName, service);
    cells.text(F::ServiceCategory, category);
    cells.text(F::ServiceSubcategory, subcategory);
    // The meter is the SKU; its price sheet entry (one per meter and period,
    // looked up by MeterId) is the SKU price.
    cells.text(F::SkuId, &info.meter_id);
    cells.text(F::SkuPriceId, &info.meter_id);
    cells.opt(F::SkuMeter, &info.meter_name);
    // Subscriptions are FOCUS sub accounts.
    if let Some(sub) = r.sub {
        cells.text(F::SubAccountId, &sub.guid);
        cells.text(F::SubAccountName, first_nonempty(&[&sub.name, &sub.guid]));
    }
    // Usage tags are already a JSON object of strings: FOCUS's key-value format.
    cells.opt(F::Tags, f.tags);
    if let Some(a) = r.account {
        cells.opt(F::XAccountName, &a.name);
        cells.opt(F::XCostCenter, &a.cost_center);
    }
    if let Some(d) = r.dept {
        cells.opt(F::XDepartmentName, &d.name);
    }
    cells.opt(F::XRecordId, f.record_id);
}

/// The cells of a purchase or an adjustment.
fn entry_cells<'a>(
    kind: EntryKind,
    en: &'a CommitmentEntry,
    exponent: u32,
    show_costs: bool,
    common: &'a Common<'_>,
    cells: &mut Cells<'a>,
) {
    let amount = if show_costs { en.amount } else { Money::ZERO };
    let cost = |m: Money| Cell::Decimal(money_at(m, COST_SCALE, exponent));
    billing_period(cells, en.date.period());
    charge_day(cells, en.date);
    cells.text(F::ChargeFrequency, "One-Time");
    cells.text(F::PublisherName, common.provider);
    cells.text(F::ServiceName, COMMITMENT_SERVICE);
    cells.text(F::ServiceCategory, "Other");
    cells.text(F::ServiceSubcategory, "Other (Other)");
    match kind {
        EntryKind::Purchase => {
            cells.text(F::ChargeCategory, "Purchase");
            cells.text(
                F::ChargeDescription,
                first_nonempty(&[&en.description, "Monetary commitment"]),
            );
            cells.set(F::BilledCost, cost(amount));
            cells.set(F::ListCost, cost(amount));
            cells.set(F::ContractedCost, cost(amount));
            // Intended to cover future usage, which carries the effective cost.
            cells.set(F::EffectiveCost, cost(Money::ZERO));
            // One commitment at its amount (unit prices are never negative: a
            // negative amount, which the store refuses anyway, would be −1 unit).
            let price = money_at(amount, UNIT_PRICE_SCALE, exponent);
            let q = if price < 0 { -1 } else { 1 };
            cells.set(
                F::PricingQuantity,
                Cell::Decimal(q * 10i128.pow(Quantity::SCALE)),
            );
            cells.text(F::PricingUnit, "Units");
            let unit_price = Cell::Decimal(price.abs());
            cells.set(F::ListUnitPrice, unit_price);
            cells.set(F::ContractedUnitPrice, unit_price);
            cells.text(F::PricingCategory, "Standard");
            cells.text(F::SkuId, COMMITMENT_SKU);
            cells.text(F::SkuPriceId, COMMITMENT_SKU);
            cells.text(F::SkuMeter, COMMITMENT_SERVICE);
        }
        EntryKind::Adjustment => {
            // A positive adjustment credits the commitment: money back to the
            // customer, a negative cost. A negative one is a debit, a charge.
            let (category, default) = if en.amount.0 > 0 {
                ("Credit", "Commitment credit")
            } else {
                ("Adjustment", "Commitment adjustment")
            };
            cells.text(F::ChargeCategory, category);
            cells.text(
                F::ChargeDescription,
                first_nonempty(&[&en.description, default]),
            );
            // Unrelated to other charges: every cost equals BilledCost.
            for c in [
                F::BilledCost,
                F::EffectiveCost,
                F::ContractedCost,
                F::ListCost,
            ] {
                cells.set(c, Cell::Decimal(-money_at(amount, COST_SCALE, exponent)));
            }
        }
    }
}

/// A money amount (minor units) as a raw decimal at `scale` (≥ the exponent). Exact.
fn money_at(m: Money, scale: u32, exponent: u32) -> i128 {
    m.0 as i128 * 10i128.pow(scale.saturating_sub(exponent))
}

/// The billing period `[first day, first day of the next month)`.
fn billing_period(cells: &mut Cells<'_>, p: Period) {
    cells.set(F::BillingPeriodStart, Cell::Timestamp(p.first_day()));
    cells.set(F::BillingPeriodEnd, Cell::Timestamp(p.next().first_day()));
}

/// Usage is daily: the charge period is the day `[00:00Z, next day 00:00Z)`.
fn charge_day(cells: &mut Cells<'_>, d: Day) {
    cells.set(F::ChargePeriodStart, Cell::Timestamp(d));
    cells.set(F::ChargePeriodEnd, Cell::Timestamp(d.succ()));
}

fn first_nonempty<'a>(candidates: &[&'a str]) -> &'a str {
    candidates
        .iter()
        .copied()
        .find(|s| !s.is_empty())
        .unwrap_or("")
}

/// The display name in a path-like resource id (`…/virtualMachines/vm-01` →
/// `vm-01`). An id that is not a path has no separate name: null, since FOCUS
/// forbids a ResourceName that merely repeats the ResourceId.
fn resource_name(id: &str) -> Option<&str> {
    let (_, name) = id.trim_end_matches('/').rsplit_once('/')?;
    (!name.is_empty()).then_some(name)
}

/// ServiceName → (ServiceCategory, ServiceSubcategory), memoised per name.
#[derive(Default)]
struct ServiceCategories(HashMap<String, (&'static str, &'static str)>);

impl ServiceCategories {
    fn get(&mut self, service: &str) -> (&'static str, &'static str) {
        if let Some(v) = self.0.get(service) {
            return *v;
        }
        let v = service_category(service);
        self.0.insert(service.to_string(), v);
        v
    }
}

/// FOCUS's category and subcategory for a meter category, from the names the
/// Enterprise Agreement's price sheets use (case-insensitive); anything else is
/// `Other` (FOCUS: "when no suitable ServiceCategory is available").
fn service_category(meter_category: &str) -> (&'static str, &'static str) {
    const TABLE: &[(&str, &str, &str)] = &[
        // Compute
        ("Virtual Machines", "Compute", "Virtual Machines"),
        ("Virtual Machines Licenses", "Compute", "Virtual Machines"),
        ("Cloud Services", "Compute", "Virtual Machines"),
        ("Azure Dedicated Host", "Compute", "Virtual Machines"),
        ("Batch", "Compute", "Other (Compute)"),
        ("Azure Kubernetes Service", "Compute", "Containers"),
        ("Container Instances", "Compute", "Containers"),
        ("Container Apps", "Compute", "Containers"),
        ("Container Registry", "Compute", "Containers"),
        ("Functions", "Compute", "Serverless Compute"),
        ("Azure Functions", "Compute", "Serverless Compute"),
        ("Azure Virtual Desktop", "Compute", "End User Computing"),
        ("Windows Virtual Desktop", "Compute", "End User Computing"),
        // Web
        ("App Service", "Web", "Application Platforms"),
        ("Azure App Service", "Web", "Application Platforms"),
        ("Static Web Apps", "Web", "Application Platforms"),
        // Storage
        ("Storage", "Storage", "Storage Platforms"),
        ("Backup", "Storage", "Backup Storage"),
        ("Azure NetApp Files", "Storage", "File Storage"),
        // Networking
        ("Bandwidth", "Networking", "Network Connectivity"),
        ("Virtual Network", "Networking", "Network Connectivity"),
        ("VPN Gateway", "Networking", "Network Connectivity"),
        ("ExpressRoute", "Networking", "Network Connectivity"),
        ("Networking", "Networking", "Other (Networking)"),
        ("Load Balancer", "Networking", "Application Networking"),
        (
            "Application Gateway",
            "Networking",
            "Application Networking",
        ),
        ("Content Delivery Network", "Networking", "Content Delivery"),
        ("Azure Front Door Service", "Networking", "Content Delivery"),
        ("Azure Front Door", "Networking", "Content Delivery"),
        ("Azure DNS", "Networking", "Network Routing"),
        ("Traffic Manager", "Networking", "Network Routing"),
        ("Azure Firewall", "Networking", "Network Security"),
        ("Azure DDOS Protection", "Networking", "Network Security"),
        // Databases
        ("SQL Database", "Databases", "Relational Databases"),
        ("SQL Managed Instance", "Databases", "Relational Databases"),
        (
            "Azure Database for PostgreSQL",
            "Databases",
            "Relational Databases",
        ),
        (
            "Azure Database for MySQL",
            "Databases",
            "Relational Databases",
        ),
        (
            "Azure Database for MariaDB",
            "Databases",
            "Relational Databases",
        ),
        ("Azure Cosmos DB", "Databases", "NoSQL Databases"),
        ("Redis Cache", "Databases", "Caching"),
        ("Azure Cache for Redis", "Databases", "Caching"),
        ("Azure Synapse Analytics", "Databases", "Data Warehouses"),
        ("SQL Data Warehouse", "Databases", "Data Warehouses"),
        // Analytics
        ("HDInsight", "Analytics", "Data Processing"),
        ("Azure Databricks", "Analytics", "Data Processing"),
        ("Data Factory", "Analytics", "Data Processing"),
        ("Azure Data Factory v2", "Analytics", "Data Processing"),
        ("Azure Data Explorer", "Analytics", "Analytics Platforms"),
        ("Stream Analytics", "Analytics", "Streaming Analytics"),
        ("Power BI Embedded", "Analytics", "Business Intelligence"),
        ("Azure Cognitive Search", "Analytics", "Search"),
        ("Azure AI Search", "Analytics", "Search"),
        // AI and Machine Learning
        (
            "Cognitive Services",
            "AI and Machine Learning",
            "AI Platforms",
        ),
        (
            "Azure AI Services",
            "AI and Machine Learning",
            "AI Platforms",
        ),
        ("Azure OpenAI", "AI and Machine Learning", "Generative AI"),
        (
            "Azure OpenAI Service",
            "AI and Machine Learning",
            "Generative AI",
        ),
        (
            "Machine Learning",
            "AI and Machine Learning",
            "Machine Learning",
        ),
        (
            "Azure Machine Learning",
            "AI and Machine Learning",
            "Machine Learning",
        ),
        ("Azure Bot Service", "AI and Machine Learning", "Bots"),
        // Management and Governance
        (
            "Log Analytics",
            "Management and Governance",
            "Observability",
        ),
        (
            "Azure Monitor",
            "Management and Governance",
            "Observability",
        ),
        (
            "Application Insights",
            "Management and Governance",
            "Observability",
        ),
        (
            "Insight and Analytics",
            "Management and Governance",
            "Observability",
        ),
        ("Support", "Management and Governance", "Support"),
        (
            "Azure Site Recovery",
            "Management and Governance",
            "Disaster Recovery",
        ),
        (
            "Automation",
            "Management and Governance",
            "Other (Management and Governance)",
        ),
        // Security and Identity
        ("Key Vault", "Security", "Secret Management"),
        (
            "Microsoft Defender for Cloud",
            "Security",
            "Threat Detection and Response",
        ),
        (
            "Security Center",
            "Security",
            "Threat Detection and Response",
        ),
        ("Sentinel", "Security", "Threat Detection and Response"),
        (
            "Microsoft Sentinel",
            "Security",
            "Threat Detection and Response",
        ),
        (
            "Azure Active Directory",
            "Identity",
            "Identity and Access Management",
        ),
        (
            "Azure Active Directory B2C",
            "Identity",
            "Identity and Access Management",
        ),
        (
            "Microsoft Entra ID",
            "Identity",
            "Identity and Access Management",
        ),
        // Integration, IoT, developer tools, media, migration
        ("Service Bus", "Integration", "Messaging"),
        ("Event Hubs", "Integration", "Messaging"),
        ("Event Grid", "Integration", "Messaging"),
        ("API Management", "Integration", "API Management"),
        ("Logic Apps", "Integration", "Workflow Orchestration"),
        ("IoT Hub", "Internet of Things", "IoT Platforms"),
        ("IoT Central", "Internet of Things", "IoT Platforms"),
        (
            "Time Series Insights",
            "Internet of Things",
            "IoT Analytics",
        ),
        ("Azure DevOps", "Developer Tools", "Developer Platforms"),
        (
            "Visual Studio Subscription",
            "Developer Tools",
            "Development Environments",
        ),
        ("Azure Load Testing", "Developer Tools", "Quality Assurance"),
        ("Media Services", "Media", "Media Streaming"),
        ("Notification Hubs", "Mobile", "Other (Mobile)"),
        ("Azure Migrate", "Migration", "Resource Migration"),
        (
            "Azure Database Migration Service",
            "Migration",
            "Data Migration",
        ),
    ];
    TABLE
        .iter()
        .find(|(name, _, _)| name.eq_ignore_ascii_case(meter_category.trim()))
        .map_or(("Other", "Other (Other)"), |&(_, c, s)| (c, s))
}

/// UnitOfMeasure → FOCUS unit (see [`focus_unit`]), memoised per unit.
#[derive(Default)]
struct Units(HashMap<String, String>);

impl Units {
    fn get<'a>(&'a mut self, uom: &'a str) -> &'a str {
        if uom.is_empty() {
            // PricingUnit must not be null next to a quantity.
            return "Units";
        }
        if !uom.contains('/') {
            return uom;
        }
        if !self.0.contains_key(uom) {
            let v = focus_unit(uom).unwrap_or_else(|| uom.to_string());
            self.0.insert(uom.to_string(), v);
        }
        self.0.get(uom).map_or(uom, String::as_str)
    }
}

const TIME_UNITS: [&str; 6] = ["Year", "Month", "Day", "Hour", "Minute", "Second"];

/// The FOCUS spelling of the Enterprise Agreement's per-time units, which FOCUS's
/// unit format has no place for: `1/Month` (one unit for a month, e.g. a disk)
/// is `Months`, `1 GB/Month` (a GB for a month) is `GB-Months`. Every other unit
/// is kept as the price sheet spells it (`1 Hour`, `10 GB` already are FOCUS
/// units); `None` when there is nothing to rewrite.
fn focus_unit(uom: &str) -> Option<String> {
    let (left, time) = uom.rsplit_once('/')?;
    let time = TIME_UNITS.iter().find(|t| **t == time.trim())?;
    let left = left.trim();
    if left == "1" {
        return Some(format!("{time}s"));
    }
    let unit = left.strip_prefix("1 ")?.trim();
    let words_ok = !unit.is_empty()
        && unit.split(' ').all(|w| {
            w.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
                && w.bytes().all(|c| c.is_ascii_alphanumeric())
        });
    words_ok.then(|| format!("{unit}-{time}s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_order_matches_the_cell_index() {
        for (i, c) in F::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
    }

    /// The FOCUS 1.2 columns a dataset must have (21 mandatory), should have (4
    /// recommended), and the conditional ones that apply to Meterbook, with the
    /// validator's types.
    #[test]
    fn schema_has_the_focus_columns_with_their_types() {
        let s = schema();
        let find = |name: &str| {
            s.iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("missing column {name}"))
        };
        let mandatory = [
            "BilledCost",
            "BillingAccountId",
            "BillingAccountName",
            "BillingCurrency",
            "BillingPeriodEnd",
            "BillingPeriodStart",
            "ChargeCategory",
            "ChargeClass",
            "ChargeDescription",
            "ChargePeriodEnd",
            "ChargePeriodStart",
            "ContractedCost",
            "EffectiveCost",
            "InvoiceIssuerName",
            "ListCost",
            "PricingQuantity",
            "PricingUnit",
            "ProviderName",
            "PublisherName",
            "ServiceCategory",
            "ServiceName",
        ];
        let recommended = [
            "AvailabilityZone",
            "ChargeFrequency",
            "InvoiceId",
            "ServiceSubcategory",
        ];
        let conditional = [
            // Always null; see its column.
            "CommitmentDiscountStatus",
            "ConsumedQuantity",
            "ConsumedUnit",
            "ContractedUnitPrice",
            "ListUnitPrice",
            "PricingCategory",
            "RegionId",
            "RegionName",
            "ResourceId",
            "ResourceName",
            "SkuId",
            "SkuMeter",
            "SkuPriceDetails",
            "SkuPriceId",
            "SubAccountId",
            "SubAccountName",
            "Tags",
        ];
        assert_eq!(mandatory.len(), 21);
        for name in mandatory.iter().chain(&recommended).chain(&conditional) {
            find(name);
        }
        for name in ["BilledCost", "EffectiveCost", "ContractedCost", "ListCost"] {
            assert_eq!(find(name).ty, ColType::Decimal { scale: 18 }, "{name}");
            assert!(!find(name).nullable, "{name}");
        }
        for name in ["ListUnitPrice", "ContractedUnitPrice"] {
            assert_eq!(find(name).ty, ColType::Decimal { scale: 12 }, "{name}");
        }
        for name in ["ConsumedQuantity", "PricingQuantity"] {
            assert_eq!(find(name).ty, ColType::Decimal { scale: 6 }, "{name}");
        }
        for name in [
            "BillingPeriodStart",
            "BillingPeriodEnd",
            "ChargePeriodStart",
            "ChargePeriodEnd",
        ] {
            assert_eq!(find(name).ty, ColType::Timestamp, "{name}");
            assert!(!find(name).nullable, "{name}");
        }
        // Every other FOCUS column is a string; custom ones come last, prefixed.
        let numeric_or_time = 12;
        let strings = s.iter().filter(|c| c.ty == ColType::Text).count();
        assert_eq!(strings + numeric_or_time, s.len());
        let first_custom = s
            .iter()
            .position(|c| c.name.starts_with("x_"))
            .unwrap_or(s.len());
        assert_eq!(
            first_custom,
            mandatory.len() + recommended.len() + conditional.len()
        );
        assert!(s[first_custom..].iter().all(|c| c.name.starts_with("x_")));
    }

    #[test]
    fn service_categories_come_from_focus_lists() {
        assert_eq!(
            service_category("virtual machines"),
            ("Compute", "Virtual Machines")
        );
        assert_eq!(
            service_category("Bandwidth"),
            ("Networking", "Network Connectivity")
        );
        assert_eq!(service_category("Marketplace"), ("Other", "Other (Other)"));
        assert_eq!(service_category(""), ("Other", "Other (Other)"));
    }

    #[test]
    fn per_time_units_become_focus_units() {
        assert_eq!(focus_unit("1/Month").as_deref(), Some("Months"));
        assert_eq!(focus_unit("1/Day").as_deref(), Some("Days"));
        assert_eq!(focus_unit("1 GB/Month").as_deref(), Some("GB-Months"));
        assert_eq!(
            focus_unit("1 Host Unit/Hour").as_deref(),
            Some("Host Unit-Hours")
        );
        for kept in [
            "1 Hour",
            "10 GB",
            "GB/Month",
            "10 GB/Month",
            "1/Fortnight",
            "1 GB-x/Day",
        ] {
            assert_eq!(focus_unit(kept), None, "{kept}");
        }
        let mut units = Units::default();
        assert_eq!(units.get("1 GB/Month"), "GB-Months");
        assert_eq!(units.get("1 Hour"), "1 Hour");
        assert_eq!(units.get(""), "Units");
    }

    #[test]
    fn resource_names_are_the_last_path_segment() {
        assert_eq!(resource_name("/subs/x/vm-01"), Some("vm-01"));
        assert_eq!(resource_name("/subs/x/vm-01/"), Some("vm-01"));
        assert_eq!(resource_name("vm-01"), None);
        assert_eq!(resource_name(""), None);
    }

    #[test]
    fn spans_of_entries() {
        let d = |s: &str| s.parse::<Day>().unwrap();
        let booked = UsageSelection {
            booked: Some("202602".parse().unwrap()),
            ..Default::default()
        };
        assert!(in_span(&booked, d("2026-02-28")));
        assert!(!in_span(&booked, d("2026-03-01")));
        let range = UsageSelection {
            from: Some(d("2026-02-10")),
            to: Some(d("2026-02-20")),
            ..Default::default()
        };
        assert!(in_span(&range, d("2026-02-10")));
        assert!(in_span(&range, d("2026-02-20")));
        assert!(!in_span(&range, d("2026-02-21")));
    }
}
