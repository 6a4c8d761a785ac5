//! [`MetadataStore`] on PostgreSQL: the trait's methods.

use super::enrollment::*;
use super::sheets::{load_sheet, store_sheet};
use super::*;
use crate::tx::is_unique_violation;
use crate::tx::pg;
use crate::PgStore;
use meterbook_core::enrollment::{ChargeVisibility, Enrollment, NewEnrollment, PeriodInfo};
use meterbook_core::hierarchy::{Hierarchy, HierarchyRow};
use meterbook_core::limits::{check_entry, UsageGuard};
use meterbook_core::prices::MeterPrice;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, HierarchySummary, MetadataStore, Renamed};
use meterbook_core::Currency;
use postgres::types::Type;
use std::collections::HashSet;

impl MetadataStore for PgStore {
    /// A read, and the schema version against this build's migrations: a
    /// newer binary on another node may have migrated the database.
    fn check_ready(&self) -> StoreResult<()> {
        self.read(|tx| {
            let v: i32 = tx
                .query_one("SELECT version FROM meterbook_schema", &[])
                .map_err(pg)?
                .get(0);
            tx.query_one("SELECT count(*) FROM enrollment", &[])
                .map_err(pg)?;
            if v as usize != crate::SCHEMA_VERSION {
                return Err(StoreError::Backend(format!(
                    "the database schema is version {v}; this build knows version {}",
                    crate::SCHEMA_VERSION
                )));
            }
            Ok(())
        })
    }

