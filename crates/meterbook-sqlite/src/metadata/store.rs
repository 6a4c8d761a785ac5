//! [`MetadataStore`] on SQLite: enrollments, hierarchy, prices, commitment, periods.

use crate::{backend, i128_from_sql, i128_to_sql, SqliteStore};
use meterbook_core::enrollment::{ChargeVisibility, Enrollment, NewEnrollment, PeriodInfo};
use meterbook_core::hierarchy::{
    normalize_guid, Account, Department, Hierarchy, HierarchyRow, Subscription,
};
use meterbook_core::limits::{check_entry, UsageGuard};
use meterbook_core::prices::{MeterInfo, MeterPrice, Tier};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, HierarchySummary, MetadataStore, StoreError, StoreResult};
use meterbook_core::{Currency, Day, EnrollmentNumber, Money, Period, Price, Quantity};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::HashSet;
use std::sync::Arc;

/// Purchases and adjustments of an enrollment, by date.
fn entries_in(conn: &Connection, eid: i64) -> StoreResult<Vec<(EntryKind, CommitmentEntry)>> {
    let mut st = conn
        .prepare(
            "SELECT kind, day, amount, description FROM commitment_entry WHERE enrollment_id = ?1 ORDER BY day, id",
        )
        .map_err(backend)?;
    let rows = st
        .query_map([eid], |r| {
            Ok((
                if r.get::<_, i64>(0)? == 0 {
                    EntryKind::Purchase
                } else {
                    EntryKind::Adjustment
                },
                CommitmentEntry {
                    date: Day::from_raw(r.get(1)?),
                    amount: Money(r.get(2)?),
                    description: r.get(3)?,
                },
            ))
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    Ok(rows)
}

fn enrollment_from_row(r: &Row<'_>) -> rusqlite::Result<Enrollment> {
    let number: String = r.get(1)?;
    let currency: String = r.get(3)?;
    let bad = |what: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, what.into())
    };
    Ok(Enrollment {
        id: r.get(0)?,
        number: EnrollmentNumber::parse(&number).map_err(bad)?,
        name: r.get(2)?,
        currency: Currency::parse(&currency).map_err(bad)?,
        start: Day::from_raw(r.get(4)?),
        end: Day::from_raw(r.get(5)?),
        visibility: ChargeVisibility {
            department_admins_view_charges: r.get(6)?,
            account_owners_view_charges: r.get(7)?,
        },
        watermark: r.get::<_, Option<i32>>(8)?.map(Day::from_raw),
        data_version: r.get(9)?,
    })
}

const ENROLLMENT_COLUMNS: &str = "id, number, name, currency, start_day, end_day, \
     dept_admins_view_charges, account_owners_view_charges, watermark, data_version";

/// The enrollment's term as raw day numbers (first, last).
pub(crate) fn term(conn: &Connection, eid: i64) -> StoreResult<(i32, i32)> {
    conn.query_row(
        "SELECT start_day, end_day FROM enrollment WHERE id = ?1",
        [eid],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(backend)
}

/// Marks the enrollment's data as changed (see `Enrollment::data_version`).
pub(crate) fn bump_version(conn: &Connection, eid: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE enrollment SET data_version = data_version + 1 WHERE id = ?1",
        [eid],
    )
    .map_err(backend)?;
    Ok(())
}

pub(crate) fn last_closed(conn: &Connection, eid: i64) -> StoreResult<Option<Period>> {
    let p: Option<u32> = conn
        .query_row(
            "SELECT MAX(period) FROM closed_period WHERE enrollment_id = ?1",
            [eid],
            |r| r.get(0),
        )
        .map_err(backend)?;
    Ok(p.and_then(Period::from_id))
}

fn encode_tiers(tiers: &[Tier]) -> String {
    tiers
        .iter()
        .map(|t| format!("{}:{}", t.min.raw(), i128_to_sql(t.price.raw())))
        .collect::<Vec<_>>()
        .join(";")
}

fn decode_tiers(s: &str) -> StoreResult<Vec<Tier>> {
    s.split(';')
        .map(|pair| {
            let (min, price) = pair
                .split_once(':')
                .ok_or_else(|| StoreError::Backend(format!("corrupt tiers {s:?}")))?;
            Ok(Tier {
                min: Quantity(i128_from_sql(min)? as i64),
                price: Price(i128_from_sql(price)?),
            })
        })
        .collect()
}

