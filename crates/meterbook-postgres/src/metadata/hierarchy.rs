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
use postgres::types::{ToSql, Type};
use std::collections::{HashMap, HashSet};

impl PgStore {
    /// The rows in file order, as SQLite applies them. What exists is read
    /// first (three queries) and each row writes only what it adds or
    /// changes, so uploading the same hierarchy again costs no write per row.
    pub(super) fn write_hierarchy(
        &self,
        n: &EnrollmentNumber,
        rows: &[HierarchyRow],
    ) -> StoreResult<HierarchySummary> {
        self.write(|tx| {
            // Subscriptions are part of the catalog.
            let eid = lock_enrollment(tx, n, Lock::Catalog)?;
            let (start, _) = term(tx, eid)?;
            let e = [(&eid as &(dyn ToSql + Sync), Type::INT8)];
            // Name -> (id, cost center).
            let mut depts: HashMap<String, (i64, String)> = tx
                .query_typed(
                    "SELECT name, id, cost_center FROM department WHERE enrollment_id = $1",
                    &e,
                )
                .map_err(pg)?
                .iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect();
            // Name -> (id, owner e-mail, cost center, department).
            let mut accts: HashMap<String, (i64, String, String, Option<i64>)> = tx
                .query_typed(
                    "SELECT name, id, owner_email, cost_center, department_id FROM account \
                     WHERE enrollment_id = $1",
                    &e,
                )
                .map_err(pg)?
                .iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4))))
                .collect();
            // GUID -> (id, name, account of the latest ownership).
            let mut subs: HashMap<String, (i64, String, i64)> = tx
                .query_typed(
                    "SELECT DISTINCT ON (s.id) s.guid, s.id, s.name, o.account_id \
                     FROM subscription s JOIN subscription_owner o ON o.subscription_id = s.id \
                     WHERE s.enrollment_id = $1 ORDER BY s.id, o.effective_day DESC",
                    &e,
                )
                .map_err(pg)?
                .iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
                .collect();
            let mut sum = HierarchySummary::default();
            let (mut dept_ids, mut acct_ids) = (HashSet::new(), HashSet::new());
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
                    let cc = &row.department_cost_center;
                    let id = match depts.get_mut(&row.department_name) {
                        Some((id, old)) => {
                            if old != cc {
                                tx.execute_typed(
                                    "UPDATE department SET cost_center = $2 WHERE id = $1",
                                    &[(&*id, Type::INT8), (cc, Type::TEXT)],
                                )
                                .map_err(pg)?;
                                old.clone_from(cc);
                            }
                            *id
                        }
                        None => {
                            let id: i64 = tx
                                .query_typed_one(
                                    "INSERT INTO department (enrollment_id, name, cost_center) \
                                     VALUES ($1, $2, $3) RETURNING id",
                                    &[
                                        (&eid, Type::INT8),
                                        (&row.department_name, Type::TEXT),
                                        (cc, Type::TEXT),
                                    ],
                                )
                                .map_err(pg)?
                                .get(0);
                            depts.insert(row.department_name.clone(), (id, cc.clone()));
                            id
                        }
                    };
                    dept_ids.insert(id);
                    Some(id)
                };
                let wanted = (
                    row.account_owner_email.clone(),
                    row.account_cost_center.clone(),
                    dept_id,
                );
                let acct_id = match accts.get_mut(&row.account_name) {
                    Some(a) => {
                        if (&a.1, &a.2, a.3) != (&wanted.0, &wanted.1, wanted.2) {
                            tx.execute_typed(
                                "UPDATE account SET owner_email = $2, cost_center = $3, \
                                 department_id = $4 WHERE id = $1",
                                &[
                                    (&a.0, Type::INT8),
                                    (&wanted.0, Type::TEXT),
                                    (&wanted.1, Type::TEXT),
                                    (&wanted.2, Type::INT8),
                                ],
                            )
                            .map_err(pg)?;
                            (a.1, a.2, a.3) = wanted;
                        }
                        a.0
                    }
                    None => {
                        let id: i64 = tx
                            .query_typed_one(
                                "INSERT INTO account (enrollment_id, name, owner_email, cost_center, \
                                 department_id) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                                &[
                                    (&eid, Type::INT8),
                                    (&row.account_name, Type::TEXT),
                                    (&wanted.0, Type::TEXT),
                                    (&wanted.1, Type::TEXT),
                                    (&wanted.2, Type::INT8),
                                ],
                            )
                            .map_err(pg)?
                            .get(0);
                        accts.insert(row.account_name.clone(), (id, wanted.0, wanted.1, wanted.2));
                        id
                    }
                };
                acct_ids.insert(acct_id);
                match subs.get_mut(&guid) {
                    None => {
                        let sid: i64 = tx
                            .query_typed_one(
                                "INSERT INTO subscription (enrollment_id, guid, name) \
                                 VALUES ($1, $2, $3) RETURNING id",
                                &[
                                    (&eid, Type::INT8),
                                    (&guid, Type::TEXT),
                                    (&row.subscription_name, Type::TEXT),
                                ],
                            )
                            .map_err(pg)?
                            .get(0);
                        tx.execute_typed(
                            "INSERT INTO subscription_owner (subscription_id, effective_day, account_id) \
                             VALUES ($1, $2, $3)",
                            &[(&sid, Type::INT8), (&start, Type::INT4), (&acct_id, Type::INT8)],
                        )
                        .map_err(pg)?;
                        subs.insert(guid, (sid, row.subscription_name.clone(), acct_id));
                        sum.subscriptions_created += 1;
                    }
                    Some((sid, name, owner)) => {
                        if *owner != acct_id {
                            return Err(at(format!(
                                "subscription {guid} belongs to another account; move it with `subscription move` and an effective date"
                            )));
                        }
                        if *name != row.subscription_name {
                            tx.execute_typed(
                                "UPDATE subscription SET name = $2 WHERE id = $1",
                                &[(&*sid, Type::INT8), (&row.subscription_name, Type::TEXT)],
                            )
                            .map_err(pg)?;
                            name.clone_from(&row.subscription_name);
                        }
                        sum.subscriptions_updated += 1;
                    }
                }
            }
            bump_catalog(tx, eid)?;
            sum.departments = dept_ids.len();
            sum.accounts = acct_ids.len();
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
