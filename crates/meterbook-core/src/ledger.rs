//! Rates, charges and statements computed from a store's rollups and price
//! sheets — never from raw usage rows.

use crate::calendar::{Day, Period};
use crate::enrollment::EnrollmentNumber;
use crate::fixed::{Amount, Overflow, Price, Quantity};
use crate::limits::{RangeError, UsageGuard};
use crate::prices::{ChargeKind, MeterPrice};
use crate::statement::{ChargeTotals, Statement};
use crate::store::{EntryKind, MetadataStore, StoreError, StoreResult, UsageStore};
use crate::usage::Catalog;
use std::collections::HashMap;
use std::sync::Arc;

/// The error for stored figures that do not fit: the ranges are checked when
/// data is stored, so this means data stored before they were (or a bug).
fn out_of_range(p: Period) -> impl Fn(Overflow) -> StoreError {
    move |_| {
        StoreError::Invalid(format!(
            "the stored usage of period {p} exceeds the supported range"
        ))
    }
}

/// A period's price sheet by meter key.
pub type Sheet = HashMap<i64, MeterPrice>;

pub fn sheet<S: MetadataStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    p: Period,
) -> StoreResult<Sheet> {
    Ok(s.price_sheet(n, p)?.into_iter().collect())
}

/// The ResourceRate of every meter used in period `p`: locked if the period is
/// closed, else C(Q)/Q of the current totals.
pub fn period_rates<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    p: Period,
) -> StoreResult<HashMap<i64, Price>> {
    let closed = s.periods(n)?.iter().any(|i| i.period == p && i.closed);
    if closed {
        return Ok(s.locked_rates(n, p)?.into_iter().collect());
    }
    let sheet = sheet(s, n, p)?;
    let mut q: HashMap<i64, Quantity> = HashMap::new();
    for r in s.rollups(n, p)? {
        if !r.correction {
            let total = q.entry(r.meter).or_default();
            *total = total.checked_add(r.quantity).map_err(out_of_range(p))?;
        }
    }
    q.into_iter()
        .map(|(m, q)| {
            let price = sheet.get(&m).ok_or_else(|| {
                StoreError::Backend(format!("meter key {m} has usage in {p} but no price"))
            })?;
            Ok((m, price.resource_rate(q).map_err(out_of_range(p))?))
        })
        .collect()
}

/// Exact charges of period `p` by kind, from its rollups.
pub fn charges<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    p: Period,
) -> StoreResult<ChargeTotals> {
    let rates = period_rates(s, n, p)?;
    let mut sheets: HashMap<Period, Sheet> = HashMap::new();
    let mut totals = ChargeTotals::default();
    for r in s.rollups(n, p)? {
        let sheet = match sheets.entry(r.rate_period) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(sheet(s, n, r.rate_period)?),
        };
        let kind = sheet
            .get(&r.meter)
            .map_or(ChargeKind::Commitment, |m| m.info.kind());
        let amount: Amount = if r.correction {
            r.fixed_cost
        } else {
            let rate = rates.get(&r.meter).copied().unwrap_or(Price::ZERO);
            r.quantity.checked_mul(rate).map_err(out_of_range(p))?
        };
        totals.add(kind, amount).map_err(out_of_range(p))?;
    }
    Ok(totals)
}

/// Statements from the first period of the term through `through`, in order
/// (each begins with the previous one's ending balance).
pub fn statements<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    through: Period,
) -> StoreResult<Vec<(Statement, ChargeTotals)>> {
    let e = s.enrollment(n)?;
    let first = e.first_period();
    if through < first || through > e.last_period() {
        return Err(StoreError::Invalid(format!(
            "period {through} is outside the enrollment's term {} to {}",
            e.start, e.end
        )));
    }
    let entries = s.entries(n)?;
    let mut out = Vec::new();
    let mut balance = crate::fixed::Money::ZERO;
    for p in first.through(through) {
        let (mut purchases, mut adjustments) = (Vec::new(), Vec::new());
        for (k, en) in &entries {
            if en.date.period() == p {
                match k {
                    EntryKind::Purchase => purchases.push(en.clone()),
                    EntryKind::Adjustment => adjustments.push(en.clone()),
                }
            }
        }
        let c = charges(s, n, p)?;
        let st = Statement::compute(
            p,
            balance,
            purchases,
            adjustments,
            &c,
            e.currency.exponent(),
        )
        .map_err(out_of_range(p))?;
        balance = st.ending_balance;
        out.push((st, c));
    }
    Ok(out)
}

