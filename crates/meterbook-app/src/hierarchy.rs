//! Hierarchy edits by read-write enterprise administrators: adding a
//! subscription (to an existing account or a new one, in an existing or new
//! department), the cost centers, owner and department of departments and
//! accounts, renaming, and moving a subscription to another account from an
//! effective date. Each change is audited as `hierarchy-changed` with what it
//! did, which is also the answer.
//!
//! Changes go through the store's hierarchy upsert, one hierarchy-file row
//! per subscription, so what they allow is what the file allows: in the file,
//! names are the keys of departments and accounts, so renaming one goes
//! through the store's `rename` (its id, usage, keys and roles stay); a
//! department's or account's details travel on one of its subscriptions'
//! rows; a subscription changes account only by a move with an effective
//! date (the store refuses dates outside the term and in closed periods).

use crate::users::email_ok;
use crate::{Admin, AppError, AppResult};
use meterbook_core::hierarchy::{
    normalize_guid, Account, Department, Hierarchy, HierarchyRow, Subscription,
};
use meterbook_core::store::StoreError;
use meterbook_core::Day;

pub use meterbook_core::store::Renamed;

/// A subscription to add: to `account` (an existing account's name), or,
/// when that is empty, to a new account `new_account` owned by
/// `owner_email` in `department` (existing, new, or empty for none).
#[derive(Clone, Debug, Default)]
pub struct NewSubscription {
    pub guid: String,
    pub name: String,
    pub account: String,
    pub new_account: String,
    pub owner_email: String,
    pub account_cost_center: String,
    pub department: String,
    /// The new department's cost center (an existing one keeps its own).
    pub department_cost_center: String,
}

/// An account's details as they should be.
#[derive(Clone, Debug, Default)]
pub struct AccountDetails {
    pub owner_email: String,
    pub cost_center: String,
    /// The department's name; empty for none.
    pub department: String,
}

/// The account a subscription belongs to now (its latest owner).
pub fn owner<'h>(h: &'h Hierarchy, s: &Subscription) -> Option<&'h Account> {
    s.owners.last().and_then(|(_, a)| h.accounts.get(a))
}

/// A subscription currently owned by `account`, if any (the first by GUID).
fn owned_by(h: &Hierarchy, account: i64) -> Option<&Subscription> {
    let mut subs: Vec<&Subscription> = h
        .subscriptions
        .values()
        .filter(|s| owner(h, s).is_some_and(|a| a.id == account))
        .collect();
    subs.sort_by(|a, b| a.guid.cmp(&b.guid));
    subs.into_iter().next()
}

/// The hierarchy-file row that restates a subscription as it is now.
fn row_of(h: &Hierarchy, s: &Subscription, a: &Account) -> HierarchyRow {
    let d = h.department(a.department_id);
    HierarchyRow {
        line: 1,
        department_name: d.map_or_else(String::new, |d| d.name.clone()),
        department_cost_center: d.map_or_else(String::new, |d| d.cost_center.clone()),
        account_name: a.name.clone(),
        account_owner_email: a.owner_email.clone(),
        account_cost_center: a.cost_center.clone(),
        subscription_guid: s.guid.clone(),
        subscription_name: s.name.clone(),
    }
}

fn required<'a>(v: &'a str, what: &str) -> AppResult<&'a str> {
    let v = v.trim();
    if v.is_empty() {
        Err(AppError::Invalid(format!("{what} is required")))
    } else if v.chars().count() > 200 {
        Err(AppError::Invalid(format!("{what} is too long")))
    } else {
        Ok(v)
    }
}

/// The subscription named by GUID (in any case or bracing).
fn find_subscription<'h>(h: &'h Hierarchy, guid: &str) -> AppResult<(String, &'h Subscription)> {
    let guid = normalize_guid(guid);
    let sub = h
        .subscriptions
        .values()
        .find(|s| s.guid == guid)
        .ok_or_else(|| AppError::NotFound(format!("no subscription {guid}")))?;
    Ok((guid, sub))
}

