//! Figures for reading: the charges a page or response shows, in minor units,
//! and their parts, so that every figure ties out.
//!
//! The rule (docs/design-notes.md, "Figures tie out"):
//! - a scope's charges in a billing period are the statement's for the whole
//!   enrollment (commitment, billed separately and marketplace, each rounded
//!   half-even as the statement rounds them), and the exact sum of the scope's
//!   costs rounded once, half-even, for a department or an account;
//! - the parts of a shown figure (by department, account, subscription,
//!   service, meter) are allocated from it by the largest-remainder method over
//!   their exact amounts, so they add up to it exactly;
//! - every front end asks these functions, so the same quantity has the same
//!   value on every page.

use crate::access::Scope;
use crate::calendar::{Day, Period};
use crate::enrollment::{Enrollment, EnrollmentNumber};
use crate::fixed::{pow10, Amount, Money, Overflow};
use crate::ledger::charges;
use crate::store::{MetadataStore, StoreError, StoreResult, UsageStore};
use crate::summary::SummaryRow;
use std::collections::BTreeMap;

fn out_of_range(_: Overflow) -> StoreError {
    StoreError::Invalid("a figure exceeds the supported range".into())
}

/// Splits `total` (minor units) into one part per exact amount of `parts`, by
/// the largest-remainder method: each part gets its amount rounded down to the
/// minor unit, then the units left over go one each to the parts with the
/// largest remainders (ties to the earlier part). The parts add up to `total`
/// exactly, whatever their signs.
///
/// `total` is normally the parts' exact sum rounded, so at most a few units
/// are handed out; when it differs more (the statement rounds each kind of
/// charge on its own), every part first gets an equal share of the difference.
pub fn allocate(total: Money, parts: &[Amount], exponent: u32) -> Result<Vec<Money>, Overflow> {
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let unit = pow10(Amount::SCALE - exponent);
    let mut floors = Vec::with_capacity(parts.len());
    let mut remainders = Vec::with_capacity(parts.len());
    let mut sum: i128 = 0;
    for a in parts {
        let f = a.0.div_euclid(unit);
        floors.push(f);
        remainders.push(a.0.rem_euclid(unit));
        sum = sum.checked_add(f).ok_or(Overflow)?;
    }
    let n = parts.len() as i128;
    let left = (total.0 as i128).checked_sub(sum).ok_or(Overflow)?;
    let (each, extra) = (left.div_euclid(n), left.rem_euclid(n) as usize);
    // Largest remainder first; a stable sort keeps ties in the parts' order.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&i, &j| remainders[j].cmp(&remainders[i]));
    let mut out: Vec<i128> = floors.iter().map(|f| f + each).collect();
    for &i in order.iter().take(extra) {
        out[i] += 1;
    }
    out.into_iter()
        .map(|v| i64::try_from(v).map(Money).map_err(|_| Overflow))
        .collect()
}

/// The charges `scope` shows in each billing period `first..=last`, in minor
/// units. `rows` is [`crate::summary::usage_summary`] of the same scope and
/// periods, with costs.
pub fn scope_charges<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    scope: Scope,
    rows: &[SummaryRow],
    first: Period,
    last: Period,
    exponent: u32,
) -> StoreResult<Vec<Money>> {
    let periods: Vec<Period> = first.through(last).collect();
    let mut exact = vec![Amount::ZERO; periods.len()];
    if scope != Scope::Enrollment {
        for r in rows {
            if let Some(i) = periods.iter().position(|p| *p == r.period) {
                exact[i] = exact[i].checked_add(r.cost).map_err(out_of_range)?;
            }
        }
    }
    scope_charges_of(s, n, scope, &exact, first, last, exponent)
}

