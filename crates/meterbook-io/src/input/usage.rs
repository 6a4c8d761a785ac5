//! Usage records as CSV or NDJSON, read one at a time (memory stays flat
//! whatever the file's size).

use super::{csv_error, CsvSource, Header, MAX_RECORD};
use crate::InputError;
use meterbook_core::ingest::UsageSource;
use meterbook_core::quote::{clip, quote};
use meterbook_core::usage::{OwnedUsage, RawUsage, Reject, REQUIRED_USAGE_COLUMNS, USAGE_COLUMNS};
use serde_json::value::RawValue;
use std::io::{BufRead, BufReader, Read};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Read buffers: large for throughput; small in fuzzing builds, where
/// allocating 512 KiB per input would dominate each run.
const READ_BUFFER: usize = if cfg!(fuzzing) { 4096 } else { 256 * 1024 };

/// Reads usage from CSV or NDJSON, detected from the first byte (after any
/// byte-order mark) unless given.
pub enum UsageReader<R: BufRead> {
    Csv(CsvUsage<R>),
    Ndjson(NdjsonUsage<R>),
}

impl<R: Read> UsageReader<BufReader<R>> {
    /// Opens `input`; a header error (CSV) is returned at once, with line 1.
    pub fn open(input: R, format: Option<Format>) -> Result<UsageReader<BufReader<R>>, Reject> {
        let mut buf = BufReader::with_capacity(READ_BUFFER, input);
        let format = match format {
            Some(f) => f,
            None => {
                let head = buf
                    .fill_buf()
                    .map_err(|e| Reject::new(1, None, format!("read error: {e}")))?;
                // Skip a UTF-8 byte-order mark, which both formats may start with.
                let head = head.strip_prefix(UTF8_BOM).unwrap_or(head);
                let first = head.iter().find(|c| !c.is_ascii_whitespace());
                if first == Some(&b'{') {
                    Format::Ndjson
                } else {
                    Format::Csv
                }
            }
        };
        Ok(match format {
            Format::Csv => UsageReader::Csv(CsvUsage::new(buf)?),
            Format::Ndjson => UsageReader::Ndjson(NdjsonUsage {
                input: buf,
                line: String::new(),
                line_no: 0,
                fields: Default::default(),
                failed: false,
            }),
        })
    }
}

impl<R: BufRead> UsageReader<R> {
    /// Where a column is, for messages: `column 5 (ConsumedQuantity)` in CSV,
    /// `field ConsumedQuantity` in NDJSON.
    pub fn locate(&self, column: &str) -> Option<(usize, String)> {
        match self {
            UsageReader::Csv(c) => c.header.column(column),
            UsageReader::Ndjson(_) => None,
        }
    }

    /// A reject as an [`InputError`] of `file`.
    pub fn describe(&self, file: &str, r: &Reject) -> InputError {
        let column = r.column.and_then(|c| match self {
            UsageReader::Csv(_) => self.locate(c),
            UsageReader::Ndjson(_) => None,
        });
        let reason = match (self, r.column) {
            (UsageReader::Ndjson(_), Some(c)) => format!("field {c}: {}", r.reason),
            _ => r.reason.clone(),
        };
        InputError {
            file: file.to_string(),
            line: r.line,
            column,
            reason,
        }
    }
}

impl<R: BufRead> UsageSource for UsageReader<R> {
    fn next_record(&mut self) -> Option<Result<RawUsage<'_>, Reject>> {
        match self {
            UsageReader::Csv(c) => c.next_record(),
            UsageReader::Ndjson(n) => n.next_record(),
        }
    }
}

pub struct CsvUsage<R: Read> {
    rdr: csv::Reader<CsvSource<R>>,
    width: usize,
    header: Header,
    cols: [Option<usize>; 13],
    rec: csv::ByteRecord,
    failed: bool,
}

