//! The provider's feeds into an enrollment: the hierarchy (departments,
//! accounts, subscriptions and their moves), price sheets and usage. Front
//! ends read the files; these take the parsed rows.

use crate::{AppError, AppResult, Operator};
use meterbook_core::hierarchy::HierarchyRow;
use meterbook_core::ingest::{IngestError, IngestOptions, IngestSummary, UsageSource};
use meterbook_core::prices::PriceRow;
use meterbook_core::store::HierarchySummary;
use meterbook_core::usage::{RawUsage, Reject};
use meterbook_core::{Day, EnrollmentNumber, Period};

impl Operator {
    /// Upserts departments, accounts and subscriptions (a subscription's
    /// account changes only by [`Operator::move_subscription`]).
    pub fn import_hierarchy(
        &self,
        n: &EnrollmentNumber,
        rows: &[HierarchyRow],
    ) -> AppResult<HierarchySummary> {
        Ok(self.app.store().upsert_hierarchy(n, rows)?)
    }

    /// Usage of subscription `guid` dated on or after `effective` belongs to
    /// `account`.
    pub fn move_subscription(
        &self,
        n: &EnrollmentNumber,
        guid: &str,
        account: &str,
        effective: Day,
    ) -> AppResult<()> {
        Ok(self
            .app
            .store()
            .move_subscription(n, guid, account, effective)?)
    }

    /// Replaces the price sheet of open period `p` with `rows` (read from
    /// `source`, which errors name with the row's line); returns how many
    /// meters it prices. Prices that would take the period's usage out of
    /// the supported range are refused, naming the meter's line.
    pub fn import_prices(
        &self,
        n: &EnrollmentNumber,
        p: Period,
        source: &str,
        rows: &[PriceRow],
    ) -> AppResult<usize> {
        let sheet = meterbook_core::prices::build_price_sheet(rows)
            .map_err(|(line, m)| AppError::Invalid(format!("{source}:{line}: {m}")))?;
        let s = self.app.store();
        // The store refuses prices that take the period's usage out of range;
        // asking first names the line of the meter that does.
        if let Err((meter, e)) = meterbook_core::ledger::check_prices(s, n, p, &sheet)? {
            return Err(AppError::Invalid(
                match rows.iter().find(|r| r.meter_id == meter) {
                    Some(r) => format!("{source}:{}: meter {meter}: {e}", r.line),
                    None => format!("{source}: {e}"),
                },
            ));
        }
        Ok(s.import_prices(n, p, &sheet)?)
    }

    /// Ingests usage records from `source`: all or nothing unless
    /// `options.skip_invalid`, idempotent by record id. Each rejected record
    /// is passed to `on_reject` (with its raw fields when it parsed).
    pub fn ingest(
        &self,
        n: &EnrollmentNumber,
        source: &mut (dyn UsageSource + Send),
        options: IngestOptions,
        on_reject: &mut dyn FnMut(&Reject, Option<&RawUsage<'_>>),
    ) -> Result<IngestSummary, IngestError> {
        meterbook_core::ingest::ingest(self.app.store(), n, source, options, on_reject)
    }
}
