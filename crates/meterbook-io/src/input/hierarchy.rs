//! The hierarchy file: one row per subscription.

use super::read_rows;
use crate::InputError;
use meterbook_core::hierarchy::HierarchyRow;
use std::io::Read;

pub const COLUMNS: [&str; 7] = [
    "DepartmentName",
    "DepartmentCostCenter",
    "AccountName",
    "AccountOwnerEmail",
    "AccountCostCenter",
    "SubscriptionGuid",
    "SubscriptionName",
];
const REQUIRED: [&str; 3] = ["AccountName", "AccountOwnerEmail", "SubscriptionGuid"];

/// Reads a whole hierarchy file (small: one row per subscription).
pub fn read(file: &str, input: impl Read) -> Result<Vec<HierarchyRow>, InputError> {
    read_rows(file, input, &COLUMNS, &REQUIRED, |header, rec, line| {
        let get = |c: &str| header.get(rec, c).trim().to_string();
        let row = HierarchyRow {
            line,
            department_name: get("DepartmentName"),
            department_cost_center: get("DepartmentCostCenter"),
            account_name: get("AccountName"),
            account_owner_email: get("AccountOwnerEmail"),
            account_cost_center: get("AccountCostCenter"),
            subscription_guid: get("SubscriptionGuid"),
            subscription_name: get("SubscriptionName"),
        };
        let err = |col: &str, reason: &str| InputError {
            file: file.to_string(),
            line,
            column: header.column(col),
            reason: reason.to_string(),
        };
        if row.account_name.is_empty() {
            return Err(err("AccountName", "required value is empty"));
        }
        if row.subscription_guid.is_empty() {
            return Err(err("SubscriptionGuid", "required value is empty"));
        }
        let email = &row.account_owner_email;
        let at = email.find('@');
        if !at.is_some_and(|i| i > 0 && i + 1 < email.len()) || email.contains(char::is_whitespace)
        {
            return Err(err("AccountOwnerEmail", "not an email address"));
        }
        Ok(row)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_example_shape() {
        let f = "DepartmentName,DepartmentCostCenter,AccountName,AccountOwnerEmail,AccountCostCenter,SubscriptionGuid,SubscriptionName\n\
                 ,,shared-it,f@x.example,IT-1,G-1,core\n";
        let rows = super::read("h.csv", f.as_bytes()).unwrap();
        assert_eq!(rows[0].department_name, "");
        assert_eq!(rows[0].line, 2);
        let bad = "AccountName,AccountOwnerEmail,SubscriptionGuid\nacc,not-an-email,g\n";
        let e = super::read("h.csv", bad.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "h.csv:2: column 2 (AccountOwnerEmail): not an email address"
        );
    }
}
