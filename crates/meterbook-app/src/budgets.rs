//! Budgets: a spending limit on the enrollment, a department or an account,
//! for each month or for the term, with thresholds on actual charges, on the
//! forecast, and (for the whole enrollment) on the commitment left.
//!
//! Enterprise administrators manage budgets ([`Admin`]). Department
//! administrators and account owners see the budgets whose scope lies inside
//! their reach, and only when their role may see charges: a budget is a
//! figure of charges, so where charges are hidden, so are budgets.
//!
//! Every figure is the one the statement and the overview show: a scope's
//! charges are [`figures::scope_charges`] (the statement's own for the whole
//! enrollment), summed over the term's periods for a term budget.

use crate::forecast::Horizon;
use crate::keys::{named_scope, scope_name};
use crate::{Access, Admin, App, AppError, AppResult};
use meterbook_core::access::Scope;
use meterbook_core::enrollment::Enrollment;
use meterbook_core::notify::{Basis, Budget, Cadence, NewBudget, Threshold};
use meterbook_core::{Day, Money, Period};

/// Budgets an enrollment may have.
pub const MAX_BUDGETS: usize = 100;
/// Thresholds a budget may have.
pub const MAX_THRESHOLDS: usize = 10;
/// Longest budget name, in characters.
pub const MAX_NAME: usize = 100;
/// Largest budget amount, in the currency's major units.
pub const MAX_AMOUNT_MAJOR: i64 = 1_000_000_000_000;

/// A budget as a front end asks for it (texts as received; checked here).
#[derive(Clone, Debug, Default)]
pub struct BudgetInput {
    pub name: String,
    /// `enrollment`, `department` or `account`.
    pub scope: String,
    /// The department's or account's name.
    pub scope_name: Option<String>,
    /// `monthly` or `term`.
    pub cadence: String,
    /// A decimal in the enrollment's currency.
    pub amount: String,
    /// (basis, percent): `actual`/`forecast`/`balance`, 1 to 1000.
    pub thresholds: Vec<(String, i64)>,
}

/// The commitment at the end of the current period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Commitment left (the current statement's ending balance).
    pub left: Money,
    /// Purchases and adjustments of the term through the current period.
    pub total: Money,
}

/// A budget with its figures now.
#[derive(Clone, Debug)]
pub struct BudgetStatus {
    pub budget: Budget,
    /// The department's or account's name (`None` for the enrollment).
    pub scope_name: Option<String>,
    /// The current billing period (a monthly budget's; a term budget counts through it).
    pub period: Period,
    /// The days the budget covers now: the current period's, or the term's.
    pub from: Day,
    pub to: Day,
    /// Charges so far in that span.
    pub actual: Money,
    /// Charges expected at its end (when a forecast can be made).
    pub forecast: Option<Money>,
    /// The commitment (budgets of the whole enrollment only).
    pub balance: Option<Balance>,
    /// The usage watermark the figures are as of.
    pub as_of: Option<Day>,
    /// Actual charges as tenths of a percent of the amount, rounded half-even.
    pub used_tenths_percent: i128,
    /// The thresholds crossed now.
    pub crossed: Vec<Threshold>,
}

impl BudgetStatus {
    /// The part of an event key naming the span a threshold fires once in:
    /// the period (`202611`) for a monthly budget, `term` otherwise; the
    /// commitment balance is the term's.
    pub fn span_key(&self, t: Threshold) -> String {
        if self.budget.cadence == Cadence::Term || t.basis == Basis::Balance {
            "term".into()
        } else {
            self.period.to_string()
        }
    }
}

/// Whether `t` is crossed by these figures (exact, in minor units).
pub fn crossed(
    t: Threshold,
    amount: Money,
    actual: Money,
    forecast: Option<Money>,
    balance: Option<Balance>,
) -> bool {
    let pct = i128::from(t.percent);
    match t.basis {
        Basis::Actual => i128::from(actual.0) * 100 >= i128::from(amount.0) * pct,
        Basis::Forecast => {
            forecast.is_some_and(|f| i128::from(f.0) * 100 >= i128::from(amount.0) * pct)
        }
        Basis::Balance => balance.is_some_and(|b| {
            b.total.0 > 0 && i128::from(b.left.0) * 100 <= i128::from(b.total.0) * pct
        }),
    }
}

