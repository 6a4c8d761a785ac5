//! One column's buffered values, their conversion to Parquet's physical
//! types, and the encoded chunk's statistics.

use crate::report::table::{Cell, ColType, Column};
use bytes::Bytes;
use parquet::basic::{Encoding, PageType};
use parquet::column::writer::{get_column_writer, ColumnCloseResult, ColumnWriter};
use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::file::properties::WriterPropertiesPtr;
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;
use std::io;

/// Days from 0001-01-01 (what [`meterbook_core::Day::raw`] counts) to 1970-01-01.
pub(super) const UNIX_EPOCH_DAY_CE: i32 = 719_163;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// DECIMAL(38, s) holds at most 38 digits.
pub(super) const MAX_DECIMAL_38: u128 = 10u128.pow(38) - 1;

/// Bytes of a DECIMAL(38, s) value: the smallest width that holds 38 digits.
pub(super) const DECIMAL_BYTES: usize = 16;

/// One column's values of the row group being buffered.
pub(super) struct ColumnBuf {
    pub(super) col: Column,
    pub(super) descr: ColumnDescPtr,
    /// Definition levels (1 = value, 0 = null); only for nullable columns.
    pub(super) defs: Vec<i16>,
    pub(super) values: Values,
    /// Dictionary-encode this column. Turned off for good once a row group's
    /// dictionary overflowed (near-unique columns such as record ids), since
    /// building a dictionary only to drop it is the costliest way to write them.
    pub(super) dictionary: bool,
}

/// Values in the form the column writer takes, nulls left out. Text is kept
/// in one contiguous buffer so that buffering a cell never allocates.
pub(super) enum Values {
    Text {
        bytes: Vec<u8>,
        ends: Vec<u32>,
    },
    /// Big-endian two's complement, [`DECIMAL_BYTES`] per value.
    Decimal(Vec<u8>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
    /// Days since 1970-01-01.
    Date(Vec<i32>),
    /// Microseconds since 1970-01-01T00:00:00Z.
    Timestamp(Vec<i64>),
}

impl Values {
    pub(super) fn new(ty: ColType) -> Values {
        match ty {
            ColType::Text => Values::Text {
                bytes: Vec::new(),
                ends: Vec::new(),
            },
            ColType::Decimal { .. } => Values::Decimal(Vec::new()),
            ColType::Int => Values::Int(Vec::new()),
            ColType::Bool => Values::Bool(Vec::new()),
            ColType::Date => Values::Date(Vec::new()),
            ColType::Timestamp => Values::Timestamp(Vec::new()),
        }
    }

    /// Removes the last value (undoing a partly buffered row).
    fn pop(&mut self) {
        match self {
            Values::Text { bytes, ends } => {
                ends.pop();
                bytes.truncate(ends.last().map_or(0, |&e| e as usize));
            }
            Values::Decimal(v) => v.truncate(v.len().saturating_sub(DECIMAL_BYTES)),
            Values::Int(v) | Values::Timestamp(v) => {
                v.pop();
            }
            Values::Bool(v) => {
                v.pop();
            }
            Values::Date(v) => {
                v.pop();
            }
        }
    }

    /// Rough cost of encoding the buffered values, to share columns out evenly.
    pub(super) fn cost(&self) -> usize {
        match self {
            Values::Text { bytes, ends } => bytes.len() + ends.len() * 48,
            Values::Decimal(v) => v.len() * 3,
            Values::Int(v) | Values::Timestamp(v) => v.len() * 4,
            Values::Bool(v) => v.len(),
            Values::Date(v) => v.len() * 4,
        }
    }
}

impl ColumnBuf {
    /// A column with the same settings and no values.
    pub(super) fn empty_like(&self) -> ColumnBuf {
        ColumnBuf {
            col: self.col,
            descr: self.descr.clone(),
            defs: Vec::new(),
            values: Values::new(self.col.ty),
            dictionary: self.dictionary,
        }
    }

