//! Forecasts: the charges a scope is expected to reach by the end of a
//! horizon (the billing period, or the term), and the day the commitment runs
//! out, from the charges of the days before. Pure, exact arithmetic in minor
//! units; the use-case layer supplies the figures.
//!
//! # Method
//!
//! - **Burn rate**: the mean of the daily charges of the last
//!   [`BASIS_DAYS`] days through the as-of day (the last day of usage
//!   counted). The window may reach back into earlier periods of the term;
//!   a day without usage counts as zero; early in the term fewer days exist
//!   and those are used (`basis_days` says how many). The mean is rounded
//!   half-even to the minor unit.
//! - **Range**: the mean of the lower half of those days (low) and of their
//!   upper half (high), each half `⌈n/2⌉` days (the median day belongs to
//!   both when `n` is odd). Why halves rather than, say, the 10th and 90th
//!   percentiles: a percentile of 30 days is one single day (the 3rd or the
//!   27th), so one holiday or one spike moves it, and it needs an
//!   interpolation rule; a half's mean uses every day, is exact, and reads
//!   plainly ("if the rest of the month runs like the quieter half of the
//!   last 30 days"). Rounding is monotone, so `low ≤ mean ≤ high` always.
//! - **Projection**: `actual + burn × days_left` (and the same with low and
//!   high), where `days_left` are the horizon's days after the as-of day.
//!   The burn is the rounded figure shown, so anyone can redo the sum.
//! - **Commitment run-out**: with the commitment balance left `b > 0` and a
//!   burn `r > 0`, the day `as_of + ⌈b / r⌉` (the first day on which the
//!   charges since the as-of day reach `b`); none when `r ≤ 0` or that day
//!   is past the term's end. The earliest uses the high burn, the latest the
//!   low one. A balance `≤ 0` is already used.
//!
//! The burn counts every charge (marketplace and separately billed ones
//! too), the same figure the projection uses.

use crate::calendar::Day;
use crate::fixed::{div_round_half_even, Money, Overflow};

/// How many trailing days the burn rate is taken from.
pub const BASIS_DAYS: u32 = 30;

/// The method in one line, for pages, the API and the CLI.
pub const METHOD: &str = "Daily burn rate: mean of the daily charges of the last 30 days through \
the as-of date (days without usage count as zero; fewer early in the term). Range: mean of the \
lower and of the upper half of those days. Projected = actual + burn × days left.";

/// A burn rate and its range, in minor units a day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Burn {
    pub mean: Money,
    pub low: Money,
    pub high: Money,
    /// The days it was taken from (at most [`BASIS_DAYS`]).
    pub basis_days: u32,
}

/// The charges expected by the end of the horizon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Projection {
    pub projected: Money,
    pub low: Money,
    pub high: Money,
}

/// When the commitment runs out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunoutDates {
    /// At the mean burn; `None` when the burn is not positive, the balance is
    /// already used, or the day falls past the term's end.
    pub runs_out_on: Option<Day>,
    /// At the high burn.
    pub earliest: Option<Day>,
    /// At the low burn.
    pub latest: Option<Day>,
    pub already_used: bool,
}

/// The first day of the burn rate's window ending on `as_of`: [`BASIS_DAYS`]
/// days back, but not before the term's start.
pub fn basis_start(as_of: Day, term_start: Day) -> Day {
    as_of.add_days(1 - BASIS_DAYS as i32).max(term_start)
}

/// The horizon's days after `as_of`: all of them when nothing is counted yet
/// (`None`, or an as-of day before the horizon), none from its last day on.
pub fn days_left(as_of: Option<Day>, first_day: Day, last_day: Day) -> u32 {
    let counted_through = match as_of {
        Some(a) => a.max(first_day.add_days(-1)),
        None => first_day.add_days(-1),
    };
    u32::try_from(last_day.raw() - counted_through.raw()).unwrap_or(0)
}

