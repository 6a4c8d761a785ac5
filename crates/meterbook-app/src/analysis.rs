//! Cost analysis: usage and charges of a date range grouped by one dimension
//! (a tag key, resource group, meter, region, subscription, department,
//! account, service or charge type), filtered by others, per day or month,
//! actual and accumulated, within the caller's reach.
//!
//! **Why the facts are scanned.** Tags, resource groups and regions live only
//! in the usage facts (the daily sums the other pages read drop them), so the
//! analysis streams the facts of each billing period it touches once
//! ([`meterbook_io::report::analysis::period_cells`], through the
//! usage-details report's own row resolution and rating: a row's cost is the
//! same here as in the download) and sums them into cells keyed by (bucket,
//! group, whether the filters keep it). No row is kept.
//!
//! **How figures tie out** (docs/design-notes.md, "Figures tie out"): a
//! billing period's charges are the scope's figure
//! ([`figures::scope_charges`]: the statement's for the enterprise, the
//! rounded exact sum for a department or account), allocated over *all* that
//! period's cells of the grouping ([`figures::allocate`], largest remainder,
//! cells in key order) — whatever the date range or filters. The date range
//! and the filters then only drop cells, so a cell has the same value in every
//! query that shows it, and the cells of a full period (no filter) add up to
//! the statement exactly. A row is in the billing period it is booked in; a
//! correction booked in a later period shows on that period's first day (as
//! the statement bills it), so a day's cells belong to one period.
//!
//! **Bounds.** Everything a client controls is bounded: at most 92 days
//! daily or 36 months monthly, inside the term; at most
//! [`MAX_FILTERS`] filter values of at most [`MAX_VALUE`] bytes; at most
//! [`MAX_CELLS`] cells shown. Anything else is [`AppError::Invalid`].
//!
//! **Hidden costs.** Where the caller may not see costs
//! ([`Access::sees_charges`] false), the analysis shows records only: costs
//! read `None` (the API writes `null`, the CSV an empty field), as the other
//! pages draw records where charges are hidden.

use crate::{Access, AppError, AppResult, Span};
use meterbook_core::figures;
use meterbook_core::{Day, Money, Period};
use meterbook_io::report::analysis as io;
use std::collections::{BTreeMap, HashMap};

pub use meterbook_io::report::analysis::{Dimension, Granularity, MAX_VALUE, NONE, UNTAGGED};

/// Longest daily analysis, in days.
pub const MAX_DAYS: i32 = 92;
/// Longest monthly analysis, in billing periods.
pub const MAX_MONTHS: usize = 36;
/// Filter values a query may name (all dimensions together).
pub const MAX_FILTERS: usize = 50;
/// Most cells (bucket × group) an analysis shows.
pub const MAX_CELLS: usize = 200_000;

/// One cost analysis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalysisQuery {
    pub group_by: Dimension,
    /// Values per dimension: a row is kept when, for every dimension named,
    /// its value is one of the values (values of one dimension are ORed,
    /// dimensions ANDed). A value outside the caller's reach matches nothing.
    pub filters: Vec<(Dimension, Vec<String>)>,
    pub granularity: Granularity,
    /// Usage dates, inclusive. Monthly: the billing periods of these dates,
    /// whole.
    pub start: Day,
    pub end: Day,
}

/// One cell: a group's figures in one bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalysisRow {
    /// The day, or the first day of the billing period (monthly).
    pub bucket: Day,
    pub group: String,
    pub records: i64,
    /// Charges (`None` where the caller may not see costs).
    pub cost: Option<Money>,
    /// The group's running sum of `cost` through this bucket, within the range.
    pub accumulated: Option<Money>,
}

/// A group's totals over the range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupTotal {
    pub group: String,
    pub records: i64,
    pub cost: Option<Money>,
}

/// The result of [`Access::cost_analysis`].
#[derive(Clone, Debug)]
pub struct Analysis {
    pub query: AnalysisQuery,
    /// Whether costs show (otherwise they read `None`).
    pub costs: bool,
    pub currency: String,
    pub exponent: u32,
    /// Every bucket of the range, in order.
    pub buckets: Vec<Day>,
    /// Cells with usage, by bucket then group.
    pub rows: Vec<AnalysisRow>,
    /// Groups, by cost (records where costs are hidden) descending, then name.
    pub groups: Vec<GroupTotal>,
    /// Per bucket, all groups together.
    pub bucket_costs: Vec<Option<Money>>,
    pub bucket_records: Vec<i64>,
    pub total_records: i64,
    pub total_cost: Option<Money>,
}