    /// Buffers one cell; on error nothing was buffered for it. Returns the text
    /// bytes added.
    #[inline]
    pub(super) fn push(&mut self, cell: &Cell<'_>) -> io::Result<usize> {
        let mut text = 0;
        let name = self.col.name;
        match (*cell, &mut self.values) {
            (Cell::Null, _) => {
                if !self.col.nullable {
                    return Err(invalid(format!(
                        "column `{name}` is not nullable but got a null"
                    )));
                }
                self.defs.push(0);
                return Ok(0);
            }
            (Cell::Text(s), Values::Text { bytes, ends }) => {
                let end = u32::try_from(bytes.len() + s.len()).map_err(|_| {
                    invalid(format!("column `{name}`: text too large for one row group"))
                })?;
                bytes.extend_from_slice(s.as_bytes());
                ends.push(end);
                text = s.len();
            }
            (Cell::Decimal(v), Values::Decimal(be)) => {
                if v.unsigned_abs() > MAX_DECIMAL_38 {
                    return Err(invalid(format!(
                        "column `{name}`: {v} has more than 38 digits"
                    )));
                }
                be.extend_from_slice(&v.to_be_bytes());
            }
            (Cell::Int(v), Values::Int(out)) => out.push(v),
            (Cell::Bool(v), Values::Bool(out)) => out.push(v),
            (Cell::Date(d), Values::Date(out)) => out.push(epoch_day(d, name)?),
            (Cell::Timestamp(d), Values::Timestamp(out)) => {
                let micros = i64::from(epoch_day(d, name)?)
                    .checked_mul(MICROS_PER_DAY)
                    .ok_or_else(|| invalid(format!("column `{name}`: timestamp out of range")))?;
                out.push(micros);
            }
            (cell, _) => {
                return Err(invalid(format!(
                    "column `{name}` is {:?} but got a {} cell",
                    self.col.ty,
                    cell_kind(&cell)
                )))
            }
        }
        if self.col.nullable {
            self.defs.push(1);
        }
        Ok(text)
    }

    /// Removes the last buffered cell (see [`Self::push`]).
    pub(super) fn unpush(&mut self) {
        let had_value = if self.col.nullable {
            self.defs.pop() == Some(1)
        } else {
            true
        };
        if had_value {
            self.values.pop();
        }
    }