/// The statement of one period.
pub fn statement<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    p: Period,
) -> StoreResult<Statement> {
    Ok(statements(s, n, p)?.pop().expect("at least one period").0)
}

/// Closes the oldest open period once it has ended, locking its rates.
pub fn close_period<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    p: Period,
    today: Day,
) -> StoreResult<()> {
    let periods = s.periods(n)?;
    let info = periods.iter().find(|i| i.period == p).ok_or_else(|| {
        StoreError::Invalid(format!("period {p} is outside the enrollment's term"))
    })?;
    if info.closed {
        return Err(StoreError::Conflict(format!(
            "period {p} is already closed"
        )));
    }
    if let Some(open) = periods.iter().find(|i| !i.closed && i.period < p) {
        return Err(StoreError::Conflict(format!(
            "period {} is still open; periods close in order",
            open.period
        )));
    }
    if p.last_day() >= today {
        return Err(StoreError::Invalid(format!(
            "period {p} has not ended yet (it ends {})",
            p.last_day()
        )));
    }
    let mut rates: Vec<(i64, Price)> = period_rates(s, n, p)?.into_iter().collect();
    rates.sort_unstable();
    s.close_period(n, p, &rates)
}

/// Checks that importing `sheet` as period `p`'s price sheet keeps the
/// enrollment's charges in range (the period's stored usage is repriced at
/// it). `Ok(Err((meter, e)))` names the first meter, in the sheet's order, at
/// which the charges leave the range. The store checks the same inside its
/// import; checking first lets a caller name the file line of that meter.
pub fn check_prices<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    p: Period,
    sheet: &[MeterPrice],
) -> StoreResult<Result<(), (String, RangeError)>> {
    let (catalog, rollups) = limits_view(s, n)?;
    let mut guard = match UsageGuard::for_repricing(Arc::new(catalog), &rollups) {
        Ok(g) => g,
        Err(e) => return Ok(Err((String::new(), e))),
    };
    Ok(guard.reprice(p, sheet))
}

/// What [`UsageGuard`] needs, read through the traits: the term, the price
/// sheets and locked rates of every period, and every rollup.
fn limits_view<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
) -> StoreResult<(Catalog, Vec<crate::store::Rollup>)> {
    let e = s.enrollment(n)?;
    let mut catalog = Catalog {
        term_start: Some(e.start),
        term_end: Some(e.end),
        ..Default::default()
    };
    let mut rollups = Vec::new();
    for info in s.periods(n)? {
        let p = info.period;
        if info.closed {
            catalog.last_closed = Some(p);
            for (m, rate) in s.locked_rates(n, p)? {
                catalog.locked_rates.insert((p, m), rate);
            }
        }
        let sheet = s.price_sheet(n, p)?;
        if !sheet.is_empty() {
            let index = sheet
                .into_iter()
                .map(|(k, m)| (m.info.meter_id.clone(), (k, Arc::new(m))))
                .collect();
            catalog.sheets.insert(p, index);
        }
        rollups.extend(s.rollups(n, p)?);
    }
    Ok((catalog, rollups))
}

/// Closes every open period up to and including `through`, oldest first (as
/// periods close in order); returns the periods it closed, none when they all
/// were. Refuses, closing nothing, when `through` has not ended.
pub fn close_periods_through<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    through: Period,
    today: Day,
) -> StoreResult<Vec<Period>> {
    let periods = s.periods(n)?;
    if !periods.iter().any(|i| i.period == through) {
        return Err(StoreError::Invalid(format!(
            "period {through} is outside the enrollment's term"
        )));
    }
    if through.last_day() >= today {
        return Err(StoreError::Invalid(format!(
            "period {through} has not ended yet (it ends {})",
            through.last_day()
        )));
    }
    let open: Vec<Period> = periods
        .iter()
        .filter(|i| !i.closed && i.period <= through)
        .map(|i| i.period)
        .collect();
    for &p in &open {
        close_period(s, n, p, today)?;
    }
    Ok(open)
}
