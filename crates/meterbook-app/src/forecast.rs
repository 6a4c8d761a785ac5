//! Forecasts of a scope's charges: what the current billing period (or the
//! term) is expected to come to, and when the commitment runs out, by the
//! method of [`meterbook_core::forecast`].
//!
//! Every figure ties out to what the other pages show:
//!
//! - `actual` is the figure the overview shows for the scope: the statement's
//!   charges (total usage plus marketplace; computed as
//!   `ChargeTotals::billed`, which the reconciliation property checks
//!   against the statement) for the enterprise, the rounded
//!   report figure ([`meterbook_core::figures::scope_charges`]) for a
//!   department or account; for the term, the sum of those of its periods
//!   through the current one;
//! - the daily charges the burn rate is taken from are each period's shown
//!   figure allocated over its days ([`meterbook_core::figures::daily_figures`]),
//!   so a period's days add up to its figure exactly;
//! - the commitment comes from the statements, as the overview's does.
//!
//! The as-of day (the last day of usage counted) is the enrollment's usage
//! watermark if set, else the last day with usage; never past today or the
//! horizon. Usage after the watermark is in `actual` already (the statement
//! counts it) though its days are projected again: the feed says it is not
//! complete yet, so the forecast errs on the high side.

use crate::{Access, App, AppError, AppResult};
use meterbook_core::access::Scope;
use meterbook_core::figures::daily_figures;
use meterbook_core::forecast as method;
use meterbook_core::{Day, Enrollment, Money, Period};

pub use meterbook_core::figures::DailyCharge;

/// What the projection covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Horizon {
    Period,
    Term,
}

