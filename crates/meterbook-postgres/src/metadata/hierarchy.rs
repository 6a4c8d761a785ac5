//! The hierarchy: departments, accounts and subscriptions, their renames and
//! moves.

use super::{bump_catalog, bump_version, last_closed, lock_enrollment, term, Lock};
use crate::tx::is_unique_violation;
use crate::tx::pg;
use crate::PgStore;
use meterbook_core::hierarchy::{
    normalize_guid, Account, Department, Hierarchy, HierarchyRow, Subscription,
};
use meterbook_core::store::{HierarchySummary, Renamed, StoreError, StoreResult};
use meterbook_core::{Day, EnrollmentNumber};
use postgres::types::Type;
use std::collections::HashSet;

impl PgStore {
    pub(super) fn write_hierarchy(
        &self,
        n: &EnrollmentNumber,
        rows: &[HierarchyRow],
    ) -> StoreResult<HierarchySummary> {
        self.write(|tx| {
            // Subscriptions are part of the catalog.
            let eid = lock_enrollment(tx, n, Lock::Catalog)?;
            let (start, _) = term(tx, eid)?;
            // Found, then updated or added: an upsert would take a sequence
            // number even when the row exists, and keys are kept dense as
            // SQLite's are. The catalog lock keeps other writers out meanwhile.
            let find_dept = tx
                .prepare("SELECT id FROM department WHERE enrollment_id = $1 AND name = $2")
                .map_err(pg)?;
            let update_dept = tx
                .prepare("UPDATE department SET cost_center = $2 WHERE id = $1")
                .map_err(pg)?;
            let add_dept = tx
                .prepare(
                    "INSERT INTO department (enrollment_id, name, cost_center) VALUES ($1, $2, $3) \
                     RETURNING id",
                )
                .map_err(pg)?;
            let find_acct = tx
                .prepare("SELECT id FROM account WHERE enrollment_id = $1 AND name = $2")
                .map_err(pg)?;
            let update_acct = tx
                .prepare(
                    "UPDATE account SET owner_email = $2, cost_center = $3, department_id = $4 \
                     WHERE id = $1",
                )
                .map_err(pg)?;
            let add_acct = tx
                .prepare(
                    "INSERT INTO account (enrollment_id, name, owner_email, cost_center, department_id) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .map_err(pg)?;
            let find_sub = tx
                .prepare("SELECT id FROM subscription WHERE enrollment_id = $1 AND guid = $2")
                .map_err(pg)?;
            let owner = tx
                .prepare(
                    "SELECT account_id FROM subscription_owner WHERE subscription_id = $1 \
                     ORDER BY effective_day DESC LIMIT 1",
                )
                .map_err(pg)?;
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
                    let found = tx
                        .query_opt(&find_dept, &[&eid, &row.department_name])
                        .map_err(pg)?;
                    let id: i64 = match found {
                        Some(r) => {
                            let id = r.get(0);
                            tx.execute(&update_dept, &[&id, &row.department_cost_center])
                                .map_err(pg)?;
                            id
                        }
                        None => tx
                            .query_one(
                                &add_dept,
                                &[&eid, &row.department_name, &row.department_cost_center],
                            )
                            .map_err(pg)?
                            .get(0),
                    };
                    depts.insert(id);
                    Some(id)
                };
                let found = tx
                    .query_opt(&find_acct, &[&eid, &row.account_name])
                    .map_err(pg)?;
                let acct_id: i64 = match found {
                    Some(r) => {
                        let id = r.get(0);
                        tx.execute(
                            &update_acct,
                            &[
                                &id,
                                &row.account_owner_email,
                                &row.account_cost_center,
                                &dept_id,
                            ],
                        )
                        .map_err(pg)?;
                        id
                    }
                    None => tx
                        .query_one(
                            &add_acct,
                            &[
                                &eid,
                                &row.account_name,
                                &row.account_owner_email,
                                &row.account_cost_center,
                                &dept_id,
                            ],
                        )
                        .map_err(pg)?
                        .get(0),
                };
                accts.insert(acct_id);
                let existing: Option<i64> = tx
                    .query_opt(&find_sub, &[&eid, &guid])
                    .map_err(pg)?
                    .map(|r| r.get(0));
                match existing {
                    None => {
                        let sid: i64 = tx
                            .query_one(
                                "INSERT INTO subscription (enrollment_id, guid, name) \
                                 VALUES ($1, $2, $3) RETURNING id",
                                &[&eid, &guid, &row.subscription_name],
                            )
                            .map_err(pg)?
                            .get(0);
                        tx.execute(
                            "INSERT INTO subscription_owner (subscription_id, effective_day, account_id) \
                             VALUES ($1, $2, $3)",
                            &[&sid, &start, &acct_id],
                        )
                        .map_err(pg)?;
                        sum.subscriptions_created += 1;
                    }
                    Some(sid) => {
                        let current: i64 = tx.query_one(&owner, &[&sid]).map_err(pg)?.get(0);
                        if current != acct_id {
                            return Err(at(format!(
                                "subscription {guid} belongs to another account; move it with `subscription move` and an effective date"
                            )));
                        }
                        tx.execute(
                            "UPDATE subscription SET name = $2 WHERE id = $1",
                            &[&sid, &row.subscription_name],
                        )
                        .map_err(pg)?;
                        sum.subscriptions_updated += 1;
                    }
                }
            }
            bump_catalog(tx, eid)?;
            sum.departments = depts.len();
            sum.accounts = accts.len();
            Ok(sum)
        })
    }

    pub(super) fn rename_in_hierarchy(
        &self,
        n: &EnrollmentNumber,
        what: Renamed,
        old: &str,
        new: &str,
    ) -> StoreResult<()> {
        let (table, label) = match what {
            Renamed::Department => ("department", "department"),
            Renamed::Account => ("account", "account"),
        };
        let new = new.trim();
        if new.is_empty() {
            return Err(StoreError::Invalid(format!("a {label} needs a name")));
        }
        let taken = || StoreError::Conflict(format!("a {label} named {new:?} exists"));
        self.write(|tx| {
            let eid = lock_enrollment(tx, n, Lock::Data)?;
            let exists: bool = tx
                .query_one(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {table} WHERE enrollment_id = $1 AND name = $2)"
                    ),
                    &[&eid, &new],
                )
                .map_err(pg)?
                .get(0);
            if exists {
                return Err(taken());
            }
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE {table} SET name = $3 WHERE enrollment_id = $1 AND name = $2"
                    ),
                    &[&eid, &old, &new],
                )
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        taken()
                    } else {
                        pg(e)
                    }
                })?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("no {label} {old:?}")));
            }
            bump_version(tx, eid)
        })
    }

    pub(super) fn move_subscription_in(
        &self,
        n: &EnrollmentNumber,
        guid: &str,
        account: &str,
        effective: Day,
    ) -> StoreResult<()> {
        self.write(|tx| {
            let eid = lock_enrollment(tx, n, Lock::Catalog)?;
            let (start, end) = term(tx, eid)?;
            if effective.raw() < start || effective.raw() > end {
                return Err(StoreError::Invalid(format!(
                    "effective date {effective} is outside the enrollment's term"
                )));
            }
            if let Some(closed) = last_closed(tx, eid)? {
                if effective <= closed.last_day() {
                    return Err(StoreError::Invalid(format!(
                        "effective date {effective} falls in closed period {closed}; closed periods never change"
                    )));
                }
            }
            let sid: i64 = tx
                .query_opt(
                    "SELECT id FROM subscription WHERE enrollment_id = $1 AND guid = $2",
                    &[&eid, &normalize_guid(guid)],
                )
                .map_err(pg)?
                .ok_or_else(|| StoreError::NotFound(format!("no subscription {guid}")))?
                .get(0);
            let aid: i64 = tx
                .query_opt(
                    "SELECT id FROM account WHERE enrollment_id = $1 AND name = $2",
                    &[&eid, &account],
                )
                .map_err(pg)?
                .ok_or_else(|| StoreError::NotFound(format!("no account {account}")))?
                .get(0);
            tx.execute(
                "INSERT INTO subscription_owner (subscription_id, effective_day, account_id) \
                 VALUES ($1, $2, $3) \
                 ON CONFLICT (subscription_id, effective_day) DO UPDATE SET account_id = excluded.account_id",
                &[&sid, &effective.raw(), &aid],
            )
            .map_err(pg)?;
            bump_catalog(tx, eid)
        })
    }

    pub(super) fn read_hierarchy(&self, n: &EnrollmentNumber) -> StoreResult<Hierarchy> {
        self.read(|tx| {
            let eid = super::enrollment_id(tx, n)?;
            let mut h = Hierarchy::default();
            for r in tx
                .query_typed(
                    "SELECT id, name, cost_center FROM department WHERE enrollment_id = $1",
                    &[(&eid, Type::INT8)],
                )
                .map_err(pg)?
            {
                let d = Department {
                    id: r.get(0),
                    name: r.get(1),
                    cost_center: r.get(2),
                };
                h.departments.insert(d.id, d);
            }
            for r in tx
                .query_typed(
                    "SELECT id, name, owner_email, cost_center, department_id FROM account \
                     WHERE enrollment_id = $1",
                    &[(&eid, Type::INT8)],
                )
                .map_err(pg)?
            {
                let a = Account {
                    id: r.get(0),
                    name: r.get(1),
                    owner_email: r.get(2),
                    cost_center: r.get(3),
                    department_id: r.get(4),
                };
                h.accounts.insert(a.id, a);
            }
            for r in tx
                .query_typed(
                    "SELECT s.id, s.guid, s.name, o.effective_day, o.account_id FROM subscription s \
                     JOIN subscription_owner o ON o.subscription_id = s.id \
                     WHERE s.enrollment_id = $1 ORDER BY s.id, o.effective_day",
                    &[(&eid, Type::INT8)],
                )
                .map_err(pg)?
            {
                let key: i64 = r.get(0);
                let owner = (Day::from_raw(r.get(3)), r.get::<_, i64>(4));
                match h.subscriptions.get_mut(&key) {
                    Some(s) => s.owners.push(owner),
                    None => {
                        h.subscriptions.insert(
                            key,
                            Subscription {
                                key,
                                guid: r.get(1),
                                name: r.get(2),
                                owners: vec![owner],
                            },
                        );
                    }
                }
            }
            Ok(h)
        })
    }
}