/// Loads a period's price sheet: (meter key, price), by MeterId.
pub(crate) fn load_sheet(
    conn: &Connection,
    eid: i64,
    period: Period,
) -> StoreResult<Vec<(i64, MeterPrice)>> {
    let mut st = conn
        .prepare_cached(
            "SELECT p.meter_key, m.meter_id, meter_name, meter_category, meter_sub_category, \
             meter_region, unit_of_measure, part_number, billed_separately, publisher_name, \
             offer_name, plan_name, included, tiers \
             FROM price p JOIN meter m ON m.id = p.meter_key \
             WHERE p.enrollment_id = ?1 AND p.period = ?2 ORDER BY m.meter_id",
        )
        .map_err(backend)?;
    let rows = st
        .query_map(params![eid, period.id()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                MeterInfo {
                    meter_id: r.get(1)?,
                    meter_name: r.get(2)?,
                    meter_category: r.get(3)?,
                    meter_sub_category: r.get(4)?,
                    meter_region: r.get(5)?,
                    unit_of_measure: r.get(6)?,
                    part_number: r.get(7)?,
                    charges_billed_separately: r.get(8)?,
                    publisher_name: r.get(9)?,
                    offer_name: r.get(10)?,
                    plan_name: r.get(11)?,
                },
                r.get::<_, i64>(12)?,
                r.get::<_, String>(13)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (key, info, included, tiers) = row.map_err(backend)?;
        out.push((
            key,
            MeterPrice {
                info,
                included: Quantity(included),
                tiers: decode_tiers(&tiers)?,
            },
        ));
    }
    Ok(out)
}

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
        let mut conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let start: i32 = conn
            .query_row(
                "SELECT start_day FROM enrollment WHERE id = ?1",
                [eid],
                |r| r.get(0),
            )
            .map_err(backend)?;
        let tx = conn.transaction().map_err(backend)?;
        let mut sum = HierarchySummary::default();
        let (mut depts, mut accts) = (HashSet::new(), HashSet::new());
        for row in rows {
            let at = |msg: String| StoreError::Invalid(format!("line {}: {msg}", row.line));
            if row.account_name.trim().is_empty() {
                return Err(at("AccountName must not be empty".into()));
            }
            let guid = normalize_guid(&row.subscription_guid);
            if guid.is_empty() {
                return Err(at("SubscriptionGuid must not be empty".into()));
            }
            let dept_id: Option<i64> = if row.department_name.trim().is_empty() {
                None
            } else {
                let id: i64 = tx
                    .query_row(
                        "INSERT INTO department (enrollment_id, name, cost_center) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (enrollment_id, name) DO UPDATE SET cost_center = excluded.cost_center \
                         RETURNING id",
                        params![eid, row.department_name, row.department_cost_center],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                depts.insert(id);
                Some(id)
            };
            let acct_id: i64 = tx
                .query_row(
                    "INSERT INTO account (enrollment_id, name, owner_email, cost_center, department_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (enrollment_id, name) DO UPDATE SET owner_email = excluded.owner_email, \
                     cost_center = excluded.cost_center, department_id = excluded.department_id \
                     RETURNING id",
                    params![eid, row.account_name, row.account_owner_email, row.account_cost_center, dept_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            accts.insert(acct_id);
            let existing: Option<i64> = tx
                .query_row(
                    "SELECT id FROM subscription WHERE enrollment_id = ?1 AND guid = ?2",
                    params![eid, guid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            match existing {
                None => {
                    let sid: i64 = tx
                        .query_row(
                            "INSERT INTO subscription (enrollment_id, guid, name) VALUES (?1, ?2, ?3) RETURNING id",
                            params![eid, guid, row.subscription_name],
                            |r| r.get(0),
                        )
                        .map_err(backend)?;
                    tx.execute(
                        "INSERT INTO subscription_owner (subscription_id, effective_day, account_id) VALUES (?1, ?2, ?3)",
                        params![sid, start, acct_id],
                    )
                    .map_err(backend)?;
                    sum.subscriptions_created += 1;
                }
                Some(sid) => {
                    let owner: i64 = tx
                        .query_row(
                            "SELECT account_id FROM subscription_owner WHERE subscription_id = ?1 \
                             ORDER BY effective_day DESC LIMIT 1",
                            [sid],
                            |r| r.get(0),
                        )
                        .map_err(backend)?;
                    if owner != acct_id {
                        return Err(at(format!(
                            "subscription {guid} belongs to another account; move it with `subscription move` and an effective date"
                        )));
                    }
                    tx.execute(
                        "UPDATE subscription SET name = ?2 WHERE id = ?1",
                        params![sid, row.subscription_name],
                    )
                    .map_err(backend)?;
                    sum.subscriptions_updated += 1;
                }
            }
        }
        bump_version(&tx, eid)?;
        tx.commit().map_err(backend)?;
        sum.departments = depts.len();
        sum.accounts = accts.len();
        Ok(sum)
    }

    fn rename(
        &self,
        n: &EnrollmentNumber,
        what: meterbook_core::store::Renamed,
        old: &str,
        new: &str,
    ) -> StoreResult<()> {
        let (table, label) = match what {
            meterbook_core::store::Renamed::Department => ("department", "department"),
            meterbook_core::store::Renamed::Account => ("account", "account"),
        };
        let new = new.trim();
        if new.is_empty() {
            return Err(StoreError::Invalid(format!("a {label} needs a name")));
        }
        let mut conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let tx = conn.transaction().map_err(backend)?;
        let taken: bool = tx
            .query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {table} WHERE enrollment_id = ?1 AND name = ?2)"
                ),
                params![eid, new],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if taken {
            return Err(StoreError::Conflict(format!(
                "a {label} named {new:?} exists"
            )));
        }
        let changed = tx
            .execute(
                &format!("UPDATE {table} SET name = ?3 WHERE enrollment_id = ?1 AND name = ?2"),
                params![eid, old, new],
            )
            .map_err(backend)?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("no {label} {old:?}")));
        }
        bump_version(&tx, eid)?;
        tx.commit().map_err(backend)?;
        Ok(())
    }

    fn move_subscription(
        &self,
        n: &EnrollmentNumber,
        guid: &str,
        account: &str,
        effective: Day,
    ) -> StoreResult<()> {
        let mut conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let (start, end) = term(&conn, eid)?;
        if effective.raw() < start || effective.raw() > end {
            return Err(StoreError::Invalid(format!(
                "effective date {effective} is outside the enrollment's term"
            )));
        }
        if let Some(closed) = last_closed(&conn, eid)? {
            if effective <= closed.last_day() {
                return Err(StoreError::Invalid(format!(
                    "effective date {effective} falls in closed period {closed}; closed periods never change"
                )));
            }
        }
        let tx = conn.transaction().map_err(backend)?;
        let sid: i64 = tx
            .query_row(
                "SELECT id FROM subscription WHERE enrollment_id = ?1 AND guid = ?2",
                params![eid, normalize_guid(guid)],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("no subscription {guid}")))?;
        let aid: i64 = tx
            .query_row(
                "SELECT id FROM account WHERE enrollment_id = ?1 AND name = ?2",
                params![eid, account],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("no account {account}")))?;
        tx.execute(
            "INSERT INTO subscription_owner (subscription_id, effective_day, account_id) VALUES (?1, ?2, ?3) \
             ON CONFLICT (subscription_id, effective_day) DO UPDATE SET account_id = excluded.account_id",
            params![sid, effective.raw(), aid],
        )
        .map_err(backend)?;
        bump_version(&tx, eid)?;
        tx.commit().map_err(backend)
    }

    fn hierarchy(&self, n: &EnrollmentNumber) -> StoreResult<Hierarchy> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        let mut h = Hierarchy::default();
        let mut st = conn
            .prepare("SELECT id, name, cost_center FROM department WHERE enrollment_id = ?1")
            .map_err(backend)?;
        for d in st
            .query_map([eid], |r| {
                Ok(Department {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    cost_center: r.get(2)?,
                })
            })
            .map_err(backend)?
        {
            let d = d.map_err(backend)?;
            h.departments.insert(d.id, d);
        }
        let mut st = conn
            .prepare(
                "SELECT id, name, owner_email, cost_center, department_id FROM account WHERE enrollment_id = ?1",
            )
            .map_err(backend)?;
        for a in st
            .query_map([eid], |r| {
                Ok(Account {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    owner_email: r.get(2)?,
                    cost_center: r.get(3)?,
                    department_id: r.get(4)?,
                })
            })
            .map_err(backend)?
        {
            let a = a.map_err(backend)?;
            h.accounts.insert(a.id, a);
        }
        let mut st = conn
            .prepare(
                "SELECT s.id, s.guid, s.name, o.effective_day, o.account_id FROM subscription s \
                 JOIN subscription_owner o ON o.subscription_id = s.id \
                 WHERE s.enrollment_id = ?1 ORDER BY s.id, o.effective_day",
            )
            .map_err(backend)?;
        let mut rows = st.query([eid]).map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let key: i64 = r.get(0).map_err(backend)?;
            let owner = (
                Day::from_raw(r.get(3).map_err(backend)?),
                r.get::<_, i64>(4).map_err(backend)?,
            );
            match h.subscriptions.get_mut(&key) {
                Some(s) => s.owners.push(owner),
                None => {
                    h.subscriptions.insert(
                        key,
                        Subscription {
                            key,
                            guid: r.get(1).map_err(backend)?,
                            name: r.get(2).map_err(backend)?,
                            owners: vec![owner],
                        },
                    );
                }
            }
        }
        Ok(h)
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
