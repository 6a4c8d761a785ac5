//! The core of cost analysis: the usage facts of one billing period summed
//! into cells (bucket, group, whether the filters keep the row), each with its
//! exact cost, and a period's figure allocated over them. The use-case layer
//! (`meterbook_app::analysis`) bounds the query, picks the figure (the
//! statement's, or a department's or account's rounded sum), drops the cells
//! outside the range or the filters and assembles what is shown; the
//! reconciliation property runs these same functions on every store.
//!
//! Rows are resolved and rated by the usage-details report itself
//! ([`UsageReport::for_each_row`]): a row's cost here is its cost in the
//! download. Nothing is buffered but the cells.

use crate::report::usage::{DetailRow, ReportError, UsageFilter, UsageReport};
use crate::report::ReportMeta;
use meterbook_core::figures;
use meterbook_core::fixed::Overflow;
use meterbook_core::prices::ChargeKind;
use meterbook_core::store::{Flow, MetadataStore, UsageStore};
use meterbook_core::{Amount, Day, EnrollmentNumber, Money, Period};
use std::collections::HashMap;

/// Longest filter value or tag key, in bytes.
pub const MAX_VALUE: usize = 512;
/// The group of rows without the tag a tag analysis groups by.
pub const UNTAGGED: &str = "(untagged)";
/// The group of rows with an empty value (no resource group, no region…).
pub const NONE: &str = "(none)";

/// What cells are grouped or filtered by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// A tag's value under this key (rows without it: [`UNTAGGED`]).
    TagKey(String),
    ResourceGroup,
    /// The meter as reports name it ("Category - SubCategory - Name - Region").
    Meter,
    /// The resource's location.
    Region,
    /// The subscription's name.
    Subscription,
    Department,
    Account,
    /// The meter's category.
    Service,
    /// `commitment`, `billedSeparately` or `marketplace`.
    ChargeType,
}

impl Dimension {
    /// Parses the API's and the portal's name: `tag:KEY`, `resourceGroup`,
    /// `meter`, `region`, `subscription`, `department`, `account`, `service`,
    /// `chargeType`.
    pub fn parse(s: &str) -> Result<Dimension, String> {
        if let Some(k) = s.strip_prefix("tag:") {
            if k.is_empty() || k.len() > MAX_VALUE {
                return Err(format!("a tag key is 1 to {MAX_VALUE} bytes (tag:KEY)"));
            }
            return Ok(Dimension::TagKey(k.to_string()));
        }
        Ok(match s {
            "resourceGroup" => Dimension::ResourceGroup,
            "meter" => Dimension::Meter,
            "region" => Dimension::Region,
            "subscription" => Dimension::Subscription,
            "department" => Dimension::Department,
            "account" => Dimension::Account,
            "service" => Dimension::Service,
            "chargeType" => Dimension::ChargeType,
            _ => {
                return Err(format!(
                    "unknown dimension {:?}: use tag:KEY, resourceGroup, meter, region, \
                     subscription, department, account, service or chargeType",
                    truncate(s)
                ))
            }
        })
    }

    /// The name [`Dimension::parse`] reads.
    pub fn name(&self) -> String {
        match self {
            Dimension::TagKey(k) => format!("tag:{k}"),
            Dimension::ResourceGroup => "resourceGroup".into(),
            Dimension::Meter => "meter".into(),
            Dimension::Region => "region".into(),
            Dimension::Subscription => "subscription".into(),
            Dimension::Department => "department".into(),
            Dimension::Account => "account".into(),
            Dimension::Service => "service".into(),
            Dimension::ChargeType => "chargeType".into(),
        }
    }
}

/// At most 64 characters of `s` (for messages).
pub fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Per day or per billing period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    Daily,
    Monthly,
}

impl Granularity {
    pub fn parse(s: &str) -> Result<Granularity, String> {
        match s {
            "daily" => Ok(Granularity::Daily),
            "monthly" => Ok(Granularity::Monthly),
            _ => Err("granularity is daily or monthly".to_string()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Granularity::Daily => "daily",
            Granularity::Monthly => "monthly",
        }
    }
}

/// A dimension's value of a row, borrowed where it can be.
pub fn value_of<'a>(
    d: &Dimension,
    r: &DetailRow<'a>,
    tags: &'a mut HashMap<String, HashMap<String, String>>,
) -> &'a str {
    let or_none = |s: &'a str| if s.is_empty() { NONE } else { s };
    match d {
        Dimension::TagKey(k) => {
            let t = r.fact.tags;
            if t.is_empty() {
                return UNTAGGED;
            }
            if !tags.contains_key(t) {
                // Tags were checked at ingest: a JSON object of strings.
                let parsed: HashMap<String, String> = serde_json::from_str(t).unwrap_or_default();
                tags.insert(t.to_string(), parsed);
            }
            match tags.get(t).and_then(|m| m.get(k)) {
                Some(v) => v.as_str(),
                None => UNTAGGED,
            }
        }
        Dimension::ResourceGroup => or_none(r.fact.resource_group),
        Dimension::Meter => or_none(&r.meter.product),
        Dimension::Region => or_none(r.fact.resource_location),
        Dimension::Subscription => match r.sub {
            Some(s) if !s.name.is_empty() => &s.name,
            Some(s) => &s.guid,
            None => NONE,
        },
        Dimension::Department => r.dept.map_or(NONE, |d| d.name.as_str()),
        Dimension::Account => r.account.map_or("(unassigned)", |a| a.name.as_str()),
        Dimension::Service => or_none(&r.meter.price.info.meter_category),
        Dimension::ChargeType => match r.meter.kind {
            ChargeKind::Commitment => "commitment",
            ChargeKind::BilledSeparately => "billedSeparately",
            ChargeKind::Marketplace => "marketplace",
        },
    }
}

