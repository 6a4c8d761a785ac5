//! Rates, charges and statements computed from a store's rollups and price
//! sheets — never from raw usage rows.

use crate::calendar::{Day, Period};
use crate::enrollment::EnrollmentNumber;
use crate::fixed::{Amount, Price, Quantity};
use crate::prices::{ChargeKind, MeterPrice};
use crate::statement::{ChargeTotals, Statement};
use crate::store::{EntryKind, MetadataStore, StoreError, StoreResult, UsageStore};
use std::collections::HashMap;

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
            *q.entry(r.meter).or_default() += r.quantity;
        }
    }
    q.into_iter()
        .map(|(m, q)| {
            let price = sheet.get(&m).ok_or_else(|| {
                StoreError::Backend(format!("meter key {m} has usage in {p} but no price"))
            })?;
            Ok((m, price.resource_rate(q)))
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
            r.quantity * rates.get(&r.meter).copied().unwrap_or(Price::ZERO)
        };
        totals.add(kind, amount);
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
        );
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
