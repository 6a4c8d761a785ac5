//! Exact fixed-point numbers for quantities, prices and money.
//!
//! Money never touches floating point. Every value is an integer count of a
//! fixed fraction of a unit:
//!
//! | type        | unit       | why this scale                                     |
//! |-------------|------------|----------------------------------------------------|
//! | [`Quantity`]| 10⁻⁶       | usage quantities have at most 6 decimals (design §2) |
//! | [`Price`]   | 10⁻¹²      | unit prices and the blended ResourceRate (§3.2)     |
//! | [`Amount`]  | 10⁻¹⁸      | the exact product quantity × price, never rounded   |
//! | [`Money`]   | minor unit | statement figures, rounded half-even (§3.5)         |
//!
//! `Quantity × Price = Amount` is exact in `i128` (6 + 12 = 18 decimals), so the
//! usage rows of a period add up to exactly the amount the statement rounds.
//!
//! There are no `+`, `-`, `*` or `Sum` operators on these types: every
//! operation is checked and returns [`Overflow`] instead of wrapping, so a
//! value out of range cannot go unnoticed. The ranges the inputs are held to
//! (see [`crate::limits`]) keep every checked operation far from failing.
//!
//! ```
//! use meterbook_core::fixed::{Quantity, Price};
//! let q: Quantity = "1.5".parse().unwrap();
//! let p: Price = "0.252".parse().unwrap();
//! assert_eq!(q.checked_mul(p).unwrap().to_string(), "0.378");
//! let big = Quantity(i64::MAX);
//! assert!(big.checked_add(q).is_err());
//! ```

use std::fmt;
use std::str::FromStr;

/// An arithmetic result that does not fit its type: the inputs that led to it
/// are outside the supported ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the value exceeds the supported range")]
pub struct Overflow;

/// Why a decimal string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("empty value")]
    Empty,
    #[error("not a decimal number in plain notation")]
    Invalid,
    #[error("more than {0} decimal places")]
    TooPrecise(u32),
    #[error("number too large")]
    Overflow,
    #[error("must not be negative")]
    Negative,
}

/// 10^n for n up to 38, from a table (it is called per formatted amount).
pub(crate) const fn pow10(n: u32) -> i128 {
    POW10[n as usize]
}

const POW10: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Parses plain decimal notation (`-12.340`, `+3`, `.5`) into an integer count of 10^-scale.
/// Trailing zeros beyond `scale` are accepted; other extra digits are `TooPrecise`.
pub fn parse_fixed(s: &str, scale: u32) -> Result<i128, DecimalError> {
    let b = s.trim().as_bytes();
    if b.is_empty() {
        return Err(DecimalError::Empty);
    }
    let (neg, digits) = match b[0] {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return Err(DecimalError::Invalid);
    }
    let mut int: i128 = 0;
    let mut frac_digits = 0u32;
    let mut seen_dot = false;
    let mut seen_digit = false;
    let mut excess_nonzero = false;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                seen_digit = true;
                if seen_dot {
                    if frac_digits == scale {
                        if c != b'0' {
                            excess_nonzero = true;
                        }
                        continue;
                    }
                    frac_digits += 1;
                }
                int = int
                    .checked_mul(10)
                    .and_then(|v| v.checked_add((c - b'0') as i128))
                    .ok_or(DecimalError::Overflow)?;
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return Err(DecimalError::Invalid),
        }
    }
    if !seen_digit {
        return Err(DecimalError::Invalid);
    }
    if excess_nonzero {
        return Err(DecimalError::TooPrecise(scale));
    }
    let v = int
        .checked_mul(pow10(scale - frac_digits))
        .ok_or(DecimalError::Overflow)?;
    // Guard so that sums and products of stored values stay far from i128's edge.
    if v > pow10(36) {
        return Err(DecimalError::Overflow);
    }
    Ok(if neg { -v } else { v })
}

