//! Usage records: the raw input, its validation and how it is rated and booked
//! (design §2 and §3.4). Pure: the [`Catalog`] is a snapshot the store loads.

use crate::calendar::{Day, Period};
use crate::fixed::{Price, Quantity};
use crate::hierarchy::normalize_guid;
use crate::limits::{RangeError, MAX_CHARGES, MAX_QUANTITY};
use crate::prices::MeterPrice;
use crate::quote::{clip, quote};
use std::collections::HashMap;
use std::sync::Arc;

/// One usage record as read from a file, before validation. Borrowed so a
/// reader can hand out records without allocating per field.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawUsage<'a> {
    /// 1-based line of the record in its file.
    pub line: u64,
    pub record_id: &'a str,
    pub subscription_guid: &'a str,
    pub date: &'a str,
    pub meter_id: &'a str,
    pub consumed_quantity: &'a str,
    pub instance_id: &'a str,
    pub resource_group: &'a str,
    pub resource_location: &'a str,
    pub consumed_service: &'a str,
    pub tags: &'a str,
    pub additional_info: &'a str,
    pub service_info1: &'a str,
    pub service_info2: &'a str,
}

/// A usage record copied out of a reader's buffer: all fields in one string,
/// so a batch costs one allocation per record, reused across batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnedUsage {
    line: u64,
    buf: String,
    ends: [u32; 13],
}

impl OwnedUsage {
    pub fn from_raw(r: &RawUsage<'_>) -> OwnedUsage {
        let mut o = OwnedUsage::default();
        o.set(r);
        o
    }

    /// Overwrites this record with `r`, keeping the allocation.
    pub fn set(&mut self, r: &RawUsage<'_>) {
        self.line = r.line;
        self.buf.clear();
        for (i, f) in r.fields().iter().enumerate() {
            self.buf.push_str(f);
            self.ends[i] = self.buf.len() as u32;
        }
    }

    /// Bytes of field text held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes allocated for field text.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub fn as_raw(&self) -> RawUsage<'_> {
        let f: [&str; 13] = std::array::from_fn(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
            &self.buf[start..self.ends[i] as usize]
        });
        RawUsage::from_fields(self.line, f)
    }
}

impl<'a> RawUsage<'a> {
    /// The fields in [`USAGE_COLUMNS`] order.
    pub fn fields(&self) -> [&'a str; 13] {
        [
            self.record_id,
            self.subscription_guid,
            self.date,
            self.meter_id,
            self.consumed_quantity,
            self.instance_id,
            self.resource_group,
            self.resource_location,
            self.consumed_service,
            self.tags,
            self.additional_info,
            self.service_info1,
            self.service_info2,
        ]
    }

    /// Builds a record from fields in [`USAGE_COLUMNS`] order.
    pub fn from_fields(line: u64, f: [&'a str; 13]) -> RawUsage<'a> {
        RawUsage {
            line,
            record_id: f[0],
            subscription_guid: f[1],
            date: f[2],
            meter_id: f[3],
            consumed_quantity: f[4],
            instance_id: f[5],
            resource_group: f[6],
            resource_location: f[7],
            consumed_service: f[8],
            tags: f[9],
            additional_info: f[10],
            service_info1: f[11],
            service_info2: f[12],
        }
    }

    /// The descriptive fields (everything but the five required ones), as
    /// stored: the JSON columns without surrounding whitespace (a blank one is empty).
    pub fn dimensions(&self) -> [&'a str; 8] {
        [
            self.instance_id,
            self.resource_group,
            self.resource_location,
            self.consumed_service,
            self.tags.trim(),
            self.additional_info.trim(),
            self.service_info1,
            self.service_info2,
        ]
    }
}

/// The usage input columns, in the order of design §2.
pub const USAGE_COLUMNS: [&str; 13] = [
    "RecordId",
    "SubscriptionGuid",
    "Date",
    "MeterId",
    "ConsumedQuantity",
    "InstanceId",
    "ResourceGroup",
    "ResourceLocation",
    "ConsumedService",
    "Tags",
    "AdditionalInfo",
    "ServiceInfo1",
    "ServiceInfo2",
];
/// Columns a record must have.
pub const REQUIRED_USAGE_COLUMNS: [&str; 5] = [
    "RecordId",
    "SubscriptionGuid",
    "Date",
    "MeterId",
    "ConsumedQuantity",
];

/// Why one input record was refused: the line, the column (by name) and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub line: u64,
    pub column: Option<&'static str>,
    pub reason: String,
    /// What could be read of a record the reader could not parse (for the reject file).
    pub raw: Option<Box<OwnedUsage>>,
    /// The input cannot be read past this point (a read error, a record over
    /// the size bound): the whole file is refused, even when skipping invalid
    /// records, since what follows cannot be trusted to start a record.
    pub fatal: bool,
}

impl Reject {
    pub fn new(line: u64, column: Option<&'static str>, reason: impl Into<String>) -> Reject {
        Reject {
            line,
            column,
            reason: reason.into(),
            raw: None,
            fatal: false,
        }
    }

