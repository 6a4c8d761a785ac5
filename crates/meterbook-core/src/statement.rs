//! The Balance and charges statement (design §3.5).
//!
//! Charges are summed exactly ([`Amount`]) and rounded half-even to the
//! currency's minor unit once per kind; every field below is then exact integer
//! arithmetic in minor units, so the identities hold to the cent.

use crate::calendar::{Day, Period};
use crate::fixed::{Amount, Money, Overflow};
use crate::prices::ChargeKind;

/// Exact charge totals of one period, by how they are settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChargeTotals {
    pub commitment: Amount,
    pub billed_separately: Amount,
    pub marketplace: Amount,
}

impl ChargeTotals {
    pub fn add(&mut self, kind: ChargeKind, a: Amount) -> Result<(), Overflow> {
        let sum = match kind {
            ChargeKind::Commitment => &mut self.commitment,
            ChargeKind::BilledSeparately => &mut self.billed_separately,
            ChargeKind::Marketplace => &mut self.marketplace,
        };
        *sum = sum.checked_add(a)?;
        Ok(())
    }
    pub fn total(&self) -> Result<Amount, Overflow> {
        Amount::checked_sum([self.commitment, self.billed_separately, self.marketplace])
    }

    /// The period's charges as the statement bills them: each kind rounded
    /// half-even to the minor unit, then added (commitment-eligible + billed
    /// separately + marketplace). Can differ from [`Self::total`] rounded by
    /// a unit or so; the statement's figure is the one every page shows.
    pub fn billed(&self, exponent: u32) -> Result<Money, Overflow> {
        Money::checked_sum([
            self.commitment.round_to_minor(exponent)?,
            self.billed_separately.round_to_minor(exponent)?,
            self.marketplace.round_to_minor(exponent)?,
        ])
    }
}

/// A purchase or adjustment line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitmentEntry {
    pub date: Day,
    pub amount: Money,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub period: Period,
    pub beginning_balance: Money,
    pub new_purchases: Money,
    pub adjustments: Money,
    pub utilized: Money,
    pub ending_balance: Money,
    pub service_overage: Money,
    pub charges_billed_separately: Money,
    pub total_overage: Money,
    pub total_usage: Money,
    pub marketplace_charges: Money,
    pub purchase_details: Vec<CommitmentEntry>,
    pub adjustment_details: Vec<CommitmentEntry>,
}

impl Statement {
    /// Computes period `period`'s statement from the previous ending balance.
    ///
    /// Within the supported ranges ([`crate::limits`]) no step can overflow:
    /// each figure is at most three of the enrollment's range-bounded totals.
    /// The arithmetic is checked all the same, so out-of-range stored data is an
    /// error rather than a wrong statement.
    pub fn compute(
        period: Period,
        beginning_balance: Money,
        purchases: Vec<CommitmentEntry>,
        adjustments: Vec<CommitmentEntry>,
        charges: &ChargeTotals,
        exponent: u32,
    ) -> Result<Statement, Overflow> {
        let new_purchases = Money::checked_sum(purchases.iter().map(|p| p.amount))?;
        let adj = Money::checked_sum(adjustments.iter().map(|p| p.amount))?;
        let eligible = charges.commitment.round_to_minor(exponent)?;
        let separately = charges.billed_separately.round_to_minor(exponent)?;
        let marketplace = charges.marketplace.round_to_minor(exponent)?;
        let funds = Money::checked_sum([beginning_balance, new_purchases, adj])?;
        let utilized = funds.max(Money::ZERO).min(eligible);
        let ending_balance = funds.checked_sub(utilized)?;
        let service_overage = eligible.checked_sub(utilized)?;
        let total_overage = service_overage.checked_add(separately)?;
        Ok(Statement {
            period,
            beginning_balance,
            new_purchases,
            adjustments: adj,
            utilized,
            ending_balance,
            service_overage,
            charges_billed_separately: separately,
            total_overage,
            total_usage: utilized.checked_add(total_overage)?,
            marketplace_charges: marketplace,
            purchase_details: purchases,
            adjustment_details: adjustments,
        })
    }