impl Admin<'_> {
    fn current(&self) -> AppResult<Hierarchy> {
        Ok(self.0.app.store().hierarchy(self.0.number())?)
    }

    /// Upserts one row: the store's "line 1: " prefix (a file's) is left
    /// out of messages.
    fn upsert(&self, row: HierarchyRow) -> AppResult<()> {
        let strip = |m: String| m.strip_prefix("line 1: ").map_or(m.clone(), str::to_string);
        self.0
            .app
            .store()
            .upsert_hierarchy(self.0.number(), &[row])
            .map_err(|e| match e {
                StoreError::Invalid(m) => AppError::Invalid(strip(m)),
                StoreError::Conflict(m) => AppError::Conflict(strip(m)),
                other => other.into(),
            })?;
        Ok(())
    }

    fn changed(&self, what: String) -> String {
        self.0.audit("hierarchy-changed", what.clone());
        what
    }

    pub fn add_subscription(&self, f: &NewSubscription) -> AppResult<String> {
        let h = self.current()?;
        let guid = normalize_guid(required(&f.guid, "the subscription's GUID")?);
        if guid.len() > 64 || guid.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AppError::Invalid(format!(
                "`{guid}` is not a subscription GUID"
            )));
        }
        let name = required(&f.name, "the subscription's name")?.to_string();
        if let Some(sub) = h.subscriptions.values().find(|s| s.guid == guid) {
            return Err(AppError::Conflict(format!(
                "subscription {guid} exists (in account {}): rename or move it instead",
                owner(&h, sub).map_or("?", |a| a.name.as_str())
            )));
        }
        let (row, what) = if !f.account.trim().is_empty() {
            let a = h
                .account_by_name(f.account.trim())
                .ok_or_else(|| AppError::NotFound(format!("no account {}", f.account.trim())))?;
            let d = h.department(a.department_id);
            (
                HierarchyRow {
                    line: 1,
                    department_name: d.map_or_else(String::new, |d| d.name.clone()),
                    department_cost_center: d.map_or_else(String::new, |d| d.cost_center.clone()),
                    account_name: a.name.clone(),
                    account_owner_email: a.owner_email.clone(),
                    account_cost_center: a.cost_center.clone(),
                    subscription_guid: guid.clone(),
                    subscription_name: name.clone(),
                },
                format!("subscription {name} ({guid}) added to account {}", a.name),
            )
        } else {
            let acct = required(&f.new_account, "an account (existing, or a new one's name)")?;
            if h.account_by_name(acct).is_some() {
                return Err(AppError::Conflict(format!(
                    "account {acct} exists: choose it in the list of existing accounts"
                )));
            }
            let owner_email = email_ok(&f.owner_email)?;
            let dept_name = f.department.trim();
            let (dept_cc, dept_what) = if dept_name.is_empty() {
                (String::new(), "no department".to_string())
            } else if let Some(d) = h.department_by_name(dept_name) {
                (d.cost_center.clone(), format!("department {dept_name}"))
            } else {
                if dept_name.chars().count() > 200 {
                    return Err(AppError::Invalid(
                        "the department's name is too long".into(),
                    ));
                }
                (
                    f.department_cost_center.trim().to_string(),
                    format!("new department {dept_name}"),
                )
            };
            (
                HierarchyRow {
                    line: 1,
                    department_name: dept_name.to_string(),
                    department_cost_center: dept_cc,
                    account_name: acct.to_string(),
                    account_owner_email: owner_email.clone(),
                    account_cost_center: f.account_cost_center.trim().to_string(),
                    subscription_guid: guid.clone(),
                    subscription_name: name.clone(),
                },
                format!(
                    "subscription {name} ({guid}) added to new account {acct} (owner {owner_email}) in {dept_what}"
                ),
            )
        };
        self.upsert(row)?;
        Ok(self.changed(what))
    }

    /// Sets department `id`'s cost center (it travels on one of its
    /// subscriptions' rows, so the department needs one).
    pub fn set_department_cost_center(&self, id: i64, cost_center: &str) -> AppResult<String> {
        let h = self.current()?;
        let d = h
            .departments
            .get(&id)
            .ok_or_else(|| AppError::NotFound("no such department".into()))?;
        let cc = cost_center.trim().to_string();
        if cc == d.cost_center {
            return Err(AppError::Invalid(format!(
                "department {} already has cost center `{cc}`",
                d.name
            )));
        }
        let mut accts: Vec<&Account> = h
            .accounts
            .values()
            .filter(|a| a.department_id == Some(d.id))
            .collect();
        accts.sort_by(|a, b| a.name.cmp(&b.name));
        let (a, sub) = accts
            .into_iter()
            .find_map(|a| owned_by(&h, a.id).map(|s| (a, s)))
            .ok_or_else(|| {
                AppError::Invalid(format!(
                    "department {} has no subscription: its cost center is set with a subscription's row (add one first)",
                    d.name
                ))
            })?;
        let mut row = row_of(&h, sub, a);
        row.department_cost_center = cc.clone();
        self.upsert(row)?;
        Ok(self.changed(format!(
            "department {}: cost center `{}` → `{cc}`",
            d.name, d.cost_center
        )))
    }

    /// Sets account `id`'s owner, cost center and department.
    pub fn edit_account(&self, id: i64, f: &AccountDetails) -> AppResult<String> {
        let h = self.current()?;
        let a = h
            .accounts
            .get(&id)
            .ok_or_else(|| AppError::NotFound("no such account".into()))?;
        let email = email_ok(&f.owner_email)?;
        let cc = f.cost_center.trim().to_string();
        let dept = match f.department.trim() {
            "" => None,
            name => Some(
                h.department_by_name(name)
                    .ok_or_else(|| AppError::NotFound(format!("no department {name}")))?,
            ),
        };
        let old_dept = h.department(a.department_id);
        let mut changes = Vec::new();
        if email != a.owner_email {
            changes.push(format!("owner {} → {email}", a.owner_email));
        }
        if cc != a.cost_center {
            changes.push(format!("cost center `{}` → `{cc}`", a.cost_center));
        }
        if dept.map(|d| d.id) != old_dept.map(|d| d.id) {
            let nm = |d: Option<&Department>| d.map_or("(none)".to_string(), |d| d.name.clone());
            changes.push(format!("department {} → {}", nm(old_dept), nm(dept)));
        }
        if changes.is_empty() {
            return Err(AppError::Invalid(format!(
                "nothing to change in account {}",
                a.name
            )));
        }
        let sub = owned_by(&h, a.id).ok_or_else(|| {
            AppError::Invalid(format!(
                "account {} has no subscription: its details are set with a subscription's row (add one first)",
                a.name
            ))
        })?;
        let mut row = row_of(&h, sub, a);
        row.account_owner_email = email;
        row.account_cost_center = cc;
        row.department_name = dept.map_or_else(String::new, |d| d.name.clone());
        row.department_cost_center = dept.map_or_else(String::new, |d| d.cost_center.clone());
        self.upsert(row)?;
        Ok(self.changed(format!("account {}: {}", a.name, changes.join(", "))))
    }

    pub fn rename_subscription(&self, guid: &str, name: &str) -> AppResult<String> {
        let h = self.current()?;
        let (guid, sub) = find_subscription(&h, guid)?;
        let name = required(name, "the subscription's name")?.to_string();
        if name == sub.name {
            return Err(AppError::Invalid(format!(
                "subscription {guid} is already named {name}"
            )));
        }
        let a = owner(&h, sub)
            .ok_or_else(|| AppError::Internal(format!("subscription {guid} has no account")))?;
        let mut row = row_of(&h, sub, a);
        row.subscription_name = name.clone();
        self.upsert(row)?;
        Ok(self.changed(format!("subscription {guid} renamed {} → {name}", sub.name)))
    }

    /// Renames a department or an account: its id stays, so its usage, keys
    /// and users' roles stay with it.
    pub fn rename(&self, what: Renamed, old: &str, new: &str) -> AppResult<String> {
        let name = required(new, "the new name")?.to_string();
        self.0
            .app
            .store()
            .rename(self.0.number(), what, old, &name)?;
        Ok(self.changed(format!(
            "{} {old} renamed {name}",
            if what == Renamed::Department {
                "department"
            } else {
                "account"
            }
        )))
    }

    /// Moves a subscription to account `account` (by name) from `effective`
    /// (`YYYY-MM-DD`) on: usage from that day is the new account's.
    pub fn move_subscription(
        &self,
        guid: &str,
        account: &str,
        effective: &str,
    ) -> AppResult<String> {
        let h = self.current()?;
        let (guid, sub) = find_subscription(&h, guid)?;
        let target = h
            .account_by_name(account.trim())
            .ok_or_else(|| AppError::NotFound(format!("no account {}", account.trim())))?;
        let day: Day = effective.trim().parse().map_err(|_| {
            AppError::Invalid(format!(
                "the effective date must be a date (YYYY-MM-DD), not `{}`",
                effective.trim()
            ))
        })?;
        let from = h.account_on(sub.key, day);
        if from.is_some_and(|a| a.id == target.id)
            && owner(&h, sub).is_some_and(|a| a.id == target.id)
        {
            return Err(AppError::Invalid(format!(
                "subscription {} already belongs to account {} on {day}",
                sub.name, target.name
            )));
        }
        self.0
            .app
            .store()
            .move_subscription(self.0.number(), &guid, &target.name, day)?;
        Ok(self.changed(format!(
            "subscription {} ({guid}) moved from account {} to {} effective {day}",
            sub.name,
            from.map_or("(none)", |a| a.name.as_str()),
            target.name
        )))
    }
}
