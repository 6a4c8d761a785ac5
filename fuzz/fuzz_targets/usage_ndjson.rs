//! The NDJSON usage reader: no panic on any bytes; every error is short;
//! records come in line order; an accepted record, written back as NDJSON
//! (every field a string), reads back the same; core validation of it never
//! panics (Tags and AdditionalInfo go through serde_json, whose recursion
//! limit bounds nesting) and its errors are short.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterbook_core::ingest::UsageSource;
use meterbook_core::usage::{check_object, check_tags, Catalog, OwnedUsage, USAGE_COLUMNS};
use meterbook_fuzz::check_message;
use meterbook_io::input::usage::{Format, UsageReader};
use meterbook_io::input::MAX_RECORD;

fuzz_target!(|data: &[u8]| {
    let mut reader = match UsageReader::open(data, Some(Format::Ndjson)) {
        Ok(r) => r,
        Err(e) => return check_message(&e.reason),
    };
    let mut last_line = 0;
    let mut accepted = Vec::new();
    while let Some(next) = reader.next_record() {
        match next {
            Ok(raw) => {
                assert!(raw.line > last_line, "line {} after {last_line}", raw.line);
                last_line = raw.line;
                if let Err(e) = Catalog::default().classify(&raw) {
                    check_message(&e.reason);
                }
                for e in [check_tags(raw.tags), check_object(raw.additional_info)] {
                    if let Err(e) = e {
                        check_message(&e);
                    }
                }
                accepted.push(OwnedUsage::from_raw(&raw));
            }
            Err(rej) => {
                check_message(&reader.describe("usage.ndjson", &rej).to_string());
                assert!(rej.line > last_line);
                last_line = rej.line;
            }
        }
    }
    // Written back with every field a string, the records read the same
    // (those that still fit the bound once escaped).
    let mut text = String::new();
    accepted.retain(|r| {
        let obj: serde_json::Map<String, serde_json::Value> = USAGE_COLUMNS
            .iter()
            .zip(r.as_raw().fields())
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        let line = serde_json::to_string(&obj).expect("a map") + "\n";
        line.len() <= MAX_RECORD && {
            text.push_str(&line);
            true
        }
    });
    let mut again = UsageReader::open(text.as_bytes(), Some(Format::Ndjson)).expect("open");
    for r in &accepted {
        let back = again.next_record().expect("a record");
        let back = back.unwrap_or_else(|e| panic!("{e:?} for {text:.500}"));
        assert_eq!(back.fields(), r.as_raw().fields());
    }
    assert!(again.next_record().is_none());
});