impl Analysis {
    /// How a bucket is written: `2025-01-31`, or `2025-01` monthly.
    pub fn bucket_label(&self, d: Day) -> String {
        match self.query.granularity {
            Granularity::Daily => d.to_string(),
            Granularity::Monthly => {
                let p = d.period();
                format!("{:04}-{:02}", p.year(), p.month())
            }
        }
    }

    /// Streams the cells as CSV (a header row, then one line a cell):
    /// `Date` (or `Month`), the grouping's name, `Records`, `Cost`,
    /// `AccumulatedCost`, `Currency`. Costs are empty where hidden.
    pub fn write_csv(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut line = String::with_capacity(256);
        let bucket = match self.query.granularity {
            Granularity::Daily => "Date",
            Granularity::Monthly => "Month",
        };
        line.push_str(bucket);
        line.push(',');
        csv_field(&mut line, &self.query.group_by.name());
        line.push_str(",Records,Cost,AccumulatedCost,Currency\n");
        out.write_all(line.as_bytes())?;
        let money = |m: Option<Money>| m.map(|m| m.format(self.exponent)).unwrap_or_default();
        for r in &self.rows {
            line.clear();
            line.push_str(&self.bucket_label(r.bucket));
            line.push(',');
            csv_field(&mut line, &r.group);
            line.push(',');
            line.push_str(&r.records.to_string());
            line.push(',');
            line.push_str(&money(r.cost));
            line.push(',');
            line.push_str(&money(r.accumulated));
            line.push(',');
            line.push_str(&self.currency);
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        Ok(())
    }
}

/// Writes `s` as a CSV field: quoted when it holds a comma, quote or line
/// break, and prefixed with `'` when a spreadsheet would read it as a formula.
fn csv_field(out: &mut String, s: &str) {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula || s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if formula {
            out.push('\'');
        }
        for c in s.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn out_of_range(_: meterbook_core::fixed::Overflow) -> AppError {
    AppError::Internal("a figure summed here exceeds the supported range".into())
}

impl Access {
    /// Checks `q` against the bounds and the term.
    fn check_analysis(&self, q: &AnalysisQuery) -> AppResult<()> {
        if q.end < q.start {
            return Err(AppError::Invalid("endDate is before startDate".to_string()));
        }
        let (start, end) = (self.e.start, self.e.end);
        if q.start < start || q.end > end {
            return Err(AppError::Invalid(format!(
                "the dates must be inside the enrollment's term, {start} to {end}"
            )));
        }
        match q.granularity {
            Granularity::Daily if q.end.raw() - q.start.raw() >= MAX_DAYS => {
                return Err(AppError::Invalid(format!(
                    "a daily analysis covers at most {MAX_DAYS} days; use monthly for longer ranges"
                )))
            }
            Granularity::Monthly
                if q.start.period().through(q.end.period()).count() > MAX_MONTHS =>
            {
                return Err(AppError::Invalid(format!(
                    "a monthly analysis covers at most {MAX_MONTHS} months"
                )))
            }
            _ => {}
        }
        let values: usize = q.filters.iter().map(|(_, v)| v.len().max(1)).sum();
        if values > MAX_FILTERS {
            return Err(AppError::Invalid(format!(
                "at most {MAX_FILTERS} filter values"
            )));
        }
        for (d, vs) in &q.filters {
            if let Dimension::TagKey(k) = d {
                if k.is_empty() || k.len() > MAX_VALUE {
                    return Err(AppError::Invalid(format!(
                        "a tag key is 1 to {MAX_VALUE} bytes"
                    )));
                }
            }
            if vs.iter().any(|v| v.len() > MAX_VALUE) {
                return Err(AppError::Invalid(format!(
                    "a filter value is at most {MAX_VALUE} bytes"
                )));
            }
        }
        if let Dimension::TagKey(k) = &q.group_by {
            if k.is_empty() || k.len() > MAX_VALUE {
                return Err(AppError::Invalid(format!(
                    "a tag key is 1 to {MAX_VALUE} bytes"
                )));
            }
        }
        Ok(())
    }

    /// The cost analysis `q` within the caller's reach (see the module doc
    /// for how its figures tie out to the statement).
    pub fn cost_analysis(&self, q: &AnalysisQuery) -> AppResult<Analysis> {
        self.check_analysis(q)?;
        let store = self.app.store();
        let exp = self.e.currency.exponent();
        let costs = self.sees_charges();
        let (first, last) = (q.start.period(), q.end.period());
        let periods: Vec<Period> = first.through(last).collect();
        let (start, end) = match q.granularity {
            Granularity::Daily => (q.start, q.end),
            Granularity::Monthly => (first.first_day(), last.first_day()),
        };
        // The periods' figures: the statement's (enterprise) or the scope's
        // rounded exact sum, as every other page shows them.
        let totals = if costs {
            let rows = if self.scope() == meterbook_core::access::Scope::Enrollment {
                Vec::new()
            } else {
                self.summary_rows(first, last)?
            };
            figures::scope_charges(store, self.number(), self.scope(), &rows, first, last, exp)?
        } else {
            Vec::new()
        };
        let mut shown: BTreeMap<(Day, String), (i64, Option<Money>)> = BTreeMap::new();
        for (i, &p) in periods.iter().enumerate() {
            let cells = io::period_cells(
                store,
                self.number(),
                self.usage_filter(Span::Period(p), &Default::default()),
                self.report_meta(Span::Period(p)),
                p,
                &q.group_by,
                &q.filters,
                q.granularity,
            )?;
            // Every cell of the period shares its figure, whatever the range
            // and the filters; they only choose which cells show.
            let money: Vec<Option<Money>> = if costs && !cells.is_empty() {
                io::allocate_cells(totals[i], &cells, exp)
                    .map_err(out_of_range)?
                    .into_iter()
                    .map(Some)
                    .collect()
            } else {
                vec![None; cells.len()]
            };
            for (c, m) in cells.into_iter().zip(money) {
                if !c.kept || c.bucket < start || c.bucket > end {
                    continue;
                }
                if shown.len() >= MAX_CELLS {
                    return Err(AppError::Invalid(format!(
                        "the analysis has more than {MAX_CELLS} cells; \
                         narrow it with a filter, a shorter range or monthly granularity"
                    )));
                }
                shown.insert((c.bucket, c.group), (c.records, m));
            }
        }
        self.assemble(q, costs, exp, start, end, shown)
    }

    fn assemble(
        &self,
        q: &AnalysisQuery,
        costs: bool,
        exp: u32,
        start: Day,
        end: Day,
        shown: BTreeMap<(Day, String), (i64, Option<Money>)>,
    ) -> AppResult<Analysis> {
        let mut buckets = Vec::new();
        match q.granularity {
            Granularity::Daily => {
                let mut d = start;
                while d <= end {
                    buckets.push(d);
                    d = d.succ();
                }
            }
            Granularity::Monthly => {
                buckets.extend(start.period().through(end.period()).map(Period::first_day))
            }
        }
        let index: HashMap<Day, usize> = buckets.iter().enumerate().map(|(i, d)| (*d, i)).collect();
        let zero = costs.then_some(Money::ZERO);
        let add = |a: Option<Money>, b: Option<Money>| -> AppResult<Option<Money>> {
            match (a, b) {
                (Some(a), Some(b)) => Ok(Some(a.checked_add(b).map_err(out_of_range)?)),
                _ => Ok(None),
            }
        };
        let mut bucket_costs = vec![zero; buckets.len()];
        let mut bucket_records = vec![0i64; buckets.len()];
        let mut group_totals: BTreeMap<String, (i64, Option<Money>)> = BTreeMap::new();
        let mut rows = Vec::with_capacity(shown.len());
        for ((bucket, group), (records, cost)) in shown {
            let i = index[&bucket];
            bucket_costs[i] = add(bucket_costs[i], cost)?;
            bucket_records[i] += records;
            let g = group_totals.entry(group.clone()).or_insert((0, zero));
            g.0 += records;
            g.1 = add(g.1, cost)?;
            rows.push(AnalysisRow {
                bucket,
                group,
                records,
                cost,
                accumulated: g.1,
            });
        }
        let total_records = bucket_records.iter().sum();
        let mut total_cost = zero;
        for c in &bucket_costs {
            total_cost = add(total_cost, *c)?;
        }
        let mut groups: Vec<GroupTotal> = group_totals
            .into_iter()
            .map(|(group, (records, cost))| GroupTotal {
                group,
                records,
                cost,
            })
            .collect();
        let weight = |g: &GroupTotal| g.cost.map_or(i128::from(g.records), |c| i128::from(c.0));
        groups.sort_by(|a, b| {
            weight(b)
                .cmp(&weight(a))
                .then_with(|| a.group.cmp(&b.group))
        });
        Ok(Analysis {
            query: q.clone(),
            costs,
            currency: self.e.currency.code().to_string(),
            exponent: exp,
            buckets,
            rows,
            groups,
            bucket_costs,
            bucket_records,
            total_records,
            total_cost,
        })
    }
}

/// A query as the API and the portal receive it: names and dates as text,
/// any of them absent (see [`Access::analysis_query`] for the defaults).
#[derive(Clone, Debug, Default)]
pub struct RawQuery {
    pub group_by: Option<String>,
    pub granularity: Option<String>,
    /// `YYYY-MM-DD`.
    pub start: Option<String>,
    pub end: Option<String>,
    /// `DIMENSION=VALUE` each (`region=westeurope`, `tag:env=prod`); values
    /// of one dimension are ORed, dimensions ANDed.
    pub filters: Vec<String>,
}

impl Access {
    /// Reads `raw` into a query. Defaults: grouped by subscription, daily;
    /// the range ends today (kept inside the term) and starts on its billing
    /// period's first day (daily) or eleven periods earlier (monthly), never
    /// before the term.
    pub fn analysis_query(&self, raw: &RawQuery) -> AppResult<AnalysisQuery> {
        let group_by = Dimension::parse(raw.group_by.as_deref().unwrap_or("subscription"))
            .map_err(AppError::Invalid)?;
        let granularity = Granularity::parse(raw.granularity.as_deref().unwrap_or("daily"))
            .map_err(AppError::Invalid)?;
        let day = |v: &str, name: &str| -> AppResult<Day> {
            v.parse::<Day>().map_err(|_| {
                AppError::Invalid(format!(
                    "{name} is a date, YYYY-MM-DD, not {:?}",
                    io::truncate(v)
                ))
            })
        };
        let start = raw
            .start
            .as_deref()
            .map(|v| day(v, "startDate"))
            .transpose()?;
        let end = raw.end.as_deref().map(|v| day(v, "endDate")).transpose()?;
        let (term_start, term_end) = (self.e.start, self.e.end);
        let today = self.today().clamp(term_start, term_end);
        let end = match (end, start) {
            (Some(e), _) => e,
            (None, Some(s)) if s > today => s.period().last_day().min(term_end),
            (None, _) => today,
        };
        let start = match start {
            Some(s) => s,
            None => {
                let mut p = end.period();
                if granularity == Granularity::Monthly {
                    for _ in 0..11 {
                        p = p.prev();
                    }
                }
                p.first_day().max(term_start)
            }
        };
        let mut filters: Vec<(Dimension, Vec<String>)> = Vec::new();
        if raw.filters.len() > MAX_FILTERS {
            return Err(AppError::Invalid(format!(
                "at most {MAX_FILTERS} filter values"
            )));
        }
        for f in &raw.filters {
            let Some((d, v)) = f.split_once('=') else {
                return Err(AppError::Invalid(format!(
                    "a filter is DIMENSION=VALUE (region=westeurope, tag:env=prod), not {:?}",
                    io::truncate(f)
                )));
            };
            let d = Dimension::parse(d).map_err(AppError::Invalid)?;
            match filters.iter_mut().find(|(x, _)| *x == d) {
                Some((_, vs)) => vs.push(v.to_string()),
                None => filters.push((d, vec![v.to_string()])),
            }
        }
        let q = AnalysisQuery {
            group_by,
            filters,
            granularity,
            start,
            end,
        };
        self.check_analysis(&q)?;
        Ok(q)
    }
}