/// The burn rate of `days` (daily charges, oldest first): mean, and the means
/// of the lower and the upper half. Only the last [`BASIS_DAYS`] count. No
/// days: all zero.
pub fn burn(days: &[Money]) -> Result<Burn, Overflow> {
    let days = &days[days.len().saturating_sub(BASIS_DAYS as usize)..];
    if days.is_empty() {
        return Ok(Burn::default());
    }
    let mean = |v: &[Money]| -> Result<Money, Overflow> {
        let sum = v
            .iter()
            .try_fold(0i128, |a, m| a.checked_add(i128::from(m.0)))
            .ok_or(Overflow)?;
        i64::try_from(div_round_half_even(sum, v.len() as i128))
            .map(Money)
            .map_err(|_| Overflow)
    };
    let mut sorted = days.to_vec();
    sorted.sort_unstable();
    let half = days.len().div_ceil(2);
    Ok(Burn {
        mean: mean(days)?,
        low: mean(&sorted[..half])?,
        high: mean(&sorted[sorted.len() - half..])?,
        basis_days: days.len() as u32,
    })
}

/// `actual + rate × days_left`.
fn ahead(actual: Money, rate: Money, days_left: u32) -> Result<Money, Overflow> {
    let more = rate.0.checked_mul(i64::from(days_left)).ok_or(Overflow)?;
    actual.checked_add(Money(more))
}

/// The charges expected by the horizon's end: `actual` plus each burn rate
/// times `days_left`.
pub fn project(actual: Money, b: &Burn, days_left: u32) -> Result<Projection, Overflow> {
    Ok(Projection {
        projected: ahead(actual, b.mean, days_left)?,
        low: ahead(actual, b.low, days_left)?,
        high: ahead(actual, b.high, days_left)?,
    })
}

/// The day a balance of `balance` runs out at `rate` a day from `as_of`,
/// if that is on or before `term_end`.
fn runs_out(balance: Money, rate: Money, as_of: Day, term_end: Day) -> Option<Day> {
    if balance.0 <= 0 || rate.0 <= 0 {
        return None;
    }
    let (b, r) = (i128::from(balance.0), i128::from(rate.0));
    let days = (b + r - 1) / r;
    let day = i128::from(as_of.raw()) + days;
    (day <= i128::from(term_end.raw())).then(|| Day::from_raw(day as i32))
}

/// When a commitment balance of `balance` left after `as_of` runs out at
/// burn `b`, within a term ending on `term_end`.
pub fn runout(balance: Money, b: &Burn, as_of: Day, term_end: Day) -> RunoutDates {
    if balance.0 <= 0 {
        return RunoutDates {
            already_used: true,
            ..RunoutDates::default()
        };
    }
    RunoutDates {
        runs_out_on: runs_out(balance, b.mean, as_of, term_end),
        earliest: runs_out(balance, b.high, as_of, term_end),
        latest: runs_out(balance, b.low, as_of, term_end),
        already_used: false,
    }
}

/// What a forecast is made from.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// Daily charges in minor units, one a day from `daily_first` on; days
    /// outside count as zero.
    pub daily: &'a [Money],
    pub daily_first: Day,
    pub term_start: Day,
    pub term_end: Day,
    /// The horizon's first and last day.
    pub first_day: Day,
    pub last_day: Day,
    /// The last day of usage counted; `None` before any.
    pub as_of: Option<Day>,
    /// Charges to date in the horizon.
    pub actual: Money,
    /// The commitment balance left, where there is one to forecast.
    pub balance: Option<Money>,
}

/// A forecast: the burn rate, the projection and the run-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    pub days_left: u32,
    pub burn: Burn,
    pub projection: Projection,
    pub runout: Option<RunoutDates>,
}

