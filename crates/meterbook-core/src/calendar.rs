//! Days and billing periods (calendar months in UTC).

use crate::quote::quote;
use chrono::{Datelike, NaiveDate};
use std::fmt;
use std::str::FromStr;

/// A calendar day, stored as days since 0001-01-01 (so it packs into an integer column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DateError(pub String);

impl Day {
    /// A day of years 1 to 9999 (the range billing periods cover).
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Option<Day> {
        if !(1..=9999).contains(&y) {
            return None;
        }
        NaiveDate::from_ymd_opt(y, m, d).map(Day::from_naive)
    }
    pub fn from_naive(d: NaiveDate) -> Day {
        Day(d.num_days_from_ce())
    }
    pub fn naive(self) -> NaiveDate {
        NaiveDate::from_num_days_from_ce_opt(self.0).expect("day in range")
    }
    pub fn from_raw(n: i32) -> Day {
        Day(n)
    }
    pub fn raw(self) -> i32 {
        self.0
    }
    pub fn today() -> Day {
        Day::from_naive(chrono::Utc::now().date_naive())
    }
    pub fn period(self) -> Period {
        let d = self.naive();
        Period::new(d.year(), d.month()).expect("valid")
    }
    pub fn succ(self) -> Day {
        Day(self.0 + 1)
    }
    pub fn add_days(self, n: i32) -> Day {
        Day(self.0 + n)
    }
    /// Writes `YYYY-MM-DD` without going through a formatter (the export hot path).
    pub fn write_iso(self, out: &mut String) {
        let d = self.naive();
        let y = d.year();
        push_digits(out, y as u32, 4);
        out.push('-');
        push_digits(out, d.month(), 2);
        out.push('-');
        push_digits(out, d.day(), 2);
    }
}

fn push_digits(out: &mut String, v: u32, width: u32) {
    let mut buf = [b'0'; 10];
    let mut v = v;
    for i in (0..width as usize).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.push_str(std::str::from_utf8(&buf[..width as usize]).expect("ascii digits"));
}

impl FromStr for Day {
    type Err = DateError;
    /// Strict `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Day, DateError> {
        let b = s.as_bytes();
        let bad = || {
            DateError(format!(
                "`{}` is not a date (expected YYYY-MM-DD)",
                quote(s)
            ))
        };
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, DateError> {
            let mut v = 0u32;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return Err(bad());
                }
                v = v * 10 + (c - b'0') as u32;
            }
            Ok(v)
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        Day::from_ymd(y as i32, m, d)
            .ok_or_else(|| DateError(format!("`{}` is not a calendar date", quote(s))))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(10);
        self.write_iso(&mut s);
        f.write_str(&s)
    }
}

/// A billing period: one calendar month, named `YYYYMM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period(u32);

impl Period {
    pub fn new(year: i32, month: u32) -> Option<Period> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
            return None;
        }
        Some(Period(year as u32 * 100 + month))
    }
    /// From the `YYYYMM` integer.
    pub fn from_id(id: u32) -> Option<Period> {
        Period::new((id / 100) as i32, id % 100)
    }
    pub fn id(self) -> u32 {
        self.0
    }
    pub fn year(self) -> i32 {
        (self.0 / 100) as i32
    }
    pub fn month(self) -> u32 {
        self.0 % 100
    }
    pub fn first_day(self) -> Day {
        Day::from_ymd(self.year(), self.month(), 1).expect("valid")
    }
    pub fn last_day(self) -> Day {
        self.next().first_day().add_days(-1)
    }
    pub fn next(self) -> Period {
        if self.month() == 12 {
            Period((self.year() as u32 + 1) * 100 + 1)
        } else {
            Period(self.0 + 1)
        }
    }
    pub fn prev(self) -> Period {
        if self.month() == 1 {
            Period((self.year() as u32 - 1) * 100 + 12)
        } else {
            Period(self.0 - 1)
        }
    }
    /// Every period from `self` through `last`, inclusive.
    pub fn through(self, last: Period) -> impl Iterator<Item = Period> {
        std::iter::successors(Some(self), move |p| (*p < last).then(|| p.next()))
            .take_while(move |p| *p <= last)
    }
}

impl FromStr for Period {
    type Err = DateError;
    fn from_str(s: &str) -> Result<Period, DateError> {
        let bad = || {
            DateError(format!(
                "`{}` is not a billing period (expected YYYYMM)",
                quote(s)
            ))
        };
        if s.len() != 6 || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        Period::from_id(s.parse().map_err(|_| bad())?).ok_or_else(bad)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        let d: Day = "2026-02-28".parse().unwrap();
        assert_eq!(d.to_string(), "2026-02-28");
        assert_eq!(d.succ().to_string(), "2026-03-01");
        assert!("2026-02-29".parse::<Day>().is_err());
        assert!("2026-2-28".parse::<Day>().is_err());
        assert!("2026/02/28".parse::<Day>().is_err());
        assert!("0000-01-01".parse::<Day>().is_err());
        assert_eq!(d.period().to_string(), "202602");
    }

    #[test]
    fn periods() {
        let p: Period = "202612".parse().unwrap();
        assert_eq!(p.next().to_string(), "202701");
        assert_eq!(p.next().prev(), p);
        assert_eq!(p.last_day().to_string(), "2026-12-31");
        assert!("202613".parse::<Period>().is_err());
        let all: Vec<_> = "202611"
            .parse::<Period>()
            .unwrap()
            .through("202702".parse().unwrap())
            .collect();
        assert_eq!(all.len(), 4);
    }
}
