//! Price list: the period's price sheet, one row per tier.

use super::usage::csv_field;
use super::{json_str, ReportFormat, ReportMeta};
use meterbook_core::prices::MeterPrice;
use std::io::Write;

const COLUMNS: [&str; 11] = [
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
    "CurrencyCode",
];

pub fn write(
    meta: &ReportMeta,
    sheet: &[MeterPrice],
    format: ReportFormat,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut o: Vec<u8> = Vec::new();
    match format {
        ReportFormat::Csv => {
            writeln!(o, "{}", COLUMNS.join(","))?;
            for m in sheet {
                let i = &m.info;
                for t in &m.tiers {
                    for (j, s) in [
                        &i.meter_id,
                        &i.meter_name,
                        &i.meter_category,
                        &i.meter_sub_category,
                        &i.meter_region,
                        &i.unit_of_measure,
                        &i.part_number,
                    ]
                    .iter()
                    .enumerate()
                    {
                        if j > 0 {
                            o.push(b',');
                        }
                        csv_field(&mut o, s);
                    }
                    writeln!(o, ",{},{},{},{}", t.price, m.included, t.min, meta.currency)?;
                }
            }
        }
        ReportFormat::Json => {
            write!(o, "{{{},\"data\":[", meta.json_fields())?;
            let mut first = true;
            for m in sheet {
                let i = &m.info;
                for t in &m.tiers {
                    o.extend_from_slice(if first { b"\n{" } else { b",\n{" });
                    first = false;
                    let period = match &meta.scope {
                        super::ReportScope::Period(p) => p.clone(),
                        super::ReportScope::Range { from, .. } => from.clone(),
                    };
                    write!(o, "\"billingPeriodId\":{period},\"meterId\":")?;
                    json_str(&mut o, &i.meter_id);
                    for (k, v) in [
                        ("meterName", &i.meter_name),
                        ("meterCategory", &i.meter_category),
                        ("meterSubCategory", &i.meter_sub_category),
                        ("meterRegion", &i.meter_region),
                        ("unitOfMeasure", &i.unit_of_measure),
                        ("partNumber", &i.part_number),
                    ] {
                        write!(o, ",\"{k}\":")?;
                        json_str(&mut o, v);
                    }
                    write!(
                        o,
                        ",\"unitPrice\":{},\"includedQuantity\":{},\"tierMinimumUnits\":{},\"currencyCode\":\"{}\"}}",
                        t.price, m.included, t.min, meta.currency
                    )?;
                }
            }
            writeln!(o, "\n]}}")?;
        }
    }
    out.write_all(&o)
}