    /// Encodes the buffered values as one column chunk in memory and empties
    /// the buffers. Returns the chunk's bytes and what the row group needs to
    /// splice it in.
    pub(super) fn encode(
        &mut self,
        props: &[WriterPropertiesPtr; 2],
    ) -> io::Result<(Bytes, ColumnCloseResult)> {
        let dictionary = self.dictionary;
        let p = props[usize::from(!dictionary)].clone();
        let mut sink = TrackedWrite::new(Vec::new());
        let defs = self.col.nullable.then_some(&self.defs[..]);
        let mut w = get_column_writer(
            self.descr.clone(),
            p,
            Box::new(SerializedPageWriter::new(&mut sink)),
        );
        match (&mut w, &mut self.values) {
            (ColumnWriter::ByteArrayColumnWriter(w), Values::Text { bytes, ends }) => {
                // One shared buffer; each value is a slice of it (no copy).
                let all = ByteArray::from(std::mem::replace(bytes, next_buffer(bytes.len())));
                let mut start = 0usize;
                let vals: Vec<ByteArray> = ends
                    .iter()
                    .map(|&e| {
                        let e = e as usize;
                        let v = all.slice(start, e - start);
                        start = e;
                        v
                    })
                    .collect();
                w.write_batch(&vals, defs, None)?;
                ends.clear();
            }
            (ColumnWriter::FixedLenByteArrayColumnWriter(w), Values::Decimal(be)) => {
                let all = ByteArray::from(std::mem::replace(be, next_buffer(be.len())));
                let vals: Vec<FixedLenByteArray> = (0..all.len() / DECIMAL_BYTES)
                    .map(|i| FixedLenByteArray::from(all.slice(i * DECIMAL_BYTES, DECIMAL_BYTES)))
                    .collect();
                w.write_batch(&vals, defs, None)?;
            }
            (ColumnWriter::Int64ColumnWriter(w), Values::Int(v) | Values::Timestamp(v)) => {
                w.write_batch(v, defs, None)?;
                v.clear();
            }
            (ColumnWriter::Int32ColumnWriter(w), Values::Date(v)) => {
                w.write_batch(v, defs, None)?;
                v.clear();
            }
            (ColumnWriter::BoolColumnWriter(w), Values::Bool(v)) => {
                w.write_batch(v, defs, None)?;
                v.clear();
            }
            _ => {
                return Err(io::Error::other(format!(
                    "Parquet column `{}` has an unexpected physical type",
                    self.col.name
                )))
            }
        }
        let mut close = w.close()?;
        detach_statistics(&mut close)?;
        self.defs.clear();
        if dictionary && fell_back_to_plain(&close) {
            self.dictionary = false;
        }
        Ok((Bytes::from(sink.into_inner()?), close))
    }
}

/// The buffer for the next row group of a column whose last one held `len`
/// bytes: a little room to spare, rather than the doubled capacity of a grown
/// `Vec`, which would keep up to twice the text of a row group allocated.
fn next_buffer(len: usize) -> Vec<u8> {
    Vec::with_capacity(len + len / 4)
}

/// Gives byte-array min/max statistics buffers of their own. The writer keeps
/// them as slices of the values it was given, which here are whole row-group
/// buffers: left as they are, the file writer's footer metadata would hold
/// every row group's decimal buffers until the file is closed.
fn detach_statistics(close: &mut ColumnCloseResult) -> io::Result<()> {
    fn own<T: Clone>(
        s: &ValueStatistics<T>,
        copy: impl Fn(&T) -> T,
        deprecated: bool,
    ) -> ValueStatistics<T> {
        ValueStatistics::new(
            s.min_opt().map(&copy),
            s.max_opt().map(&copy),
            s.distinct_count(),
            s.null_count_opt(),
            deprecated,
        )
        .with_min_is_exact(s.min_is_exact())
        .with_max_is_exact(s.max_is_exact())
        .with_backwards_compatible_min_max(s.is_min_max_backwards_compatible())
        .with_nan_count(s.nan_count_opt())
    }
    let owned = match close.metadata.statistics() {
        Some(st @ Statistics::FixedLenByteArray(s)) => {
            let copy = |v: &FixedLenByteArray| FixedLenByteArray::from(v.data().to_vec());
            Statistics::FixedLenByteArray(own(s, copy, st.is_min_max_deprecated()))
        }
        Some(st @ Statistics::ByteArray(s)) => {
            let copy = |v: &ByteArray| ByteArray::from(v.data().to_vec());
            Statistics::ByteArray(own(s, copy, st.is_min_max_deprecated()))
        }
        _ => return Ok(()),
    };
    close.metadata = close
        .metadata
        .clone()
        .into_builder()
        .set_statistics(owned)
        .build()?;
    Ok(())
}

/// Whether a dictionary-encoded chunk overflowed its dictionary and went on
/// with plain pages.
fn fell_back_to_plain(close: &ColumnCloseResult) -> bool {
    close.metadata.page_encoding_stats().is_some_and(|stats| {
        stats
            .iter()
            .any(|s| s.page_type == PageType::DATA_PAGE && s.encoding == Encoding::PLAIN)
    })
}

fn cell_kind(cell: &Cell<'_>) -> &'static str {
    match cell {
        Cell::Null => "null",
        Cell::Text(_) => "text",
        Cell::Decimal(_) => "decimal",
        Cell::Int(_) => "int",
        Cell::Bool(_) => "bool",
        Cell::Date(_) => "date",
        Cell::Timestamp(_) => "timestamp",
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parquet DATE: days since 1970-01-01.
pub(super) fn epoch_day(d: meterbook_core::Day, col: &str) -> io::Result<i32> {
    d.raw()
        .checked_sub(UNIX_EPOCH_DAY_CE)
        .ok_or_else(|| invalid(format!("column `{col}`: date out of range")))
}
