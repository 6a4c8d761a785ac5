//! Price sheets and rating (design §3.1–3.2): graduated tiers with included
//! quantities and the blended ResourceRate.

use crate::fixed::{Amount, Overflow, Price, Quantity};
use crate::limits::{MAX_QUANTITY, MAX_UNITS, MAX_UNIT_PRICE, MAX_UNIT_PRICE_UNITS};
use crate::quote::quote;
use std::collections::HashMap;

/// How a meter's charges are settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChargeKind {
    /// Drawn from the monetary commitment.
    Commitment,
    /// ChargesBilledSeparately = true: never drawn from the commitment.
    BilledSeparately,
    /// A third-party (marketplace) meter: has a PublisherName.
    Marketplace,
}

impl ChargeKind {
    pub fn as_i64(self) -> i64 {
        match self {
            ChargeKind::Commitment => 0,
            ChargeKind::BilledSeparately => 1,
            ChargeKind::Marketplace => 2,
        }
    }
    pub fn from_i64(v: i64) -> ChargeKind {
        match v {
            1 => ChargeKind::BilledSeparately,
            2 => ChargeKind::Marketplace,
            _ => ChargeKind::Commitment,
        }
    }
}

/// One parsed row of a price-sheet file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceRow {
    pub line: u64,
    pub meter_id: String,
    pub meter_name: String,
    pub meter_category: String,
    pub meter_sub_category: String,
    pub meter_region: String,
    pub unit_of_measure: String,
    pub part_number: String,
    pub unit_price: Price,
    pub included_quantity: Quantity,
    pub tier_minimum_units: Quantity,
    pub charges_billed_separately: bool,
    pub publisher_name: String,
    pub offer_name: String,
    pub plan_name: String,
}

/// The descriptive columns of a meter (all rows of a meter agree on them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterInfo {
    pub meter_id: String,
    pub meter_name: String,
    pub meter_category: String,
    pub meter_sub_category: String,
    pub meter_region: String,
    pub unit_of_measure: String,
    pub part_number: String,
    pub charges_billed_separately: bool,
    pub publisher_name: String,
    pub offer_name: String,
    pub plan_name: String,
}

impl MeterInfo {
    pub fn kind(&self) -> ChargeKind {
        if !self.publisher_name.is_empty() {
            ChargeKind::Marketplace
        } else if self.charges_billed_separately {
            ChargeKind::BilledSeparately
        } else {
            ChargeKind::Commitment
        }
    }
}

/// A price tier: from `min` units (cumulative in the period, included units counted) at `price`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    pub min: Quantity,
    pub price: Price,
}

/// A meter's price in one billing period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterPrice {
    pub info: MeterInfo,
    pub included: Quantity,
    /// Sorted by `min`; the first starts at 0.
    pub tiers: Vec<Tier>,
}

impl MeterPrice {
    /// C(Q): the first `included` units free, then each unit at the price of the
    /// tier with the largest minimum ≤ its position. Exact; within the supported
    /// ranges (Q ≤ 10¹², prices ≤ 10⁸) at most 10²⁰ of the currency, which is
    /// 10³⁸ in `Amount`'s 10⁻¹⁸ and fits `i128` (1.7 × 10³⁸).
    pub fn tier_cost(&self, q: Quantity) -> Result<Amount, Overflow> {
        let mut total = Amount::ZERO;
        for (i, t) in self.tiers.iter().enumerate() {
            let end = self.tiers.get(i + 1).map_or(q, |n| n.min.min(q));
            let start = t.min.max(self.included);
            if end > start {
                let units = end.checked_sub(start)?;
                total = total.checked_add(units.checked_mul(t.price)?)?;
            }
        }
        Ok(total)
    }

    /// The blended ResourceRate: C(Q)/Q rounded half-even to 12 decimals (0 when
    /// Q = 0). Never above the meter's highest tier price.
    pub fn resource_rate(&self, q: Quantity) -> Result<Price, Overflow> {
        Ok(self.tier_cost(q)?.per_unit(q))
    }
}

