//! File formats: reading the operator's inputs (hierarchy, price sheets,
//! usage as CSV or NDJSON) with errors that name file, line and column, and
//! writing the reports of design §4 as streaming CSV or JSON.
//!
//! ```
//! use meterbook_io::input::usage::UsageReader;
//! use meterbook_core::ingest::UsageSource;
//! let csv = "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity\nr1,g,2026-11-01,m,1.5\n";
//! let mut r = UsageReader::open(csv.as_bytes(), None).unwrap();
//! let rec = r.next_record().unwrap().unwrap();
//! assert_eq!(rec.consumed_quantity, "1.5");
//! assert_eq!(rec.line, 2);
//! ```
#![forbid(unsafe_code)]

pub mod input;
pub mod report;

/// An input error with its place: `file:line: column N (Name): reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct InputError {
    pub file: String,
    pub line: u64,
    /// 1-based column number and name, when the error is in one field (the
    /// name is empty when it is not one of the known columns).
    pub column: Option<(usize, String)>,
    pub reason: String,
}

impl InputError {
    pub fn describe(&self) -> String {
        match &self.column {
            Some((i, name)) if name.is_empty() => {
                format!("{}:{}: column {}: {}", self.file, self.line, i, self.reason)
            }
            Some((i, name)) => format!(
                "{}:{}: column {} ({}): {}",
                self.file, self.line, i, name, self.reason
            ),
            None => format!("{}:{}: {}", self.file, self.line, self.reason),
        }
    }
}