impl App {
    /// The figures of budget `b` of enrollment `e` now (system use: every
    /// cost is computed; callers decide who may see them).
    pub(crate) fn budget_status(&self, e: &Enrollment, b: Budget) -> AppResult<BudgetStatus> {
        let mut all = self.budget_statuses(e, vec![b])?;
        all.pop()
            .ok_or_else(|| AppError::Internal("no budget figures".into()))
    }

    /// The figures of `budgets` of enrollment `e` now, in their order: the
    /// hierarchy read once, and one forecast per scope and horizon however
    /// many budgets share it (on the realistic bench data a forecast costs
    /// about 50 ms; twenty budgets of one scope cost one or two).
    pub(crate) fn budget_statuses(
        &self,
        e: &Enrollment,
        budgets: Vec<Budget>,
    ) -> AppResult<Vec<BudgetStatus>> {
        let h = self.store().hierarchy(&e.number)?;
        let cur = self
            .clock()
            .today()
            .period()
            .clamp(e.first_period(), e.last_period());
        let mut forecasts: Vec<((Scope, Horizon), crate::forecast::Forecast)> = Vec::new();
        let mut out = Vec::with_capacity(budgets.len());
        for b in budgets {
            let horizon = match b.cadence {
                Cadence::Monthly => Horizon::Period,
                Cadence::Term => Horizon::Term,
            };
            let fc = match forecasts.iter().find(|(k, _)| *k == (b.scope, horizon)) {
                Some((_, fc)) => fc.clone(),
                None => {
                    // One computation for the figures of every page: the
                    // forecast's actual is the statement-derived figure of
                    // the scope, and its commitment is the current statement's.
                    let fc = self.forecast_of(e, b.scope, horizon)?;
                    forecasts.push(((b.scope, horizon), fc.clone()));
                    fc
                }
            };
            out.push(status_of(&h, cur, b, &fc));
        }
        Ok(out)
    }
}

/// A budget's figures from the forecast of its scope and horizon.
fn status_of(
    h: &meterbook_core::hierarchy::Hierarchy,
    cur: Period,
    b: Budget,
    fc: &crate::forecast::Forecast,
) -> BudgetStatus {
    let actual = fc.actual;
    let forecast = Some(fc.projected);
    let balance = fc.commitment.map(|c| Balance {
        left: c.balance,
        total: c.total,
    });
    let used_tenths_percent = if b.amount.0 > 0 {
        meterbook_core::fixed::div_round_half_even(
            i128::from(actual.0) * 1000,
            i128::from(b.amount.0),
        )
    } else {
        0
    };
    let crossed = b
        .thresholds
        .iter()
        .copied()
        .filter(|t| crossed(*t, b.amount, actual, forecast, balance))
        .collect();
    BudgetStatus {
        scope_name: scope_name(h, b.scope),
        budget: b,
        period: cur,
        from: fc.first_day,
        to: fc.last_day,
        actual,
        forecast,
        balance,
        as_of: fc.as_of,
        used_tenths_percent,
        crossed,
    }
}

impl Access {
    /// Budgets whose scope lies within this caller's reach, with their
    /// figures. Forbidden where the caller's role may not see charges.
    pub fn budgets(&self) -> AppResult<Vec<BudgetStatus>> {
        self.app.budget_statuses(&self.e, self.budgets_visible()?)
    }

    /// One budget within reach.
    pub fn budget(&self, id: i64) -> AppResult<BudgetStatus> {
        let b = self
            .budgets_visible()?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| AppError::NotFound(format!("there is no budget {id}")))?;
        self.app.budget_status(&self.e, b)
    }

    /// The stored budgets this caller may see (no figures).
    pub(crate) fn budgets_visible(&self) -> AppResult<Vec<Budget>> {
        if !self.sees_charges() {
            return Err(AppError::Forbidden(
                "charges are hidden for your role in this enrollment, and so are budgets".into(),
            ));
        }
        let s = self.app.store();
        let h = s.hierarchy(self.number())?;
        Ok(s.budgets(self.number())?
            .into_iter()
            .filter(|b| self.scope().covers(b.scope, &h))
            .collect())
    }
}

