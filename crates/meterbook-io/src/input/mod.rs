//! Readers of the input formats of design §2.

pub mod hierarchy;
pub mod prices;
pub mod usage;

mod source;

pub(crate) use source::CsvSource;
pub use source::MAX_RECORD;

use crate::InputError;
use meterbook_core::quote::quote;
use std::collections::HashMap;
use std::io::Read;

/// A hierarchy or price sheet is read whole before it is checked and stored:
/// at most this many bytes…
pub const MAX_SHEET_BYTES: u64 = if cfg!(fuzzing) {
    16 * 1024
} else {
    32 * 1024 * 1024
};
/// …and this many records (a record's strings cost far more than its bytes).
/// Fuzzing builds use small bounds, so that short inputs reach them.
pub const MAX_SHEET_ROWS: usize = if cfg!(fuzzing) { 64 } else { 100_000 };

/// Header of a CSV file: column name -> 0-based index, checked against the
/// known names (unknown columns are refused: a misspelt optional column would
/// otherwise be silently dropped).
pub(crate) struct Header {
    pub index: HashMap<String, usize>,
}

impl Header {
    pub fn parse(
        file: &str,
        record: &csv::StringRecord,
        known: &[&str],
        required: &[&str],
    ) -> Result<Header, InputError> {
        let mut index = HashMap::new();
        for (i, name) in record.iter().enumerate() {
            // The name is in the reason, quoted: it may be anything.
            let err = |reason: String| InputError {
                file: file.to_string(),
                line: 1,
                column: Some((i + 1, String::new())),
                reason,
            };
            // A UTF-8 byte-order mark on the first column is common in exports from spreadsheets.
            let name = name.trim_start_matches('\u{feff}');
            if !known.contains(&name) {
                return Err(err(format!(
                    "unknown column `{}` (expected some of: {})",
                    quote(name),
                    known.join(", ")
                )));
            }
            if index.insert(name.to_string(), i).is_some() {
                return Err(err(format!("column `{}` appears twice", quote(name))));
            }
        }
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|c| !index.contains_key(*c))
            .collect();
        if !missing.is_empty() {
            // Name every missing column and the whole required set, so one
            // error is enough to fix the header.
            let what = match missing.as_slice() {
                [one] => format!("required column `{one}` is missing from the header"),
                many => format!(
                    "required columns `{}` are missing from the header",
                    many.join("`, `")
                ),
            };
            return Err(InputError {
                file: file.to_string(),
                line: 1,
                column: None,
                reason: format!("{what} (required: {})", required.join(", ")),
            });
        }
        Ok(Header { index })
    }

    pub fn get<'r>(&self, rec: &'r csv::StringRecord, name: &str) -> &'r str {
        self.index.get(name).and_then(|&i| rec.get(i)).unwrap_or("")
    }

    pub fn column(&self, name: &str) -> Option<(usize, String)> {
        self.index.get(name).map(|&i| (i + 1, name.to_string()))
    }
}

/// Reads a small CSV file whole: checks its header against `known` and
/// `required`, then maps each record, with its 1-based line, through `row`.
/// Refuses a file over [`MAX_SHEET_BYTES`] or [`MAX_SHEET_ROWS`].
pub(crate) fn read_rows<T>(
    file: &str,
    input: impl Read,
    known: &[&str],
    required: &[&str],
    mut row: impl FnMut(&Header, &csv::StringRecord, u64) -> Result<T, InputError>,
) -> Result<Vec<T>, InputError> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(CsvSource::new(input));
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(csv_error(file, &e, rdr.get_ref())),
    };
    let end = rdr.position().byte();
    rdr.get_mut().record_done(end);
    let header = Header::parse(file, &headers, known, required)?;
    let mut out = Vec::new();
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => return Ok(out),
            Ok(true) => {}
            Err(e) => return Err(csv_error(file, &e, rdr.get_ref())),
        }
        let line = rdr.get_ref().record_line();
        let end = rdr.position().byte();
        rdr.get_mut().record_done(end);
        if out.len() == MAX_SHEET_ROWS || end > MAX_SHEET_BYTES {
            return Err(InputError {
                file: file.to_string(),
                line,
                column: None,
                reason: format!(
                    "file longer than {MAX_SHEET_ROWS} records or {MAX_SHEET_BYTES} bytes"
                ),
            });
        }
        out.push(row(&header, &rec, line)?);
    }
}

/// Turns a csv crate error into an [`InputError`] naming the line.
pub(crate) fn csv_error<R: Read>(file: &str, e: &csv::Error, source: &CsvSource<R>) -> InputError {
    // Every error is about the record being read.
    let line = source.record_line();
    let reason = match e.kind() {
        csv::ErrorKind::Io(io) if CsvSource::<R>::is_too_long(io) => {
            source::RecordTooLong.to_string()
        }
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("malformed CSV: expected {expected_len} fields, found {len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "invalid UTF-8 in field {} (the file must be UTF-8)",
            err.field() + 1
        ),
        csv::ErrorKind::Io(io) => format!("read error: {io}"),
        _ => format!("malformed CSV: {e}"),
    };
    let column = match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => Some((err.field() + 1, String::new())),
        _ => None,
    };
    InputError {
        file: file.to_string(),
        line,
        column: column.filter(|(_, n)| !n.is_empty()),
        reason,
    }
}
