//! The supported ranges of quantities, prices and money, and the checks that
//! hold every input to them.
//!
//! The ranges are chosen so that, within them, every intermediate value of
//! rating, statements, reports and summaries fits its integer type with room
//! to spare (docs/design-notes.md, "Supported ranges", gives the arithmetic).
//! They are checked where values enter: a usage row, a price-sheet row, a
//! purchase or an adjustment that would leave them is refused with the place
//! it came from. Arithmetic behind the edge is still checked ([`crate::fixed`]
//! has no wrapping operators), so a value that slips past a check is an error,
//! never a wrong figure.

use crate::calendar::Period;
use crate::fixed::{pow10, Amount, Money, Overflow, Price, Quantity};
use crate::prices::MeterPrice;
use crate::statement::CommitmentEntry;
use crate::store::{EntryKind, Rollup};
use crate::usage::{Catalog, Classified};
use std::collections::HashMap;
use std::sync::Arc;

/// Units of a meter per usage row, and per meter and period (own usage or the
/// corrections of one earlier period): 10¹².
pub const MAX_UNITS: i64 = 1_000_000_000_000;
/// [`MAX_UNITS`] as a [`Quantity`] (10¹⁸ millionths, within `i64`).
pub const MAX_QUANTITY: Quantity = Quantity(MAX_UNITS * 1_000_000);
/// Largest unit price: 10⁸ of the currency, so that C(Q) ≤ 10¹² × 10⁸ of the
/// currency is at most 10³⁸ in [`Amount`]'s 10⁻¹⁸ and fits `i128`.
pub const MAX_UNIT_PRICE_UNITS: i128 = 100_000_000;
/// [`MAX_UNIT_PRICE_UNITS`] as a [`Price`].
pub const MAX_UNIT_PRICE: Price = Price(MAX_UNIT_PRICE_UNITS * pow10(Price::SCALE));
/// Largest total, in currency units, of an enrollment's charges over its whole
/// term, of its purchases, and of its adjustments (counted without sign): 10¹⁴.
pub const MAX_MONEY_UNITS: i64 = 100_000_000_000_000;
/// [`MAX_MONEY_UNITS`] as an exact [`Amount`].
pub const MAX_CHARGES: Amount = Amount(MAX_MONEY_UNITS as i128 * pow10(Amount::SCALE));

/// [`MAX_MONEY_UNITS`] in the minor unit of a currency with `exponent`
/// decimals (at most 4 in ISO 4217, so at most 10¹⁸, within `i64`).
pub fn max_money(exponent: u32) -> Money {
    Money((MAX_MONEY_UNITS as i128 * pow10(exponent)) as i64)
}

/// Which range an input would leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("ConsumedQuantity exceeds the supported range (at most {MAX_UNITS} units per row)")]
    RowQuantity,
    #[error(
        "the period's quantity exceeds the supported range (at most {MAX_UNITS} units per meter and period)"
    )]
    PeriodQuantity,
    #[error(
        "the enrollment's charges exceed the supported range (at most {MAX_MONEY_UNITS} in its currency over its term)"
    )]
    Charges,
    #[error(
        "the enrollment's purchases exceed the supported range (at most {MAX_MONEY_UNITS} in its currency in total)"
    )]
    Purchases,
    #[error(
        "the enrollment's adjustments exceed the supported range (at most {MAX_MONEY_UNITS} in its currency in total, credits and debits counted alike)"
    )]
    Adjustments,
}

/// Refuses a purchase or adjustment that would take the enrollment's total of
/// its kind past [`MAX_MONEY_UNITS`]. Adjustments count by absolute value, so
/// every balance stays within −1 and 2 times the range whatever their order.
pub fn check_entry(
    existing: &[(EntryKind, CommitmentEntry)],
    kind: EntryKind,
    amount: Money,
    exponent: u32,
) -> Result<(), RangeError> {
    let err = match kind {
        EntryKind::Purchase => RangeError::Purchases,
        EntryKind::Adjustment => RangeError::Adjustments,
    };
    // i128: no number of i64 magnitudes an enrollment can hold overflows it.
    let stored: i128 = existing
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, e)| (e.amount.0 as i128).abs())
        .sum();
    if stored + (amount.0 as i128).abs() > max_money(exponent).0 as i128 {
        return Err(err);
    }
    Ok(())
}

