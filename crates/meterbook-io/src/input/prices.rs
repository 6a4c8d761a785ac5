//! The price-sheet file: one row per meter and tier.

use super::read_rows;
use crate::InputError;
use meterbook_core::prices::PriceRow;
use meterbook_core::quote::quote;
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
    read_rows(file, input, &COLUMNS, &REQUIRED, |header, rec, line| {
        let get = |c: &str| header.get(rec, c).trim().to_string();
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
            .map_err(|e| err("UnitPrice", format!("`{}`: {e}", quote(&get("UnitPrice")))))?;
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
                    format!("`{}` is not true or false", quote(other)),
                ))
            }
        };
        if get("MeterId").is_empty() {
            return Err(err("MeterId", "required value is empty".into()));
        }
        Ok(PriceRow {
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
        })
    })
}
