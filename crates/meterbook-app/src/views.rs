//! The figures the portal's Overview and Usage pages show, computed once here:
//! per group (department, account, subscription or service) and billing
//! period, the records, quantities and charges within the caller's reach. A
//! period's charges are the statement's for the enterprise and the rounded
//! report figure for a department or account; groups' parts are allocated from
//! it so they add up ([`meterbook_core::figures`]). Pages only format these.

use crate::{Access, AppError, AppResult};
use meterbook_core::access::Scope;
use meterbook_core::figures::{self, Focus, Group, Grouping};
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::statement::Statement;
use meterbook_core::summary::SummaryRow;
use meterbook_core::{Amount, Money, Period};
use std::collections::{BTreeMap, BTreeSet};

/// Records, quantity and charges of one row of a view.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub records: i64,
    /// Millionths of the unit (a group may mix units: meaningful per meter).
    pub quantity_micro: i128,
    /// Records per period of the view.
    pub records_per_period: Vec<i64>,
    /// Charges per period of the view (zeros when the caller may not see them).
    pub charges_per_period: Vec<Money>,
    /// Their sum.
    pub charges: Money,
    /// The rows' exact cost (zero where the caller may not see costs): what
    /// the usage-details download of the same selection adds up to.
    pub cost_exact: Amount,
}

impl Figures {
    /// What a chart draws per period: charges in minor units, or records
    /// where charges are hidden.
    pub fn per_period(&self, costs: bool) -> Vec<i128> {
        if costs {
            self.charges_per_period
                .iter()
                .map(|m| i128::from(m.0))
                .collect()
        } else {
            self.records_per_period
                .iter()
                .map(|n| i128::from(*n))
                .collect()
        }
    }
}

/// One meter of a service (the Usage page's detail rows).
#[derive(Clone, Debug)]
pub struct MeterRow {
    pub meter: String,
    pub unit: String,
    pub records: i64,
    pub quantity_micro: i128,
    /// This meter's part of its service's charges.
    pub charges: Money,
}

/// One group of a view, with its meters when the view is by service.
#[derive(Clone, Debug)]
pub struct GroupRow {
    pub group: Group,
    pub figures: Figures,
    /// Charges (records where charges are hidden) descending, then meter.
    pub meters: Vec<MeterRow>,
}

/// Usage within the caller's reach for billing periods `first..=last`, inside
/// `focus`, grouped by `grouping`.
#[derive(Clone, Debug)]
pub struct UsageTable {
    pub periods: Vec<Period>,
    /// Whether charges show (otherwise they read zero and groups weigh by records).
    pub costs: bool,
    /// One order everywhere: charges (records where charges are hidden)
    /// descending, then name.
    pub rows: Vec<GroupRow>,
    /// The whole view: its charges are the shown total the rows add up to.
    pub total: Figures,
    /// The names groups of this kind have in the caller's reach over the
    /// whole term to date (pages colour by them, so a name keeps its colour).
    pub term_names: BTreeSet<String>,
    pub hierarchy: Hierarchy,
}

impl GroupRow {
    /// What orders rows: charges, or records where charges are hidden.
    fn weight(&self, costs: bool) -> i128 {
        if costs {
            i128::from(self.figures.charges.0)
        } else {
            i128::from(self.figures.records)
        }
    }
}

/// What the overview shows: this month's tiles, the commitment, the history.
#[derive(Clone, Debug)]
pub struct Overview {
    pub current: Period,
    /// The statements of the term through the current period (enterprise
    /// administrators; empty for others).
    pub statements: Vec<Statement>,
    /// The current period's charges, marketplace included (where charges show).
    pub charges_this_month: Option<Money>,
    pub records_this_month: i64,
    /// Purchases and adjustments through the current period, what is left,
    /// and the share used in tenths of a percent (enterprise administrators).
    pub commitment: Option<Commitment>,
    /// Up to twelve periods to the current one, by `grouping`.
    pub history: UsageTable,
}

#[derive(Clone, Copy, Debug)]
pub struct Commitment {
    pub total: Money,
    pub left: Money,
    /// `None` when nothing was bought.
    pub used_tenths_percent: Option<i128>,
}

fn out_of_range(_: meterbook_core::fixed::Overflow) -> AppError {
    AppError::Internal("a figure summed here exceeds the supported range".into())
}

/// Adds one summary row to `f` at period index `i` of `n`.
fn add(f: &mut Figures, i: usize, n: usize, r: &SummaryRow) -> AppResult<()> {
    if f.records_per_period.len() != n {
        f.records_per_period = vec![0; n];
    }
    f.cost_exact = f.cost_exact.checked_add(r.cost).map_err(out_of_range)?;
    f.records += r.rows;
    f.quantity_micro += r.quantity_micro;
    f.records_per_period[i] += r.rows;
    Ok(())
}