/// The usage of one bucket and group in one billing period, exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The usage date, or the period's first day (monthly, and corrections:
    /// the statement bills them in the period they are booked in).
    pub bucket: Day,
    pub group: String,
    /// Whether every filter keeps the cell's rows.
    pub kept: bool,
    /// The rows' exact cost (zero where the filter hides costs).
    pub exact: Amount,
    pub records: i64,
}

/// The cells of the rows booked in `p` that `filter` (a viewer's reach; its
/// selection is replaced by `p`) lets through, grouped by `group_by`, each
/// marked kept when every one of `filters` holds (values of a dimension
/// ORed, dimensions ANDed). Cells come in key order: bucket, group, dropped
/// before kept; so the allocation never depends on the scan's order.
#[allow(clippy::too_many_arguments)]
pub fn period_cells<S: MetadataStore + UsageStore + ?Sized>(
    store: &S,
    n: &EnrollmentNumber,
    mut filter: UsageFilter,
    meta: ReportMeta,
    p: Period,
    group_by: &Dimension,
    filters: &[(Dimension, Vec<String>)],
    granularity: Granularity,
) -> Result<Vec<Cell>, ReportError> {
    filter.selection = meterbook_core::store::UsageSelection {
        booked: Some(p),
        ..Default::default()
    };
    let report = UsageReport::prepare(store, n, filter, meta)?;
    let filters: Vec<(&Dimension, Vec<&str>)> = filters
        .iter()
        .map(|(d, v)| (d, v.iter().map(String::as_str).collect()))
        .collect();
    // Group names are interned: a cell key is (bucket, group id, kept).
    let mut names: HashMap<String, u32> = HashMap::new();
    let mut cells: HashMap<(Day, u32, bool), (Amount, i64)> = HashMap::new();
    let mut tags: HashMap<String, HashMap<String, String>> = HashMap::new();
    report.for_each_row(
        store,
        n,
        &mut |r: &DetailRow<'_>| {
            let bucket = match granularity {
                Granularity::Daily if r.fact.day.period() == p => r.fact.day,
                _ => p.first_day(),
            };
            let kept = filters.iter().all(|(d, vs)| {
                let v = value_of(d, r, &mut tags);
                vs.contains(&v)
            });
            let g = value_of(group_by, r, &mut tags);
            let id = match names.get(g) {
                Some(id) => *id,
                None => {
                    let id = names.len() as u32;
                    names.insert(g.to_string(), id);
                    id
                }
            };
            let c = cells.entry((bucket, id, kept)).or_insert((Amount::ZERO, 0));
            // A row's cost is part of a range-checked charge: the sum cannot
            // overflow, but stored data out of range stops the scan cleanly.
            c.0 = c
                .0
                .checked_add(r.cost)
                .map_err(|_| std::io::Error::other("a cell's cost exceeds the supported range"))?;
            c.1 += 1;
            Ok(Flow::Continue)
        },
        &mut |_| true,
    )?;
    let mut by_id: Vec<&str> = vec![""; names.len()];
    for (nm, id) in &names {
        by_id[*id as usize] = nm;
    }
    let mut out: Vec<Cell> = cells
        .into_iter()
        .map(|((bucket, id, kept), (exact, records))| Cell {
            bucket,
            group: by_id[id as usize].to_string(),
            kept,
            exact,
            records,
        })
        .collect();
    out.sort_by(|a, b| (a.bucket, &a.group, a.kept).cmp(&(b.bucket, &b.group, b.kept)));
    Ok(out)
}

/// Splits a period's figure `total` (minor units) over all its `cells`
/// ([`figures::allocate`]: largest remainder, ties to the earlier cell), so
/// they add up to it exactly; one value per cell, in order.
pub fn allocate_cells(total: Money, cells: &[Cell], exponent: u32) -> Result<Vec<Money>, Overflow> {
    let parts: Vec<Amount> = cells.iter().map(|c| c.exact).collect();
    figures::allocate(total, &parts, exponent)
}