impl<R: Read> CsvUsage<R> {
    fn new(input: R) -> Result<CsvUsage<R>, Reject> {
        // Flexible: a record with the wrong number of fields is checked here,
        // so what could be read of it still reaches the reject file.
        let mut rdr = csv::ReaderBuilder::new()
            .buffer_capacity(READ_BUFFER)
            .flexible(true)
            .from_reader(CsvSource::new(input));
        let headers = match rdr.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                return Err(Reject::fatal(
                    1,
                    None,
                    csv_error("", &e, rdr.get_ref()).reason,
                ))
            }
        };
        let end = rdr.position().byte();
        rdr.get_mut().record_done(end);
        let header =
            Header::parse("", &headers, &USAGE_COLUMNS, &REQUIRED_USAGE_COLUMNS).map_err(|e| {
                let reason = match &e.column {
                    Some((i, _)) => format!("column {i}: {}", e.reason),
                    None => e.reason,
                };
                Reject::new(1, None, reason)
            })?;
        let mut cols = [None; 13];
        for (i, name) in USAGE_COLUMNS.iter().enumerate() {
            cols[i] = header.index.get(*name).copied();
        }
        Ok(CsvUsage {
            rdr,
            width: headers.len(),
            header,
            cols,
            rec: csv::ByteRecord::new(),
            failed: false,
        })
    }

    fn next_record(&mut self) -> Option<Result<RawUsage<'_>, Reject>> {
        if self.failed {
            return None;
        }
        match self.rdr.read_byte_record(&mut self.rec) {
            Ok(false) => return None,
            Ok(true) => {}
            Err(e) => {
                let ie = csv_error("", &e, self.rdr.get_ref());
                // After an I/O error (an over-long record among them) the
                // stream is unusable; a malformed record is skipped.
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    self.failed = true;
                    return Some(Err(Reject::fatal(ie.line, None, ie.reason)));
                }
                let end = self.rdr.position().byte();
                self.rdr.get_mut().record_done(end);
                return Some(Err(Reject::new(ie.line, None, ie.reason)));
            }
        }
        let line = self.rdr.get_ref().record_line();
        let end = self.rdr.position().byte();
        self.rdr.get_mut().record_done(end);
        if self.rec.len() != self.width {
            let mut r = Reject::new(
                line,
                None,
                format!(
                    "malformed CSV: expected {} fields, found {}",
                    self.width,
                    self.rec.len()
                ),
            );
            r.raw = Some(Box::new(self.lossy(line)));
            return Some(Err(r));
        }
        let mut f: [&str; 13] = [""; 13];
        for (i, col) in self.cols.iter().enumerate() {
            if let Some(c) = col {
                let bytes = self.rec.get(*c).unwrap_or(b"");
                match std::str::from_utf8(bytes) {
                    Ok(s) => f[i] = s,
                    Err(_) => {
                        let mut r = Reject::new(
                            line,
                            Some(USAGE_COLUMNS[i]),
                            "invalid UTF-8 (the file must be UTF-8)",
                        );
                        r.raw = Some(Box::new(self.lossy(line)));
                        return Some(Err(r));
                    }
                }
            }
        }
        Some(Ok(RawUsage::from_fields(line, f)))
    }
}

impl<R: Read> CsvUsage<R> {
    /// The current record's fields, invalid UTF-8 replaced, for a reject file.
    fn lossy(&self, line: u64) -> OwnedUsage {
        let owned: Vec<String> = self
            .cols
            .iter()
            .map(|c| {
                c.and_then(|c| self.rec.get(c))
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let f: [&str; 13] = std::array::from_fn(|i| owned[i].as_str());
        OwnedUsage::from_raw(&RawUsage::from_fields(line, f))
    }
}

pub struct NdjsonUsage<R: BufRead> {
    input: R,
    line: String,
    line_no: u64,
    fields: [String; 13],
    failed: bool,
}

/// The longest NDJSON line accepted; a longer one is a reject, not an
/// allocation. The same bound as a CSV record.
const MAX_LINE: usize = MAX_RECORD;

impl<R: BufRead> NdjsonUsage<R> {
    fn next_record(&mut self) -> Option<Result<RawUsage<'_>, Reject>> {
        loop {
            if self.failed {
                return None;
            }
            self.line.clear();
            self.line_no += 1;
            let mut limited = (&mut self.input).take(MAX_LINE as u64 + 1);
            let mut bytes = Vec::new();
            match limited.read_until(b'\n', &mut bytes) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(self.read_failed(&e))),
            }
            if bytes.len() > MAX_LINE && !bytes.ends_with(b"\n") {
                // Skip the rest of the oversized line without keeping it:
                // NDJSON lines hold no raw newline, so the next line is a record.
                if let Err(e) = skip_line(&mut self.input) {
                    return Some(Err(self.read_failed(&e)));
                }
                return Some(Err(Reject::new(
                    self.line_no,
                    None,
                    format!("line longer than {MAX_LINE} bytes"),
                )));
            }
            if self.line_no == 1 && bytes.starts_with(UTF8_BOM) {
                bytes.drain(..UTF8_BOM.len());
            }
            match String::from_utf8(bytes) {
                Ok(s) => self.line = s,
                Err(_) => {
                    return Some(Err(Reject::new(
                        self.line_no,
                        None,
                        "invalid UTF-8 (the file must be UTF-8)",
                    )))
                }
            }
            if self.line.trim().is_empty() {
                continue;
            }
            return Some(self.parse_line());
        }
    }

    fn read_failed(&mut self, e: &std::io::Error) -> Reject {
        self.failed = true;
        Reject::fatal(self.line_no, None, format!("read error: {e}"))
    }

    fn parse_line(&mut self) -> Result<RawUsage<'_>, Reject> {
        let line_no = self.line_no;
        let map: std::collections::BTreeMap<&str, &RawValue> =
            serde_json::from_str(self.line.trim_end()).map_err(|e| {
                Reject::new(
                    line_no,
                    None,
                    format!(
                        "not a JSON object of usage fields: {}",
                        clip(&e.to_string())
                    ),
                )
            })?;
        for f in self.fields.iter_mut() {
            f.clear();
        }
        for (k, v) in map {
            let i = USAGE_COLUMNS.iter().position(|c| *c == k).ok_or_else(|| {
                Reject::new(line_no, None, format!("unknown field `{}`", quote(k)))
            })?;
            let col = USAGE_COLUMNS[i];
            let text = v.get();
            if text.starts_with('"') {
                let s: String = serde_json::from_str(text)
                    .map_err(|e| Reject::new(line_no, Some(col), clip(&e.to_string())))?;
                self.fields[i] = s;
            } else if text == "null" {
                // absent
            } else {
                // Numbers keep their exact text; objects (Tags, AdditionalInfo) their JSON.
                self.fields[i].push_str(text);
            }
        }
        let f: [&str; 13] = std::array::from_fn(|i| self.fields[i].as_str());
        Ok(RawUsage::from_fields(line_no, f))
    }
}

