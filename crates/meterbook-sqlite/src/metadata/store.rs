//! [`MetadataStore`] on SQLite: the trait's methods.

use super::enrollment::*;
use super::sheets::*;
use crate::{backend, i128_to_sql, SqliteStore};
use meterbook_core::enrollment::{ChargeVisibility, Enrollment, NewEnrollment, PeriodInfo};
use meterbook_core::hierarchy::{Hierarchy, HierarchyRow};
use meterbook_core::limits::{check_entry, UsageGuard};
use meterbook_core::prices::MeterPrice;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, HierarchySummary, MetadataStore, StoreError, StoreResult};
use meterbook_core::{Currency, Day, EnrollmentNumber, Period, Price};
use rusqlite::{params, OptionalExtension};
use std::collections::HashSet;
use std::sync::Arc;

impl MetadataStore for SqliteStore {
    /// A read on a reader connection (never the writer, which a long ingest
    /// may hold), and the schema version against this build's migrations: a
    /// newer binary may have migrated the file under this process.
    fn check_ready(&self) -> StoreResult<()> {
        let c = self.read_conn()?;
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(crate::backend)?;
        c.query_row("SELECT count(*) FROM enrollment", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(crate::backend)?;
        if v as usize != crate::SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the database schema is version {v}; this build knows version {}",
                crate::SCHEMA_VERSION
            )));
        }
        Ok(())
    }

    fn create_enrollment(&self, e: &NewEnrollment) -> StoreResult<Enrollment> {
        e.validate().map_err(StoreError::Invalid)?;
        let conn = self.write_conn();
        let res = conn.execute(
            "INSERT INTO enrollment (number, name, currency, start_day, end_day, \
             dept_admins_view_charges, account_owners_view_charges, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                e.number.as_str(),
                e.name,
                e.currency.code(),
                e.start.raw(),
                e.end.raw(),
                e.visibility.department_admins_view_charges,
                e.visibility.account_owners_view_charges,
                chrono::Utc::now().to_rfc3339(),
            ],
        );
        match res {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(StoreError::Conflict(format!(
                    "enrollment {} already exists",
                    e.number
                )))
            }
            Err(err) => return Err(backend(err)),
        }
        drop(conn);
        self.enrollment(&e.number)
    }

    fn enrollment(&self, n: &EnrollmentNumber) -> StoreResult<Enrollment> {
        let conn = self.read_conn()?;
        conn.query_row(
            &format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollment WHERE number = ?1"),
            [n.as_str()],
            enrollment_from_row,
        )
        .optional()
        .map_err(backend)?
        .ok_or_else(|| StoreError::NotFound(format!("no enrollment {n}")))
    }

    fn enrollments(&self) -> StoreResult<Vec<Enrollment>> {
        let conn = self.read_conn()?;
        let mut st = conn
            .prepare(&format!(
                "SELECT {ENROLLMENT_COLUMNS} FROM enrollment ORDER BY number"
            ))
            .map_err(backend)?;
        let rows = st
            .query_map([], enrollment_from_row)
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(rows)
    }

    fn set_visibility(&self, n: &EnrollmentNumber, v: ChargeVisibility) -> StoreResult<()> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        conn.execute(
            "UPDATE enrollment SET dept_admins_view_charges = ?2, account_owners_view_charges = ?3 WHERE id = ?1",
            params![eid, v.department_admins_view_charges, v.account_owners_view_charges],
        )
        .map_err(backend)?;
        bump_version(&conn, eid)
    }

    fn set_watermark(&self, n: &EnrollmentNumber, through: Day) -> StoreResult<()> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        conn.execute(
            "UPDATE enrollment SET watermark = ?2, data_version = data_version + 1 WHERE id = ?1",
            params![eid, through.raw()],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn upsert_hierarchy(
        &self,
        n: &EnrollmentNumber,
        rows: &[HierarchyRow],
    ) -> StoreResult<HierarchySummary> {
        self.write_hierarchy(n, rows)
    }

    fn rename(
        &self,
        n: &EnrollmentNumber,
        what: meterbook_core::store::Renamed,
        old: &str,
        new: &str,
    ) -> StoreResult<()> {
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
        let mut conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let (start, end) = term(&conn, eid)?;
        if period < Day::from_raw(start).period() || period > Day::from_raw(end).period() {
            return Err(StoreError::Invalid(format!(
                "period {period} is outside the enrollment's term"
            )));
        }
        if last_closed(&conn, eid)?.is_some_and(|c| period <= c) {
            return Err(StoreError::Conflict(format!(
                "period {period} is closed; its price sheet never changes"
            )));
        }
        let tx = conn.transaction().map_err(backend)?;
        // Meters with usage in the period must keep a price.
        let used: Vec<String> = {
            let mut st = tx
                .prepare(
                    "SELECT m.meter_id FROM usage_rollup r JOIN meter m ON m.id = r.meter_key \
                     WHERE r.enrollment_id = ?1 AND r.rate_period = ?2 AND r.correction = 0",
                )
                .map_err(backend)?;
            let v = st
                .query_map(params![eid, period.id()], |r| r.get(0))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            v
        };
        let ids: HashSet<&str> = sheet.iter().map(|m| m.info.meter_id.as_str()).collect();
        if let Some(missing) = used.iter().find(|m| !ids.contains(m.as_str())) {
            return Err(StoreError::Conflict(format!(
                "meter {missing} has usage in {period} but no price in the new sheet"
            )));
        }
        // The period's usage is repriced at the new sheet: it must stay in range.
        let catalog = crate::usage::load_catalog(&tx, eid)?;
        let rollups = crate::usage::read_rollups(&tx, eid, None)?;
        UsageGuard::for_repricing(Arc::new(catalog), &rollups)
            .map_err(|e| StoreError::Invalid(format!("the stored usage: {e}")))?
            .reprice(period, sheet)
            .map_err(|(meter, e)| StoreError::Invalid(format!("meter {meter}: {e}")))?;
        tx.execute(
            "DELETE FROM price WHERE enrollment_id = ?1 AND period = ?2",
            params![eid, period.id()],
        )
        .map_err(backend)?;
        for m in sheet {
            let key: i64 = tx
                .query_row(
                    "INSERT INTO meter (enrollment_id, meter_id) VALUES (?1, ?2) \
                     ON CONFLICT (enrollment_id, meter_id) DO UPDATE SET meter_id = excluded.meter_id RETURNING id",
                    params![eid, m.info.meter_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let i = &m.info;
            tx.execute(
                "INSERT INTO price (enrollment_id, period, meter_key, meter_name, meter_category, \
                 meter_sub_category, meter_region, unit_of_measure, part_number, billed_separately, \
                 publisher_name, offer_name, plan_name, included, tiers) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    eid,
                    period.id(),
                    key,
                    i.meter_name,
                    i.meter_category,
                    i.meter_sub_category,
                    i.meter_region,
                    i.unit_of_measure,
                    i.part_number,
                    i.charges_billed_separately,
                    i.publisher_name,
                    i.offer_name,
                    i.plan_name,
                    m.included.raw(),
                    encode_tiers(&m.tiers),
                ],
            )
            .map_err(backend)?;
        }
        bump_version(&tx, eid)?;
        tx.commit().map_err(backend)?;
        Ok(sheet.len())
    }

    fn price_sheet(
        &self,
        n: &EnrollmentNumber,
        period: Period,
    ) -> StoreResult<Vec<(i64, MeterPrice)>> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        load_sheet(&conn, eid, period)
    }

    fn add_entry(
        &self,
        n: &EnrollmentNumber,
        kind: EntryKind,
        e: &CommitmentEntry,
    ) -> StoreResult<()> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let (start, end) = term(&conn, eid)?;
        if e.date.raw() < start || e.date.raw() > end {
            return Err(StoreError::Invalid(format!(
                "date {} is outside the enrollment's term",
                e.date
            )));
        }
        if let Some(c) = last_closed(&conn, eid)? {
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
        // The write lock is held: the entries cannot change before the insert.
        let currency: String = conn
            .query_row(
                "SELECT currency FROM enrollment WHERE id = ?1",
                [eid],
                |r| r.get(0),
            )
            .map_err(backend)?;
        let exponent = Currency::parse(&currency)
            .map_err(StoreError::Backend)?
            .exponent();
        check_entry(&entries_in(&conn, eid)?, kind, e.amount, exponent)
            .map_err(|err| StoreError::Invalid(err.to_string()))?;
        conn.execute(
            "INSERT INTO commitment_entry (enrollment_id, kind, day, amount, description) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                eid,
                matches!(kind, EntryKind::Adjustment) as i64,
                e.date.raw(),
                e.amount.0,
                e.description
            ],
        )
        .map_err(backend)?;
        bump_version(&conn, eid)
    }

    fn entries(&self, n: &EnrollmentNumber) -> StoreResult<Vec<(EntryKind, CommitmentEntry)>> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        entries_in(&conn, eid)
    }

    fn periods(&self, n: &EnrollmentNumber) -> StoreResult<Vec<PeriodInfo>> {
        let e = self.enrollment(n)?;
        let conn = self.read_conn()?;
        let closed = last_closed(&conn, e.id)?;
        let mut st = conn
            .prepare("SELECT DISTINCT period FROM price WHERE enrollment_id = ?1")
            .map_err(backend)?;
        let priced: HashSet<u32> = st
            .query_map([e.id], |r| r.get(0))
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        Ok(e.first_period()
            .through(e.last_period())
            .map(|p| PeriodInfo {
                period: p,
                closed: closed.is_some_and(|c| p <= c),
                has_price_sheet: priced.contains(&p.id()),
            })
            .collect())
    }

    fn close_period(
        &self,
        n: &EnrollmentNumber,
        period: Period,
        rates: &[(i64, Price)],
    ) -> StoreResult<()> {
        let mut conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let tx = conn.transaction().map_err(backend)?;
        let last = last_closed(&tx, eid)?;
        if last.is_some_and(|c| period <= c) {
            return Err(StoreError::Conflict(format!(
                "period {period} is already closed"
            )));
        }
        tx.execute(
            "INSERT INTO closed_period (enrollment_id, period, closed_at) VALUES (?1, ?2, ?3)",
            params![eid, period.id(), chrono::Utc::now().to_rfc3339()],
        )
        .map_err(backend)?;
        for (meter, rate) in rates {
            tx.execute(
                "INSERT INTO locked_rate (enrollment_id, period, meter_key, rate) VALUES (?1, ?2, ?3, ?4)",
                params![eid, period.id(), meter, i128_to_sql(rate.raw())],
            )
            .map_err(backend)?;
        }
        bump_version(&tx, eid)?;
        tx.commit().map_err(backend)
    }

    fn locked_rates(&self, n: &EnrollmentNumber, period: Period) -> StoreResult<Vec<(i64, Price)>> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        crate::usage::locked_rates(&conn, eid, Some(period))
            .map(|v| v.into_iter().map(|((_, m), r)| (m, r)).collect())
    }
}
