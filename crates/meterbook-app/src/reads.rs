//! What a caller reads: billing periods, statements, price sheets, usage
//! details and marketplace charges, usage summaries and the figures every page
//! shows. Each is bounded by the handle's reach; money comes from the ledger
//! and [`meterbook_core::figures`], never from a front end.

use crate::{Access, AppResult, Enterprise, Span};
use meterbook_core::enrollment::PeriodInfo;
use meterbook_core::figures;
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::prices::{ChargeKind, MeterPrice};
use meterbook_core::statement::{ChargeTotals, Statement};
use meterbook_core::store::{ScanCursor, Store};
use meterbook_core::summary::SummaryRow;
use meterbook_core::{Money, Period};
use meterbook_io::report::usage::{ReportTotals, UsageFilter, UsageReport};
use meterbook_io::report::ReportFormat;
use std::sync::Arc;

/// A billing period as the period list shows it.
#[derive(Clone, Debug)]
pub struct PeriodEntry {
    pub info: PeriodInfo,
    /// Its price sheet has marketplace meters.
    pub marketplace: bool,
}

/// Which usage rows, within the caller's reach, a report holds.
#[derive(Clone, Debug, Default)]
pub struct Details {
    /// Only marketplace meters (the Marketplace charges report).
    pub marketplace: bool,
    /// Account names; with `departments`, a row is kept if either matches.
    /// Both empty: the caller's whole reach.
    pub accounts: Vec<String>,
    pub departments: Vec<String>,
    /// Start after this row (the next page of a paged read).
    pub after: Option<ScanCursor>,
    /// The legacy `usage-report` layout.
    pub legacy: bool,
}

/// A prepared usage-details (or marketplace) report, bounded by the caller's
/// reach, ready to stream.
pub struct UsageDetails {
    store: Arc<dyn Store>,
    report: UsageReport,
    access: Access,
}

impl UsageDetails {
    /// Streams the whole report in `format`; returns what it wrote.
    pub fn write(
        &self,
        format: ReportFormat,
        out: &mut (dyn std::io::Write + Send),
    ) -> AppResult<ReportTotals> {
        Ok(self
            .report
            .write(self.store.as_ref(), self.access.number(), format, out)?)
    }

    /// Writes up to `limit` rows as comma-separated JSON objects (a page);
    /// returns the rows written and the cursor of the last one when more follow.
    pub fn write_page(
        &self,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> AppResult<(u64, Option<ScanCursor>)> {
        Ok(self
            .report
            .write_page(self.store.as_ref(), self.access.number(), limit, out)?)
    }

    /// Streams the whole report as an export (`csv.gz`, Parquet, FOCUS);
    /// returns what it wrote.
    pub fn export(
        &self,
        format: meterbook_io::report::export::ExportFormat,
        focus: &meterbook_io::report::focus::FocusSettings,
        out: &mut (dyn std::io::Write + Send),
    ) -> AppResult<ReportTotals> {
        Ok(meterbook_io::report::export::export(
            self.store.as_ref(),
            self.access.number(),
            &self.report,
            format,
            focus,
            out,
            &mut |_| true,
        )?)
    }

    pub fn report(&self) -> &UsageReport {
        &self.report
    }
}

/// Usage summed by period, meter and hierarchy within the caller's reach, with
/// the charges every page shows for those periods.
#[derive(Clone, Debug)]
pub struct UsageView {
    pub first: Period,
    pub last: Period,
    /// Summary rows (costs are zero where the caller may not see them).
    pub rows: Vec<SummaryRow>,
    /// Per period `first..=last`, the charges shown, in minor units: the
    /// statement's for the enterprise, the rounded report figure for a
    /// department or account. Empty when the caller may not see costs.
    pub totals: Vec<Money>,
    pub hierarchy: Hierarchy,
}

impl UsageView {
    pub fn periods(&self) -> Vec<Period> {
        self.first.through(self.last).collect()
    }

    /// The view's charges split by `grouping` within `focus`: per period, the
    /// parts add up to the shown total.
    pub fn breakdown(
        &self,
        focus: &figures::Focus,
        grouping: figures::Grouping,
        exponent: u32,
    ) -> AppResult<figures::Breakdown> {
        Ok(figures::breakdown(
            &self.rows,
            &self.totals,
            &self.periods(),
            focus,
            grouping,
            exponent,
        )?)
    }
}

impl Access {
    /// The enrollment's hierarchy (names of departments and accounts are
    /// not secret inside an enrollment; what usage shows is bounded by reach).
    pub fn hierarchy(&self) -> AppResult<Hierarchy> {
        Ok(self.app.store().hierarchy(self.number())?)
    }

