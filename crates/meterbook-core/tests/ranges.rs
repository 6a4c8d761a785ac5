//! Property tests on the supported ranges (`meterbook_core::limits`): the
//! ingest guard refuses exactly where the exact figures leave a range,
//! statements with every total at its range hold their identities, and money
//! just past the minor unit's range is an error, never a wrapped figure.
use meterbook_core::calendar::{Day, Period};
use meterbook_core::fixed::{Amount, Money, Price, Quantity};
use meterbook_core::limits::*;
use meterbook_core::prices::{MeterInfo, MeterPrice, Tier};
use meterbook_core::statement::{ChargeTotals, CommitmentEntry, Statement};
use meterbook_core::usage::{Catalog, Classified, SheetIndex};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

fn meter_price(id: &str, included: i64, tiers: &[(i64, i128)]) -> MeterPrice {
    MeterPrice {
        info: MeterInfo {
            meter_id: id.into(),
            ..Default::default()
        },
        included: Quantity(included),
        tiers: tiers
            .iter()
            .map(|(min, price)| Tier {
                min: Quantity(*min),
                price: Price(*price),
            })
            .collect(),
    }
}

/// Prices from tiny to the largest allowed, quantities up to the range.
fn price() -> impl Strategy<Value = i128> {
    prop_oneof![
        0..=MAX_UNIT_PRICE.0,
        Just(MAX_UNIT_PRICE.0),
        0..1_000_000_000_000i128,
        (1i128..=100_000_000).prop_map(|u| u * 1_000_000_000_000),
        // Around 100 per unit, where quantities near the range put the
        // charges near theirs, and rates round.
        50_000_000_000_000i128..=400_000_000_000_000,
    ]
}
fn quantity() -> impl Strategy<Value = i64> {
    prop_oneof![
        0..=MAX_QUANTITY.0,
        Just(MAX_QUANTITY.0),
        (MAX_QUANTITY.0 / 4)..=(MAX_QUANTITY.0 / 2),
        0..1_000_000_000i64,
    ]
}
fn meter() -> impl Strategy<Value = (i64, Vec<(i64, i128)>)> {
    (
        0..=MAX_QUANTITY.0,
        price(),
        prop::collection::btree_map(1..=MAX_QUANTITY.0, price(), 0..3),
    )
        .prop_map(|(included, first, more)| {
            let included = if included % 3 == 0 { included } else { 0 };
            let mut tiers = vec![(0, first)];
            tiers.extend(more);
            (included, tiers)
        })
}

