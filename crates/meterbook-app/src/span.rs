//! What a request covers — a billing period or a range of usage dates — checked
//! against the enrollment's term in one place, and the metadata every report
//! states about itself.

use crate::{Access, AppError, AppResult};
use meterbook_core::store::UsageSelection;
use meterbook_core::{Day, Period};
use meterbook_io::report::{ReportMeta, ReportScope};

/// A billing period (the rows booked in it, corrections included, as its
/// statement bills them) or a range of usage dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    Period(Period),
    Range(Day, Day),
}

impl Span {
    /// The rows the span selects.
    pub fn selection(self) -> UsageSelection {
        match self {
            Span::Period(p) => UsageSelection {
                booked: Some(p),
                ..Default::default()
            },
            Span::Range(f, t) => UsageSelection {
                from: Some(f),
                to: Some(t),
                ..Default::default()
            },
        }
    }

    /// How reports name it.
    pub fn report_scope(self) -> ReportScope {
        match self {
            Span::Period(p) => ReportScope::Period(p.to_string()),
            Span::Range(f, t) => ReportScope::Range {
                from: f.to_string(),
                to: t.to_string(),
            },
        }
    }

    /// Its part of a download's file name.
    pub fn file_part(self) -> String {
        match self {
            Span::Period(p) => p.to_string(),
            Span::Range(f, t) => format!("{f}_{t}"),
        }
    }
}

impl Access {
    /// The current billing period, kept inside the term.
    pub fn current_period(&self) -> Period {
        self.app
            .clock()
            .today()
            .period()
            .clamp(self.e.first_period(), self.e.last_period())
    }

    /// Today (the clock's).
    pub fn today(&self) -> Day {
        self.app.clock().today()
    }

    /// A billing period named by the caller (`YYYYMM`), inside the term.
    pub fn period(&self, s: &str) -> AppResult<Period> {
        let p: Period = s
            .parse()
            .map_err(|e: meterbook_core::calendar::DateError| AppError::Invalid(e.0))?;
        self.check_period(p)
    }

    /// `p` if it lies inside the enrollment's term.
    pub fn check_period(&self, p: Period) -> AppResult<Period> {
        if p < self.e.first_period() || p > self.e.last_period() {
            return Err(AppError::Invalid(format!(
                "billing period {p} is outside the enrollment's term {} to {}",
                self.e.start, self.e.end
            )));
        }
        Ok(p)
    }

    /// A range of usage dates, in order and inside the term. `names` are
    /// what the caller called the two ends (`startTime`, `--from`), for the
    /// error.
    pub fn range(&self, from: Day, to: Day, names: (&str, &str)) -> AppResult<Span> {
        if to < from {
            return Err(AppError::Invalid(format!(
                "{} {to} is before {} {from}",
                names.1, names.0
            )));
        }
        if from < self.e.start || to > self.e.end {
            return Err(AppError::Invalid(format!(
                "the range {from} to {to} is outside the enrollment's term {} to {}",
                self.e.start, self.e.end
            )));
        }
        Ok(Span::Range(from, to))
    }

    /// What a report of `span` says about itself: enrollment, span, when it
    /// was made, how complete the usage is, the currency.
    pub fn report_meta(&self, span: Span) -> ReportMeta {
        ReportMeta {
            enrollment: self.e.number.to_string(),
            scope: span.report_scope(),
            generated_at: self.app.clock().now_rfc3339(),
            watermark: self.e.watermark.map(|d| d.to_string()),
            currency: self.e.currency.code().to_string(),
        }
    }
}