/// The guard's maps sit on the per-row path of ingestion: a fast hasher
/// (the keys are the store's own integers, not attacker-chosen strings).
type Fast = foldhash::fast::RandomState;

/// A meter's own usage in one open period, as the guard tracks it.
struct OwnUsage {
    quantity: Quantity,
    /// Q × r(Q) when last settled.
    charge: Amount,
    /// The meter's price in the period and its highest tier price.
    price: Option<(Arc<MeterPrice>, Price)>,
    dirty: bool,
}

/// Holds an enrollment's usage to the ranges while a file is ingested.
///
/// Built from the rollups stored before the file, it is told of every row the
/// file stores and refuses the first one that takes a meter's period quantity
/// past [`MAX_QUANTITY`] or the enrollment's charges past [`MAX_CHARGES`], so
/// the error can name that row's line and meter.
///
/// Charges of an open period move with every row (the rate C(Q)/Q applies to
/// all of the meter's rows), so the exact total needs C(Q) and a division per
/// changed meter. To keep that off the per-row path the guard adds a cheap upper
/// bound of each row's effect and computes exactly only when the bound no
/// longer proves the total is in range: for quantities Q < Q' of one meter,
/// `Q'·r(Q') − Q·r(Q) ≤ (Q' − Q)·maxPrice + (Q + Q')/2 + 1` (in 10⁻¹⁸, since C
/// grows by at most maxPrice per unit and each rate is rounded by at most half
/// of 10⁻¹²).
pub struct UsageGuard {
    catalog: Arc<Catalog>,
    /// Every sheet's meters by (period, meter key).
    prices: HashMap<(Period, i64), Arc<MeterPrice>, Fast>,
    /// Own usage of open periods by (period, meter key).
    own: HashMap<(Period, i64), OwnUsage, Fast>,
    /// Quantities of corrections by (booked period, meter key, rate period).
    corrections: HashMap<(Period, i64, Period), Quantity, Fast>,
    /// Own usage of closed periods: only its quantity range matters now.
    closed: HashMap<(Period, i64), Quantity, Fast>,
    /// The exact charges of the enrollment when last settled.
    total: Amount,
    /// Upper bound of the growth since; `None` once it no longer fits.
    growth: Option<Amount>,
    dirty: Vec<(Period, i64)>,
}

fn add_quantity(q: &mut Quantity, more: Quantity) -> Result<(), RangeError> {
    *q = q
        .checked_add(more)
        .ok()
        .filter(|t| *t <= MAX_QUANTITY && more >= Quantity::ZERO)
        .ok_or(RangeError::PeriodQuantity)?;
    Ok(())
}

impl UsageGuard {
    /// The guard for an enrollment whose stored rollups are `rollups`, priced
    /// as `catalog` says. Fails if the stored usage is already out of range.
    pub fn new(catalog: Arc<Catalog>, rollups: &[Rollup]) -> Result<UsageGuard, RangeError> {
        let g = Self::for_repricing(catalog, rollups)?;
        g.check_total()?;
        Ok(g)
    }

    /// Like [`UsageGuard::new`] for [`UsageGuard::reprice`], but the stored
    /// charges may be out of range (stored before the ranges were checked), so
    /// that a sheet which brings them back in range can be imported.
    pub fn for_repricing(
        catalog: Arc<Catalog>,
        rollups: &[Rollup],
    ) -> Result<UsageGuard, RangeError> {
        let mut prices = HashMap::default();
        for (p, sheet) in &catalog.sheets {
            for (key, m) in sheet.values() {
                prices.insert((*p, *key), m.clone());
            }
        }
        let mut g = UsageGuard {
            catalog,
            prices,
            own: HashMap::default(),
            corrections: HashMap::default(),
            closed: HashMap::default(),
            total: Amount::ZERO,
            growth: Some(Amount::ZERO),
            dirty: Vec::new(),
        };
        for r in rollups {
            let charge = if r.correction {
                let q = g
                    .corrections
                    .entry((r.booked, r.meter, r.rate_period))
                    .or_default();
                add_quantity(q, r.quantity)?;
                r.fixed_cost
            } else if g.catalog.is_closed(r.booked) {
                add_quantity(g.closed.entry((r.booked, r.meter)).or_default(), r.quantity)?;
                let rate = g
                    .catalog
                    .locked_rates
                    .get(&(r.booked, r.meter))
                    .copied()
                    .unwrap_or(Price::ZERO);
                r.quantity.checked_mul(rate).map_err(charges)?
            } else {
                let own = g.own_usage(r.booked, r.meter);
                add_quantity(&mut own.quantity, r.quantity)?;
                g.mark_dirty(r.booked, r.meter);
                continue;
            };
            g.total = g.total.checked_add(charge).map_err(charges)?;
        }
        g.settle_exact()?;
        Ok(g)
    }