/// Reads past the next newline (or to the end), keeping nothing.
fn skip_line(input: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(());
        }
        match memchr::memchr(b'\n', buf) {
            Some(i) => {
                input.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_keeps_exact_numbers_and_objects() {
        let input = r#"{"RecordId":"a","SubscriptionGuid":"g","Date":"2026-11-01","MeterId":"m","ConsumedQuantity":0.1000001,"Tags":{"env":"prod"}}

{"RecordId":"b","Bogus":1}
"#;
        let mut r = UsageReader::open(input.as_bytes(), None).unwrap();
        let a = r.next_record().unwrap().unwrap();
        assert_eq!(a.consumed_quantity, "0.1000001");
        assert_eq!(a.tags, r#"{"env":"prod"}"#);
        let b = r.next_record().unwrap().unwrap_err();
        assert_eq!(b.line, 3);
        assert!(b.reason.contains("Bogus"));
        assert!(r.next_record().is_none());
    }

    #[test]
    fn csv_header_errors() {
        let e = UsageReader::open("RecordId,Date\n".as_bytes(), None)
            .err()
            .unwrap();
        assert!(e.reason.contains("SubscriptionGuid"), "{}", e.reason);
        let e = UsageReader::open(
            "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,tags\n".as_bytes(),
            None,
        )
        .err()
        .unwrap();
        assert!(e.reason.contains("unknown column `tags`"), "{}", e.reason);
    }

    #[test]
    fn csv_malformed_and_utf8() {
        let input = b"RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity\nr1,g,2026-11-01,m\nr2,g\xff,2026-11-01,m,1\nr3,g,2026-11-01,m,1\n";
        let mut r = UsageReader::open(&input[..], None).unwrap();
        let e = r.next_record().unwrap().unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.reason.contains("expected 5 fields, found 4"),
            "{}",
            e.reason
        );
        let e = r.next_record().unwrap().unwrap_err();
        assert_eq!((e.line, e.column), (3, Some("SubscriptionGuid")));
        let d = r.describe("u.csv", &e);
        assert_eq!(
            d.to_string(),
            "u.csv:3: column 2 (SubscriptionGuid): invalid UTF-8 (the file must be UTF-8)"
        );
        assert_eq!(r.next_record().unwrap().unwrap().record_id, "r3");
    }
}

#[cfg(test)]
mod crlf_tests {
    use super::*;

    #[test]
    fn crlf_line_numbers() {
        let input = "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity\r\nr1,g,2026-11-01,m,1\r\nr2,g,2026-11-01,m,-1\r\n";
        let mut r = UsageReader::open(input.as_bytes(), None).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().line, 2);
        assert_eq!(r.next_record().unwrap().unwrap().line, 3);
    }
}