/// Checks a budget request against the enrollment's hierarchy and currency.
pub fn parse_budget(a: &Access, input: &BudgetInput) -> AppResult<NewBudget> {
    let name = input.name.trim();
    if name.is_empty() {
        return Err(AppError::Invalid("`name` must not be empty".into()));
    }
    if name.chars().count() > MAX_NAME {
        return Err(AppError::Invalid(format!(
            "`name` is longer than {MAX_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::Invalid(
            "`name` must not hold control characters".into(),
        ));
    }
    let h = a.hierarchy()?;
    let scope = named_scope(&h, &input.scope, input.scope_name.as_deref())?;
    let cadence = Cadence::parse(&input.cadence.to_ascii_lowercase()).ok_or_else(|| {
        AppError::Invalid(format!(
            "`cadence` must be monthly or term, not `{}`",
            meterbook_core::quote::quote(&input.cadence)
        ))
    })?;
    let exp = a.e.currency.exponent();
    let amount = Money::parse(input.amount.trim(), exp).map_err(|_| {
        AppError::Invalid(format!(
            "`amount` must be a decimal with at most {exp} decimal places, not `{}`",
            meterbook_core::quote::quote(&input.amount)
        ))
    })?;
    let max = MAX_AMOUNT_MAJOR * 10i64.pow(exp);
    if amount.0 <= 0 || amount.0 > max {
        return Err(AppError::Invalid(format!(
            "`amount` must be more than 0 and at most {} {}",
            Money(max).format(exp),
            a.e.currency.code()
        )));
    }
    if input.thresholds.is_empty() || input.thresholds.len() > MAX_THRESHOLDS {
        return Err(AppError::Invalid(format!(
            "a budget has 1 to {MAX_THRESHOLDS} thresholds"
        )));
    }
    let mut thresholds: Vec<Threshold> = Vec::new();
    for (basis, percent) in &input.thresholds {
        let basis = Basis::parse(&basis.to_ascii_lowercase()).ok_or_else(|| {
            AppError::Invalid(format!(
                "a threshold's `basis` must be actual, forecast or balance, not `{}`",
                meterbook_core::quote::quote(basis)
            ))
        })?;
        let top = if basis == Basis::Balance { 100 } else { 1000 };
        if !(1..=top).contains(percent) {
            return Err(AppError::Invalid(format!(
                "a {} threshold's `percent` must be 1 to {top}",
                basis.name()
            )));
        }
        if basis == Basis::Balance && scope != Scope::Enrollment {
            return Err(AppError::Invalid(
                "a balance threshold is only for a budget of the whole enrollment (the commitment is the enrollment's)"
                    .into(),
            ));
        }
        let t = Threshold {
            basis,
            percent: *percent as u32,
        };
        if thresholds.contains(&t) {
            return Err(AppError::Invalid(format!(
                "threshold {} is given twice",
                t.text()
            )));
        }
        thresholds.push(t);
    }
    thresholds.sort_by_key(|t| (t.basis.name(), t.percent));
    Ok(NewBudget {
        name: name.to_string(),
        scope,
        cadence,
        amount,
        thresholds,
    })
}

impl Admin<'_> {
    /// A new budget.
    pub fn create_budget(&self, input: &BudgetInput) -> AppResult<BudgetStatus> {
        let a = self.access();
        let new = parse_budget(a, input)?;
        let s = a.app.store();
        if s.budgets(a.number())?.len() >= MAX_BUDGETS {
            return Err(AppError::Conflict(format!(
                "an enrollment has at most {MAX_BUDGETS} budgets: delete one first"
            )));
        }
        let b = s.create_budget(
            a.number(),
            &new,
            a.actor().requester(),
            a.app.clock().now_millis(),
        )?;
        a.audit(
            "budget-created",
            format!(
                "budget {} \"{}\"",
                b.id,
                meterbook_core::quote::quote(&b.name)
            ),
        );
        a.app.budget_status(&a.e, b)
    }

    /// Deletes a budget (its recorded events stay).
    pub fn delete_budget(&self, id: i64) -> AppResult<()> {
        let a = self.access();
        if !a.app.store().delete_budget(a.number(), id)? {
            return Err(AppError::NotFound(format!("there is no budget {id}")));
        }
        a.audit("budget-deleted", format!("budget {id}"));
        Ok(())
    }
}
