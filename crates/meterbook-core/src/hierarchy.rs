//! Departments, accounts and subscriptions, and which account owned a
//! subscription on a given day.

use crate::calendar::Day;
use std::collections::HashMap;

/// One row of a hierarchy file (design §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HierarchyRow {
    pub line: u64,
    pub department_name: String,
    pub department_cost_center: String,
    pub account_name: String,
    pub account_owner_email: String,
    pub account_cost_center: String,
    pub subscription_guid: String,
    pub subscription_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Department {
    pub id: i64,
    pub name: String,
    pub cost_center: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub owner_email: String,
    pub cost_center: String,
    pub department_id: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub key: i64,
    pub guid: String,
    pub name: String,
    /// (effective from, account id), sorted by day; the first entry is the original owner.
    pub owners: Vec<(Day, i64)>,
}

/// The whole hierarchy of an enrollment, indexed for lookups on the report path.
#[derive(Clone, Debug, Default)]
pub struct Hierarchy {
    pub departments: HashMap<i64, Department>,
    pub accounts: HashMap<i64, Account>,
    pub subscriptions: HashMap<i64, Subscription>,
}

impl Hierarchy {
    /// The account that owned subscription `sub` on `day` (usage is attributed to it).
    pub fn account_on(&self, sub: i64, day: Day) -> Option<&Account> {
        let s = self.subscriptions.get(&sub)?;
        // The first owner also covers usage dated before any recorded move.
        let idx = s.owners.partition_point(|(from, _)| *from <= day);
        let (_, acc) = s.owners.get(idx.saturating_sub(1))?;
        self.accounts.get(acc)
    }

    pub fn department(&self, id: Option<i64>) -> Option<&Department> {
        id.and_then(|d| self.departments.get(&d))
    }

    pub fn account_by_name(&self, name: &str) -> Option<&Account> {
        self.accounts.values().find(|a| a.name == name)
    }

    pub fn department_by_name(&self, name: &str) -> Option<&Department> {
        self.departments.values().find(|d| d.name == name)
    }
}

/// Normalises a subscription GUID for lookups (GUIDs compare case-insensitively).
pub fn normalize_guid(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_follows_moves() {
        let mut h = Hierarchy::default();
        for id in [1, 2] {
            h.accounts.insert(
                id,
                Account {
                    id,
                    name: format!("a{id}"),
                    owner_email: String::new(),
                    cost_center: String::new(),
                    department_id: None,
                },
            );
        }
        let d = |s: &str| s.parse::<Day>().unwrap();
        h.subscriptions.insert(
            7,
            Subscription {
                key: 7,
                guid: "g".into(),
                name: "s".into(),
                owners: vec![(d("2026-01-10"), 1), (d("2026-03-01"), 2)],
            },
        );
        assert_eq!(h.account_on(7, d("2026-01-01")).unwrap().id, 1);
        assert_eq!(h.account_on(7, d("2026-02-28")).unwrap().id, 1);
        assert_eq!(h.account_on(7, d("2026-03-01")).unwrap().id, 2);
        assert!(h.account_on(8, d("2026-03-01")).is_none());
    }
}
