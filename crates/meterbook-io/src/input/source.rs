//! The byte source under every CSV reader: counts lines, and bounds how much
//! of one record the csv crate can see (it buffers a whole record, so a file
//! of commas with no newline would otherwise be held in memory whole).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};

/// The longest record accepted, in bytes, header included, like an NDJSON
/// line. Above the per-field limits with every quote doubled. Fuzzing builds
/// use a small bound, so that short inputs reach it.
pub const MAX_RECORD: usize = if cfg!(fuzzing) { 1024 } else { 256 * 1024 };

/// The error a [`CsvSource`] returns once a record passes [`MAX_RECORD`]; the
/// reader turns it into `file:line: record longer than … bytes`.
#[derive(Debug, thiserror::Error)]
#[error("record longer than {MAX_RECORD} bytes")]
pub struct RecordTooLong;

/// Counts lines itself, because the csv crate's line numbers are one short in
/// files with CRLF endings (rust-csv#395) and its record positions include
/// the empty lines before a record: remembers where the line breaks and the
/// first bytes of the lines read ahead lie, and answers "which line is byte N
/// on" for positions at or after the last one asked about (records come in
/// order). A line ends at `\n`, `\r\n` or a lone `\r`, as the csv crate ends
/// records, so every record starts on a line of its own.
///
/// Hands the csv crate at most [`MAX_RECORD`] bytes past the start of the
/// record being read (the caller marks each record's end with
/// [`CsvSource::record_done`]); asked for more, it answers [`RecordTooLong`]
/// unless the input ends there. Empty lines belong to no record (the csv
/// crate skips them), so a record starts at the first byte after the previous
/// one that is not a line ending.
pub(crate) struct CsvSource<R> {
    inner: R,
    /// Bytes handed out so far.
    offset: u64,
    /// The last byte handed out was a line ending (or none was handed out).
    after_eol: bool,
    /// The last byte handed out was `\r` (a `\n` next ends no further line).
    after_cr: bool,
    /// Offsets of the bytes handed out that begin a line's content (a byte
    /// other than `\r`/`\n` after one of them): where a record can start.
    starts: VecDeque<u64>,
    too_long: bool,
    lines: RefCell<LineState>,
}

#[derive(Default)]
struct LineState {
    /// Offsets of the first byte of each line break.
    breaks: VecDeque<u64>,
    passed: u64,
}

fn is_eol(c: u8) -> bool {
    c == b'\n' || c == b'\r'
}

impl<R: Read> CsvSource<R> {
    pub fn new(inner: R) -> CsvSource<R> {
        CsvSource {
            inner,
            offset: 0,
            after_eol: true,
            after_cr: false,
            starts: VecDeque::new(),
            too_long: false,
            lines: RefCell::default(),
        }
    }

    /// The 1-based line of byte offset `byte`.
    fn line_at(&self, byte: u64) -> u64 {
        let mut st = self.lines.borrow_mut();
        while st.breaks.front().is_some_and(|&nl| nl < byte) {
            st.breaks.pop_front();
            st.passed += 1;
        }
        st.passed + 1
    }

    /// Where the record being read (or just read) starts, once one of its
    /// bytes has been handed out.
    fn record_start(&self) -> Option<u64> {
        self.starts.front().copied()
    }

    /// The line the record being read (or just read) starts on.
    pub fn record_line(&self) -> u64 {
        self.line_at(self.record_start().unwrap_or(self.offset))
    }

    /// The csv reader finished a record: the next one starts at or after `end`.
    pub fn record_done(&mut self, end: u64) {
        while self.starts.front().is_some_and(|&s| s < end) {
            self.starts.pop_front();
        }
    }

    /// Whether `e` is this source refusing an over-long record.
    pub fn is_too_long(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|e| e.is::<RecordTooLong>())
    }

    fn too_long(&mut self) -> io::Error {
        self.too_long = true;
        io::Error::new(io::ErrorKind::InvalidData, RecordTooLong)
    }
}

impl<R: Read> Read for CsvSource<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.too_long {
            return Err(self.too_long());
        }
        // Until the record's first byte is seen, only line endings were read.
        let start = self.record_start().unwrap_or(self.offset);
        let allowed = (start + MAX_RECORD as u64).saturating_sub(self.offset);
        if allowed == 0 {
            // The record has used its whole allowance: fine only if the input ends here.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(self.too_long()),
            };
        }
        let take = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..take])?;
        let got = &buf[..n];
        if n == 0 {
            return Ok(0);
        }
        if self.after_eol && !is_eol(got[0]) {
            self.starts.push_back(self.offset);
        }
        let st = self.lines.get_mut();
        for i in memchr::memchr2_iter(b'\n', b'\r', got) {
            let after_cr = if i == 0 {
                self.after_cr
            } else {
                got[i - 1] == b'\r'
            };
            if got[i] == b'\r' || !after_cr {
                st.breaks.push_back(self.offset + i as u64);
            }
            if got.get(i + 1).is_some_and(|&c| !is_eol(c)) {
                self.starts.push_back(self.offset + i as u64 + 1);
            }
        }
        self.after_eol = is_eol(got[n - 1]);
        self.after_cr = got[n - 1] == b'\r';
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(src: &mut CsvSource<&[u8]>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            match src.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn hands_out_one_record_and_no_more() {
        let exact = vec![b'a'; MAX_RECORD];
        assert_eq!(
            read_all(&mut CsvSource::new(&exact[..])).unwrap().len(),
            MAX_RECORD
        );
        let over = vec![b'a'; MAX_RECORD + 1];
        let e = read_all(&mut CsvSource::new(&over[..])).unwrap_err();
        assert!(CsvSource::<&[u8]>::is_too_long(&e));
    }

    #[test]
    fn lines_end_at_lf_crlf_or_a_lone_cr() {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .buffer_capacity(1)
            .from_reader(CsvSource::new(&b"a\rb\r\nc\nd\r\re"[..]));
        let mut rec = csv::ByteRecord::new();
        let mut lines = Vec::new();
        while rdr.read_byte_record(&mut rec).unwrap() {
            lines.push((rec[0].to_vec(), rdr.get_ref().record_line()));
            let end = rdr.position().byte();
            rdr.get_mut().record_done(end);
        }
        let want: [(&[u8], u64); 5] = [(b"a", 1), (b"b", 2), (b"c", 3), (b"d", 4), (b"e", 6)];
        assert_eq!(lines, want.map(|(f, l)| (f.to_vec(), l)));
    }

    #[test]
    fn blank_lines_do_not_count() {
        let mut input = vec![b'\n'; MAX_RECORD];
        input.extend_from_slice(b"\r\nab\n");
        let mut src = CsvSource::new(&input[..]);
        assert_eq!(read_all(&mut src).unwrap().len(), input.len());
        assert_eq!(src.record_line(), MAX_RECORD as u64 + 2);
    }
}
