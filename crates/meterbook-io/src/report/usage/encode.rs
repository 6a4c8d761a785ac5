//! Encoding rows: CSV and JSON text, and typed cells for Parquet.

use crate::report::table::{Cell, ColType, Column};
use crate::report::{json_str, ReportFormat, ReportMeta};

use super::columns::*;
use super::report::*;

/// A value of one cell, typed so that JSON gets numbers and objects, CSV text.
enum Val<'a> {
    Text(&'a str),
    Num(&'a str),
    Bool(bool),
    /// Raw JSON object text, or empty for none.
    Json(&'a str),
    /// Text with its CSV encoding made beforehand (a meter's fields).
    Pre(&'a str, &'a [u8]),
}

pub(super) struct Encoder {
    format: ReportFormat,
    cols: Vec<Col>,
    json_keys: Vec<String>,
    first: bool,
    /// The legacy layout: JSON is a bare array of rows keyed by column name.
    legacy: bool,
    num: [String; 4],
}

impl Encoder {
    pub(super) fn new(format: ReportFormat, cols: &[Col], verbatim_keys: bool) -> Encoder {
        Encoder {
            format,
            cols: cols.to_vec(),
            json_keys: cols
                .iter()
                .map(|c| {
                    if verbatim_keys {
                        format!("\"{}\":", c.name())
                    } else {
                        format!("\"{}\":", c.json_name())
                    }
                })
                .collect(),
            first: true,
            legacy: verbatim_keys,
            num: Default::default(),
        }
    }

    pub(super) fn start(&mut self, meta: &ReportMeta, out: &mut Vec<u8>) {
        match self.format {
            ReportFormat::Csv => {
                let names: Vec<&str> = self.cols.iter().map(|c| c.name()).collect();
                out.extend_from_slice(names.join(",").as_bytes());
                out.push(b'\n');
            }
            ReportFormat::Json if self.legacy => out.push(b'['),
            ReportFormat::Json => {
                out.extend_from_slice(format!("{{{},\"data\":[", meta.json_fields()).as_bytes())
            }
        }
    }

    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.format == ReportFormat::Json {
            out.extend_from_slice(match (self.legacy, self.first) {
                (true, true) => b"]\n",
                (true, false) => b"\n]\n",
                (false, true) => b"]}\n",
                (false, false) => b"\n]}\n",
            });
        }
    }

    pub(super) fn row(&mut self, r: &DetailRow<'_>, line: &mut Vec<u8>) {
        let f = r.fact;
        let info = &r.meter.price.info;
        let [qty, rate, cost, date] = &mut self.num;
        for s in [&mut *qty, &mut *rate, &mut *cost, &mut *date] {
            s.clear();
        }
        f.quantity.write_to(qty);
        r.rate.write_to(rate);
        r.cost.write_to(cost);
        f.day.write_iso(date);
        let mut ids = itoa_buf();
        let account_id = r.account.map(|a| write_int(&mut ids.0, a.id));
        let dept_id = r.dept.map(|d| write_int(&mut ids.1, d.id));
        let sub_id = write_int(&mut ids.2, f.subscription);
        if self.format == ReportFormat::Json {
            line.extend_from_slice(if self.first { b"\n{" } else { b",\n{" });
        }
        self.first = false;
        let m = &r.meter.csv;
        for (i, col) in self.cols.iter().enumerate() {
            use Col::*;
            let v = match col {
                AccountId => Val::Num(account_id.unwrap_or("")),
                AccountName => Val::Text(r.account.map_or("", |a| &a.name)),
                AccountOwnerEmail => Val::Text(r.account.map_or("", |a| &a.owner_email)),
                AdditionalInfo => Val::Json(f.additional_info),
                ChargesBilledSeparately => Val::Bool(info.charges_billed_separately),
                ConsumedQuantity => Val::Num(qty),
                ConsumedService => Val::Text(f.consumed_service),
                Cost => Val::Num(cost),
                CostCenter => Val::Text(r.account.map_or("", |a| &a.cost_center)),
                Date => Val::Text(date),
                DepartmentId => Val::Num(dept_id.unwrap_or("")),
                DepartmentName => Val::Text(r.dept.map_or("", |d| &d.name)),
                InstanceId => Val::Text(f.instance_id),
                Location | ResourceLocation => Val::Text(f.resource_location),
                MeterCategory | ServiceName => Val::Pre(&info.meter_category, &m.category),
                MeterId | ResourceGuid => Val::Pre(&info.meter_id, &m.id),
                MeterName => Val::Pre(&info.meter_name, &m.name),
                MeterRegion => Val::Pre(&info.meter_region, &m.region),
                MeterSubCategory | ServiceTier => {
                    Val::Pre(&info.meter_sub_category, &m.sub_category)
                }
                OfferId => Val::Pre(&info.offer_name, &m.offer),
                PartNumber => Val::Pre(&info.part_number, &m.part),
                Product => Val::Pre(&r.meter.product, &m.product),
                ResourceGroup => Val::Text(f.resource_group),
                ResourceRate => Val::Num(rate),
                ServiceInfo1 => Val::Text(f.service_info1),
                ServiceInfo2 => Val::Text(f.service_info2),
                SubscriptionGuid => Val::Text(r.sub.map_or("", |s| &s.guid)),
                SubscriptionName => Val::Text(r.sub.map_or("", |s| &s.name)),
                Tags => Val::Json(f.tags),
                UnitOfMeasure => Val::Pre(&info.unit_of_measure, &m.unit),
                RecordId => Val::Text(f.record_id),
                IsCorrection => Val::Bool(f.correction_rate.is_some()),
                PublisherName => Val::Pre(&info.publisher_name, &m.publisher),
                OfferName => Val::Pre(&info.offer_name, &m.offer),
                PlanName => Val::Pre(&info.plan_name, &m.plan),
                AccountOwnerId => Val::Text(r.account.map_or("", |a| &a.owner_email)),
                ServiceAdministratorId | StoreServiceIdentifier => Val::Text(""),
                SubscriptionId => Val::Num(sub_id),
                Month => Val::Num(date[5..7].trim_start_matches('0')),
                Day => Val::Num(date[8..10].trim_start_matches('0')),
                Year => Val::Num(&date[0..4]),
                ExtendedCost => Val::Num(cost),
            };
            match self.format {
                ReportFormat::Csv => {
                    if i > 0 {
                        line.push(b',');
                    }
                    match v {
                        Val::Text(s) | Val::Json(s) => csv_field(line, s),
                        Val::Pre(_, csv) => line.extend_from_slice(csv),
                        Val::Num(s) => line.extend_from_slice(s.as_bytes()),
                        Val::Bool(b) => line.extend_from_slice(if b { b"true" } else { b"false" }),
                    }
                }
                ReportFormat::Json => {
                    if i > 0 {
                        line.push(b',');
                    }
                    line.extend_from_slice(self.json_keys[i].as_bytes());
                    match v {
                        Val::Text(s) | Val::Pre(s, _) => json_str(line, s),
                        Val::Num("") => line.extend_from_slice(b"null"),
                        Val::Num(s) => line.extend_from_slice(s.as_bytes()),
                        Val::Json("") => line.extend_from_slice(b"null"),
                        Val::Json(s) => line.extend_from_slice(s.as_bytes()),
                        Val::Bool(b) => line.extend_from_slice(if b { b"true" } else { b"false" }),
                    }
                }
            }
        }
        match self.format {
            ReportFormat::Csv => line.push(b'\n'),
            ReportFormat::Json => line.push(b'}'),
        }
    }
}

/// A meter's text fields as CSV, encoded once per report.
pub struct MeterCsv {
    category: Box<[u8]>,
    id: Box<[u8]>,
    name: Box<[u8]>,
    region: Box<[u8]>,
    sub_category: Box<[u8]>,
    offer: Box<[u8]>,
    part: Box<[u8]>,
    product: Box<[u8]>,
    unit: Box<[u8]>,
    publisher: Box<[u8]>,
    plan: Box<[u8]>,
}

impl MeterCsv {
    pub(super) fn new(info: &meterbook_core::prices::MeterInfo, product: &str) -> MeterCsv {
        let csv = |s: &str| {
            let mut out = Vec::with_capacity(s.len());
            csv_field(&mut out, s);
            out.into_boxed_slice()
        };
        MeterCsv {
            category: csv(&info.meter_category),
            id: csv(&info.meter_id),
            name: csv(&info.meter_name),
            region: csv(&info.meter_region),
            sub_category: csv(&info.meter_sub_category),
            offer: csv(&info.offer_name),
            part: csv(&info.part_number),
            product: csv(product),
            unit: csv(&info.unit_of_measure),
            publisher: csv(&info.publisher_name),
            plan: csv(&info.plan_name),
        }
    }
}

/// The usage-details columns typed (for Parquet): ids as integers, quantities,
/// rates and costs as exact decimals at their stored scale, dates as dates.
pub fn detail_schema() -> Vec<Column> {
    USAGE_DETAIL_COLUMNS
        .iter()
        .map(|&c| {
            use Col::*;
            let (ty, nullable) = match c {
                AccountId | DepartmentId => (ColType::Int, true),
                ConsumedQuantity => (ColType::Decimal { scale: 6 }, false),
                ResourceRate => (ColType::Decimal { scale: 12 }, false),
                Cost => (ColType::Decimal { scale: 18 }, false),
                Date => (ColType::Date, false),
                ChargesBilledSeparately | IsCorrection => (ColType::Bool, false),
                Tags | AdditionalInfo => (ColType::Text, true),
                _ => (ColType::Text, false),
            };
            Column::new(c.name(), ty, nullable)
        })
        .collect()
}

/// The cells of one row in [`detail_schema`]'s order.
pub fn detail_cells<'a>(r: &DetailRow<'a>, out: &mut Vec<Cell<'a>>) {
    let f = r.fact;
    let info = &r.meter.price.info;
    out.clear();
    let opt = |s: &'a str| {
        if s.is_empty() {
            Cell::Null
        } else {
            Cell::Text(s)
        }
    };
    for c in USAGE_DETAIL_COLUMNS {
        use Col::*;
        out.push(match c {
            AccountId => r.account.map_or(Cell::Null, |a| Cell::Int(a.id)),
            AccountName => Cell::Text(r.account.map_or("", |a| a.name.as_str())),
            AccountOwnerEmail => Cell::Text(r.account.map_or("", |a| a.owner_email.as_str())),
            AdditionalInfo => opt(f.additional_info),
            ChargesBilledSeparately => Cell::Bool(info.charges_billed_separately),
            ConsumedQuantity => Cell::Decimal(f.quantity.raw() as i128),
            ConsumedService => Cell::Text(f.consumed_service),
            Cost => Cell::Decimal(r.cost.raw()),
            CostCenter => Cell::Text(r.account.map_or("", |a| a.cost_center.as_str())),
            Date => Cell::Date(f.day),
            DepartmentId => r.dept.map_or(Cell::Null, |d| Cell::Int(d.id)),
            DepartmentName => Cell::Text(r.dept.map_or("", |d| d.name.as_str())),
            InstanceId => Cell::Text(f.instance_id),
            Location | ResourceLocation => Cell::Text(f.resource_location),
            MeterCategory | ServiceName => Cell::Text(info.meter_category.as_str()),
            MeterId | ResourceGuid => Cell::Text(info.meter_id.as_str()),
            MeterName => Cell::Text(info.meter_name.as_str()),
            MeterRegion => Cell::Text(info.meter_region.as_str()),
            MeterSubCategory | ServiceTier => Cell::Text(info.meter_sub_category.as_str()),
            OfferId | OfferName => Cell::Text(info.offer_name.as_str()),
            PartNumber => Cell::Text(info.part_number.as_str()),
            Product => Cell::Text(r.meter.product.as_str()),
            ResourceGroup => Cell::Text(f.resource_group),
            ResourceRate => Cell::Decimal(r.rate.raw()),
            ServiceInfo1 => Cell::Text(f.service_info1),
            ServiceInfo2 => Cell::Text(f.service_info2),
            SubscriptionGuid => Cell::Text(r.sub.map_or("", |s| s.guid.as_str())),
            SubscriptionName => Cell::Text(r.sub.map_or("", |s| s.name.as_str())),
            Tags => opt(f.tags),
            UnitOfMeasure => Cell::Text(info.unit_of_measure.as_str()),
            RecordId => Cell::Text(f.record_id),
            IsCorrection => Cell::Bool(f.correction_rate.is_some()),
            // Not in the usage-details layout.
            _ => Cell::Null,
        });
    }
}

