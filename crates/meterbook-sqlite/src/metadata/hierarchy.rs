//! The hierarchy on SQLite: departments, accounts and subscriptions, their
//! renames and moves.

use super::enrollment::*;
use crate::{backend, SqliteStore};
use meterbook_core::hierarchy::{
    normalize_guid, Account, Department, Hierarchy, HierarchyRow, Subscription,
};
use meterbook_core::store::{HierarchySummary, StoreError, StoreResult};
use meterbook_core::{Day, EnrollmentNumber};
use rusqlite::{params, OptionalExtension};
use std::collections::HashSet;

/// The hierarchy's reads and writes behind [`MetadataStore`](meterbook_core::store::MetadataStore)'s hierarchy methods.
impl SqliteStore {
    pub(super) fn write_hierarchy(
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

    pub(super) fn rename_in_hierarchy(
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

    pub(super) fn move_subscription_in(
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

    pub(super) fn read_hierarchy(&self, n: &EnrollmentNumber) -> StoreResult<Hierarchy> {
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
}
