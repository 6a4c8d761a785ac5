//! Usage summaries for the portal: usage and charges per billing period,
//! department, account, subscription and service, inside a viewer's scope,
//! computed from the daily usage sums (never from the facts).
//!
//! Costs are exact: a day's summed quantity times the meter's rate equals the
//! sum of its rows' costs, because a row's cost is quantity × rate.

use crate::access::Scope;
use crate::calendar::{Day, Period};
use crate::enrollment::EnrollmentNumber;
use crate::fixed::{Amount, Overflow, Price};
use crate::hierarchy::{Account, Hierarchy};
use crate::ledger::period_rates;
use crate::store::{DailyUsage, MetadataStore, StoreError, StoreResult, UsageStore};
use crate::usage::FastMap;
use std::collections::BTreeMap;

fn out_of_range(_: Overflow) -> StoreError {
    StoreError::Invalid("the stored daily usage exceeds the supported range".into())
}

/// Usage of one billing period (as booked), subscription (with the account
/// and department it belonged to on the usage dates) and meter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    pub period: Period,
    pub department: Option<String>,
    pub account: Option<String>,
    pub subscription: String,
    /// The meter's category (the service).
    pub service: String,
    pub meter_id: String,
    pub unit: String,
    /// In millionths (a sum of quantities).
    pub quantity_micro: i128,
    /// Zero where the viewer may not see costs.
    pub cost: Amount,
    pub rows: i64,
}

/// One day's usage of one subscription and meter as a scope sees it: the
/// stored daily sum, the account it belonged to on that day, and its exact
/// cost (zero where costs do not show).
struct Priced<'a> {
    d: &'a DailyUsage,
    account: Option<&'a Account>,
    cost: Amount,
}

/// Visits the daily usage booked in periods `first..=last` that `scope`
/// covers, each priced as the statement prices it: at its booked period's
/// rate, or at a correction's locked rate. The one place that prices daily
/// usage, so summaries and daily charges ([`daily_costs`]) agree with each
/// other and with the statement's exact charges. Returns the hierarchy read
/// and the last date with usage through `last`, of the whole enrollment and
/// whatever period books it (how far the usage data reaches, whatever the
/// scope and periods).
fn visit_priced<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    scope: Scope,
    show_costs: bool,
    first: Period,
    last: Period,
    mut visit: impl FnMut(&S, Priced<'_>) -> StoreResult<()>,
) -> StoreResult<(Hierarchy, Option<Day>)> {
    let h = s.hierarchy(n)?;
    let mut last_usage: Option<Day> = None;
    // Corrections booked in these periods are dated earlier: read from the term's start.
    let e = s.enrollment(n)?;
    let from = e.start;
    let to = last.last_day();
    // Once per day, subscription and meter of the term (530k times for six
    // months of 72 subscriptions and 40 meters): fast hashing.
    let mut rates: FastMap<Period, FastMap<i64, Price>> = FastMap::default();
    // Rows come a day at a time: each subscription's account is looked up
    // once a day, not once a meter.
    let mut owners: (Option<Day>, FastMap<i64, Option<i64>>) = (None, FastMap::default());
    for d in s.daily_usage(n, from, to)? {
        if d.rows > 0 {
            last_usage = last_usage.max(Some(d.day));
        }
        if d.booked < first || d.booked > last {
            continue;
        }
        if owners.0 != Some(d.day) {
            owners = (Some(d.day), FastMap::default());
        }
        let account_id = *owners
            .1
            .entry(d.subscription)
            .or_insert_with(|| h.account_on(d.subscription, d.day).map(|a| a.id));
        let account = account_id.and_then(|a| h.accounts.get(&a));
        if !scope.covers_account(account) {
            continue;
        }
        let cost = if !show_costs {
            Amount::ZERO
        } else {
            let rate = match d.correction_rate {
                Some(r) => r,
                None => {
                    if let std::collections::hash_map::Entry::Vacant(v) = rates.entry(d.booked) {
                        v.insert(period_rates(s, n, d.booked)?.into_iter().collect());
                    }
                    rates[&d.booked]
                        .get(&d.meter)
                        .copied()
                        .unwrap_or(Price::ZERO)
                }
            };
            d.quantity.checked_mul(rate).map_err(out_of_range)?
        };
        visit(
            s,
            Priced {
                d: &d,
                account,
                cost,
            },
        )?;
    }
    Ok((h, last_usage))
}