/// Writes `v × 10^-scale` in plain notation. With `min_frac` digits always shown and
/// the rest of the fraction trimmed of trailing zeros.
pub fn write_fixed(out: &mut String, v: i128, scale: u32, min_frac: u32) {
    if v < 0 {
        out.push('-');
    }
    let a = v.unsigned_abs();
    // Most values fit 64 bits, where division is one instruction.
    if let (Ok(a), Ok(p)) = (u64::try_from(a), u64::try_from(pow10(scale))) {
        let (int, mut frac) = (a / p, a % p);
        push_digits(out, int as u128, 0);
        let mut digits = scale;
        while digits > min_frac && frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        if digits > 0 {
            out.push('.');
            push_digits(out, frac as u128, digits as usize);
        }
        return;
    }
    let p = pow10(scale) as u128;
    let (int, mut frac) = (a / p, a % p);
    push_digits(out, int, 0);
    if scale == 0 {
        return;
    }
    let mut digits = scale;
    while digits > min_frac && frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    if digits == 0 {
        return;
    }
    out.push('.');
    push_digits(out, frac, digits as usize);
}

/// Appends the decimal digits of `v`, left-padded with zeros to `width`
/// (once per amount of every report row: no allocation).
fn push_digits(out: &mut String, v: u128, width: usize) {
    let mut buf = [b'0'; 40];
    let mut at = buf.len();
    let mut w = v;
    // 64-bit division where the value fits: one instruction, not a call.
    while w > u64::MAX as u128 {
        at -= 1;
        buf[at] = b'0' + (w % 10) as u8;
        w /= 10;
    }
    let mut small = [0u8; 20];
    let digits = u64_digits(w as u64, &mut small);
    // A value past 64 bits has its low digits in `buf` already.
    let head = &mut buf[..at];
    let start = head.len() - digits.len();
    head[start..].copy_from_slice(digits.as_bytes());
    let at = start.min(buf.len() - width.min(buf.len()));
    out.push_str(std::str::from_utf8(&buf[at..]).expect("ASCII digits"));
}

/// The decimal digits of `v`, written into the end of `buf` (no allocation).
pub fn u64_digits(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).expect("ASCII digits")
}

/// Integer division rounded half to even (banker's rounding). `d` must be positive.
pub fn div_round_half_even(n: i128, d: i128) -> i128 {
    debug_assert!(d > 0);
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    let twice = r * 2;
    if twice > d || (twice == d && q % 2 != 0) {
        q + 1
    } else {
        q
    }
}

macro_rules! fixed_type {
    ($name:ident, $repr:ty, $scale:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $repr);

        impl $name {
            /// Decimal places of this type.
            pub const SCALE: u32 = $scale;
            pub const ZERO: $name = $name(0);
            /// The raw integer count of 10^-SCALE.
            pub fn raw(self) -> $repr {
                self.0
            }
            pub fn is_zero(self) -> bool {
                self.0 == 0
            }
            /// Plain notation, trailing zeros trimmed.
            pub fn write_to(self, out: &mut String) {
                write_fixed(out, self.0 as i128, Self::SCALE, 0)
            }
        }

        impl FromStr for $name {
            type Err = DecimalError;
            fn from_str(s: &str) -> Result<Self, DecimalError> {
                let v = parse_fixed(s, Self::SCALE)?;
                <$repr>::try_from(v)
                    .map($name)
                    .map_err(|_| DecimalError::Overflow)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut s = String::new();
                self.write_to(&mut s);
                f.write_str(&s)
            }
        }

        impl $name {
            pub fn checked_add(self, o: $name) -> Result<$name, Overflow> {
                self.0.checked_add(o.0).map($name).ok_or(Overflow)
            }
            pub fn checked_sub(self, o: $name) -> Result<$name, Overflow> {
                self.0.checked_sub(o.0).map($name).ok_or(Overflow)
            }
            /// The sum of `it`, or [`Overflow`] as soon as a partial sum does not fit.
            pub fn checked_sum<I: IntoIterator<Item = $name>>(it: I) -> Result<$name, Overflow> {
                it.into_iter()
                    .try_fold($name::ZERO, |a, b| a.checked_add(b))
            }
        }
    };
}

fixed_type!(
    Quantity,
    i64,
    6,
    "A quantity of a meter's unit, in millionths."
);
fixed_type!(
    Price,
    i128,
    12,
    "A unit price or rate, in 10⁻¹² of the currency."
);
fixed_type!(
    Amount,
    i128,
    18,
    "An exact amount of money, in 10⁻¹⁸ of the currency."
);

