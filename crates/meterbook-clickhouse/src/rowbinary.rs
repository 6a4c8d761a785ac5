//! ClickHouse's RowBinary format: fixed-width little-endian numbers and
//! strings as a LEB128 length followed by the bytes. Nothing is escaped, so
//! texts of any content round-trip, and a response can be parsed row by row as
//! it arrives.

use meterbook_core::store::StoreError;
use std::io::BufRead;

/// Appends values to an insert's body.
#[derive(Default)]
pub(crate) struct Encoder {
    pub(crate) buf: Vec<u8>,
}

impl Encoder {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn str(&mut self, s: &str) {
        let mut n = s.len() as u64;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.buf.push(b);
                break;
            }
            self.buf.push(b | 0x80);
        }
        self.buf.extend_from_slice(s.as_bytes());
    }
}

/// Longest string a response may hold (a fact's texts are far shorter):
/// anything longer means the stream is not what was asked for.
const MAX_STRING: u64 = 64 << 20;

/// Reads values from a response body, buffered.
pub(crate) struct Decoder<R> {
    r: R,
    host: String,
}

fn cut(host: &str, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("reading a response of ClickHouse at {host}: {e}"))
}

impl<R: BufRead> Decoder<R> {
    pub(crate) fn new(r: R, host: &str) -> Decoder<R> {
        Decoder {
            r,
            host: host.to_owned(),
        }
    }

    /// Whether the response has no more bytes (checked between rows).
    pub(crate) fn at_end(&mut self) -> Result<bool, StoreError> {
        let host = &self.host;
        Ok(self.r.fill_buf().map_err(|e| cut(host, e))?.is_empty())
    }

    fn exact<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|e| cut(&self.host, e))?;
        Ok(b)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.exact::<1>()?[0])
    }
    pub(crate) fn i32(&mut self) -> Result<i32, StoreError> {
        Ok(i32::from_le_bytes(self.exact()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.exact()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(self.exact()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.exact()?))
    }
    pub(crate) fn i128(&mut self) -> Result<i128, StoreError> {
        Ok(i128::from_le_bytes(self.exact()?))
    }

    /// Appends a string's bytes to `out`, returning its span there.
    pub(crate) fn bytes_into(&mut self, out: &mut Vec<u8>) -> Result<(usize, usize), StoreError> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(self.garbled("a string length is malformed"));
            }
        }
        if n > MAX_STRING {
            return Err(self.garbled("a string is longer than any stored text"));
        }
        let start = out.len();
        out.resize(start + n as usize, 0);
        self.r
            .read_exact(&mut out[start..])
            .map_err(|e| cut(&self.host, e))?;
        Ok((start, out.len()))
    }

    #[cfg(test)]
    pub(crate) fn string(&mut self) -> Result<String, StoreError> {
        let mut v = Vec::new();
        self.bytes_into(&mut v)?;
        String::from_utf8(v).map_err(|_| self.garbled("a text is not UTF-8"))
    }

    pub(crate) fn garbled(&self, what: &str) -> StoreError {
        StoreError::Backend(format!(
            "a response of ClickHouse at {} is not what was asked for ({what}); a query \
             that fails after its first rows ends the answer with the error's text",
            self.host
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_with_long_lengths() {
        let long = "é".repeat(100_000);
        let mut e = Encoder::default();
        e.str("");
        e.str("a\tb\n'\\");
        e.str(&long);
        e.i64(-5);
        let mut d = Decoder::new(&e.buf[..], "h");
        assert_eq!(d.string().unwrap(), "");
        assert_eq!(d.string().unwrap(), "a\tb\n'\\");
        assert_eq!(d.string().unwrap(), long);
        assert_eq!(d.i64().unwrap(), -5);
        assert!(d.at_end().unwrap());
        assert!(d.u8().is_err());
    }
}
