//! Balance and charges: the statement of design §3.5.

use super::{json_str, ReportFormat, ReportMeta};
use meterbook_core::statement::Statement;
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
                if i > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(b"\n")?;
                out.write_all(
                    statement_json(&meta.enrollment, s, exponent, &meta.currency, None).as_bytes(),
                )?;
            }
            writeln!(out, "\n]}}")?;
        }
    }
    Ok(())
}

/// One statement as a Reporting API v3 `balancesummary` object. Numbers are
/// exact decimal text; `extra` (e.g. `"usageCompleteThrough":...`) is appended.
pub fn statement_json(
    enrollment: &str,
    s: &Statement,
    exponent: u32,
    currency: &str,
    extra: Option<&str>,
) -> String {
    let money = |v: i64| meterbook_core::Money(v).format(exponent);
    let mut o = format!(
        "{{\"id\":\"enrollments/{enrollment}/billingperiods/{}/balancesummaries\",\"billingPeriodId\":{},\"currencyCode\":\"{currency}\"",
        s.period, s.period
    );
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
        o.push_str(&format!(",\"{name}\":{}", money(v)));
    }
    for (key, es) in [
        ("newPurchasesDetails", &s.purchase_details),
        ("adjustmentDetails", &s.adjustment_details),
    ] {
        o.push_str(&format!(",\"{key}\":["));
        for (j, e) in es.iter().enumerate() {
            if j > 0 {
                o.push(',');
            }
            let mut name = Vec::new();
            json_str(&mut name, &e.description);
            o.push_str(&format!(
                "{{\"name\":{},\"value\":{},\"date\":\"{}\"}}",
                String::from_utf8(name).expect("utf8"),
                money(e.amount.0),
                e.date
            ));
        }
        o.push(']');
    }
    if let Some(x) = extra {
        o.push(',');
        o.push_str(x);
    }
    o.push('}');
    o
}
