//! The CSV usage reader: no panic on any bytes; every error is short; records
//! come in line order, within the record bound; an accepted record, written
//! back as CSV, reads back the same; core validation of it never panics and
//! its errors are short too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterbook_core::ingest::UsageSource;
use meterbook_core::usage::{Catalog, OwnedUsage, USAGE_COLUMNS};
use meterbook_fuzz::{check_message, csv_record};
use meterbook_io::input::usage::{Format, UsageReader};
use meterbook_io::input::MAX_RECORD;

fuzz_target!(|data: &[u8]| {
    let mut reader = match UsageReader::open(data, Some(Format::Csv)) {
        Ok(r) => r,
        Err(e) => return check_message(&e.reason),
    };
    let catalog = catalog();
    let mut last_line = 1;
    let mut accepted = Vec::new();
    while let Some(next) = reader.next_record() {
        match next {
            Ok(raw) => {
                assert!(raw.line > last_line, "line {} after {last_line}", raw.line);
                last_line = raw.line;
                let size: usize = raw.fields().iter().map(|f| f.len()).sum();
                assert!(size <= MAX_RECORD);
                if let Err(e) = catalog.classify(&raw) {
                    check_message(&e.reason);
                }
                accepted.push(OwnedUsage::from_raw(&raw));
            }
            Err(rej) => {
                check_message(&reader.describe("usage.csv", &rej).to_string());
                assert!(rej.line >= last_line);
            }
        }
    }
    // Written back (all columns, every field quoted), the records read the
    // same (those that still fit the bound once quoted).
    let mut text = csv_record(USAGE_COLUMNS);
    accepted.retain(|r| {
        let line = csv_record(r.as_raw().fields());
        text.push_str(&line);
        line.len() <= MAX_RECORD || {
            text.truncate(text.len() - line.len());
            false
        }
    });
    let mut again = UsageReader::open(text.as_bytes(), Some(Format::Csv)).expect("header");
    for r in &accepted {
        let back = again.next_record().expect("a record").expect("valid");
        assert_eq!(back.fields(), r.as_raw().fields());
    }
    assert!(again.next_record().is_none());
});

/// A term and one subscription, so validation gets past the first checks.
fn catalog() -> Catalog {
    let mut c = Catalog {
        term_start: "2026-01-01".parse().ok(),
        term_end: "2026-12-31".parse().ok(),
        ..Default::default()
    };
    c.subscriptions.insert("g".into(), 1);
    c
}