/// The forecast of `i` by the method of this module.
pub fn forecast(i: &Input<'_>) -> Result<Output, Overflow> {
    let days_left = days_left(i.as_of, i.first_day, i.last_day);
    let b = match i.as_of {
        None => Burn::default(),
        Some(as_of) => {
            let from = basis_start(as_of, i.term_start);
            let window: Vec<Money> = (from.raw()..=as_of.raw())
                .map(|d| {
                    usize::try_from(d - i.daily_first.raw())
                        .ok()
                        .and_then(|k| i.daily.get(k).copied())
                        .unwrap_or(Money::ZERO)
                })
                .collect();
            burn(&window)?
        }
    };
    let projection = project(i.actual, &b, days_left)?;
    let runout = i.balance.map(|bal| match i.as_of {
        Some(as_of) => runout(bal, &b, as_of, i.term_end),
        // Nothing used yet: nothing to measure a burn by.
        None => RunoutDates {
            already_used: bal.0 <= 0,
            ..RunoutDates::default()
        },
    });
    Ok(Output {
        days_left,
        burn: b,
        projection,
        runout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Day {
        s.parse().unwrap()
    }
    fn m(v: &[i64]) -> Vec<Money> {
        v.iter().map(|&c| Money(c)).collect()
    }

    fn input<'a>(daily: &'a [Money], first: &str, as_of: Option<&str>, actual: i64) -> Input<'a> {
        Input {
            daily,
            daily_first: d(first),
            term_start: d("2026-01-01"),
            term_end: d("2026-12-31"),
            first_day: d("2026-03-01"),
            last_day: d("2026-03-31"),
            as_of: as_of.map(d),
            actual: Money(actual),
            balance: None,
        }
    }

    #[test]
    fn mean_and_halves() {
        // Days 100, 200, 300, 400 (cents): mean 1000/4 = 250;
        // lower half {100, 200} → 150; upper half {300, 400} → 350.
        let b = burn(&m(&[300, 100, 400, 200])).unwrap();
        assert_eq!(
            (b.mean, b.low, b.high),
            (Money(250), Money(150), Money(350))
        );
        assert_eq!(b.basis_days, 4);
        // Odd count: 10, 20, 60 → mean 90/3 = 30; halves of ⌈3/2⌉ = 2 days:
        // {10, 20} → 15, {20, 60} → 40 (the median in both).
        let b = burn(&m(&[60, 10, 20])).unwrap();
        assert_eq!((b.mean, b.low, b.high), (Money(30), Money(15), Money(40)));
        // Half-even: 1, 2 → 3/2 = 1.5 → 2; low {1} = 1, high {2} = 2.
        // 1, 4 → 2.5 → 2 (to even); 0, 1, 2, 2 → 5/4 = 1.25 → 1.
        assert_eq!(burn(&m(&[1, 2])).unwrap().mean, Money(2));
        assert_eq!(burn(&m(&[1, 4])).unwrap().mean, Money(2));
        assert_eq!(burn(&m(&[0, 1, 2, 2])).unwrap().mean, Money(1));
        // Only the last 30 of 40 days: ten days of 1000 then thirty of 10.
        let mut v = vec![Money(1000); 10];
        v.extend(vec![Money(10); 30]);
        let b = burn(&v).unwrap();
        assert_eq!(
            (b.mean, b.low, b.high, b.basis_days),
            (Money(10), Money(10), Money(10), 30)
        );
        // A credit day: -50, 0, 110 → 60/3 = 20; {-50, 0} → -25; {0, 110} → 55.
        let b = burn(&m(&[0, -50, 110])).unwrap();
        assert_eq!((b.mean, b.low, b.high), (Money(20), Money(-25), Money(55)));
        assert_eq!(burn(&[]).unwrap(), Burn::default());
    }

    #[test]
    fn zero_usage_projects_the_actual_figure() {
        // Thirty days of nothing through 2026-03-15: burn 0, 16 days left,
        // projected = actual.
        let daily = vec![Money::ZERO; 74];
        let out = forecast(&input(&daily, "2026-01-01", Some("2026-03-15"), 0)).unwrap();
        assert_eq!(out.days_left, 16);
        assert_eq!(
            out.burn,
            Burn {
                basis_days: 30,
                ..Burn::default()
            }
        );
        assert_eq!(
            out.projection,
            Projection {
                projected: Money(0),
                low: Money(0),
                high: Money(0)
            }
        );
        // No usage at all: no as-of day, every day of the horizon left.
        let out = forecast(&input(&[], "2026-01-01", None, 0)).unwrap();
        assert_eq!((out.days_left, out.burn.basis_days), (31, 0));
        assert_eq!(out.projection.projected, Money(0));
    }

    #[test]
    fn first_day_of_the_term_uses_the_one_day_there_is() {
        // Term starts 2026-01-01, as-of the same day with 1234 cents: basis
        // 1 day, burn 1234; horizon January, 30 days left:
        // projected = 1234 + 1234 × 30 = 38254.
        let daily = m(&[1234]);
        let mut i = input(&daily, "2026-01-01", Some("2026-01-01"), 1234);
        (i.first_day, i.last_day) = (d("2026-01-01"), d("2026-01-31"));
        let out = forecast(&i).unwrap();
        assert_eq!((out.days_left, out.burn.basis_days), (30, 1));
        assert_eq!(out.burn.mean, Money(1234));
        assert_eq!(out.projection.projected, Money(38_254));
        assert_eq!(out.projection.low, Money(38_254));
        assert_eq!(out.projection.high, Money(38_254));
        // Ten days in: the window is the 10 days since the term's start.
        assert_eq!(
            basis_start(d("2026-01-10"), d("2026-01-01")),
            d("2026-01-01")
        );
        assert_eq!(
            basis_start(d("2026-03-15"), d("2026-01-01")),
            d("2026-02-14")
        );
    }

    #[test]
    fn the_window_reaches_into_the_previous_period() {
        // As-of 2026-03-05: the window is 2026-02-04..=2026-03-05 (30 days:
        // 25 of February, 5 of March). February's days are 100 each, March's
        // 400 each: sum 25×100 + 5×400 = 4500, mean 150. Sorted: 25 × 100
        // then 5 × 400; lower 15 → 100; upper 15 = 10 × 100 + 5 × 400 =
        // 3000 / 15 = 200. Actual (March) 2000, 26 days left:
        // 2000 + 150×26 = 5900; low 2000 + 2600 = 4600; high 2000 + 5200 = 7200.
        let mut daily = vec![Money(100); 28]; // February, from 2026-02-01
        daily.extend(vec![Money(400); 5]);
        let out = forecast(&input(&daily, "2026-02-01", Some("2026-03-05"), 2000)).unwrap();
        assert_eq!(out.days_left, 26);
        assert_eq!(
            out.burn,
            Burn {
                mean: Money(150),
                low: Money(100),
                high: Money(200),
                basis_days: 30
            }
        );
        assert_eq!(
            out.projection,
            Projection {
                projected: Money(5900),
                low: Money(4600),
                high: Money(7200)
            }
        );
    }

    #[test]
    fn month_end_has_no_days_left() {
        // As-of the horizon's last day: projected == actual whatever the burn.
        let daily = vec![Money(500); 90];
        let out = forecast(&input(&daily, "2026-01-01", Some("2026-03-31"), 15_500)).unwrap();
        assert_eq!(out.days_left, 0);
        assert_eq!(out.burn.mean, Money(500));
        assert_eq!(
            out.projection,
            Projection {
                projected: Money(15_500),
                low: Money(15_500),
                high: Money(15_500)
            }
        );
        // An as-of day before the horizon: all of it is left.
        assert_eq!(
            days_left(Some(d("2026-02-28")), d("2026-03-01"), d("2026-03-31")),
            31
        );
        assert_eq!(
            days_left(Some(d("2026-04-02")), d("2026-03-01"), d("2026-03-31")),
            0
        );
    }

    #[test]
    fn leap_february() {
        // 2028 is a leap year: as-of 2028-02-10, horizon ends 2028-02-29,
        // 19 days left. Term starts 2028-02-01: 10 days of 300 → burn 300.
        // Actual 3000; projected 3000 + 300 × 19 = 8700.
        let daily = vec![Money(300); 10];
        let i = Input {
            daily: &daily,
            daily_first: d("2028-02-01"),
            term_start: d("2028-02-01"),
            term_end: d("2029-01-31"),
            first_day: d("2028-02-01"),
            last_day: d("2028-02-29"),
            as_of: Some(d("2028-02-10")),
            actual: Money(3000),
            balance: Some(Money(10_000)),
        };
        let out = forecast(&i).unwrap();
        assert_eq!((out.days_left, out.burn.basis_days), (19, 10));
        assert_eq!(out.projection.projected, Money(8700));
        // 10000 / 300 = 33.3 → 34 days after 2028-02-10: 19 days to the
        // 29th, then 15 into March → 2028-03-15 (in 2026 it would be 03-16).
        let r = out.runout.unwrap();
        assert_eq!(r.runs_out_on, Some(d("2028-03-15")));
        assert_eq!((r.earliest, r.latest), (r.runs_out_on, r.runs_out_on));
        assert!(!r.already_used);
    }

    #[test]
    fn runout_with_its_range() {
        // Balance 10000; burn 250 (low 150, high 350) from 2026-03-10:
        // mean ⌈10000/250⌉ = 40 days → 2026-04-19;
        // high ⌈10000/350⌉ = ⌈28.57⌉ = 29 → 2026-04-08;
        // low ⌈10000/150⌉ = ⌈66.67⌉ = 67 → 2026-05-16.
        let b = Burn {
            mean: Money(250),
            low: Money(150),
            high: Money(350),
            basis_days: 30,
        };
        let r = runout(Money(10_000), &b, d("2026-03-10"), d("2026-12-31"));
        assert_eq!(r.runs_out_on, Some(d("2026-04-19")));
        assert_eq!(r.earliest, Some(d("2026-04-08")));
        assert_eq!(r.latest, Some(d("2026-05-16")));
        // Exactly divisible: 10000 / 250 = 40, the 40th day spends the last cent.
        // A low burn of zero never runs out; a term ending 2026-04-30 cuts
        // the mean and the latest off.
        let b0 = Burn { low: Money(0), ..b };
        let r = runout(Money(10_000), &b0, d("2026-03-10"), d("2026-04-30"));
        assert_eq!(r.runs_out_on, Some(d("2026-04-19")));
        assert_eq!(r.earliest, Some(d("2026-04-08")));
        assert_eq!(r.latest, None);
        let r = runout(Money(10_000), &b, d("2026-03-10"), d("2026-04-18"));
        assert_eq!(
            (r.runs_out_on, r.earliest, r.latest),
            (None, Some(d("2026-04-08")), None)
        );
        // On the term's last day still counts.
        let r = runout(Money(10_000), &b, d("2026-03-10"), d("2026-04-19"));
        assert_eq!(r.runs_out_on, Some(d("2026-04-19")));
    }

    #[test]
    fn runout_past_the_term_and_zero_burn() {
        // Balance 1,000,000 at 100 a day: 10000 days, far past the term.
        let b = Burn {
            mean: Money(100),
            low: Money(50),
            high: Money(200),
            basis_days: 30,
        };
        let r = runout(Money(1_000_000), &b, d("2026-03-10"), d("2026-12-31"));
        assert_eq!(r, RunoutDates::default());
        // No burn: it never runs out.
        let r = runout(
            Money(500),
            &Burn::default(),
            d("2026-03-10"),
            d("2026-12-31"),
        );
        assert_eq!(r, RunoutDates::default());
        // Huge figures do not overflow the day arithmetic.
        let b = Burn {
            mean: Money(1),
            low: Money(1),
            high: Money(1),
            basis_days: 1,
        };
        assert_eq!(
            runout(Money(i64::MAX), &b, d("2026-03-10"), d("9999-12-31")).runs_out_on,
            None
        );
    }

    #[test]
    fn already_used() {
        // A balance of zero or below is used up, whatever the burn.
        let b = Burn {
            mean: Money(100),
            low: Money(50),
            high: Money(200),
            basis_days: 30,
        };
        for bal in [0, -1, -5000] {
            let r = runout(Money(bal), &b, d("2026-08-10"), d("2026-12-31"));
            assert_eq!(
                r,
                RunoutDates {
                    already_used: true,
                    ..RunoutDates::default()
                }
            );
        }
        let daily = vec![Money(100); 10];
        let mut i = input(&daily, "2026-03-01", Some("2026-03-10"), 1000);
        i.balance = Some(Money(0));
        assert!(forecast(&i).unwrap().runout.unwrap().already_used);
        i.as_of = None;
        assert!(forecast(&i).unwrap().runout.unwrap().already_used);
    }

    #[test]
    fn overflow_is_an_error() {
        let b = Burn {
            mean: Money(i64::MAX / 2),
            low: Money(0),
            high: Money(i64::MAX / 2),
            basis_days: 1,
        };
        assert_eq!(project(Money(0), &b, 3), Err(Overflow));
        assert_eq!(
            project(Money(i64::MAX), &b, 0).map(|p| p.projected),
            Ok(Money(i64::MAX))
        );
        // The mean of huge days is summed in i128.
        let v = vec![Money(i64::MAX); 30];
        assert_eq!(burn(&v).unwrap().mean, Money(i64::MAX));
    }

    #[test]
    fn low_never_above_mean_never_above_high() {
        // A spread of sizes and signs, every prefix.
        let v = m(&[
            7, -3, 0, 0, 12, 5, 5, 9, -1, 100, 3, 3, 4, 0, 1, 2, 2, 2, 8, 50,
        ]);
        for k in 1..=v.len() {
            let b = burn(&v[..k]).unwrap();
            assert!(b.low <= b.mean && b.mean <= b.high, "{k}: {b:?}");
        }
    }
}
