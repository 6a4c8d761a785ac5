//! Enrollments: the contract, its currency and term, and who may see charges.

use crate::calendar::{Day, Period};
use crate::quote::quote;
use std::fmt;

/// An enrollment number (`8608480`): 1–32 ASCII letters, digits, `-` or `_`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnrollmentNumber(String);

impl EnrollmentNumber {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "`{}` is not an enrollment number (1-32 letters, digits, '-' or '_')",
                quote(s)
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnrollmentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 4217 currency with its number of minor-unit decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    exponent: u32,
}

impl Currency {
    pub fn parse(code: &str) -> Result<Currency, String> {
        let b = code.as_bytes();
        if b.len() != 3 || !b.iter().all(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "`{}` is not an ISO 4217 currency code (three capital letters)",
                quote(code)
            ));
        }
        // ISO 4217 currencies whose minor unit is not 2 decimals.
        let exponent = match code {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        };
        Ok(Currency {
            code: [b[0], b[1], b[2]],
            exponent,
        })
    }
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).expect("ascii")
    }
    /// Decimals of the minor unit (USD 2, JPY 0).
    pub fn exponent(&self) -> u32 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Who besides enterprise administrators may see costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChargeVisibility {
    pub department_admins_view_charges: bool,
    pub account_owners_view_charges: bool,
}

/// What it takes to create an enrollment.
#[derive(Clone, Debug)]
pub struct NewEnrollment {
    pub number: EnrollmentNumber,
    pub name: String,
    pub currency: Currency,
    pub start: Day,
    pub end: Day,
    pub visibility: ChargeVisibility,
}

impl NewEnrollment {
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("enrollment name must not be empty".into());
        }
        let years = |d: Day| d.period().year();
        if years(self.start) < 1900 || years(self.end) > 9998 {
            return Err("the term must lie between the years 1900 and 9998".into());
        }
        if self.end < self.start {
            return Err(format!(
                "term end {} is before term start {}",
                self.end, self.start
            ));
        }
        Ok(())
    }
}

/// A stored enrollment.
#[derive(Clone, Debug)]
pub struct Enrollment {
    pub id: i64,
    pub number: EnrollmentNumber,
    pub name: String,
    pub currency: Currency,
    pub start: Day,
    pub end: Day,
    pub visibility: ChargeVisibility,
    /// "Usage complete through": set by whoever feeds usage.
    pub watermark: Option<Day>,
    /// Bumped by every change to the enrollment's data: a cheap validator
    /// (ETag) for any report of it.
    pub data_version: i64,
}

impl Enrollment {
    pub fn first_period(&self) -> Period {
        self.start.period()
    }
    pub fn last_period(&self) -> Period {
        self.end.period()
    }
    pub fn contains(&self, d: Day) -> bool {
        self.start <= d && d <= self.end
    }
}

/// One billing period's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodInfo {
    pub period: Period,
    pub closed: bool,
    pub has_price_sheet: bool,
}