/// [`scope_charges`] from the scope's exact cost of each period
/// `first..=last` (`exact[i]` of the i-th period; unused for the whole
/// enrollment, whose figures are its statements'): for callers that summed
/// the costs another way ([`crate::summary::daily_costs`]).
pub fn scope_charges_of<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    n: &EnrollmentNumber,
    scope: Scope,
    exact: &[Amount],
    first: Period,
    last: Period,
    exponent: u32,
) -> StoreResult<Vec<Money>> {
    let periods: Vec<Period> = first.through(last).collect();
    if scope == Scope::Enrollment {
        return periods
            .iter()
            .map(|&p| charges(s, n, p)?.billed(exponent).map_err(out_of_range))
            .collect();
    }
    (0..periods.len())
        .map(|i| {
            exact
                .get(i)
                .copied()
                .unwrap_or(Amount::ZERO)
                .round_to_minor(exponent)
                .map_err(out_of_range)
        })
        .collect()
}

/// One day's part of its billing period's shown charges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyCharge {
    pub day: Day,
    pub charges: Money,
}

/// A scope's shown charges per billing period, and each split over its days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyFigures {
    pub periods: Vec<Period>,
    /// Per period, the figure every page shows ([`scope_charges`]).
    pub totals: Vec<Money>,
    /// Day by day, without gaps, from the first period's first day in the
    /// term: each period's days add up to its total exactly.
    pub days: Vec<DailyCharge>,
    /// The last usage date through the last period, of the whole enrollment.
    pub last_usage: Option<Day>,
}

/// The charges `scope` shows in each period `first..=last` of enrollment
/// `e`, each allocated over the period's days by the days' exact costs
/// ([`allocate`] over [`crate::summary::daily_costs`]), so a day's figure
/// is its part of the page's figure, never a second rounding. The last
/// period's days end at `through` (today, say) or its last day with data,
/// whichever is later: its figure never lands on a day to come. A correction
/// counts on the first day of the period that books it.
pub fn daily_figures<S: MetadataStore + UsageStore + ?Sized>(
    s: &S,
    e: &Enrollment,
    scope: Scope,
    first: Period,
    last: Period,
    through: Day,
) -> StoreResult<DailyFigures> {
    let exp = e.currency.exponent();
    let costs = crate::summary::daily_costs(s, &e.number, scope, first, last)?;
    let periods: Vec<Period> = first.through(last).collect();
    let empty = BTreeMap::new();
    let exact: Vec<Amount> = periods
        .iter()
        .map(|p| {
            Amount::checked_sum(costs.by_period.get(p).unwrap_or(&empty).values().copied())
                .map_err(out_of_range)
        })
        .collect::<StoreResult<_>>()?;
    let totals = scope_charges_of(s, &e.number, scope, &exact, first, last, exp)?;
    let mut days = Vec::new();
    for (p, total) in periods.iter().zip(&totals) {
        let exact = costs.by_period.get(p).unwrap_or(&empty);
        let start = p.first_day().max(e.start);
        let mut end = p.last_day().min(e.end).max(start);
        if *p == last {
            let last_data = exact.keys().next_back().copied().unwrap_or(start);
            end = end.min(through.max(last_data)).max(start);
        }
        let mut parts: BTreeMap<Day, Amount> = (start.raw()..=end.raw())
            .map(|d| (Day::from_raw(d), Amount::ZERO))
            .collect();
        for (d, a) in exact {
            let slot = parts.entry((*d).clamp(start, end)).or_insert(Amount::ZERO);
            *slot = slot.checked_add(*a).map_err(out_of_range)?;
        }
        let amounts: Vec<Amount> = parts.values().copied().collect();
        let shares = allocate(*total, &amounts, exp).map_err(out_of_range)?;
        days.extend(
            parts
                .keys()
                .zip(shares)
                .map(|(&day, charges)| DailyCharge { day, charges }),
        );
    }
    Ok(DailyFigures {
        periods,
        totals,
        days,
        last_usage: costs.last_usage,
    })
}

