//! The price-sheet reader and the sheet's rules: no panic on any bytes; every
//! error is short; rows come in line order, at most the row bound; accepted
//! rows, written back as CSV, read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterbook_core::prices::build_price_sheet;
use meterbook_fuzz::{check_message, csv_record};
use meterbook_io::input::{prices, MAX_RECORD, MAX_SHEET_BYTES, MAX_SHEET_ROWS};

fuzz_target!(|data: &[u8]| {
    let rows = match prices::read("prices.csv", data) {
        Ok(rows) => rows,
        Err(e) => return check_message(&e.to_string()),
    };
    assert!(rows.len() <= MAX_SHEET_ROWS);
    assert!(rows.windows(2).all(|w| w[0].line < w[1].line));
    if let Err((_, m)) = build_price_sheet(&rows) {
        check_message(&m);
    }
    let mut text = csv_record(prices::COLUMNS);
    let mut longest = 0;
    for r in &rows {
        let (price, incl, min) = (
            r.unit_price.to_string(),
            r.included_quantity.to_string(),
            r.tier_minimum_units.to_string(),
        );
        let record = csv_record([
            r.meter_id.as_str(),
            &r.meter_name,
            &r.meter_category,
            &r.meter_sub_category,
            &r.meter_region,
            &r.unit_of_measure,
            &r.part_number,
            &price,
            &incl,
            &min,
            if r.charges_billed_separately {
                "true"
            } else {
                "false"
            },
            &r.publisher_name,
            &r.offer_name,
            &r.plan_name,
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
    let again = prices::read("again.csv", text.as_bytes()).expect("rows read back");
    assert_eq!(again.len(), rows.len());
    for (a, r) in again.iter().zip(&rows) {
        assert_eq!(
            (a.meter_id.as_str(), a.unit_price),
            (r.meter_id.as_str(), r.unit_price)
        );
        assert_eq!(
            (
                a.included_quantity,
                a.tier_minimum_units,
                a.charges_billed_separately
            ),
            (
                r.included_quantity,
                r.tier_minimum_units,
                r.charges_billed_separately
            )
        );
        assert_eq!((&a.meter_name, &a.plan_name), (&r.meter_name, &r.plan_name));
    }
});