    fn create_enrollment(&self, e: &NewEnrollment) -> StoreResult<Enrollment> {
        e.validate().map_err(StoreError::Invalid)?;
        let taken = || StoreError::Conflict(format!("enrollment {} already exists", e.number));
        self.write(|tx| {
            // Looked for first: a refused insert would still take an id from
            // the sequence (SQLite's ids have no such gaps).
            if tx
                .query_opt(
                    "SELECT 1 FROM enrollment WHERE number = $1",
                    &[&e.number.as_str()],
                )
                .map_err(pg)?
                .is_some()
            {
                return Err(taken());
            }
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO enrollment (number, name, currency, start_day, end_day, \
                         dept_admins_view_charges, account_owners_view_charges) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ENROLLMENT_COLUMNS}"
                    ),
                    &[
                        &e.number.as_str(),
                        &e.name,
                        &e.currency.code(),
                        &e.start.raw(),
                        &e.end.raw(),
                        &e.visibility.department_admins_view_charges,
                        &e.visibility.account_owners_view_charges,
                    ],
                )
                .map_err(|err| {
                    if is_unique_violation(&err) {
                        taken()
                    } else {
                        pg(err)
                    }
                })?;
            enrollment_from_row(&row)
        })
    }

    fn enrollment(&self, n: &EnrollmentNumber) -> StoreResult<Enrollment> {
        let mut c = self.conn()?;
        enrollment_by_number(&mut *c, n)
    }

    fn enrollments(&self) -> StoreResult<Vec<Enrollment>> {
        let mut c = self.conn()?;
        c.query(
            &format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollment ORDER BY number"),
            &[],
        )
        .map_err(pg)?
        .iter()
        .map(enrollment_from_row)
        .collect()
    }

    fn set_visibility(&self, n: &EnrollmentNumber, v: ChargeVisibility) -> StoreResult<()> {
        self.write(|tx| {
            let eid = enrollment_id(tx, n)?;
            tx.execute(
                "UPDATE enrollment SET dept_admins_view_charges = $2, \
                 account_owners_view_charges = $3, data_version = data_version + 1 WHERE id = $1",
                &[
                    &eid,
                    &v.department_admins_view_charges,
                    &v.account_owners_view_charges,
                ],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn set_watermark(&self, n: &EnrollmentNumber, through: Day) -> StoreResult<()> {
        self.write(|tx| {
            let eid = enrollment_id(tx, n)?;
            tx.execute(
                "UPDATE enrollment SET watermark = $2, data_version = data_version + 1 WHERE id = $1",
                &[&eid, &through.raw()],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn upsert_hierarchy(
        &self,
        n: &EnrollmentNumber,
        rows: &[HierarchyRow],
    ) -> StoreResult<HierarchySummary> {
        self.write_hierarchy(n, rows)
    }

    fn rename(&self, n: &EnrollmentNumber, what: Renamed, old: &str, new: &str) -> StoreResult<()> {
        self.rename_in_hierarchy(n, what, old, new)
    }

    fn move_subscription(
        &self,
        n: &EnrollmentNumber,
        guid: &str,
        account: &str,
        effective: Day,
    ) -> StoreResult<()> {
        self.move_subscription_in(n, guid, account, effective)
    }

    fn hierarchy(&self, n: &EnrollmentNumber) -> StoreResult<Hierarchy> {
        self.read_hierarchy(n)
    }

    fn import_prices(
        &self,
        n: &EnrollmentNumber,
        period: Period,
        sheet: &[MeterPrice],
    ) -> StoreResult<usize> {
        self.write(|tx| {
            // Locked before anything is checked: no ingest can commit, and no
            // period close, until the new sheet is in place.
            let eid = lock_enrollment(tx, n, Lock::Catalog)?;
            let (start, end) = term(tx, eid)?;
            if period < Day::from_raw(start).period() || period > Day::from_raw(end).period() {
                return Err(StoreError::Invalid(format!(
                    "period {period} is outside the enrollment's term"
                )));
            }
            if last_closed(tx, eid)?.is_some_and(|c| period <= c) {
                return Err(StoreError::Conflict(format!(
                    "period {period} is closed; its price sheet never changes"
                )));
            }
            // Meters with usage in the period must keep a price.
            let used: Vec<String> = tx
                .query(
                    "SELECT m.meter_id FROM usage_rollup r JOIN meter m ON m.id = r.meter_key \
                     WHERE r.enrollment_id = $1 AND r.rate_period = $2 AND NOT r.correction",
                    &[&eid, &period_to_sql(period)],
                )
                .map_err(pg)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let ids: HashSet<&str> = sheet.iter().map(|m| m.info.meter_id.as_str()).collect();
            if let Some(missing) = used.iter().find(|m| !ids.contains(m.as_str())) {
                return Err(StoreError::Conflict(format!(
                    "meter {missing} has usage in {period} but no price in the new sheet"
                )));
            }
            // The period's usage is repriced at the new sheet: it must stay in range.
            let cat = catalog(tx, eid)?;
            let rollups = read_rollups(tx, eid, None)?;
            UsageGuard::for_repricing(Arc::new(cat), &rollups)
                .map_err(|e| StoreError::Invalid(format!("the stored usage: {e}")))?
                .reprice(period, sheet)
                .map_err(|(meter, e)| StoreError::Invalid(format!("meter {meter}: {e}")))?;
            store_sheet(tx, eid, period, sheet)?;
            bump_catalog(tx, eid)?;
            Ok(sheet.len())
        })
    }

    fn price_sheet(
        &self,
        n: &EnrollmentNumber,
        period: Period,
    ) -> StoreResult<Vec<(i64, MeterPrice)>> {
        self.read(|tx| {
            let eid = enrollment_id(tx, n)?;
            load_sheet(tx, eid, period)
        })
    }

    fn add_entry(
        &self,
        n: &EnrollmentNumber,
        kind: EntryKind,
        e: &CommitmentEntry,
    ) -> StoreResult<()> {
        self.write(|tx| {
            // Locked first: the entries checked below cannot change before the insert.
            let eid = lock_enrollment(tx, n, Lock::Data)?;
            let (start, end) = term(tx, eid)?;
            if e.date.raw() < start || e.date.raw() > end {
                return Err(StoreError::Invalid(format!(
                    "date {} is outside the enrollment's term",
                    e.date
                )));
            }
            if let Some(c) = last_closed(tx, eid)? {
                if e.date.period() <= c {
                    return Err(StoreError::Invalid(format!(
                        "date {} falls in closed period {c}; closed periods never change",
                        e.date
                    )));
                }
            }
            if kind == EntryKind::Purchase && e.amount.0 <= 0 {
                return Err(StoreError::Invalid(
                    "a purchase amount must be positive".into(),
                ));
            }
            let currency: String = tx
                .query_one("SELECT currency FROM enrollment WHERE id = $1", &[&eid])
                .map_err(pg)?
                .get(0);
            let exponent = Currency::parse(&currency)
                .map_err(StoreError::Backend)?
                .exponent();
            check_entry(&entries_in(tx, eid)?, kind, e.amount, exponent)
                .map_err(|err| StoreError::Invalid(err.to_string()))?;
            tx.execute(
                "INSERT INTO commitment_entry (enrollment_id, kind, day, amount, description) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &eid,
                    &(matches!(kind, EntryKind::Adjustment) as i16),
                    &e.date.raw(),
                    &e.amount.0,
                    &e.description,
                ],
            )
            .map_err(pg)?;
            bump_version(tx, eid)
        })
    }

    fn entries(&self, n: &EnrollmentNumber) -> StoreResult<Vec<(EntryKind, CommitmentEntry)>> {
        self.read(|tx| {
            let eid = enrollment_id(tx, n)?;
            entries_in(tx, eid)
        })
    }

    fn periods(&self, n: &EnrollmentNumber) -> StoreResult<Vec<PeriodInfo>> {
        self.read(|tx| {
            let e = enrollment_by_number(tx, n)?;
            let closed = last_closed(tx, e.id)?;
            let priced: HashSet<i32> = tx
                .query_typed(
                    "SELECT DISTINCT period FROM price WHERE enrollment_id = $1",
                    &[(&e.id, Type::INT8)],
                )
                .map_err(pg)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            Ok(e.first_period()
                .through(e.last_period())
                .map(|p| PeriodInfo {
                    period: p,
                    closed: closed.is_some_and(|c| p <= c),
                    has_price_sheet: priced.contains(&period_to_sql(p)),
                })
                .collect())
        })
    }

    fn close_period(
        &self,
        n: &EnrollmentNumber,
        period: Period,
        rates: &[(i64, Price)],
    ) -> StoreResult<()> {
        self.write(|tx| {
            let eid = lock_enrollment(tx, n, Lock::Catalog)?;
            if last_closed(tx, eid)?.is_some_and(|c| period <= c) {
                return Err(StoreError::Conflict(format!(
                    "period {period} is already closed"
                )));
            }
            let p = period_to_sql(period);
            tx.execute(
                "INSERT INTO closed_period (enrollment_id, period) VALUES ($1, $2)",
                &[&eid, &p],
            )
            .map_err(pg)?;
            // One insert for all the rates (a sheet may have thousands).
            let keys: Vec<i64> = rates.iter().map(|(m, _)| *m).collect();
            let values: Vec<String> = rates.iter().map(|(_, r)| i128_to_sql(r.raw())).collect();
            tx.execute_typed(
                "INSERT INTO locked_rate (enrollment_id, period, meter_key, rate) \
                 SELECT $1, $2, u.k, u.r::numeric FROM unnest($3::bigint[], $4::text[]) AS u(k, r)",
                &[
                    (&eid, Type::INT8),
                    (&p, Type::INT4),
                    (&keys, Type::INT8_ARRAY),
                    (&values, Type::TEXT_ARRAY),
                ],
            )
            .map_err(pg)?;
            bump_catalog(tx, eid)
        })
    }

    fn locked_rates(&self, n: &EnrollmentNumber, period: Period) -> StoreResult<Vec<(i64, Price)>> {
        self.read(|tx| {
            let eid = enrollment_id(tx, n)?;
            Ok(locked_rates(tx, eid, Some(period))?
                .into_iter()
                .map(|((_, m), r)| (m, r))
                .collect())
        })
    }
}