/// Splits per-period figures (`totals[i]` of `periods[i]`) among the groups
/// `key` puts `rows` in: per period, by [`allocate`] over the groups' exact
/// costs in that period (groups in `K`'s order). Every group gets a value for
/// every period; a period with no rows keeps its total unallocated only if it
/// is zero (a non-zero total without rows is an inconsistency: an error).
pub fn split<'r, K: Ord + Clone>(
    totals: &[Money],
    periods: &[Period],
    rows: impl IntoIterator<Item = &'r SummaryRow>,
    key: impl Fn(&SummaryRow) -> K,
    exponent: u32,
) -> StoreResult<BTreeMap<K, Vec<Money>>> {
    let mut exact: BTreeMap<K, Vec<Amount>> = BTreeMap::new();
    for r in rows {
        let Some(i) = periods.iter().position(|p| *p == r.period) else {
            continue;
        };
        let v = exact
            .entry(key(r))
            .or_insert_with(|| vec![Amount::ZERO; periods.len()]);
        v[i] = v[i].checked_add(r.cost).map_err(out_of_range)?;
    }
    let mut out: BTreeMap<K, Vec<Money>> = exact
        .keys()
        .map(|k| (k.clone(), vec![Money::ZERO; periods.len()]))
        .collect();
    for (i, total) in totals.iter().enumerate().take(periods.len()) {
        let parts: Vec<Amount> = exact.values().map(|v| v[i]).collect();
        if parts.is_empty() {
            if *total != Money::ZERO {
                return Err(StoreError::Invalid(format!(
                    "charges of {} {} have no usage to show them by",
                    periods[i],
                    total.format(exponent)
                )));
            }
            continue;
        }
        for (v, m) in out
            .values_mut()
            .zip(allocate(*total, &parts, exponent).map_err(out_of_range)?)
        {
            v[i] = m;
        }
    }
    Ok(out)
}

/// What a group of a view is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Department(String),
    /// An account: under a department, or one without a department at the top.
    Account(String),
    Subscription(String),
    Service(String),
    /// Usage of a subscription with no account on its date.
    Unassigned,
}

impl Group {
    pub fn name(&self) -> &str {
        match self {
            Group::Department(s) | Group::Account(s) | Group::Subscription(s) => s,
            Group::Service(s) if s.is_empty() => "(no service)",
            Group::Service(s) => s,
            Group::Unassigned => "(unassigned)",
        }
    }
}

/// Which part of a scope a view shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Focus {
    /// The whole scope: departments, and accounts without one.
    Scope,
    Department(String),
    /// An account, under its department if it has one.
    Account {
        department: Option<String>,
        account: String,
    },
}

/// How a view groups its usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// The next level of the hierarchy below the focus.
    Hierarchy,
    Service,
}

/// The group of a row at the top of the hierarchy.
fn top(r: &SummaryRow) -> Group {
    match (&r.department, &r.account) {
        (Some(d), _) => Group::Department(d.clone()),
        (None, Some(a)) => Group::Account(a.clone()),
        (None, None) => Group::Unassigned,
    }
}

/// The group of a row below a department.
fn below_department(r: &SummaryRow) -> Group {
    r.account.clone().map_or(Group::Unassigned, Group::Account)
}

/// The group of `r` in a view of `focus` grouped by `grouping`.
pub fn group_of(r: &SummaryRow, focus: &Focus, grouping: Grouping) -> Group {
    match (grouping, focus) {
        (Grouping::Service, _) => Group::Service(r.service.clone()),
        (Grouping::Hierarchy, Focus::Scope) => top(r),
        (Grouping::Hierarchy, Focus::Department(_)) => below_department(r),
        (Grouping::Hierarchy, Focus::Account { .. }) => Group::Subscription(r.subscription.clone()),
    }
}

/// Whether `r` is inside `focus`.
pub fn in_focus(r: &SummaryRow, focus: &Focus) -> bool {
    match focus {
        Focus::Scope => true,
        Focus::Department(d) => r.department.as_deref() == Some(d.as_str()),
        Focus::Account { account, .. } => r.account.as_deref() == Some(account.as_str()),
    }
}

/// The charges of one view: per period, its total and its groups' parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breakdown {
    pub periods: Vec<Period>,
    /// The view's charges per period.
    pub totals: Vec<Money>,
    /// Each group's part of each period's total; they add up to it.
    pub groups: BTreeMap<Group, Vec<Money>>,
}