    /// The own usage of `meter` in open period `p`, created on first use.
    fn own_usage(&mut self, p: Period, meter: i64) -> &mut OwnUsage {
        let prices = &self.prices;
        self.own.entry((p, meter)).or_insert_with(|| {
            let price = prices.get(&(p, meter)).map(|m| (m.clone(), max_price(m)));
            OwnUsage {
                quantity: Quantity::ZERO,
                charge: Amount::ZERO,
                price,
                dirty: false,
            }
        })
    }

    fn mark_dirty(&mut self, p: Period, meter: i64) {
        if let Some(own) = self.own.get_mut(&(p, meter)) {
            if !own.dirty {
                own.dirty = true;
                self.dirty.push((p, meter));
            }
        }
    }

    /// Accounts for one stored row; refuses it if it takes a range past its end.
    pub fn admit(&mut self, c: &Classified) -> Result<(), RangeError> {
        if c.quantity > MAX_QUANTITY {
            return Err(RangeError::RowQuantity);
        }
        if let Some(rate) = c.correction_rate {
            // A correction's cost is fixed when it is written.
            let key = (c.booked, c.meter, c.rate_period);
            add_quantity(self.corrections.entry(key).or_default(), c.quantity)?;
            let cost = c.quantity.checked_mul(rate).map_err(charges)?;
            self.total = self.total.checked_add(cost).map_err(charges)?;
            return self.check_total();
        }
        let own = self.own_usage(c.booked, c.meter);
        add_quantity(&mut own.quantity, c.quantity)?;
        let slack = Amount(own.quantity.raw() as i128 + 1);
        let step = own
            .price
            .as_ref()
            .and_then(|(_, max)| c.quantity.checked_mul(*max).ok()?.checked_add(slack).ok());
        if !own.dirty {
            own.dirty = true;
            self.dirty.push((c.booked, c.meter));
        }
        self.growth = match (self.growth, step) {
            (Some(g), Some(s)) => g.checked_add(s).ok(),
            _ => None,
        };
        let proven = self
            .growth
            .and_then(|g| self.total.checked_add(g).ok())
            .is_some_and(|t| t <= MAX_CHARGES);
        if proven {
            Ok(())
        } else {
            self.settle()
        }
    }

    /// Checks that pricing `period`'s stored usage at `sheet` keeps the
    /// enrollment's charges in range. On failure it names a meter: applying the
    /// change of each meter's charge in the sheet's order, the first one after
    /// which the total is out of range.
    pub fn reprice(
        &mut self,
        period: Period,
        sheet: &[MeterPrice],
    ) -> Result<(), (String, RangeError)> {
        self.settle_exact().map_err(|e| (String::new(), e))?;
        let index = self.catalog.sheets.get(&period);
        let mut changes: Vec<(&MeterPrice, (Period, i64), Amount, Amount)> = Vec::new();
        for m in sheet {
            let id = m.info.meter_id.as_str();
            // A meter new to the period has no usage yet.
            let Some((key, _)) = index.and_then(|i| i.get(id)) else {
                continue;
            };
            let Some(own) = self.own.get(&(period, *key)) else {
                continue;
            };
            let new = own_charge(m, own.quantity).map_err(|e| (id.to_string(), e))?;
            changes.push((m, (period, *key), own.charge, new));
        }
        let mut total = self.total;
        let mut first_out: Option<&MeterPrice> = None;
        for (m, _, old, new) in &changes {
            let next = total.checked_sub(*old).and_then(|t| t.checked_add(*new));
            let Ok(t) = next else {
                return Err((m.info.meter_id.clone(), RangeError::Charges));
            };
            if t > MAX_CHARGES {
                first_out.get_or_insert(m);
            }
            total = t;
        }
        // Refused only if the end result is out of range.
        if total > MAX_CHARGES {
            let meter = first_out.map_or_else(String::new, |m| m.info.meter_id.clone());
            return Err((meter, RangeError::Charges));
        }
        for (m, k, _, new) in changes {
            if let Some(own) = self.own.get_mut(&k) {
                own.charge = new;
                own.price = Some((Arc::new(m.clone()), max_price(m)));
            }
        }
        self.total = total;
        Ok(())
    }