impl Quantity {
    /// Parses a usage quantity: non-negative, at most 6 decimals.
    pub fn parse_usage(s: &str) -> Result<Quantity, DecimalError> {
        let q: Quantity = s.parse()?;
        if q.0 < 0 {
            return Err(DecimalError::Negative);
        }
        Ok(q)
    }
}

impl Quantity {
    /// The exact cost of this quantity at `p` (6 + 12 = 18 decimals, no rounding).
    pub fn checked_mul(self, p: Price) -> Result<Amount, Overflow> {
        (self.0 as i128)
            .checked_mul(p.0)
            .map(Amount)
            .ok_or(Overflow)
    }
}

impl Amount {
    /// `self / q` rounded half-even to a [`Price`] (12 decimals); 0 when `q` is 0.
    pub fn per_unit(self, q: Quantity) -> Price {
        // No usage costs nothing; a negative quantity (never stored, since
        // input refuses it) gets the same rather than a division by it.
        if q.0 <= 0 {
            return Price::ZERO;
        }
        // 10^-18 / 10^-6 = 10^-12: the quotient is already in Price units.
        Price(div_round_half_even(self.0, q.0 as i128))
    }

    /// Rounds half-even to the minor unit of a currency with `exponent` decimals;
    /// [`Overflow`] if that does not fit [`Money`].
    pub fn round_to_minor(self, exponent: u32) -> Result<Money, Overflow> {
        let d = pow10(Self::SCALE - exponent);
        i64::try_from(div_round_half_even(self.0, d))
            .map(Money)
            .map_err(|_| Overflow)
    }
}

/// Money in a currency's minor unit (cents for USD, yen for JPY). The exponent
/// lives with the currency, not the value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

impl Money {
    pub const ZERO: Money = Money(0);

    /// Parses an amount that has at most `exponent` decimals (refuses sub-minor precision).
    pub fn parse(s: &str, exponent: u32) -> Result<Money, DecimalError> {
        let v = parse_fixed(s, exponent)?;
        i64::try_from(v)
            .map(Money)
            .map_err(|_| DecimalError::Overflow)
    }

    /// Plain notation with exactly `exponent` decimals (`12.30`, `1200`).
    pub fn format(self, exponent: u32) -> String {
        let mut s = String::new();
        write_fixed(&mut s, self.0 as i128, exponent, exponent);
        s
    }

    pub fn min(self, o: Money) -> Money {
        Money(self.0.min(o.0))
    }
    pub fn max(self, o: Money) -> Money {
        Money(self.0.max(o.0))
    }
}

impl Money {
    pub fn checked_add(self, o: Money) -> Result<Money, Overflow> {
        self.0.checked_add(o.0).map(Money).ok_or(Overflow)
    }
    pub fn checked_sub(self, o: Money) -> Result<Money, Overflow> {
        self.0.checked_sub(o.0).map(Money).ok_or(Overflow)
    }
    /// The sum of `it`, or [`Overflow`] as soon as a partial sum does not fit.
    pub fn checked_sum<I: IntoIterator<Item = Money>>(it: I) -> Result<Money, Overflow> {
        it.into_iter()
            .try_fold(Money::ZERO, |a, b| a.checked_add(b))
    }
}

#[cfg(test)]
mod tests {

    /// The formatting before it stopped allocating, as the reference.
    fn write_fixed_reference(v: i128, scale: u32, min_frac: u32) -> String {
        let mut out = String::new();
        if v < 0 {
            out.push('-');
        }
        let a = v.unsigned_abs();
        let p = 10u128.pow(scale);
        let (int, mut frac) = (a / p, a % p);
        out.push_str(&int.to_string());
        if scale == 0 {
            return out;
        }
        let mut digits = scale;
        while digits > min_frac && frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        if digits == 0 {
            return out;
        }
        out.push('.');
        let f = frac.to_string();
        for _ in f.len() as u32..digits {
            out.push('0');
        }
        out.push_str(&f);
        out
    }

    #[test]
    fn write_fixed_matches_the_reference_at_every_scale_and_size() {
        let values = [
            0i128,
            1,
            -1,
            5,
            10,
            100_000,
            1_000_001,
            -123_456_789,
            u64::MAX as i128,
            u64::MAX as i128 + 1,
            -(u64::MAX as i128) - 7,
            i128::MAX,
            i128::MIN + 1,
            i128::MIN,
        ];
        for v in values {
            for scale in [0, 1, 2, 6, 12, 18] {
                for min_frac in [0, 2] {
                    let mut out = String::new();
                    write_fixed(&mut out, v, scale, min_frac);
                    assert_eq!(
                        out,
                        write_fixed_reference(v, scale, min_frac),
                        "{v} {scale} {min_frac}"
                    );
                }
            }
        }
    }