    /// Billing periods from the term's start to the current one, newest
    /// first.
    pub fn billing_periods(&self) -> AppResult<Vec<PeriodEntry>> {
        let s = self.app.store();
        let through = self.current_period();
        let first = self.e.first_period();
        let mut out = Vec::new();
        for info in s
            .periods(self.number())?
            .into_iter()
            .filter(|i| i.period <= through && i.period >= first)
        {
            let marketplace = info.has_price_sheet
                && s.price_sheet(self.number(), info.period)?
                    .iter()
                    .any(|(_, m)| m.info.kind() == ChargeKind::Marketplace);
            out.push(PeriodEntry { info, marketplace });
        }
        out.reverse();
        Ok(out)
    }

    /// The filter of a report over `span`: always bounded by this caller's
    /// reach, costs shown only where the caller may see them.
    pub fn usage_filter(&self, span: Span, d: &Details) -> UsageFilter {
        let mut selection = span.selection();
        selection.after = d.after.clone();
        UsageFilter {
            accounts: d.accounts.clone(),
            departments: d.departments.clone(),
            marketplace_only: d.marketplace,
            legacy: d.legacy,
            ..UsageFilter::within(self.scope(), self.sees_charges(), selection)
        }
    }

    /// Usage details (or marketplace charges) of `span` within reach.
    pub fn usage_details(&self, span: Span, d: &Details) -> AppResult<UsageDetails> {
        let filter = self.usage_filter(span, d);
        let report = UsageReport::prepare(
            self.app.store(),
            self.number(),
            filter,
            self.report_meta(span),
        )?;
        Ok(UsageDetails {
            store: self.app.store_arc().clone(),
            report,
            access: self.clone(),
        })
    }

    /// Usage within reach for billing periods `first..=last`, and the
    /// charges shown for each.
    pub fn usage_view(&self, first: Period, last: Period) -> AppResult<UsageView> {
        let rows = self.summary_rows(first, last)?;
        self.usage_view_of(first, last, rows)
    }

    /// The usage summary within reach for periods `first..=last` (charges
    /// where this caller sees them).
    pub(crate) fn summary_rows(&self, first: Period, last: Period) -> AppResult<Vec<SummaryRow>> {
        Ok(meterbook_core::summary::usage_summary(
            self.app.store(),
            self.number(),
            self.scope(),
            self.sees_charges(),
            first,
            last,
        )?)
    }

    /// The view of periods `first..=last` made of their summary rows.
    pub(crate) fn usage_view_of(
        &self,
        first: Period,
        last: Period,
        rows: Vec<SummaryRow>,
    ) -> AppResult<UsageView> {
        let s = self.app.store();
        let totals = if self.sees_charges() {
            figures::scope_charges(
                s,
                self.number(),
                self.scope(),
                &rows,
                first,
                last,
                self.e.currency.exponent(),
            )?
        } else {
            Vec::new()
        };
        Ok(UsageView {
            first,
            last,
            rows,
            totals,
            hierarchy: s.hierarchy(self.number())?,
        })
    }
}

impl Enterprise<'_> {
    /// The Balance and charges statement of `period` (cached per data version).
    pub fn statement(&self, period: Period) -> AppResult<Arc<Statement>> {
        let a = self.access();
        a.app.statement(&a.e, period)
    }

    /// The statements of the term's periods through `through`, oldest first,
    /// with each period's charge totals.
    pub fn statements(&self, through: Period) -> AppResult<Vec<(Statement, ChargeTotals)>> {
        let a = self.access();
        Ok(meterbook_core::ledger::statements(
            a.app.store(),
            a.number(),
            through,
        )?)
    }

    /// The charges of `period` by kind, exact (the statement rounds them).
    pub fn charges(&self, period: Period) -> AppResult<ChargeTotals> {
        let a = self.access();
        Ok(meterbook_core::ledger::charges(
            a.app.store(),
            a.number(),
            period,
        )?)
    }

    /// The price sheet of `period`.
    pub fn price_sheet(&self, period: Period) -> AppResult<Vec<(i64, MeterPrice)>> {
        let a = self.access();
        Ok(a.app.store().price_sheet(a.number(), period)?)
    }
}