    /// A reject after which the input cannot be read (see [`Reject::fatal`]).
    pub fn fatal(line: u64, column: Option<&'static str>, reason: impl Into<String>) -> Reject {
        Reject {
            fatal: true,
            ..Reject::new(line, column, reason)
        }
    }
}

/// Longest accepted value of each free-text column, in bytes.
pub fn max_len(column: &str) -> usize {
    match column {
        "RecordId" => 128,
        "SubscriptionGuid" | "MeterId" => 128,
        "Date" | "ConsumedQuantity" => 64,
        "Tags" | "AdditionalInfo" => 32 * 1024,
        "InstanceId" => 4096,
        _ => 1024,
    }
}

/// What the catalog says about a valid record: keys, day, quantity, and where
/// and at which rate it is booked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    pub subscription: i64,
    pub day: Day,
    pub meter: i64,
    pub quantity: Quantity,
    /// The period whose statement carries the row.
    pub booked: Period,
    /// The period whose price sheet (and rate) prices the row: the day's period.
    pub rate_period: Period,
    /// Set for corrections (rows dated in a closed period): the locked rate.
    pub correction_rate: Option<Price>,
}

impl Classified {
    pub fn is_correction(&self) -> bool {
        self.correction_rate.is_some()
    }
}

/// A map with a fast hasher, for lookups done once per ingested row.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The priced meters of one period, by MeterId.
pub type SheetIndex = FastMap<String, (i64, Arc<MeterPrice>)>;

/// Everything needed to validate and book usage of one enrollment.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub term_start: Option<Day>,
    pub term_end: Option<Day>,
    /// Normalised GUID -> subscription key.
    pub subscriptions: FastMap<String, i64>,
    pub sheets: FastMap<Period, SheetIndex>,
    /// The latest closed period; periods close in order.
    pub last_closed: Option<Period>,
    /// Rates locked when their period closed: (period, meter key) -> rate.
    pub locked_rates: FastMap<(Period, i64), Price>,
}

impl Catalog {
    /// The period that new usage of closed periods is booked in.
    pub fn oldest_open(&self) -> Option<Period> {
        let start = self.term_start?.period();
        let end = self.term_end?.period();
        let p = self.last_closed.map_or(start, |c| c.next().max(start));
        (p <= end).then_some(p)
    }

    pub fn is_closed(&self, p: Period) -> bool {
        self.last_closed.is_some_and(|c| p <= c)
    }

