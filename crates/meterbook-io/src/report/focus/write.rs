//! Writing the dataset: the provider's settings, then one row per usage row,
//! purchase and adjustment.

use crate::report::export::ProgressFn;
use crate::report::table::{Cell, TableSink};
use crate::report::usage::{DetailRow, Reach, ReportError, ReportTotals, UsageFilter, UsageReport};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, Flow, MetadataStore, UsageSelection, UsageStore};
use meterbook_core::{Day, EnrollmentNumber, Money, Period, Quantity};

use super::columns::*;
use super::vocabulary::*;

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

/// Calls the export's progress callback this often.
const PROGRESS_EVERY: u64 = 8192;

/// The SKU a monetary commitment is sold as (Purchase rows need a SkuId).
const COMMITMENT_SKU: &str = "MonetaryCommitment";
/// ServiceName of purchases and adjustments: the commitment is no cloud service.
const COMMITMENT_SERVICE: &str = "Monetary Commitment";

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

#[cfg(test)]
mod tests {
    use super::*;

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