    use super::*;

    #[test]
    fn parses_plain_decimals() {
        assert_eq!(parse_fixed("1.5", 6), Ok(1_500_000));
        assert_eq!(parse_fixed("-0.000001", 6), Ok(-1));
        assert_eq!(parse_fixed(".5", 2), Ok(50));
        assert_eq!(parse_fixed("7.", 2), Ok(700));
        assert_eq!(parse_fixed("1.2300000", 2), Ok(123));
        assert_eq!(
            parse_fixed("1.2345678", 6),
            Err(DecimalError::TooPrecise(6))
        );
        assert_eq!(parse_fixed("1e5", 6), Err(DecimalError::Invalid));
        assert_eq!(parse_fixed("", 6), Err(DecimalError::Empty));
        assert_eq!(parse_fixed("-", 6), Err(DecimalError::Invalid));
        assert_eq!(parse_fixed("1.2.3", 6), Err(DecimalError::Invalid));
        assert_eq!(parse_fixed("NaN", 6), Err(DecimalError::Invalid));
        assert_eq!(
            parse_fixed("99999999999999999999999999999999999999999", 6),
            Err(DecimalError::Overflow)
        );
        assert_eq!(Quantity::parse_usage("-1"), Err(DecimalError::Negative));
    }

    #[test]
    fn formats_plain_decimals() {
        assert_eq!(Quantity(1_500_000).to_string(), "1.5");
        assert_eq!(Quantity(-1).to_string(), "-0.000001");
        assert_eq!(Quantity(0).to_string(), "0");
        assert_eq!(Money(-5).format(2), "-0.05");
        assert_eq!(Money(1200).format(0), "1200");
        assert_eq!(Money(123456).format(2), "1234.56");
        assert_eq!(Amount(pow10(36)).to_string(), "1000000000000000000");
    }

    #[test]
    fn half_even_rounding() {
        assert_eq!(div_round_half_even(5, 10), 0);
        assert_eq!(div_round_half_even(15, 10), 2);
        assert_eq!(div_round_half_even(25, 10), 2);
        assert_eq!(div_round_half_even(26, 10), 3);
        assert_eq!(div_round_half_even(-15, 10), -2);
        assert_eq!(div_round_half_even(-25, 10), -2);
        assert_eq!(div_round_half_even(-26, 10), -3);
        // 0.005 USD -> 0.00, 0.015 -> 0.02
        assert_eq!(Amount(5 * pow10(15)).round_to_minor(2), Ok(Money(0)));
        assert_eq!(Amount(15 * pow10(15)).round_to_minor(2), Ok(Money(2)));
        // JPY: 2.5 yen -> 2
        assert_eq!(Amount(25 * pow10(17)).round_to_minor(0), Ok(Money(2)));
    }

    #[test]
    fn product_is_exact() {
        let q: Quantity = "88.123456".parse().unwrap();
        let p: Price = "0.087000000001".parse().unwrap();
        assert_eq!(
            q.checked_mul(p).unwrap().to_string(),
            "7.666740672088123456"
        );
    }

    /// The defect this guards against: 9e12 units at 1e7 rounded to cents used to
    /// wrap to a negative i64, and at 1e14 the product itself wrapped i128.
    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let q: Quantity = "9000000000000".parse().unwrap();
        let cost = q.checked_mul("10000000".parse().unwrap()).unwrap();
        assert_eq!(cost.round_to_minor(2), Err(Overflow));
        assert_eq!(
            q.checked_mul("100000000000000".parse().unwrap()),
            Err(Overflow)
        );
        assert_eq!(Quantity(i64::MAX).checked_add(Quantity(1)), Err(Overflow));
        assert_eq!(Money(i64::MIN).checked_sub(Money(1)), Err(Overflow));
        assert_eq!(
            Amount::checked_sum([Amount(i128::MAX), Amount(1)]),
            Err(Overflow)
        );
        assert_eq!(Money::checked_sum([Money(1), Money(2)]), Ok(Money(3)));
    }
}