/// Exact daily charges of a scope, by the billing period they are booked in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DailyCosts {
    /// Per booked period, per day, the exact cost of the scope's usage. A
    /// correction is dated before the period that books it; it counts on the
    /// booked period's first day (the store keeps no booking date), so every
    /// period's days lie inside it.
    pub by_period: BTreeMap<Period, BTreeMap<Day, Amount>>,
    /// The last usage date through the last period, of the whole
    /// enrollment (not only the scope or the periods): how far the usage
    /// data reaches.
    pub last_usage: Option<Day>,
}

/// The exact cost per day of the usage `scope` sees, booked in periods
/// `first..=last`, priced exactly as [`usage_summary`] prices it (so each
/// period's days add up to the summary's cost of that period).
pub fn daily_costs<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    scope: Scope,
    first: Period,
    last: Period,
) -> StoreResult<DailyCosts> {
    let mut by_period: BTreeMap<Period, BTreeMap<Day, Amount>> = BTreeMap::new();
    let (_, last_usage) = visit_priced(s, n, scope, true, first, last, |_, p| {
        let day = p.d.day.clamp(p.d.booked.first_day(), p.d.booked.last_day());
        let v = by_period
            .entry(p.d.booked)
            .or_default()
            .entry(day)
            .or_insert(Amount::ZERO);
        *v = v.checked_add(p.cost).map_err(out_of_range)?;
        Ok(())
    })?;
    Ok(DailyCosts {
        by_period,
        last_usage,
    })
}

/// The usage booked in periods `first..=last` that `scope` may see. `show_costs`
/// false gives zero costs (design §5).
pub fn usage_summary<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    scope: Scope,
    show_costs: bool,
    first: Period,
    last: Period,
) -> StoreResult<Vec<SummaryRow>> {
    // The sums are sorted once at the end.
    let mut sheets: FastMap<Period, FastMap<i64, (String, String, String)>> = FastMap::default();
    let mut info: FastMap<(Period, i64), (String, String, String)> = FastMap::default();
    type Key = (Period, Option<i64>, i64, i64);
    let mut acc: FastMap<Key, (i128, Amount, i64)> = FastMap::default();
    let (h, _) = visit_priced(s, n, scope, show_costs, first, last, |s, p| {
        let (d, account, cost) = (p.d, p.account, p.cost);
        let e = acc
            .entry((d.booked, account.map(|a| a.id), d.subscription, d.meter))
            .or_insert((0, Amount::ZERO, 0));
        // Every sum here is part of a range-checked rollup, so none can fail;
        // checked all the same so that stored data out of range is an error.
        e.0 =
            e.0.checked_add(d.quantity.raw() as i128)
                .ok_or(Overflow)
                .map_err(out_of_range)?;
        e.1 = e.1.checked_add(cost).map_err(out_of_range)?;
        e.2 =
            e.2.checked_add(d.rows)
                .ok_or(Overflow)
                .map_err(out_of_range)?;
        // The meter's description comes from the sheet of the period that prices it.
        let sheet_period = d.correction_rate.map_or(d.booked, |_| d.day.period());
        if let std::collections::hash_map::Entry::Vacant(v) = sheets.entry(sheet_period) {
            let sheet = s
                .price_sheet(n, sheet_period)?
                .into_iter()
                .map(|(k, m)| {
                    (
                        k,
                        (
                            m.info.meter_category,
                            m.info.meter_id,
                            m.info.unit_of_measure,
                        ),
                    )
                })
                .collect();
            v.insert(sheet);
        }
        if let std::collections::hash_map::Entry::Vacant(v) = info.entry((d.booked, d.meter)) {
            v.insert(
                sheets
                    .get(&sheet_period)
                    .and_then(|m| m.get(&d.meter))
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        Ok(())
    })?;
    let mut acc: Vec<_> = acc.into_iter().collect();
    acc.sort_unstable_by_key(|(k, _)| *k);
    let mut out = Vec::with_capacity(acc.len());
    for ((period, account_id, sub, meter), (q, cost, rows)) in acc {
        let account = account_id.and_then(|a| h.accounts.get(&a));
        let (service, meter_id, unit) = info.get(&(period, meter)).cloned().unwrap_or_default();
        out.push(SummaryRow {
            period,
            department: account
                .and_then(|a| h.department(a.department_id))
                .map(|d| d.name.clone()),
            account: account.map(|a| a.name.clone()),
            subscription: h
                .subscriptions
                .get(&sub)
                .map_or_else(String::new, |s| s.name.clone()),
            service,
            meter_id,
            unit,
            quantity_micro: q,
            cost,
            rows,
        });
    }
    Ok(out)
}