impl Horizon {
    /// `period` or `term`, as the API and the CLI name it.
    pub fn parse(s: &str) -> AppResult<Horizon> {
        match s {
            "period" => Ok(Horizon::Period),
            "term" => Ok(Horizon::Term),
            _ => Err(AppError::Invalid(format!(
                "horizon `{}` is neither `period` nor `term`",
                meterbook_core::quote::quote(s)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Horizon::Period => "period",
            Horizon::Term => "term",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Forecast {
    pub horizon: Horizon,
    /// The current period (clamped to the term).
    pub period: Period,
    /// The horizon's first and last day.
    pub first_day: Day,
    pub last_day: Day,
    /// Last day with usage counted (usage watermark, capped to today and the
    /// horizon); `None` = no usage yet. It may be the day before the horizon
    /// when nothing of it is counted yet.
    pub as_of: Option<Day>,
    /// Days after `as_of` to `last_day`.
    pub days_left: u32,
    /// Charges to date in the horizon: exactly the figure every page shows
    /// for this scope.
    pub actual: Money,
    /// `actual + burn × days_left` (low ≤ projected ≤ high).
    pub projected: Money,
    pub projected_low: Money,
    pub projected_high: Money,
    pub daily_burn: Money,
    pub daily_low: Money,
    pub daily_high: Money,
    /// How many days the burn rate was taken from (≤ 30).
    pub basis_days: u32,
    /// Short human description of the method.
    pub method: &'static str,
    /// Some only for the whole enrollment (`Scope::Enrollment`).
    pub commitment: Option<Runout>,
}

#[derive(Clone, Copy, Debug)]
pub struct Runout {
    /// Commitment left now (the current statement's ending balance).
    pub balance: Money,
    /// Purchases + adjustments through the current period.
    pub total: Money,
    /// `None`: burn is zero, or it lasts past the term.
    pub runs_out_on: Option<Day>,
    pub earliest: Option<Day>,
    pub latest: Option<Day>,
    pub already_used: bool,
}

fn out_of_range(_: meterbook_core::fixed::Overflow) -> AppError {
    AppError::Internal("a forecast figure exceeds the supported range".into())
}

impl App {
    /// The forecast of `scope` in enrollment `e` (system use: budget
    /// evaluation). Costs always computed.
    pub fn forecast_of(
        &self,
        e: &Enrollment,
        scope: Scope,
        horizon: Horizon,
    ) -> AppResult<Forecast> {
        Ok(self.forecast_detail(e, scope, horizon)?.0)
    }

    /// [`App::forecast_of`] with the daily charges of the horizon through
    /// the current period it was made from: each period's days add up to
    /// that period's shown figure, and all of them to `actual`.
    pub fn forecast_detail(
        &self,
        e: &Enrollment,
        scope: Scope,
        horizon: Horizon,
    ) -> AppResult<(Forecast, Vec<DailyCharge>)> {
        let s = self.store();
        let today = self.clock().today();
        let (term_first, cur) = (
            e.first_period(),
            today.period().clamp(e.first_period(), e.last_period()),
        );
        let (first_day, last_day) = match horizon {
            Horizon::Period => (cur.first_day().max(e.start), cur.last_day().min(e.end)),
            Horizon::Term => (e.start, e.end),
        };
        // The periods the figures come from: the term's for the term; for a
        // period, those the burn rate's window reaches (it may go back into
        // earlier periods). Daily usage is read from the term's start either
        // way (corrections are dated before the period booking them).
        let bound = today.min(last_day);
        let from = match horizon {
            Horizon::Term => term_first,
            Horizon::Period => {
                method::basis_start(e.watermark.unwrap_or(bound).min(bound), e.start)
                    .period()
                    .clamp(term_first, cur)
            }
        };
        let mut df = daily_figures(s, e, scope, from, cur, today)?;
        let as_of = e
            .watermark
            .or(df.last_usage)
            .map(|d| d.min(bound))
            .filter(|d| *d >= e.start);
        if let Some(a) = as_of {
            // Usage that stopped long before today: its window lies earlier.
            let window = method::basis_start(a, e.start).period().max(term_first);
            if window < from {
                df = daily_figures(s, e, scope, window, cur, today)?;
            }
        }
        // The commitment, from the statements as the overview has it: what
        // was bought through the current period, and its ending balance.
        let commitment = if scope == Scope::Enrollment {
            let total = Money::checked_sum(
                s.entries(&e.number)?
                    .iter()
                    .filter(|(_, en)| (term_first..=cur).contains(&en.date.period()))
                    .map(|(_, en)| en.amount),
            )
            .map_err(out_of_range)?;
            Some((self.statement(e, cur)?.ending_balance, total))
        } else {
            None
        };
        let (figures, mut daily) = (df.totals, df.days);

        let actual = match horizon {
            Horizon::Period => figures.last().copied().unwrap_or(Money::ZERO),
            Horizon::Term => Money::checked_sum(figures.iter().copied()).map_err(out_of_range)?,
        };
        let values: Vec<Money> = daily.iter().map(|d| d.charges).collect();
        let out = method::forecast(&method::Input {
            daily: &values,
            daily_first: daily.first().map_or(e.start, |d| d.day),
            term_start: e.start,
            term_end: e.end,
            first_day,
            last_day,
            as_of,
            actual,
            balance: commitment.map(|(b, _)| b),
        })
        .map_err(out_of_range)?;
        let forecast = Forecast {
            horizon,
            period: cur,
            first_day,
            last_day,
            as_of,
            days_left: out.days_left,
            actual,
            projected: out.projection.projected,
            projected_low: out.projection.low,
            projected_high: out.projection.high,
            daily_burn: out.burn.mean,
            daily_low: out.burn.low,
            daily_high: out.burn.high,
            basis_days: out.burn.basis_days,
            method: method::METHOD,
            commitment: commitment
                .zip(out.runout)
                .map(|((balance, total), r)| Runout {
                    balance,
                    total,
                    runs_out_on: r.runs_out_on,
                    earliest: r.earliest,
                    latest: r.latest,
                    already_used: r.already_used,
                }),
        };
        daily.retain(|d| (first_day..=last_day).contains(&d.day));
        Ok((forecast, daily))
    }
}

impl Access {
    /// The forecast of the caller's own scope; `Forbidden` when the caller
    /// may not see charges.
    pub fn forecast(&self, horizon: Horizon) -> AppResult<Forecast> {
        if !self.sees_charges() {
            return Err(AppError::Forbidden(
                "charges are not visible to this role, so neither is their forecast".into(),
            ));
        }
        self.app.forecast_of(&self.e, self.scope(), horizon)
    }
}