impl Breakdown {
    /// The charges of the whole span.
    pub fn total(&self) -> Result<Money, Overflow> {
        Money::checked_sum(self.totals.iter().copied())
    }
}

/// The charges of `focus` inside a scope whose per-period charges are
/// `scope_totals` (from [`scope_charges`]), grouped by `grouping`. A focus
/// below the scope shows its part of the scope's figures (the value its row
/// has one level up), so drilling down never changes a figure.
pub fn breakdown(
    rows: &[SummaryRow],
    scope_totals: &[Money],
    periods: &[Period],
    focus: &Focus,
    grouping: Grouping,
    exponent: u32,
) -> StoreResult<Breakdown> {
    let totals = match focus {
        Focus::Scope => scope_totals.to_vec(),
        Focus::Department(d) => part(
            split(scope_totals, periods, rows, top, exponent)?,
            &Group::Department(d.clone()),
            periods,
        ),
        Focus::Account {
            department: None,
            account,
        } => part(
            split(scope_totals, periods, rows, top, exponent)?,
            &Group::Account(account.clone()),
            periods,
        ),
        Focus::Account {
            department: Some(d),
            account,
        } => {
            let dept = part(
                split(scope_totals, periods, rows, top, exponent)?,
                &Group::Department(d.clone()),
                periods,
            );
            let in_dept = rows
                .iter()
                .filter(|r| r.department.as_deref() == Some(d.as_str()));
            part(
                split(&dept, periods, in_dept, below_department, exponent)?,
                &Group::Account(account.clone()),
                periods,
            )
        }
    };
    let groups = split(
        &totals,
        periods,
        rows.iter().filter(|r| in_focus(r, focus)),
        |r| group_of(r, focus, grouping),
        exponent,
    )?;
    Ok(Breakdown {
        periods: periods.to_vec(),
        totals,
        groups,
    })
}