impl Access {
    /// The department and account a view is narrowed to, checked against
    /// the caller's reach: a name outside it reads as unknown (no existence
    /// leaks). An account's department comes from the account.
    pub fn focus(&self, department: Option<&str>, account: Option<&str>) -> AppResult<Focus> {
        let h = self.hierarchy()?;
        if let Some(a) = account.filter(|a| !a.is_empty()) {
            return match h.account_by_name(a) {
                Some(acc) if self.scope().covers_account(Some(acc)) => Ok(Focus::Account {
                    department: h.department(acc.department_id).map(|d| d.name.clone()),
                    account: acc.name.clone(),
                }),
                _ => Err(AppError::NotFound(format!("no account {a} for you"))),
            };
        }
        match department.filter(|d| !d.is_empty()) {
            None => Ok(Focus::Scope),
            Some(d) if self.departments_in_reach(&h).iter().any(|x| x == d) => {
                Ok(Focus::Department(d.to_string()))
            }
            Some(d) => Err(AppError::NotFound(format!("no department {d} for you"))),
        }
    }

    /// Departments the caller reaches (by name, sorted): all of them for an
    /// enterprise role, its own for a department role, its account's for an
    /// account owner.
    pub fn departments_in_reach(&self, h: &Hierarchy) -> Vec<String> {
        let scope = self.scope();
        let mut v: Vec<String> = h
            .departments
            .values()
            .filter(|d| match scope {
                Scope::Enrollment => true,
                Scope::Department(id) => d.id == id,
                Scope::Account(a) => h
                    .accounts
                    .get(&a)
                    .is_some_and(|a| a.department_id == Some(d.id)),
            })
            .map(|d| d.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Accounts the caller reaches (by name, sorted).
    pub fn accounts_in_reach(&self, h: &Hierarchy) -> Vec<String> {
        let mut v: Vec<String> = h
            .accounts
            .values()
            .filter(|a| self.scope().covers_account(Some(a)))
            .map(|a| a.name.clone())
            .collect();
        v.sort();
        v
    }

    /// The usage view of periods `first..=last` inside `focus`, grouped by
    /// `grouping` (with meter rows below services when `meters`).
    pub fn usage_table(
        &self,
        first: Period,
        last: Period,
        focus: &Focus,
        grouping: Grouping,
        meters: bool,
    ) -> AppResult<UsageTable> {
        // One summary of the term to date gives both the view (its periods'
        // rows: a summary's rows do not depend on the periods around them)
        // and the names that fix each group's colour.
        let (term_first, cur) = (self.e.first_period(), self.current_period());
        let (view, term_rows) = if term_first <= first && last <= cur {
            let all = self.summary_rows(term_first, cur)?;
            let rows = all
                .iter()
                .filter(|r| (first..=last).contains(&r.period))
                .cloned()
                .collect();
            (self.usage_view_of(first, last, rows)?, Some(all))
        } else {
            (self.usage_view(first, last)?, None)
        };
        let exp = self.e.currency.exponent();
        let costs = !view.totals.is_empty();
        let periods = view.periods();
        let np = periods.len();
        let index = |p: Period| periods.iter().position(|x| *x == p).unwrap_or(0);
        let selected: Vec<&SummaryRow> = view
            .rows
            .iter()
            .filter(|r| figures::in_focus(r, focus))
            .collect();
        let charges = if costs {
            Some(view.breakdown(focus, grouping, exp)?)
        } else {
            None
        };
        let parts_of = |g: &Group| -> Vec<Money> {
            charges
                .as_ref()
                .and_then(|c| c.groups.get(g).cloned())
                .unwrap_or_else(|| vec![Money::ZERO; np])
        };
        let mut groups: BTreeMap<Group, Figures> = BTreeMap::new();
        let mut total = Figures::default();
        for r in &selected {
            let i = index(r.period);
            add(&mut total, i, np, r)?;
            add(
                groups
                    .entry(figures::group_of(r, focus, grouping))
                    .or_default(),
                i,
                np,
                r,
            )?;
        }
        let mut rows = Vec::with_capacity(groups.len());
        for (group, mut f) in groups {
            f.charges_per_period = parts_of(&group);
            f.charges =
                Money::checked_sum(f.charges_per_period.iter().copied()).map_err(out_of_range)?;
            let meters = if meters {
                self.meter_rows(&group, &f, &selected, &periods, focus, grouping, costs)?
            } else {
                Vec::new()
            };
            rows.push(GroupRow {
                group,
                figures: f,
                meters,
            });
        }
        rows.sort_by(|a, b| {
            b.weight(costs)
                .cmp(&a.weight(costs))
                .then_with(|| a.group.name().cmp(b.group.name()))
        });
        total.charges_per_period = match &charges {
            Some(c) => c.totals.clone(),
            None => vec![Money::ZERO; np],
        };
        if total.records_per_period.len() != np {
            total.records_per_period = vec![0; np];
        }
        total.charges =
            Money::checked_sum(total.charges_per_period.iter().copied()).map_err(out_of_range)?;
        let term_names = match &term_rows {
            Some(all) => names_in(all, focus, grouping),
            None => self.term_names(first, last, &view.rows, focus, grouping)?,
        };
        Ok(UsageTable {
            periods,
            costs,
            rows,
            total,
            term_names,
            hierarchy: view.hierarchy,
        })
    }

    /// A service's meters, its charges split among them.
    #[allow(clippy::too_many_arguments)]
    fn meter_rows(
        &self,
        group: &Group,
        f: &Figures,
        selected: &[&SummaryRow],
        periods: &[Period],
        focus: &Focus,
        grouping: Grouping,
        costs: bool,
    ) -> AppResult<Vec<MeterRow>> {
        let exp = self.e.currency.exponent();
        let mine: Vec<&SummaryRow> = selected
            .iter()
            .copied()
            .filter(|r| figures::group_of(r, focus, grouping) == *group)
            .collect();
        let by_meter = figures::split(
            &f.charges_per_period,
            periods,
            mine.iter().copied(),
            |r| (r.meter_id.clone(), r.unit.clone()),
            exp,
        )?;
        let mut meters: BTreeMap<(String, String), (i64, i128)> = BTreeMap::new();
        for r in &mine {
            let m = meters
                .entry((r.meter_id.clone(), r.unit.clone()))
                .or_default();
            m.0 += r.rows;
            m.1 += r.quantity_micro;
        }
        let mut out = Vec::with_capacity(meters.len());
        for ((meter, unit), (records, quantity_micro)) in meters {
            let charges = match by_meter.get(&(meter.clone(), unit.clone())) {
                Some(v) => Money::checked_sum(v.iter().copied()).map_err(out_of_range)?,
                None => Money::ZERO,
            };
            out.push(MeterRow {
                meter,
                unit,
                records,
                quantity_micro,
                charges,
            });
        }
        let w = |m: &MeterRow| {
            if costs {
                i128::from(m.charges.0)
            } else {
                i128::from(m.records)
            }
        };
        out.sort_by(|a, b| w(b).cmp(&w(a)).then_with(|| a.meter.cmp(&b.meter)));
        Ok(out)
    }

    /// The names of `grouping`'s groups inside `focus` over the term to date
    /// (when the view's periods are not inside it).
    fn term_names(
        &self,
        first: Period,
        last: Period,
        rows: &[SummaryRow],
        focus: &Focus,
        grouping: Grouping,
    ) -> AppResult<BTreeSet<String>> {
        let term_first = self.e.first_period();
        let cur = self.current_period();
        let term_rows;
        let rows = if (first, last) == (term_first, cur) {
            rows
        } else {
            term_rows = meterbook_core::summary::usage_summary(
                self.app.store(),
                self.number(),
                self.scope(),
                false,
                term_first,
                cur,
            )?;
            &term_rows
        };
        Ok(names_in(rows, focus, grouping))
    }

    /// The overview: up to twelve periods to the current one.
    pub fn overview(&self, grouping: Grouping) -> AppResult<Overview> {
        let cur = self.current_period();
        let mut first = cur;
        for _ in 0..11 {
            first = first.prev();
        }
        let first = first.max(self.e.first_period());
        let history = self.usage_table(first, cur, &Focus::Scope, grouping, false)?;
        let statements: Vec<Statement> = match self.enterprise() {
            Ok(ent) => ent.statements(cur)?.into_iter().map(|(st, _)| st).collect(),
            Err(_) => Vec::new(),
        };
        let last = history.periods.len().saturating_sub(1);
        let charges_this_month = if let Some(st) = statements.last() {
            // The same figure every role reads: all charges, marketplace included.
            Some(
                st.total_usage
                    .checked_add(st.marketplace_charges)
                    .map_err(out_of_range)?,
            )
        } else if history.costs {
            history.total.charges_per_period.get(last).copied()
        } else {
            None
        };
        let records_this_month = history
            .total
            .records_per_period
            .get(last)
            .copied()
            .unwrap_or(0);
        let commitment = match statements.last() {
            None => None,
            Some(last) => {
                let mut bought = Money::ZERO;
                for st in &statements {
                    bought = bought
                        .checked_add(st.new_purchases)
                        .and_then(|b| b.checked_add(st.adjustments))
                        .map_err(out_of_range)?;
                }
                let left = i128::from(last.ending_balance.0.max(0));
                let total = i128::from(bought.0);
                Some(Commitment {
                    total: bought,
                    left: last.ending_balance,
                    // Tenths of a percent, rounded half-even; never past 100%.
                    used_tenths_percent: (total > 0).then(|| {
                        meterbook_core::fixed::div_round_half_even(
                            (total - left.min(total)) * 1000,
                            total,
                        )
                    }),
                })
            }
        };
        Ok(Overview {
            current: cur,
            statements,
            charges_this_month,
            records_this_month,
            commitment,
            history,
        })
    }
}

/// The names of `grouping`'s groups inside `focus` among `rows`.
fn names_in(rows: &[SummaryRow], focus: &Focus, grouping: Grouping) -> BTreeSet<String> {
    rows.iter()
        .filter(|r| figures::in_focus(r, focus))
        .map(|r| figures::group_of(r, focus, grouping).name().to_string())
        .collect()
}
