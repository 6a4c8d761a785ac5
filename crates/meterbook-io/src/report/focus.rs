//! FinOps FOCUS 1.2 cost and usage dataset. (Being written: this stub refuses.)

use super::export::ProgressFn;
use super::table::{Column, TableSink};
use super::usage::{ReportError, ReportTotals, UsageReport};
use meterbook_core::store::{MetadataStore, UsageStore};
use meterbook_core::EnrollmentNumber;

/// Names the operator configures for FOCUS's provider columns.
#[derive(Clone, Debug)]
pub struct FocusSettings {
    pub provider_name: String,
    pub invoice_issuer_name: String,
}

impl Default for FocusSettings {
    fn default() -> Self {
        FocusSettings {
            provider_name: "Meterbook".into(),
            invoice_issuer_name: "Meterbook".into(),
        }
    }
}

pub fn schema() -> Vec<Column> {
    Vec::new()
}

pub fn write<S: MetadataStore + UsageStore + ?Sized>(
    _report: &UsageReport,
    _store: &S,
    _n: &EnrollmentNumber,
    _settings: &FocusSettings,
    _sink: Box<dyn TableSink + '_>,
    _progress: &mut ProgressFn<'_>,
) -> Result<ReportTotals, ReportError> {
    Err(ReportError::Io(std::io::Error::other(
        "FOCUS output is not implemented yet",
    )))
}