/// Builds one [`MeterPrice`] per meter from the rows of a sheet, checking the
/// rules of design §2. Errors carry the file line of the offending row.
pub fn build_price_sheet(rows: &[PriceRow]) -> Result<Vec<MeterPrice>, (u64, String)> {
    let mut by_meter: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<MeterPrice> = Vec::new();
    for r in rows {
        if r.meter_id.trim().is_empty() {
            return Err((r.line, "MeterId must not be empty".into()));
        }
        if r.unit_price.0 < 0 {
            return Err((r.line, "UnitPrice must not be negative".into()));
        }
        if r.unit_price > MAX_UNIT_PRICE {
            return Err((
                r.line,
                format!(
                    "meter {}: UnitPrice {} exceeds the supported range (at most {MAX_UNIT_PRICE_UNITS})",
                    r.meter_id, r.unit_price
                ),
            ));
        }
        if r.included_quantity.0 < 0 || r.tier_minimum_units.0 < 0 {
            return Err((
                r.line,
                "IncludedQuantity and TierMinimumUnits must not be negative".into(),
            ));
        }
        // No period's quantity reaches past MAX_UNITS, so larger positions mean nothing.
        if r.included_quantity > MAX_QUANTITY || r.tier_minimum_units > MAX_QUANTITY {
            return Err((
                r.line,
                format!(
                    "meter {}: IncludedQuantity and TierMinimumUnits must be at most {MAX_UNITS}",
                    r.meter_id
                ),
            ));
        }
        let info = MeterInfo {
            meter_id: r.meter_id.clone(),
            meter_name: r.meter_name.clone(),
            meter_category: r.meter_category.clone(),
            meter_sub_category: r.meter_sub_category.clone(),
            meter_region: r.meter_region.clone(),
            unit_of_measure: r.unit_of_measure.clone(),
            part_number: r.part_number.clone(),
            charges_billed_separately: r.charges_billed_separately,
            publisher_name: r.publisher_name.clone(),
            offer_name: r.offer_name.clone(),
            plan_name: r.plan_name.clone(),
        };
        let tier = Tier {
            min: r.tier_minimum_units,
            price: r.unit_price,
        };
        match by_meter.get(r.meter_id.as_str()) {
            None => {
                by_meter.insert(&r.meter_id, out.len());
                out.push(MeterPrice {
                    info,
                    included: r.included_quantity,
                    tiers: vec![tier],
                });
            }
            Some(&i) => {
                let m = &mut out[i];
                if m.info != info || m.included != r.included_quantity {
                    return Err((
                        r.line,
                        format!(
                            "meter {} disagrees with its earlier rows on a column other than UnitPrice and TierMinimumUnits",
                            quote(&r.meter_id)
                        ),
                    ));
                }
                if m.tiers.iter().any(|t| t.min == tier.min) {
                    return Err((
                        r.line,
                        format!(
                            "meter {} has two tiers starting at {}",
                            quote(&r.meter_id),
                            tier.min
                        ),
                    ));
                }
                m.tiers.push(tier);
            }
        }
    }
    for m in &mut out {
        m.tiers.sort_by_key(|t| t.min);
        if m.tiers[0].min != Quantity::ZERO {
            let line = rows
                .iter()
                .find(|r| r.meter_id == m.info.meter_id)
                .map_or(0, |r| r.line);
            return Err((
                line,
                format!(
                    "meter {} has no tier starting at TierMinimumUnits 0",
                    quote(&m.info.meter_id)
                ),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(included: &str, tiers: &[(&str, &str)]) -> MeterPrice {
        MeterPrice {
            info: MeterInfo {
                meter_id: "m".into(),
                ..Default::default()
            },
            included: included.parse().unwrap(),
            tiers: tiers
                .iter()
                .map(|(m, p)| Tier {
                    min: m.parse().unwrap(),
                    price: p.parse().unwrap(),
                })
                .collect(),
        }
    }

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    #[test]
    fn flat_price() {
        let m = meter("0", &[("0", "0.252")]);
        assert_eq!(m.tier_cost(q("24")).unwrap().to_string(), "6.048");
        assert_eq!(m.resource_rate(q("24")).unwrap().to_string(), "0.252");
        assert_eq!(m.resource_rate(Quantity::ZERO), Ok(Price::ZERO));
    }

    #[test]
    fn included_then_tiers() {
        // 5 free, 0.0196 from 0 to 100, 0.0188 from 100 on.
        let m = meter("5", &[("0", "0.0196"), ("100", "0.0188")]);
        // Q = 3: all free.
        assert_eq!(m.tier_cost(q("3")), Ok(Amount::ZERO));
        assert_eq!(m.resource_rate(q("3")), Ok(Price::ZERO));
        // Q = 150: 95 × 0.0196 + 50 × 0.0188 = 1.862 + 0.94 = 2.802
        assert_eq!(m.tier_cost(q("150")).unwrap().to_string(), "2.802");
        // rate = 2.802 / 150 = 0.01868 exactly
        assert_eq!(m.resource_rate(q("150")).unwrap().to_string(), "0.01868");
    }

    #[test]
    fn included_beyond_first_tier() {
        // Included 120 reaches into the second tier: only units from 120 are charged.
        let m = meter("120", &[("0", "1"), ("100", "0.5")]);
        assert_eq!(m.tier_cost(q("130")).unwrap().to_string(), "5");
    }

    #[test]
    fn rate_rounds_half_even_to_12_places() {
        // C = 1 for Q = 3: 0.333333333333(33…) rounds down.
        let m = meter("0", &[("0", "0.333333333333"), ("2", "0.333333333334")]);
        assert_eq!(m.tier_cost(q("3")).unwrap().to_string(), "1");
        assert_eq!(
            m.resource_rate(q("3")).unwrap().to_string(),
            "0.333333333333"
        );
        // C = 2 for Q = 3: 0.666666666666(66…) rounds up.
        let m = meter("0", &[("0", "0.666666666668"), ("1", "0.666666666666")]);
        assert_eq!(m.tier_cost(q("3")).unwrap().to_string(), "2");
        assert_eq!(
            m.resource_rate(q("3")).unwrap().to_string(),
            "0.666666666667"
        );
        // Exact ties go to the even neighbour: 0.5e-12 -> 0, 1.5e-12 -> 2e-12.
        let m = meter("0", &[("0", "0.000000000001"), ("1", "0")]);
        assert_eq!(m.resource_rate(q("2")), Ok(Price::ZERO));
        let m = meter("0", &[("0", "0.000000000003"), ("1", "0")]);
        assert_eq!(m.resource_rate(q("2")), Ok(Price(2)));
    }

    fn row(line: u64, id: &str, price: &str, min: &str) -> PriceRow {
        PriceRow {
            line,
            meter_id: id.into(),
            meter_name: "n".into(),
            meter_category: String::new(),
            meter_sub_category: String::new(),
            meter_region: String::new(),
            unit_of_measure: String::new(),
            part_number: String::new(),
            unit_price: price.parse().unwrap(),
            included_quantity: Quantity::ZERO,
            tier_minimum_units: min.parse().unwrap(),
            charges_billed_separately: false,
            publisher_name: String::new(),
            offer_name: String::new(),
            plan_name: String::new(),
        }
    }

    #[test]
    fn sheet_checks() {
        let ok = build_price_sheet(&[row(2, "a", "2", "10"), row(3, "a", "1", "0")]).unwrap();
        assert_eq!(ok[0].tiers[0].min, Quantity::ZERO);
        let e = build_price_sheet(&[row(2, "a", "1", "5")]).unwrap_err();
        assert_eq!(e.0, 2);
        let e = build_price_sheet(&[row(2, "a", "1", "0"), row(3, "a", "1", "0")]).unwrap_err();
        assert_eq!(e.0, 3);
        let mut r = row(4, "a", "1", "7");
        r.meter_name = "other".into();
        let e = build_price_sheet(&[row(2, "a", "1", "0"), r]).unwrap_err();
        assert_eq!(e.0, 4);
    }

    #[test]
    fn prices_and_positions_are_held_to_the_range() {
        assert!(build_price_sheet(&[row(2, "a", "100000000", "0")]).is_ok());
        let e = build_price_sheet(&[row(2, "a", "100000000.000000000001", "0")]).unwrap_err();
        assert_eq!(e.0, 2);
        assert!(e.1.contains("meter a: UnitPrice"), "{}", e.1);
        assert!(e.1.contains("supported range"), "{}", e.1);
        let e = build_price_sheet(&[
            row(2, "a", "1", "0"),
            row(3, "a", "1", "1000000000000.000001"),
        ])
        .unwrap_err();
        assert_eq!(e.0, 3);
        // At the largest price and quantity the cost and rate are exact.
        let m = meter("0", &[("0", "1"), ("1", "100000000")]);
        let top = q("1000000000000");
        assert_eq!(
            m.tier_cost(top).unwrap().to_string(),
            "99999999999900000001"
        );
        assert_eq!(
            m.resource_rate(top).unwrap().to_string(),
            "99999999.999900000001"
        );
    }
}
