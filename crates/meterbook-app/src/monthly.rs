//! The monthly reports of a billing period (or a range of usage dates):
//! Balance and charges, Usage details, Price list and Marketplace charges.
//! The CLI's `report` command and the portal's downloads both make them here,
//! so the same request gives the same bytes, and the figure a summary states
//! is decided once.

use crate::reads::UsageDetails;
use crate::{Access, AppError, AppResult, Span};
use meterbook_core::fixed::Amount;
use meterbook_core::prices::MeterPrice;
use meterbook_core::statement::Statement;
use meterbook_core::{Money, Period};
use meterbook_io::report::export::ExportFormat;
use meterbook_io::report::focus::FocusSettings;
use meterbook_io::report::{balance, prices, ReportFormat, ReportMeta};

/// Which monthly report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonthlyKind {
    /// Balance and charges (enterprise administrators).
    Balance,
    /// Usage details.
    Usage,
    /// Price list (enterprise administrators).
    Prices,
    /// Marketplace charges (usage details of marketplace meters).
    Marketplace,
}

impl MonthlyKind {
    pub const ALL: [MonthlyKind; 4] = [
        MonthlyKind::Balance,
        MonthlyKind::Usage,
        MonthlyKind::Prices,
        MonthlyKind::Marketplace,
    ];

    /// `balance`, `usage`, `prices`, `marketplace`: the CLI's subcommand
    /// and the portal's download path.
    pub fn name(self) -> &'static str {
        match self {
            MonthlyKind::Balance => "balance",
            MonthlyKind::Usage => "usage",
            MonthlyKind::Prices => "prices",
            MonthlyKind::Marketplace => "marketplace",
        }
    }

    pub fn parse(s: &str) -> Option<MonthlyKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// A downloaded file's name part.
    pub fn file_part(self) -> &'static str {
        match self {
            MonthlyKind::Balance => "balance-and-charges",
            MonthlyKind::Usage => "usage-details",
            MonthlyKind::Prices => "price-list",
            MonthlyKind::Marketplace => "marketplace-charges",
        }
    }

    /// Whether the report is made of usage rows (and so may be filtered by
    /// account or department, and exported in the advanced formats).
    pub fn is_usage(self) -> bool {
        matches!(self, MonthlyKind::Usage | MonthlyKind::Marketplace)
    }
}

/// Narrows a usage report to accounts or departments (a row is kept if
/// either matches; both empty: the caller's whole reach).
#[derive(Clone, Debug, Default)]
pub struct Within {
    pub accounts: Vec<String>,
    pub departments: Vec<String>,
}

impl Within {
    fn is_whole(&self) -> bool {
        self.accounts.is_empty() && self.departments.is_empty()
    }
}

/// A monthly report, loaded (and refused, if it must be) before any byte is
/// written; [`MonthlyReport::write`] streams it.
pub struct MonthlyReport {
    access: Access,
    kind: MonthlyKind,
    span: Span,
    whole: bool,
    meta: ReportMeta,
    body: Body,
}

enum Body {
    Balance(Vec<Statement>),
    Prices(Period, Vec<MeterPrice>),
    Usage(Box<UsageDetails>),
}

/// What a report says about itself once written: the figure its summary
/// states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stated {
    /// The last statement's ending balance and total usage, in minor units.
    Balance {
        periods: usize,
        ending_balance: Money,
        total_usage: Money,
    },
    Prices {
        period: Period,
        meters: usize,
    },
    /// `cost` is the figure shown (see [`MonthlyReport::write`]); `exact` the
    /// rows' exact sum.
    Usage {
        rows: u64,
        cost: Money,
        exact: Amount,
    },
}