proptest! {
    /// The guard refuses exactly the first row after which the exact
    /// figures (recomputed from scratch) leave a range: its cheap bound
    /// never lets one through and never refuses one in range.
    #[test]
    fn guard_refuses_exactly_where_the_exact_figures_leave_the_range(
        meters in prop::collection::vec(meter(), 1..4),
        rows in prop::collection::vec((0usize..4, quantity(), any::<bool>()), 1..24),
    ) {
        let p1: Period = "202501".parse().unwrap();
        let p2: Period = "202502".parse().unwrap();
        let prices: Vec<MeterPrice> = meters
            .iter()
            .enumerate()
            .map(|(i, (inc, t))| meter_price(&format!("m{i}"), *inc, t))
            .collect();
        let index: SheetIndex = prices
            .iter()
            .enumerate()
            .map(|(i, m)| (m.info.meter_id.clone(), (i as i64, Arc::new(m.clone()))))
            .collect();
        let mut catalog = Catalog::default();
        catalog.sheets.insert(p1, index.clone());
        catalog.sheets.insert(p2, index);
        let mut guard = UsageGuard::new(Arc::new(catalog), &[]).unwrap();
        let mut q: HashMap<(Period, usize), Quantity> = HashMap::new();
        for (m, qty, second) in rows {
            let m = m % prices.len();
            let p = if second { p2 } else { p1 };
            let day = p.first_day();
            let c = Classified {
                subscription: 1,
                day,
                meter: m as i64,
                quantity: Quantity(qty),
                booked: p,
                rate_period: p,
                correction_rate: None,
            };
            let mut next = q.clone();
            let e = next.entry((p, m)).or_default();
            *e = e.checked_add(Quantity(qty)).unwrap();
            let expected = if *e > MAX_QUANTITY {
                Err(RangeError::PeriodQuantity)
            } else {
                let exact = next.iter().try_fold(Amount::ZERO, |t, ((_, m), q)| {
                    let rate = prices[*m].resource_rate(*q).ok()?;
                    t.checked_add(q.checked_mul(rate).ok()?).ok()
                });
                match exact {
                    Some(t) if t <= MAX_CHARGES => Ok(()),
                    _ => Err(RangeError::Charges),
                }
            };
            prop_assert_eq!(guard.admit(&c), expected);
            if expected.is_err() {
                break;
            }
            q = next;
        }
    }

    /// A term of statements with every total at or within its range:
    /// each computes, every identity holds exactly and nothing utilised
    /// is negative, in every currency exponent ISO 4217 has.
    #[test]
    fn statements_within_the_ranges_hold_their_identities(
        exponent in 0u32..=4,
        periods in prop::collection::vec(
            (0u32..=1000, 0u32..=1000, 0u32..=1000, 0u32..=1000, -1000i32..=1000),
            1..40,
        ),
    ) {
        // Shares (in thousandths) of each total, scaled so that every
        // total over the term is at most its range: often exactly it.
        let n = periods.len() as i128;
        let max_money = max_money(exponent).0 as i128;
        let mut balance = Money::ZERO;
        for (i, (c, s, mk, pu, adj)) in periods.into_iter().enumerate() {
            let share = |x: u32| MAX_CHARGES.0 / n * x as i128 / 3000;
            let charges = ChargeTotals {
                commitment: Amount(share(c)),
                billed_separately: Amount(share(s)),
                marketplace: Amount(share(mk)),
            };
            let entry = |amount: i128| CommitmentEntry {
                date: Day::from_raw(i as i32),
                amount: Money(amount as i64),
                description: String::new(),
            };
            let purchases = vec![entry(max_money / n * pu as i128 / 1000)];
            let adjustments = vec![entry(max_money / n * adj as i128 / 1000)];
            let period: Period = "202501".parse().unwrap();
            let st = Statement::compute(period, balance, purchases, adjustments, &charges, exponent);
            let st = st.expect("within the ranges a statement always computes");
            prop_assert_eq!(st.check_identities(&charges, exponent), Ok(()));
            prop_assert!(st.utilized >= Money::ZERO);
            balance = st.ending_balance;
        }
    }

    /// Just past the range of money in a currency's minor unit, rounding
    /// is an error, never a wrapped figure.
    #[test]
    fn rounding_past_i64_is_refused(exponent in 0u32..=4, extra in 1i128..1_000_000) {
        let unit = 10i128.pow(Amount::SCALE - exponent);
        let top = Amount(i64::MAX as i128 * unit);
        prop_assert_eq!(top.round_to_minor(exponent), Ok(Money(i64::MAX)));
        let past = Amount(top.0 + unit / 2 + extra);
        prop_assert!(past.round_to_minor(exponent).is_err());
        let low = Amount(-past.0 - unit);
        prop_assert!(low.round_to_minor(exponent).is_err());
    }
}

/// Usage stored before the ranges were checked can still be repriced back
/// into range, and only a sheet that leaves it out is refused, naming the meter.
#[test]
fn stored_usage_out_of_range_can_be_repriced_back_into_it() {
    use meterbook_core::store::Rollup;
    let p: Period = "202501".parse().unwrap();
    let dear = meter_price("vm", 0, &[(0, 200_000_000_000_000)]);
    let mut catalog = Catalog::default();
    catalog.sheets.insert(
        p,
        [("vm".to_string(), (7, Arc::new(dear.clone())))]
            .into_iter()
            .collect(),
    );
    let catalog = Arc::new(catalog);
    // 10^12 units at 200: twice the charges' range.
    let rollups = [Rollup {
        booked: p,
        meter: 7,
        rate_period: p,
        correction: false,
        quantity: MAX_QUANTITY,
        fixed_cost: Amount::ZERO,
        rows: 1,
    }];
    assert_eq!(
        UsageGuard::new(catalog.clone(), &rollups).err(),
        Some(RangeError::Charges)
    );
    let mut guard = UsageGuard::for_repricing(catalog, &rollups).unwrap();
    assert_eq!(
        guard.reprice(p, std::slice::from_ref(&dear)),
        Err(("vm".to_string(), RangeError::Charges))
    );
    let cheap = meter_price("vm", 0, &[(0, 100_000_000_000_000)]);
    assert_eq!(guard.reprice(p, &[cheap]), Ok(()), "exactly at the range");
}