fn part(mut groups: BTreeMap<Group, Vec<Money>>, g: &Group, periods: &[Period]) -> Vec<Money> {
    groups
        .remove(g)
        .unwrap_or_else(|| vec![Money::ZERO; periods.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Amount {
        s.parse().unwrap()
    }
    fn amounts(v: &[&str]) -> Vec<Amount> {
        v.iter().map(|s| a(s)).collect()
    }
    fn cents(v: &[i64]) -> Vec<Money> {
        v.iter().map(|&c| Money(c)).collect()
    }

    #[test]
    fn parts_add_up_to_the_rounded_total() {
        // 3 × 0.333… : each rounds to 0.33, which would sum to 0.99, not 1.00.
        let parts = amounts(&["0.333333", "0.333333", "0.333334"]);
        let total = Amount::checked_sum(parts.iter().copied())
            .unwrap()
            .round_to_minor(2)
            .unwrap();
        assert_eq!(total, Money(100));
        // The unit left over goes to the largest remainder (the last part).
        assert_eq!(allocate(total, &parts, 2).unwrap(), cents(&[33, 33, 34]));
    }

    #[test]
    fn ties_go_to_the_earlier_part() {
        let parts = amounts(&["0.005", "0.005", "0.005", "0.005"]);
        assert_eq!(allocate(Money(2), &parts, 2).unwrap(), cents(&[1, 1, 0, 0]));
        // The same input gives the same output: no dependence on hashing.
        assert_eq!(
            allocate(Money(2), &parts, 2).unwrap(),
            allocate(Money(2), &parts, 2).unwrap()
        );
    }

    #[test]
    fn credits_and_corrections_are_parts_too() {
        // A correction of -10.004 against charges of 25.017 and 3.333.
        let parts = amounts(&["25.017", "-10.004", "3.333"]);
        let total = Money(1835); // 18.346 rounded
        let got = allocate(total, &parts, 2).unwrap();
        assert_eq!(got, cents(&[2502, -1000, 333]));
        assert_eq!(Money::checked_sum(got), Ok(total));
        // All negative: floors go down (−0.015 → −0.02 + remainder 0.005).
        let got = allocate(Money(-3), &amounts(&["-0.015", "-0.015"]), 2).unwrap();
        assert_eq!(got, cents(&[-1, -2]));
    }

    #[test]
    fn jpy_and_clf_have_their_own_minor_units() {
        let parts = amounts(&["100.5", "200.5", "0.4"]);
        // 301.4 rounds to 301; the tie at .5 goes to the earlier part.
        assert_eq!(
            allocate(Money(301), &parts, 0).unwrap(),
            cents(&[101, 200, 0])
        );
        // CLF: 4 decimals.
        let parts = amounts(&["1.00005", "2.00005"]);
        assert_eq!(
            allocate(Money(30001), &parts, 4).unwrap(),
            cents(&[10001, 20000])
        );
    }

    #[test]
    fn a_total_rounded_by_kind_is_still_reached() {
        // The statement rounds each kind: 0.005 + 0.005 → 0.00 + 0.00 (half-even),
        // though the exact sum is 0.01; and far-off totals are spread evenly.
        let parts = amounts(&["0.005", "0.005"]);
        assert_eq!(allocate(Money(0), &parts, 2).unwrap(), cents(&[0, 0]));
        assert_eq!(allocate(Money(7), &parts, 2).unwrap(), cents(&[4, 3]));
        assert_eq!(allocate(Money(-3), &parts, 2).unwrap(), cents(&[-1, -2]));
        assert!(allocate(Money(5), &[], 2).unwrap().is_empty());
    }

    fn row(
        period: &str,
        dept: Option<&str>,
        acct: Option<&str>,
        svc: &str,
        cost: &str,
    ) -> SummaryRow {
        SummaryRow {
            period: period.parse().unwrap(),
            department: dept.map(String::from),
            account: acct.map(String::from),
            subscription: format!("sub-{}", acct.unwrap_or("none")),
            service: svc.into(),
            meter_id: "m".into(),
            unit: "1 Hour".into(),
            quantity_micro: 0,
            cost: a(cost),
            rows: 1,
        }
    }

    #[test]
    fn drilling_down_keeps_every_figure() {
        let rows = vec![
            row("202601", Some("A"), Some("a1"), "VM", "1.004"),
            row("202601", Some("A"), Some("a2"), "SQL", "2.004"),
            row("202601", Some("B"), Some("b1"), "VM", "3.004"),
            row("202601", None, Some("c1"), "VM", "0.004"),
        ];
        let periods: Vec<Period> = vec!["202601".parse().unwrap()];
        let totals = cents(&[602]); // 6.016 rounded
        let top = breakdown(
            &rows,
            &totals,
            &periods,
            &Focus::Scope,
            Grouping::Hierarchy,
            2,
        )
        .unwrap();
        let dept_a = top.groups[&Group::Department("A".into())].clone();
        assert_eq!(
            top.groups.values().map(|v| v[0].0).sum::<i64>(),
            602,
            "{top:?}"
        );
        let a = breakdown(
            &rows,
            &totals,
            &periods,
            &Focus::Department("A".into()),
            Grouping::Hierarchy,
            2,
        )
        .unwrap();
        assert_eq!(a.totals, dept_a);
        assert_eq!(a.groups.values().map(|v| v[0].0).sum::<i64>(), dept_a[0].0);
        let a1 = breakdown(
            &rows,
            &totals,
            &periods,
            &Focus::Account {
                department: Some("A".into()),
                account: "a1".into(),
            },
            Grouping::Service,
            2,
        )
        .unwrap();
        assert_eq!(a1.totals, a.groups[&Group::Account("a1".into())]);
        let by_service = breakdown(
            &rows,
            &totals,
            &periods,
            &Focus::Scope,
            Grouping::Service,
            2,
        )
        .unwrap();
        assert_eq!(by_service.total(), Ok(Money(602)));
        assert_eq!(Group::Service(String::new()).name(), "(no service)");
    }
}