impl Access {
    /// The `kind` report of `span`, within this caller's reach (balance and
    /// price list: enterprise administrators only; the price list is per
    /// billing period; the balance covers the whole enrollment).
    pub fn monthly_report(
        &self,
        kind: MonthlyKind,
        span: Span,
        within: &Within,
    ) -> AppResult<MonthlyReport> {
        if !kind.is_usage() && !within.is_whole() {
            return Err(AppError::Invalid(format!(
                "the {} report covers the whole enrollment: accounts and departments do not apply",
                kind.name()
            )));
        }
        let meta = self.report_meta(span);
        let body = match kind {
            MonthlyKind::Balance => {
                let (first, last) = match span {
                    Span::Period(p) => (p, p),
                    Span::Range(f, t) => (f.period(), t.period()),
                };
                let last = last.min(self.e.last_period());
                let sts: Vec<Statement> = self
                    .enterprise()?
                    .statements(last)?
                    .into_iter()
                    .map(|(st, _)| st)
                    .filter(|st| st.period >= first)
                    .collect();
                if sts.is_empty() {
                    return Err(AppError::Invalid(format!(
                        "no billing period of the enrollment's term {} to {} is in the report's span",
                        self.e.start, self.e.end
                    )));
                }
                Body::Balance(sts)
            }
            MonthlyKind::Prices => {
                let Span::Period(p) = span else {
                    return Err(AppError::Invalid(
                        "the price list is per billing period".into(),
                    ));
                };
                let sheet = self
                    .enterprise()?
                    .price_sheet(p)?
                    .into_iter()
                    .map(|(_, m)| m)
                    .collect();
                Body::Prices(p, sheet)
            }
            MonthlyKind::Usage | MonthlyKind::Marketplace => {
                let d = crate::reads::Details {
                    marketplace: kind == MonthlyKind::Marketplace,
                    accounts: within.accounts.clone(),
                    departments: within.departments.clone(),
                    ..Default::default()
                };
                Body::Usage(Box::new(self.usage_details(span, &d)?))
            }
        };
        Ok(MonthlyReport {
            access: self.clone(),
            kind,
            span,
            whole: within.is_whole(),
            meta,
            body,
        })
    }
}

impl MonthlyReport {
    pub fn kind(&self) -> MonthlyKind {
        self.kind
    }

    /// What the report says about itself (enrollment, span, generated at,
    /// usage complete through, currency).
    pub fn meta(&self) -> &ReportMeta {
        &self.meta
    }

    /// The name a download is saved as: `usage-details_<N>_<span>.<ext>`.
    pub fn file_name(&self, extension: &str) -> String {
        format!(
            "{}_{}_{}.{extension}",
            self.kind.file_part(),
            self.access.number(),
            self.span.file_part()
        )
    }

    /// Streams the report as CSV or JSON; returns the figure it states.
    ///
    /// A usage or marketplace report of a whole billing period, unfiltered,
    /// seen by an enterprise administrator states the statement's own figure
    /// (each charge kind rounded, then added), so it agrees with the balance
    /// report to the cent; any other states its exact total rounded once.
    pub fn write(
        &self,
        format: ReportFormat,
        out: &mut (dyn std::io::Write + Send),
    ) -> AppResult<Stated> {
        let io = |e: std::io::Error| AppError::Internal(format!("cannot write the report: {e}"));
        match &self.body {
            Body::Balance(sts) => {
                let exp = self.access.e.currency.exponent();
                balance::write(&self.meta, sts, exp, format, out).map_err(io)?;
                let last = sts.last().ok_or_else(|| {
                    AppError::Internal("a balance report without a statement".into())
                })?;
                Ok(Stated::Balance {
                    periods: sts.len(),
                    ending_balance: last.ending_balance,
                    total_usage: last.total_usage,
                })
            }
            Body::Prices(p, sheet) => {
                prices::write(&self.meta, sheet, format, out).map_err(io)?;
                Ok(Stated::Prices {
                    period: *p,
                    meters: sheet.len(),
                })
            }
            Body::Usage(d) => {
                let t = d.write(format, out)?;
                self.usage_stated(t.rows, t.cost)
            }
        }
    }

    /// Streams a usage or marketplace report as an export (`csv.gz`,
    /// Parquet, FOCUS); returns the figure it states (as [`Self::write`]).
    pub fn export(
        &self,
        format: ExportFormat,
        focus: &FocusSettings,
        out: &mut (dyn std::io::Write + Send),
    ) -> AppResult<Stated> {
        let Body::Usage(d) = &self.body else {
            return Err(AppError::Invalid(format!(
                "the {} format is for usage reports only",
                format.name()
            )));
        };
        let t = d.export(format, focus, out)?;
        self.usage_stated(t.rows, t.cost)
    }

    fn usage_stated(&self, rows: u64, exact: Amount) -> AppResult<Stated> {
        let a = &self.access;
        let exp = a.e.currency.exponent();
        let range =
            |_| AppError::Internal("the report's total cost exceeds the supported range".into());
        let cost = match self.span {
            Span::Period(p) if self.whole && a.sees_balance() && a.sees_charges() => {
                let c = a.enterprise()?.charges(p)?;
                if self.kind == MonthlyKind::Marketplace {
                    c.marketplace.round_to_minor(exp).map_err(range)?
                } else {
                    c.billed(exp).map_err(range)?
                }
            }
            _ => exact.round_to_minor(exp).map_err(range)?,
        };
        Ok(Stated::Usage { rows, cost, exact })
    }
}
