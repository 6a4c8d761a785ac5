//! Readers of the input formats of design §2.

pub mod hierarchy;
pub mod prices;
pub mod usage;

use crate::InputError;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::Read;

/// Counts lines itself, because the csv crate's line numbers are one short in
/// files with CRLF endings (rust-csv#395). Remembers where the newlines of the
/// bytes read ahead lie, and answers "which line is byte N on" for positions
/// at or after the last one asked about (records come in order).
pub(crate) struct LineCounted<R> {
    inner: R,
    offset: u64,
    state: RefCell<LineState>,
}

#[derive(Default)]
struct LineState {
    newlines: VecDeque<u64>,
    passed: u64,
}

impl<R: Read> LineCounted<R> {
    pub fn new(inner: R) -> LineCounted<R> {
        LineCounted {
            inner,
            offset: 0,
            state: RefCell::default(),
        }
    }

    /// The 1-based line of byte offset `byte`.
    pub fn line_at(&self, byte: u64) -> u64 {
        let mut st = self.state.borrow_mut();
        // `<=`: with CRLF endings the csv crate starts a record at the '\n' of
        // the previous line's terminator; no record otherwise starts with one.
        while st.newlines.front().is_some_and(|&nl| nl <= byte) {
            st.newlines.pop_front();
            st.passed += 1;
        }
        st.passed + 1
    }
}

impl<R: Read> Read for LineCounted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let st = self.state.get_mut();
        for i in memchr::memchr_iter(b'\n', &buf[..n]) {
            st.newlines.push_back(self.offset + i as u64);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

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
            let err = |reason: String| InputError {
                file: file.to_string(),
                line: 1,
                column: Some((i + 1, name.to_string())),
                reason,
            };
            // A UTF-8 byte-order mark on the first column is common in exports from spreadsheets.
            let name = name.trim_start_matches('\u{feff}');
            if !known.contains(&name) {
                return Err(err(format!(
                    "unknown column `{name}` (expected some of: {})",
                    known.join(", ")
                )));
            }
            if index.insert(name.to_string(), i).is_some() {
                return Err(err(format!("column `{name}` appears twice")));
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
pub(crate) fn read_rows<T>(
    file: &str,
    input: impl Read,
    known: &[&str],
    required: &[&str],
    mut row: impl FnMut(&Header, &csv::StringRecord, u64) -> Result<T, InputError>,
) -> Result<Vec<T>, InputError> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(LineCounted::new(input));
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(csv_error(file, &e, rdr.get_ref())),
    };
    let header = Header::parse(file, &headers, known, required)?;
    let mut out = Vec::new();
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => return Ok(out),
            Ok(true) => {}
            Err(e) => return Err(csv_error(file, &e, rdr.get_ref())),
        }
        let line = rec
            .position()
            .map_or(0, |p| rdr.get_ref().line_at(p.byte()));
        out.push(row(&header, &rec, line)?);
    }
}

/// Turns a csv crate error into an [`InputError`] naming the line.
pub(crate) fn csv_error<R: Read>(file: &str, e: &csv::Error, lines: &LineCounted<R>) -> InputError {
    let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
    let reason = match e.kind() {
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