    /// Replaces the bound by the exact charges and checks them.
    fn settle(&mut self) -> Result<(), RangeError> {
        self.settle_exact()?;
        self.check_total()
    }

    /// Replaces the bound by the exact charges of the meters that changed.
    fn settle_exact(&mut self) -> Result<(), RangeError> {
        for k in std::mem::take(&mut self.dirty) {
            let Some(own) = self.own.get_mut(&k) else {
                continue;
            };
            own.dirty = false;
            let charge = match &own.price {
                Some((price, _)) => own_charge(price, own.quantity)?,
                // Usage always has a price (imports refuse to drop one); no
                // price means no charge, as in the ledger.
                None => Amount::ZERO,
            };
            let old = std::mem::replace(&mut own.charge, charge);
            self.total = self
                .total
                .checked_sub(old)
                .and_then(|t| t.checked_add(charge))
                .map_err(charges)?;
        }
        self.growth = Some(Amount::ZERO);
        Ok(())
    }

    fn check_total(&self) -> Result<(), RangeError> {
        if self.total > MAX_CHARGES {
            return Err(RangeError::Charges);
        }
        Ok(())
    }
}

fn max_price(m: &MeterPrice) -> Price {
    m.tiers.iter().map(|t| t.price).max().unwrap_or(Price::ZERO)
}

/// The charge of a period's own usage `q` of meter `m`: Q × C(Q)/Q.
fn own_charge(m: &MeterPrice, q: Quantity) -> Result<Amount, RangeError> {
    let rate = m.resource_rate(q).map_err(charges)?;
    q.checked_mul(rate).map_err(charges)
}

fn charges(_: Overflow) -> RangeError {
    RangeError::Charges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_fit_their_types() {
        assert_eq!(MAX_QUANTITY.to_string(), "1000000000000");
        assert_eq!(MAX_UNIT_PRICE.to_string(), "100000000");
        assert_eq!(MAX_CHARGES.to_string(), "100000000000000");
        assert_eq!(max_money(4), Money(1_000_000_000_000_000_000));
        // Three totals at the maximum, in the finest minor unit, still fit.
        assert!(max_money(4).0.checked_mul(3).is_some());
        // The largest period quantity at the largest price fits i128, with room
        // for the enrollment's in-range total beside it.
        let worst = MAX_QUANTITY.checked_mul(MAX_UNIT_PRICE).unwrap();
        assert!(worst.checked_add(MAX_CHARGES).is_ok());
    }

    fn entry_of(amount: Money) -> CommitmentEntry {
        CommitmentEntry {
            date: crate::calendar::Day::from_raw(0),
            amount,
            description: String::new(),
        }
    }

    fn purchase(amount: i64) -> (EntryKind, CommitmentEntry) {
        (EntryKind::Purchase, entry_of(Money(amount)))
    }

    #[test]
    fn entries_are_held_to_the_range() {
        let max = max_money(2);
        assert_eq!(check_entry(&[], EntryKind::Purchase, max, 2), Ok(()));
        assert_eq!(
            check_entry(&[purchase(max.0)], EntryKind::Purchase, Money(1), 2),
            Err(RangeError::Purchases)
        );
        // Debits count by size: −max then +1 is past the range.
        let debit = (EntryKind::Adjustment, entry_of(Money(-max.0)));
        assert_eq!(
            check_entry(&[debit], EntryKind::Adjustment, Money(1), 2),
            Err(RangeError::Adjustments)
        );
        assert_eq!(
            check_entry(&[purchase(max.0)], EntryKind::Adjustment, Money(-max.0), 2),
            Ok(())
        );
    }
}