fn itoa_buf() -> ([u8; 20], [u8; 20], [u8; 20]) {
    ([0; 20], [0; 20], [0; 20])
}

/// The decimal text of `v`, written into `buf` (no allocation).
fn write_int(buf: &mut [u8; 20], v: i64) -> &str {
    let len = meterbook_core::fixed::u64_digits(v.unsigned_abs(), buf).len();
    let mut at = buf.len() - len;
    if v < 0 {
        // i64::MIN has 19 digits: there is room for its sign.
        at -= 1;
        buf[at] = b'-';
    }
    std::str::from_utf8(&buf[at..]).expect("ASCII digits")
}

/// Bytes that make a CSV field quoted.
const QUOTED: [bool; 256] = {
    let mut t = [false; 256];
    t[b',' as usize] = true;
    t[b'"' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t
};

/// RFC 4180: quote a field that holds a comma, quote or line break; double inner quotes.
pub(crate) fn csv_field(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    // Short fields (most of a row) in one pass; long ones with memchr.
    let quoted = if b.len() <= 32 {
        b.iter().any(|c| QUOTED[*c as usize])
    } else {
        memchr::memchr3(b',', b'"', b'\n', b).is_some() || memchr::memchr(b'\r', b).is_some()
    };
    if quoted {
        out.push(b'"');
        // Runs between quotes are copied whole; each quote is doubled.
        let mut start = 0;
        for (i, c) in b.iter().enumerate() {
            if *c == b'"' {
                out.extend_from_slice(&b[start..=i]);
                out.push(b'"');
                start = i + 1;
            }
        }
        out.extend_from_slice(&b[start..]);
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_doubled_as_rfc_4180_says() {
        let cases = [
            ("", ""),
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            (r#"{"k":"v","x":"y"}"#, r#""{""k"":""v"",""x"":""y""}""#),
            ("\"", "\"\"\"\""),
            ("line\nbreak", "\"line\nbreak\""),
            ("cr\r", "\"cr\r\""),
            (
                &"long text without specials ".repeat(4),
                &"long text without specials ".repeat(4),
            ),
        ];
        for (text, want) in cases {
            let mut out = Vec::new();
            csv_field(&mut out, text);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{text:?}");
        }
        let long = format!("{}\"{}", "x".repeat(40), ",".repeat(3));
        let mut out = Vec::new();
        csv_field(&mut out, &long);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("\"{}\"\"{}\"", "x".repeat(40), ",".repeat(3))
        );
    }

    #[test]
    fn integers_are_written_without_allocating() {
        let mut buf = [0u8; 20];
        for v in [0i64, 7, -7, 1234567890, i64::MAX, i64::MIN] {
            assert_eq!(write_int(&mut buf, v), v.to_string());
        }
    }
}
