//! The hierarchy reader: no panic on any bytes; every error is short; rows
//! come in line order, at most the row bound; accepted rows, written back as
//! CSV, read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterbook_fuzz::{check_message, csv_record};
use meterbook_io::input::{hierarchy, MAX_RECORD, MAX_SHEET_BYTES, MAX_SHEET_ROWS};

fuzz_target!(|data: &[u8]| {
    let rows = match hierarchy::read("hierarchy.csv", data) {
        Ok(rows) => rows,
        Err(e) => return check_message(&e.to_string()),
    };
    assert!(rows.len() <= MAX_SHEET_ROWS);
    assert!(rows.windows(2).all(|w| w[0].line < w[1].line));
    let mut text = csv_record(hierarchy::COLUMNS);
    let mut longest = 0;
    for r in &rows {
        assert!(!r.account_name.is_empty() && !r.subscription_guid.is_empty());
        let record = csv_record([
            r.department_name.as_str(),
            &r.department_cost_center,
            &r.account_name,
            &r.account_owner_email,
            &r.account_cost_center,
            &r.subscription_guid,
            &r.subscription_name,
        ]);
        longest = longest.max(record.len());
        text.push_str(&record);
    }
    // Written back, every field quoted, the rows read the same (when they
    // still fit the bounds).
    let fits = text.len() as u64 <= MAX_SHEET_BYTES && longest <= MAX_RECORD;
    if !fits {
        return;
    }
    let again = hierarchy::read("again.csv", text.as_bytes()).expect("rows read back");
    assert_eq!(again.len(), rows.len());
    for (a, r) in again.iter().zip(&rows) {
        assert_eq!(
            (&a.account_name, &a.subscription_guid, &a.subscription_name),
            (&r.account_name, &r.subscription_guid, &r.subscription_name)
        );
        assert_eq!(a.account_owner_email, r.account_owner_email);
        assert_eq!(
            (
                &a.department_name,
                &a.department_cost_center,
                &a.account_cost_center
            ),
            (
                &r.department_name,
                &r.department_cost_center,
                &r.account_cost_center
            )
        );
    }
});