    /// Validates a record's fields and decides how it is booked.
    pub fn classify(&self, r: &RawUsage<'_>) -> Result<Classified, Reject> {
        let line = r.line;
        for (i, (name, v)) in USAGE_COLUMNS.iter().zip(r.fields()).enumerate() {
            if i < REQUIRED_USAGE_COLUMNS.len() && v.trim().is_empty() {
                return Err(Reject::new(line, Some(name), "required value is empty"));
            }
            let max = max_len(name);
            if v.len() > max {
                return Err(Reject::new(
                    line,
                    Some(name),
                    format!("value is {} bytes, more than the {max} allowed", v.len()),
                ));
            }
        }
        let day: Day = r
            .date
            .parse()
            .map_err(|e: crate::calendar::DateError| Reject::new(line, Some("Date"), e.0))?;
        let (start, end) = match (self.term_start, self.term_end) {
            (Some(s), Some(e)) => (s, e),
            _ => return Err(Reject::new(line, None, "enrollment has no term")),
        };
        if day < start || day > end {
            return Err(Reject::new(
                line,
                Some("Date"),
                format!("{day} is outside the enrollment's term {start} to {end}"),
            ));
        }
        let quantity = Quantity::parse_usage(r.consumed_quantity).map_err(|e| {
            Reject::new(
                line,
                Some("ConsumedQuantity"),
                format!("`{}`: {e}", quote(r.consumed_quantity)),
            )
        })?;
        if quantity > MAX_QUANTITY {
            return Err(Reject::new(
                line,
                Some("ConsumedQuantity"),
                format!("meter {}: {}", r.meter_id, RangeError::RowQuantity),
            ));
        }
        let subscription = match self.subscriptions.get(r.subscription_guid) {
            Some(k) => *k,
            None => *self
                .subscriptions
                .get(&normalize_guid(r.subscription_guid))
                .ok_or_else(|| {
                    Reject::new(
                        line,
                        Some("SubscriptionGuid"),
                        format!("unknown subscription {}", quote(r.subscription_guid)),
                    )
                })?,
        };
        let rate_period = day.period();
        let (meter, price) = self
            .sheets
            .get(&rate_period)
            .and_then(|s| s.get(r.meter_id))
            .ok_or_else(|| {
                Reject::new(
                    line,
                    Some("MeterId"),
                    format!(
                        "meter {} has no price in period {rate_period}",
                        quote(r.meter_id)
                    ),
                )
            })?;
        check_tags(r.tags).map_err(|e| Reject::new(line, Some("Tags"), e))?;
        check_object(r.additional_info)
            .map_err(|e| Reject::new(line, Some("AdditionalInfo"), e))?;
        let (booked, correction_rate) = if self.is_closed(rate_period) {
            let booked = self.oldest_open().ok_or_else(|| {
                Reject::new(
                    line,
                    Some("Date"),
                    format!("{day} is in closed period {rate_period} and no period of the term is open to book the correction in"),
                )
            })?;
            let rate = match self.locked_rates.get(&(rate_period, *meter)) {
                Some(rate) => *rate,
                None => price.resource_rate(quantity).map_err(|_| {
                    Reject::new(
                        line,
                        Some("ConsumedQuantity"),
                        format!("meter {}: {}", r.meter_id, RangeError::Charges),
                    )
                })?,
            };
            // Its cost is fixed now; one out of range would overflow the rollup's sum.
            if quantity.checked_mul(rate).map_or(true, |c| c > MAX_CHARGES) {
                return Err(Reject::new(
                    line,
                    Some("ConsumedQuantity"),
                    format!("meter {}: {}", r.meter_id, RangeError::Charges),
                ));
            }
            (booked, Some(rate))
        } else {
            (rate_period, None)
        };
        Ok(Classified {
            subscription,
            day,
            meter: *meter,
            quantity,
            booked,
            rate_period,
            correction_rate,
        })
    }
}

/// Tags: empty, or a JSON object whose values are all strings.
pub fn check_tags(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Ok(());
    }
    serde_json::from_str::<StringValues>(s)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "must be a JSON object of string values ({})",
                clip(&e.to_string())
            )
        })
}

/// A JSON object whose values are all strings, checked without keeping it
/// (once per ingested row: no map, no copies of keys or values).
struct StringValues;

impl<'de> serde::Deserialize<'de> for StringValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(StringValues)
    }
}

impl<'de> serde::de::Visitor<'de> for StringValues {
    type Value = StringValues;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, AString>()?
            .is_some()
        {}
        Ok(StringValues)
    }
}

/// A JSON string, not kept.
struct AString;

impl<'de> serde::Deserialize<'de> for AString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(AString)
    }
}

impl serde::de::Visitor<'_> for AString {
    type Value = AString;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self, E> {
        Ok(AString)
    }
}

/// AdditionalInfo: empty, or any JSON object.
pub fn check_object(s: &str) -> Result<(), String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(());
    }
    if !t.starts_with('{') {
        return Err("must be a JSON object".into());
    }
    serde_json::from_str::<serde::de::IgnoredAny>(t)
        .map(|_| ())
        .map_err(|e| format!("must be a JSON object ({})", clip(&e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert!(check_tags("").is_ok());
        assert!(check_tags(r#"{"env":"prod"}"#).is_ok());
        assert!(check_tags(r#"{"env":1}"#).is_err());
        assert!(check_tags(r#"["a"]"#).is_err());
        assert!(check_tags(r#"{"a":"b""#).is_err());
        assert!(check_tags(r#"{"a":"b","c":"d\u00e9\"","a":"dup"}"#).is_ok());
        assert!(check_tags(r#"{"a":"b","c":null}"#).is_err());
        assert!(check_tags(r#"{"a":{"b":"c"}}"#).is_err());
        assert!(check_tags(r#"{"a":"b"} x"#).is_err());
        assert!(check_tags(r#""a""#).is_err());
        assert!(check_object(r#"{"VCPUs":4,"x":[1]}"#).is_ok());
        assert!(check_object("[1]").is_err());
        assert!(check_object("{").is_err());
    }
}
