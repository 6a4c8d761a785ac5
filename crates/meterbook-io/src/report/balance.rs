//! Balance and charges: the statement of design §3.5.

use super::{json_str, ReportFormat, ReportMeta};
use meterbook_core::statement::{CommitmentEntry, Statement};
use std::io::Write;

const COLUMNS: [&str; 12] = [
    "BillingPeriodId",
    "CurrencyCode",
    "BeginningBalance",
    "NewPurchases",
    "Adjustments",
    "Utilized",
    "EndingBalance",
    "ServiceOverage",
    "ChargesBilledSeparately",
    "TotalOverage",
    "TotalUsage",
    "AzureMarketplaceServiceCharges",
];

fn figures(s: &Statement) -> [i64; 10] {
    [
        s.beginning_balance.0,
        s.new_purchases.0,
        s.adjustments.0,
        s.utilized.0,
        s.ending_balance.0,
        s.service_overage.0,
        s.charges_billed_separately.0,
        s.total_overage.0,
        s.total_usage.0,
        s.marketplace_charges.0,
    ]
}

/// Writes one row (CSV) or object (JSON) per statement.
pub fn write(
    meta: &ReportMeta,
    statements: &[Statement],
    exponent: u32,
    format: ReportFormat,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let money = |v: i64| meterbook_core::Money(v).format(exponent);
    match format {
        ReportFormat::Csv => {
            writeln!(out, "{}", COLUMNS.join(","))?;
            for s in statements {
                let mut line = format!("{},{}", s.period, meta.currency);
                for v in figures(s) {
                    line.push(',');
                    line.push_str(&money(v));
                }
                writeln!(out, "{line}")?;
            }
        }
        ReportFormat::Json => {
            write!(out, "{{{},\"data\":[", meta.json_fields())?;
            for (i, s) in statements.iter().enumerate() {
                let mut o = Vec::new();
                if i > 0 {
                    o.push(b',');
                }
                write!(
                    o,
                    "\n{{\"id\":\"{}/billingPeriods/{}/balancesummaries\",\"billingPeriodId\":{},\"currencyCode\":\"{}\"",
                    meta.enrollment, s.period, s.period, meta.currency
                )?;
                let names = [
                    "beginningBalance",
                    "newPurchases",
                    "adjustments",
                    "utilized",
                    "endingBalance",
                    "serviceOverage",
                    "chargesBilledSeparately",
                    "totalOverage",
                    "totalUsage",
                    "azureMarketplaceServiceCharges",
                ];
                for (name, v) in names.iter().zip(figures(s)) {
                    write!(o, ",\"{name}\":{}", money(v))?;
                }
                let details =
                    |o: &mut Vec<u8>, key: &str, es: &[CommitmentEntry]| -> std::io::Result<()> {
                        write!(o, ",\"{key}\":[")?;
                        for (j, e) in es.iter().enumerate() {
                            if j > 0 {
                                o.push(b',');
                            }
                            o.extend_from_slice(b"{\"name\":");
                            json_str(o, &e.description);
                            write!(
                                o,
                                ",\"value\":{},\"date\":\"{}\"}}",
                                money(e.amount.0),
                                e.date
                            )?;
                        }
                        o.push(b']');
                        Ok(())
                    };
                details(&mut o, "newPurchasesDetails", &s.purchase_details)?;
                details(&mut o, "adjustmentDetails", &s.adjustment_details)?;
                o.push(b'}');
                out.write_all(&o)?;
            }
            writeln!(out, "\n]}}")?;
        }
    }
    Ok(())
}