    /// The identities of design §3.5; used by tests and as a runtime guard.
    pub fn check_identities(&self, charges: &ChargeTotals, exponent: u32) -> Result<(), String> {
        let broken = |name: &str| format!("statement {} breaks {name}", self.period);
        // An identity whose sides do not fit is broken too, never wrapped into holding.
        let holds = |lhs: Result<Money, Overflow>, rhs: Money| lhs == Ok(rhs);
        let eligible = charges
            .commitment
            .round_to_minor(exponent)
            .map_err(|_| broken("the range of its commitment charges"))?;
        let checks = [
            (
                "endingBalance = beginning + purchases + adjustments - utilized",
                holds(
                    Money::checked_sum([
                        self.beginning_balance,
                        self.new_purchases,
                        self.adjustments,
                    ])
                    .and_then(|f| f.checked_sub(self.utilized)),
                    self.ending_balance,
                ),
            ),
            (
                "utilized + serviceOverage = commitment charges",
                holds(self.utilized.checked_add(self.service_overage), eligible),
            ),
            (
                "totalOverage = serviceOverage + billed separately",
                holds(
                    self.service_overage
                        .checked_add(self.charges_billed_separately),
                    self.total_overage,
                ),
            ),
            (
                "totalUsage = utilized + totalOverage",
                holds(
                    self.utilized.checked_add(self.total_overage),
                    self.total_usage,
                ),
            ),
            ("utilized >= 0", self.utilized >= Money::ZERO),
            ("utilized <= commitment charges", self.utilized <= eligible),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            Some((name, _)) => Err(broken(name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::pow10;

    fn usd(cents: i64) -> Money {
        Money(cents)
    }
    fn amount(s: &str) -> Amount {
        s.parse().unwrap()
    }
    fn entry(cents: i64) -> CommitmentEntry {
        CommitmentEntry {
            date: "2026-01-05".parse().unwrap(),
            amount: usd(cents),
            description: "x".into(),
        }
    }

    #[test]
    fn within_commitment() {
        let c = ChargeTotals {
            commitment: amount("1234.565"), // rounds half-even to 1234.56
            billed_separately: amount("10.005"),
            marketplace: amount("3.3"),
        };
        let s = Statement::compute(
            "202601".parse().unwrap(),
            Money::ZERO,
            vec![entry(1_000_000)],
            vec![],
            &c,
            2,
        )
        .unwrap();
        assert_eq!(s.utilized, usd(123456));
        assert_eq!(s.ending_balance, usd(1_000_000 - 123456));
        assert_eq!(s.service_overage, Money::ZERO);
        assert_eq!(s.charges_billed_separately, usd(1000));
        assert_eq!(s.total_overage, usd(1000));
        assert_eq!(s.total_usage, usd(124456));
        assert_eq!(s.marketplace_charges, usd(330));
        s.check_identities(&c, 2).unwrap();
    }

    #[test]
    fn overage_when_commitment_runs_out() {
        let c = ChargeTotals {
            commitment: Amount(500 * pow10(18)),
            ..Default::default()
        };
        let s = Statement::compute(
            "202602".parse().unwrap(),
            usd(30_000),
            vec![],
            vec![entry(-5_000)],
            &c,
            2,
        )
        .unwrap();
        // available = 300 - 50 = 250
        assert_eq!(s.utilized, usd(25_000));
        assert_eq!(s.ending_balance, Money::ZERO);
        assert_eq!(s.service_overage, usd(25_000));
        assert_eq!(s.total_usage, usd(50_000));
        s.check_identities(&c, 2).unwrap();
    }

    #[test]
    fn negative_balance_draws_nothing() {
        let c = ChargeTotals {
            commitment: Amount(7 * pow10(18)),
            ..Default::default()
        };
        let s = Statement::compute(
            "202603".parse().unwrap(),
            usd(100),
            vec![],
            vec![entry(-300)],
            &c,
            2,
        )
        .unwrap();
        assert_eq!(s.utilized, Money::ZERO);
        assert_eq!(s.ending_balance, usd(-200));
        assert_eq!(s.service_overage, usd(700));
        s.check_identities(&c, 2).unwrap();
    }

    #[test]
    fn jpy_has_no_minor_unit() {
        let c = ChargeTotals {
            commitment: amount("1500.5"), // -> 1500 (half-even)
            ..Default::default()
        };
        let s = Statement::compute(
            "202601".parse().unwrap(),
            Money(1000),
            vec![],
            vec![],
            &c,
            0,
        )
        .unwrap();
        assert_eq!(s.utilized, Money(1000));
        assert_eq!(s.service_overage, Money(500));
        s.check_identities(&c, 0).unwrap();
    }
}
