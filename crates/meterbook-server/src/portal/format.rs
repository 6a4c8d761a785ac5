//! Numbers for reading: thousands separators and currency, exact (no floats).
//! Downloads keep machine formats; only pages use these.

use meterbook_core::fixed::{write_fixed, Amount, Money};

/// `1234567.891` → `1,234,567.891`.
pub fn group(plain: &str) -> String {
    let (sign, rest) = plain.strip_prefix('-').map_or(("", plain), |r| ("-", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut out = String::with_capacity(plain.len() + int.len() / 3);
    out.push_str(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// Money in minor units as `1,234.50 USD`.
pub fn money(m: Money, exponent: u32, currency: &str) -> String {
    format!("{} {currency}", group(&m.format(exponent)))
}

/// Minor units of a currency with `exponent` decimals, grouped: `1,234.5678`
/// for CLF, `1,234` for JPY (a chart's values and totals).
pub fn minor(v: i128, exponent: u32) -> String {
    let mut s = String::new();
    write_fixed(&mut s, v, exponent, exponent);
    group(&s)
}

/// An exact amount rounded half-even to the currency's minor unit, for reading.
/// Amounts shown are within the supported ranges, which fit the minor unit;
/// one that did not is shown as such rather than wrapped.
pub fn amount(a: Amount, exponent: u32, currency: &str) -> String {
    match a.round_to_minor(exponent) {
        Ok(m) => money(m, exponent, currency),
        Err(_) => format!("(out of range) {currency}"),
    }
}

/// A quantity in millionths, up to 2 decimals shown (trailing zeros trimmed).
pub fn quantity(micro: i128) -> String {
    let rounded = meterbook_core::fixed::div_round_half_even(micro, 10_000);
    let mut s = String::new();
    write_fixed(&mut s, rounded, 2, 0);
    group(&s)
}

/// The quantities of one table column (millionths), rounded half-even to at
/// most 2 decimals and all written with the same number of decimals: as many
/// as the most precise of them needs, so figures line up.
pub fn quantities(micros: &[i128]) -> Vec<String> {
    let rounded: Vec<i128> = micros
        .iter()
        .map(|m| meterbook_core::fixed::div_round_half_even(*m, 10_000))
        .collect();
    let decimals = rounded
        .iter()
        .map(|r| match (r % 100 == 0, r % 10 == 0) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        })
        .max()
        .unwrap_or(0);
    rounded
        .iter()
        .map(|r| {
            let mut s = String::new();
            write_fixed(&mut s, *r, 2, decimals);
            // Written with 2 decimals at least `decimals`: cut to exactly that many.
            let keep = match (s.find('.'), decimals) {
                (Some(dot), 0) => dot,
                (Some(dot), d) => dot + 1 + d as usize,
                (None, _) => s.len(),
            };
            s.truncate(keep);
            group(&s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_numbers() {
        assert_eq!(group("1234567.891"), "1,234,567.891");
        assert_eq!(group("-1000"), "-1,000");
        assert_eq!(group("999"), "999");
        assert_eq!(money(Money(123456789), 2, "USD"), "1,234,567.89 USD");
        assert_eq!(money(Money(1500), 0, "JPY"), "1,500 JPY");
        // Each currency's own decimals: CLF has 4, JPY none.
        assert_eq!(minor(12_345_678, 4), "1,234.5678");
        assert_eq!(minor(-1_500, 0), "-1,500");
        assert_eq!(minor(123_456_789, 2), "1,234,567.89");
        assert_eq!(quantity(1_234_567_890_000), "1,234,567.89");
        // Half-even to two places: 0.005 → 0.00, 0.015 → 0.02.
        assert_eq!(quantity(5_000), "0");
        assert_eq!(quantity(15_000), "0.02");
    }

    #[test]
    fn a_columns_quantities_have_the_same_decimals() {
        // 277,281.4 and 12 in one column: both with one decimal.
        assert_eq!(
            quantities(&[277_281_400_000, 12_000_000]),
            ["277,281.4", "12.0"]
        );
        assert_eq!(
            quantities(&[1_500_000, 2_250_000, 3_000_000]),
            ["1.50", "2.25", "3.00"]
        );
        assert_eq!(quantities(&[5_000_000, 7_000_000]), ["5", "7"]);
        // Rounded half-even to 2 decimals before counting them.
        assert_eq!(quantities(&[1_234_567, 5_000]), ["1.23", "0.00"]);
        assert!(quantities(&[]).is_empty());
    }
}
