//! The price-sheet file: one row per meter and tier.

use super::{csv_error, Header, LineCounted};
use crate::InputError;
use meterbook_core::prices::PriceRow;
use meterbook_core::{Price, Quantity};
use std::io::Read;

pub const COLUMNS: [&str; 14] = [
    "MeterId",
    "MeterName",
    "MeterCategory",
    "MeterSubCategory",
    "MeterRegion",
    "UnitOfMeasure",
    "PartNumber",
    "UnitPrice",
    "IncludedQuantity",
    "TierMinimumUnits",
    "ChargesBilledSeparately",
    "PublisherName",
    "OfferName",
    "PlanName",
];
const REQUIRED: [&str; 3] = ["MeterId", "UnitPrice", "MeterName"];

/// Reads a whole price sheet (small: one row per meter tier).
pub fn read(file: &str, input: impl Read) -> Result<Vec<PriceRow>, InputError> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(LineCounted::new(input));
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(csv_error(file, &e, rdr.get_ref())),
    };
    let header = Header::parse(file, &headers, &COLUMNS, &REQUIRED)?;
    let mut out = Vec::new();
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(file, &e, rdr.get_ref())),
        }
        let line = rec
            .position()
            .map_or(0, |p| rdr.get_ref().line_at(p.byte()));
        let get = |c: &str| header.get(&rec, c).trim().to_string();
        let err = |col: &str, reason: String| InputError {
            file: file.to_string(),
            line,
            column: header.column(col),
            reason,
        };
        let dec_or_zero = |col: &str| -> Result<String, InputError> {
            let v = get(col);
            Ok(if v.is_empty() { "0".into() } else { v })
        };
        let unit_price: Price = get("UnitPrice")
            .parse()
            .map_err(|e| err("UnitPrice", format!("`{}`: {e}", get("UnitPrice"))))?;
        let included: Quantity = dec_or_zero("IncludedQuantity")?
            .parse()
            .map_err(|e| err("IncludedQuantity", format!("{e}")))?;
        let tier_min: Quantity = dec_or_zero("TierMinimumUnits")?
            .parse()
            .map_err(|e| err("TierMinimumUnits", format!("{e}")))?;
        let separately = match get("ChargesBilledSeparately").to_ascii_lowercase().as_str() {
            "" | "false" => false,
            "true" => true,
            other => {
                return Err(err(
                    "ChargesBilledSeparately",
                    format!("`{other}` is not true or false"),
                ))
            }
        };
        if get("MeterId").is_empty() {
            return Err(err("MeterId", "required value is empty".into()));
        }
        out.push(PriceRow {
            line,
            meter_id: get("MeterId"),
            meter_name: get("MeterName"),
            meter_category: get("MeterCategory"),
            meter_sub_category: get("MeterSubCategory"),
            meter_region: get("MeterRegion"),
            unit_of_measure: get("UnitOfMeasure"),
            part_number: get("PartNumber"),
            unit_price,
            included_quantity: included,
            tier_minimum_units: tier_min,
            charges_billed_separately: separately,
            publisher_name: get("PublisherName"),
            offer_name: get("OfferName"),
            plan_name: get("PlanName"),
        });
    }
    Ok(out)
}
