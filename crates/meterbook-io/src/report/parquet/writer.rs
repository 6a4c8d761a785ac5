//! Typed Parquet output for [`TableSink`] tables (usage details, FOCUS).
//!
//! Written with the `parquet` crate's low-level column writers rather than its
//! Arrow layer, to keep the dependency tree small. Rows are buffered column by
//! column (text in one contiguous buffer per column, so buffering a cell does
//! not allocate) and cut into row groups of `ROW_GROUP_ROWS` rows, or fewer
//! once `ROW_GROUP_TEXT_BYTES` of text is buffered, so memory stays flat
//! however many rows an export has. Encoding, not the database scan, is the
//! costly part, so with more than one core a background thread encodes each
//! row group (each column into its own buffer, spliced into the file in order)
//! while the caller buffers the next one.
//!
//! Type mapping (readers such as pyarrow, DuckDB and the FOCUS validator check
//! the logical types, not just the physical ones):
//!
//! | [`ColType`]        | Parquet                                                   |
//! |--------------------|-----------------------------------------------------------|
//! | `Text`             | `BYTE_ARRAY` / `STRING`                                   |
//! | `Decimal{scale}`   | `FIXED_LEN_BYTE_ARRAY(16)` / `DECIMAL(38, scale)`         |
//! | `Int`              | `INT64`                                                   |
//! | `Bool`             | `BOOLEAN`                                                 |
//! | `Date`             | `INT32` / `DATE` (days since 1970-01-01)                  |
//! | `Timestamp`        | `INT64` / `TIMESTAMP(isAdjustedToUTC=true, MICROS)`       |
//!
//! Nullable columns are `OPTIONAL`, the others `REQUIRED`.

use super::table::{Cell, ColType, Column, TableSink};
use bytes::Bytes;
use parquet::basic::{
    Compression, Encoding, LogicalType, PageType, Repetition, TimeUnit, Type as PhysicalType,
};
use parquet::column::writer::{get_column_writer, ColumnCloseResult, ColumnWriter};
use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::file::properties::{
    EnabledStatistics, WriterProperties, WriterPropertiesPtr, WriterVersion,
};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, ColumnPath, Type, TypePtr};
use std::io::{self, Write};
use std::sync::{mpsc, Arc};
use std::thread;

/// Most rows in a row group (DuckDB's default), for narrow tables.
const ROW_GROUP_ROWS: usize = 122_880;

/// A row group is cut once this much text is buffered. Two groups are in
/// memory at a time (one buffered, one encoded), with per-value overhead on top
/// of the text: usage details (about 500 bytes of text a row) make groups of
/// about 33,000 rows and a process of 120 to 200 MB.
const ROW_GROUP_TEXT_BYTES: usize = 16 << 20;

/// Most threads encoding a row group.
const MAX_THREADS: usize = 4;

/// Days from 0001-01-01 (what [`meterbook_core::Day::raw`] counts) to 1970-01-01.
const UNIX_EPOCH_DAY_CE: i32 = 719_163;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// DECIMAL(38, s) holds at most 38 digits.
const MAX_DECIMAL_38: u128 = 10u128.pow(38) - 1;

/// Bytes of a DECIMAL(38, s) value: the smallest width that holds 38 digits.
const DECIMAL_BYTES: usize = 16;

/// Writes typed rows as a Parquet file (Snappy-compressed, format 1.0 data pages).
pub struct ParquetTable<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    cols: Vec<ColumnBuf>,
    /// Writer settings for a column chunk: `[with dictionary, without]`.
    props: [WriterPropertiesPtr; 2],
    /// Encodes row groups in the background; `None` on a single core.
    encoder: Option<Encoder>,
    /// Rows buffered since the last row group.
    rows: usize,
    /// Text bytes buffered since the last row group.
    text_bytes: usize,
    max_rows: usize,
    max_text_bytes: usize,
    /// Set when writing a row group failed: the file is then incomplete.
    broken: bool,
}

/// One column's values of the row group being buffered.
struct ColumnBuf {
    col: Column,
    descr: ColumnDescPtr,
    /// Definition levels (1 = value, 0 = null); only for nullable columns.
    defs: Vec<i16>,
    values: Values,
    /// Dictionary-encode this column. Turned off for good once a row group's
    /// dictionary overflowed (near-unique columns such as record ids), since
    /// building a dictionary only to drop it is the costliest way to write them.
    dictionary: bool,
}

/// Values in the form the column writer takes, nulls left out. Text is kept
/// in one contiguous buffer so that buffering a cell never allocates.
enum Values {
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
    fn new(ty: ColType) -> Values {
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
    fn cost(&self) -> usize {
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
    fn empty_like(&self) -> ColumnBuf {
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
    fn push(&mut self, cell: &Cell<'_>) -> io::Result<usize> {
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
    fn unpush(&mut self) {
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
    fn encode(
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

/// Encoded column chunks of one row group, in column order.
type Chunks = Vec<(Bytes, ColumnCloseResult)>;

/// Encodes every column of `cols` into in-memory chunks, sharing the columns
/// out over up to `threads` threads (largest first, each to the least loaded
/// thread).
fn encode_columns(
    cols: &mut [ColumnBuf],
    props: &[WriterPropertiesPtr; 2],
    threads: usize,
) -> io::Result<Chunks> {
    let threads = threads.min(cols.len()).max(1);
    let mut order: Vec<(usize, &mut ColumnBuf)> = cols.iter_mut().enumerate().collect();
    order.sort_by_key(|(_, c)| std::cmp::Reverse(c.values.cost()));
    let mut lanes: Vec<(usize, Vec<(usize, &mut ColumnBuf)>)> =
        (0..threads).map(|_| (0, Vec::new())).collect();
    for (i, c) in order {
        let cost = c.values.cost();
        if let Some(lane) = lanes.iter_mut().min_by_key(|(load, _)| *load) {
            lane.0 += cost;
            lane.1.push((i, c));
        }
    }
    let encode_lane = |lane: Vec<(usize, &mut ColumnBuf)>| -> io::Result<Vec<_>> {
        lane.into_iter()
            .map(|(i, c)| Ok((i, c.encode(props)?)))
            .collect()
    };
    let mut lanes = lanes.into_iter().map(|(_, lane)| lane);
    let here = lanes.next().unwrap_or_default();
    let mut chunks = thread::scope(|s| {
        let helpers: Vec<_> = lanes
            .map(|lane| s.spawn(move || encode_lane(lane)))
            .collect();
        let mut chunks = encode_lane(here)?;
        for h in helpers {
            let done = h
                .join()
                .map_err(|_| io::Error::other("a Parquet encoding thread panicked"))?;
            chunks.extend(done?);
        }
        Ok::<_, io::Error>(chunks)
    })?;
    chunks.sort_by_key(|(i, _)| *i);
    Ok(chunks.into_iter().map(|(_, chunk)| chunk).collect())
}

/// Splices one row group's encoded chunks into the file.
fn write_row_group<W: Write + Send>(
    writer: &mut SerializedFileWriter<W>,
    chunks: Chunks,
) -> io::Result<()> {
    let mut rg = writer.next_row_group()?;
    for (bytes, close) in chunks {
        rg.append_column(&bytes, close)?;
    }
    rg.close()?;
    Ok(())
}

/// A thread that encodes one row group while the caller buffers the next, so
/// that the database scan and the encoding run side by side. Buffers go back
/// and forth: a full set in, the emptied set (and the chunks) out.
struct Encoder {
    jobs: Option<mpsc::Sender<Vec<ColumnBuf>>>,
    done: mpsc::Receiver<(Vec<ColumnBuf>, io::Result<Chunks>)>,
    handle: Option<thread::JoinHandle<()>>,
    /// A row group was sent and its chunks are not written yet.
    busy: bool,
}

impl Encoder {
    fn start(props: [WriterPropertiesPtr; 2], threads: usize) -> io::Result<Encoder> {
        let (jobs, inbox) = mpsc::channel::<Vec<ColumnBuf>>();
        let (outbox, done) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("parquet-encode".into())
            .spawn(move || {
                while let Ok(mut cols) = inbox.recv() {
                    let chunks = encode_columns(&mut cols, &props, threads);
                    if outbox.send((cols, chunks)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Encoder {
            jobs: Some(jobs),
            done,
            handle: Some(handle),
            busy: false,
        })
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // Closing the queue ends the thread; wait for it so that no encoding
        // outlives the table (an export that failed half way).
        self.jobs = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the Parquet encoding thread stopped")
}

impl<W: Write + Send> ParquetTable<W> {
    pub fn new(out: W, cols: &[Column]) -> io::Result<ParquetTable<W>> {
        let threads = thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_options(
            out,
            cols,
            ROW_GROUP_ROWS,
            ROW_GROUP_TEXT_BYTES,
            threads.min(MAX_THREADS),
        )
    }

    /// As [`ParquetTable::new`] with other row-group limits and thread count
    /// (tests use small ones; with one thread there is no [`Encoder`]).
    pub(crate) fn with_options(
        out: W,
        cols: &[Column],
        max_rows: usize,
        max_text_bytes: usize,
        threads: usize,
    ) -> io::Result<ParquetTable<W>> {
        let schema = schema(cols)?;
        let mut props = WriterProperties::builder()
            // Version 1 data pages: read by every Parquet reader in use.
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(Compression::SNAPPY)
            // Min/max per column chunk is what readers prune row groups with;
            // page-level indexes cost time for little gain on export files.
            .set_statistics_enabled(EnabledStatistics::Chunk);
        for c in cols.iter().filter(|c| c.ty == ColType::Text) {
            // Text min/max would be most of the encoding time (a byte-wise
            // compare per value), and exports are ordered by day, so text
            // ranges span every row group and would prune nothing.
            props = props
                .set_column_statistics_enabled(ColumnPath::from(c.name), EnabledStatistics::None);
        }
        let with_dict = props.clone().build();
        let without_dict = props.set_dictionary_enabled(false).build();
        let writer = SerializedFileWriter::new(out, schema, Arc::new(with_dict.clone()))?;
        let descrs = writer.schema_descr().columns().to_vec();
        let props = [Arc::new(with_dict), Arc::new(without_dict)];
        // Without a thread of its own (one core, or none to be had) a row
        // group is encoded where it is cut.
        let encoder = if threads > 1 {
            Encoder::start(props.clone(), threads).ok()
        } else {
            None
        };
        Ok(ParquetTable {
            cols: cols
                .iter()
                .zip(descrs)
                .map(|(&col, descr)| ColumnBuf {
                    col,
                    descr,
                    defs: Vec::new(),
                    values: Values::new(col.ty),
                    dictionary: true,
                })
                .collect(),
            writer,
            props,
            encoder,
            rows: 0,
            text_bytes: 0,
            max_rows: max_rows.max(1),
            max_text_bytes,
            broken: false,
        })
    }

    /// Writes the buffered rows as one row group: hands them to the
    /// [`Encoder`] (after writing out the group it was encoding), or encodes
    /// them here when there is none.
    fn flush_row_group(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        // Until the row group is written the file is not valid Parquet.
        self.broken = true;
        if self.encoder.is_some() {
            let next = match self.write_encoded()? {
                Some(emptied) => emptied,
                None => self.cols.iter().map(ColumnBuf::empty_like).collect(),
            };
            let full = std::mem::replace(&mut self.cols, next);
            let enc = self.encoder.as_mut().ok_or_else(stopped)?;
            enc.jobs
                .as_ref()
                .ok_or_else(stopped)?
                .send(full)
                .map_err(|_| stopped())?;
            enc.busy = true;
        } else {
            let chunks = encode_columns(&mut self.cols, &self.props, 1)?;
            write_row_group(&mut self.writer, chunks)?;
        }
        self.rows = 0;
        self.text_bytes = 0;
        self.broken = false;
        Ok(())
    }

    /// Waits for the row group the [`Encoder`] has, if any, and writes it out.
    /// Returns its emptied buffers.
    fn write_encoded(&mut self) -> io::Result<Option<Vec<ColumnBuf>>> {
        let Some(enc) = self.encoder.as_mut().filter(|e| e.busy) else {
            return Ok(None);
        };
        enc.busy = false;
        let (mut emptied, chunks) = enc.done.recv().map_err(|_| stopped())?;
        write_row_group(&mut self.writer, chunks?)?;
        // A dictionary given up in that group stays given up in both sets.
        for (a, b) in emptied.iter_mut().zip(&mut self.cols) {
            let keep = a.dictionary && b.dictionary;
            a.dictionary = keep;
            b.dictionary = keep;
        }
        Ok(Some(emptied))
    }
}

impl<W: Write + Send> TableSink for ParquetTable<W> {
    fn row(&mut self, cells: &[Cell<'_>]) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("the Parquet file failed to write earlier"));
        }
        if cells.len() != self.cols.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a row has {} cells but the table has {} columns",
                    cells.len(),
                    self.cols.len()
                ),
            ));
        }
        let mut text = 0;
        for (i, (c, cell)) in self.cols.iter_mut().zip(cells).enumerate() {
            match c.push(cell) {
                Ok(n) => text += n,
                Err(e) => {
                    // Leave the buffers as they were before this row.
                    for c in &mut self.cols[..i] {
                        c.unpush();
                    }
                    return Err(e);
                }
            }
        }
        self.rows += 1;
        self.text_bytes += text;
        if self.rows >= self.max_rows || self.text_bytes >= self.max_text_bytes {
            self.flush_row_group()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("the Parquet file failed to write earlier"));
        }
        self.flush_row_group()?;
        self.write_encoded()?;
        self.writer.close()?;
        Ok(())
    }
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
fn epoch_day(d: meterbook_core::Day, col: &str) -> io::Result<i32> {
    d.raw()
        .checked_sub(UNIX_EPOCH_DAY_CE)
        .ok_or_else(|| invalid(format!("column `{col}`: date out of range")))
}

/// The Parquet schema of `cols` (see the table in the module docs).
fn schema(cols: &[Column]) -> io::Result<TypePtr> {
    let fields = cols
        .iter()
        .map(|c| {
            let rep = if c.nullable {
                Repetition::OPTIONAL
            } else {
                Repetition::REQUIRED
            };
            let b = |phys| Type::primitive_type_builder(c.name, phys).with_repetition(rep);
            let t = match c.ty {
                ColType::Text => b(PhysicalType::BYTE_ARRAY)
                    .with_logical_type(Some(LogicalType::String))
                    .build(),
                ColType::Decimal { scale } => {
                    let scale =
                        i32::try_from(scale)
                            .ok()
                            .filter(|&s| s <= 38)
                            .ok_or_else(|| {
                                io::Error::new(
                                    io::ErrorKind::InvalidInput,
                                    format!("column `{}`: decimal scale {scale} above 38", c.name),
                                )
                            })?;
                    b(PhysicalType::FIXED_LEN_BYTE_ARRAY)
                        .with_length(DECIMAL_BYTES as i32)
                        .with_precision(38)
                        .with_scale(scale)
                        .with_logical_type(Some(LogicalType::decimal(scale, 38)))
                        .build()
                }
                ColType::Int => b(PhysicalType::INT64).build(),
                ColType::Bool => b(PhysicalType::BOOLEAN).build(),
                ColType::Date => b(PhysicalType::INT32)
                    .with_logical_type(Some(LogicalType::Date))
                    .build(),
                ColType::Timestamp => b(PhysicalType::INT64)
                    .with_logical_type(Some(LogicalType::timestamp(true, TimeUnit::MICROS)))
                    .build(),
            };
            Ok(Arc::new(t?))
        })
        .collect::<io::Result<Vec<TypePtr>>>()?;
    Ok(Arc::new(
        Type::group_type_builder("schema")
            .with_fields(fields)
            .build()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meterbook_core::Day;
    use parquet::basic::ConvertedType;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    fn day(y: i32, m: u32, d: u32) -> Day {
        Day::from_ymd(y, m, d).unwrap()
    }

    fn reader(buf: Vec<u8>) -> SerializedFileReader<bytes::Bytes> {
        SerializedFileReader::new(bytes::Bytes::from(buf)).unwrap()
    }

    fn rows(r: &SerializedFileReader<bytes::Bytes>) -> Vec<Vec<Field>> {
        r.get_row_iter(None)
            .unwrap()
            .map(|row| {
                row.unwrap()
                    .into_columns()
                    .into_iter()
                    .map(|(_, f)| f)
                    .collect()
            })
            .collect()
    }

    fn dec(f: &Field) -> i128 {
        match f {
            Field::Decimal(d) => i128::from_be_bytes(d.data().try_into().unwrap()),
            other => panic!("not a decimal: {other:?}"),
        }
    }

    fn write(cols: &[Column], max_rows: usize, data: &[Vec<Cell<'_>>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut t =
            Box::new(ParquetTable::with_options(&mut out, cols, max_rows, usize::MAX, 2).unwrap());
        for r in data {
            t.row(r).unwrap();
        }
        t.finish().unwrap();
        out
    }

    const ALL_TYPES: [Column; 12] = [
        Column::new("Name", ColType::Text, false),
        Column::new("Tags", ColType::Text, true),
        Column::new("Cost", ColType::Decimal { scale: 18 }, false),
        Column::new("Qty", ColType::Decimal { scale: 6 }, true),
        Column::new("Id", ColType::Int, false),
        Column::new("Dept", ColType::Int, true),
        Column::new("Flag", ColType::Bool, false),
        Column::new("MaybeFlag", ColType::Bool, true),
        Column::new("Date", ColType::Date, false),
        Column::new("MaybeDate", ColType::Date, true),
        Column::new("Start", ColType::Timestamp, false),
        Column::new("MaybeStart", ColType::Timestamp, true),
    ];

    #[test]
    fn unix_epoch_day_matches_the_calendar() {
        assert_eq!(day(1970, 1, 1).raw(), UNIX_EPOCH_DAY_CE);
        assert_eq!(epoch_day(day(1970, 1, 1), "d").unwrap(), 0);
        assert_eq!(epoch_day(day(1969, 12, 31), "d").unwrap(), -1);
        assert_eq!(epoch_day(day(2000, 1, 1), "d").unwrap(), 10_957);
        assert_eq!(epoch_day(day(2026, 3, 1), "d").unwrap(), 20_513);
        let epoch = day(1970, 1, 1).naive();
        for d in [
            day(1, 1, 1),
            day(1900, 2, 28),
            day(2024, 2, 29),
            day(9999, 12, 31),
        ] {
            let want = d.naive().signed_duration_since(epoch).num_days();
            assert_eq!(i64::from(epoch_day(d, "d").unwrap()), want);
        }
    }

    #[test]
    fn schema_has_the_logical_types_readers_check() {
        let buf = write(&ALL_TYPES, 10, &[]);
        let r = reader(buf);
        let meta = r.metadata();
        assert_eq!(meta.file_metadata().num_rows(), 0);
        let schema = meta.file_metadata().schema_descr();
        assert_eq!(schema.num_columns(), ALL_TYPES.len());
        for (i, col) in ALL_TYPES.iter().enumerate() {
            let c = schema.column(i);
            assert_eq!(c.name(), col.name);
            let rep = c.self_type().get_basic_info().repetition();
            let want_rep = if col.nullable {
                Repetition::OPTIONAL
            } else {
                Repetition::REQUIRED
            };
            assert_eq!(rep, want_rep, "{}", col.name);
            assert_eq!(c.max_def_level(), i16::from(col.nullable));
            let (phys, logical, converted) = match col.ty {
                ColType::Text => (
                    PhysicalType::BYTE_ARRAY,
                    Some(LogicalType::String),
                    ConvertedType::UTF8,
                ),
                ColType::Decimal { scale } => {
                    assert_eq!(c.type_length(), 16);
                    assert_eq!(c.type_precision(), 38);
                    assert_eq!(c.type_scale(), scale as i32);
                    (
                        PhysicalType::FIXED_LEN_BYTE_ARRAY,
                        Some(LogicalType::decimal(scale as i32, 38)),
                        ConvertedType::DECIMAL,
                    )
                }
                ColType::Int => (PhysicalType::INT64, None, ConvertedType::NONE),
                ColType::Bool => (PhysicalType::BOOLEAN, None, ConvertedType::NONE),
                ColType::Date => (
                    PhysicalType::INT32,
                    Some(LogicalType::Date),
                    ConvertedType::DATE,
                ),
                ColType::Timestamp => (
                    PhysicalType::INT64,
                    Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
                    ConvertedType::TIMESTAMP_MICROS,
                ),
            };
            assert_eq!(c.physical_type(), phys, "{}", col.name);
            assert_eq!(c.logical_type_ref(), logical.as_ref(), "{}", col.name);
            assert_eq!(c.converted_type(), converted, "{}", col.name);
        }
    }

    #[test]
    fn every_type_round_trips_exactly_across_row_groups() {
        let big = 123_456_789_012_345_678_901_234_567_890i128; // beyond i64
        let max38 = MAX_DECIMAL_38 as i128;
        let decimals = [
            0,
            1,
            -1,
            -1_500_000_000_000_000_000, // -1.5 at scale 18
            i64::MAX as i128 + 1,
            i64::MIN as i128 - 1,
            big,
            -big,
            max38,
            -max38,
        ];
        let days = [
            day(2026, 3, 1),
            day(1970, 1, 1),
            day(1969, 12, 31),
            day(2024, 2, 29),
            day(9999, 12, 31),
        ];
        let texts = ["", "a,b", "é ü 日本", "Virtual Machines", "\"quoted\"\n"];
        let data: Vec<Vec<Cell<'_>>> = (0..decimals.len())
            .map(|i| {
                let d = days[i % days.len()];
                let null = i % 3 == 1;
                let opt = |c: Cell<'static>| if null { Cell::Null } else { c };
                vec![
                    Cell::Text(texts[i % texts.len()]),
                    if null {
                        Cell::Null
                    } else {
                        Cell::Text(texts[(i + 1) % texts.len()])
                    },
                    Cell::Decimal(decimals[i]),
                    opt(Cell::Decimal(-decimals[i])),
                    Cell::Int(i as i64 * -1_000_000_007),
                    opt(Cell::Int(i64::MAX - i as i64)),
                    Cell::Bool(i % 2 == 0),
                    opt(Cell::Bool(i % 2 == 1)),
                    Cell::Date(d),
                    opt(Cell::Date(d.add_days(1))),
                    Cell::Timestamp(d),
                    opt(Cell::Timestamp(d.add_days(-1))),
                ]
            })
            .collect();
        let r = reader(write(&ALL_TYPES, 3, &data));
        let meta = r.metadata();
        assert_eq!(meta.num_row_groups(), 4);
        let group_rows: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(group_rows, [3, 3, 3, 1]);
        let got = rows(&r);
        assert_eq!(got.len(), data.len());
        for (i, (row, want)) in got.iter().zip(&data).enumerate() {
            for (j, (f, cell)) in row.iter().zip(want).enumerate() {
                let name = ALL_TYPES[j].name;
                match *cell {
                    Cell::Null => assert_eq!(*f, Field::Null, "row {i} {name}"),
                    Cell::Text(s) => assert_eq!(*f, Field::Str(s.to_string()), "row {i} {name}"),
                    Cell::Decimal(v) => assert_eq!(dec(f), v, "row {i} {name}"),
                    Cell::Int(v) => assert_eq!(*f, Field::Long(v), "row {i} {name}"),
                    Cell::Bool(v) => assert_eq!(*f, Field::Bool(v), "row {i} {name}"),
                    Cell::Date(d) => {
                        let want = d.naive().signed_duration_since(day(1970, 1, 1).naive());
                        assert_eq!(*f, Field::Date(want.num_days() as i32), "row {i} {name}");
                    }
                    Cell::Timestamp(d) => {
                        let want = d.naive().signed_duration_since(day(1970, 1, 1).naive());
                        let micros = want.num_days() * 86_400 * 1_000_000;
                        assert_eq!(*f, Field::TimestampMicros(micros), "row {i} {name}");
                    }
                }
            }
        }
        // Spot checks against literal values, independent of the helpers above.
        assert_eq!(got[0][8], Field::Date(20_513)); // 2026-03-01
        assert_eq!(got[0][10], Field::TimestampMicros(20_513 * 86_400_000_000));
        assert_eq!(got[2][8], Field::Date(-1)); // 1969-12-31
        assert_eq!(dec(&got[6][2]), big);
        assert_eq!(dec(&got[6][3]), -big);
        assert_eq!(dec(&got[7][2]), -big);
        assert_eq!(dec(&got[8][2]), max38);
        // Rows 6..9: the statistics order decimals numerically, negatives included.
        let stats = meta.row_group(2).column(2).statistics().unwrap();
        match stats {
            parquet::file::statistics::Statistics::FixedLenByteArray(s) => {
                let v = |b: &FixedLenByteArray| i128::from_be_bytes(b.data().try_into().unwrap());
                assert_eq!(v(s.min_opt().unwrap()), -big);
                assert_eq!(v(s.max_opt().unwrap()), max38);
            }
            other => panic!("unexpected statistics {other:?}"),
        }
    }

    #[test]
    fn row_groups_are_also_cut_by_buffered_text() {
        let cols = [Column::new("T", ColType::Text, false)];
        let mut out = Vec::new();
        let mut t = Box::new(ParquetTable::with_options(&mut out, &cols, 1000, 10, 2).unwrap());
        for s in ["12345", "123456", "1", "2", "3"] {
            t.row(&[Cell::Text(s)]).unwrap();
        }
        t.finish().unwrap();
        let r = reader(out);
        let group_rows: Vec<i64> = r
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(group_rows, [2, 3]);
    }

    #[test]
    fn bad_cells_are_errors_naming_the_column_and_leave_the_table_usable() {
        let cols = [
            Column::new("Tags", ColType::Text, true),
            Column::new("Name", ColType::Text, false),
            Column::new("Cost", ColType::Decimal { scale: 2 }, false),
            Column::new("Dept", ColType::Int, true),
            Column::new("Day", ColType::Date, false),
        ];
        let mut out = Vec::new();
        let mut t =
            Box::new(ParquetTable::with_options(&mut out, &cols, 2, usize::MAX, 2).unwrap());
        let d = day(2026, 4, 1);
        let good = [
            Cell::Text("t"),
            Cell::Text("n"),
            Cell::Decimal(-12),
            Cell::Int(7),
            Cell::Date(d),
        ];
        t.row(&good).unwrap();

        let err = t
            .row(&[
                Cell::Text("x"),
                Cell::Text("y"),
                Cell::Decimal(1),
                Cell::Null,
                Cell::Null,
            ])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("`Day`"), "{err}");
        assert!(err.to_string().contains("not nullable"), "{err}");

        let err = t
            .row(&[
                Cell::Null,
                Cell::Text("y"),
                Cell::Text("1.5"),
                Cell::Int(1),
                Cell::Date(d),
            ])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("`Cost`"), "{err}");

        let err = t
            .row(&[
                Cell::Null,
                Cell::Text("y"),
                Cell::Decimal(1),
                Cell::Int(1),
                Cell::Timestamp(d),
            ])
            .unwrap_err();
        assert!(err.to_string().contains("`Day`"), "{err}");

        let err = t
            .row(&[
                Cell::Null,
                Cell::Text("y"),
                Cell::Decimal(i128::MIN),
                Cell::Null,
                Cell::Date(d),
            ])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("`Cost`"), "{err}");

        let err = t.row(&[Cell::Null, Cell::Text("y")]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        // The rejected rows left nothing behind.
        let second = [
            Cell::Null,
            Cell::Text("m"),
            Cell::Decimal(5),
            Cell::Null,
            Cell::Date(d),
        ];
        t.row(&second).unwrap();
        t.row(&good).unwrap();
        t.finish().unwrap();
        let r = reader(out);
        assert_eq!(r.metadata().num_row_groups(), 2);
        let got = rows(&r);
        let days = epoch_day(d, "Day").unwrap();
        let s = |v: &str| Field::Str(v.to_string());
        let expect_row = |row: &Vec<Field>, tags: Field, name: &str, cost: i128, dept: Field| {
            assert_eq!(row[0], tags);
            assert_eq!(row[1], s(name));
            assert_eq!(dec(&row[2]), cost);
            assert_eq!(row[3], dept);
            assert_eq!(row[4], Field::Date(days));
        };
        assert_eq!(got.len(), 3);
        expect_row(&got[0], s("t"), "n", -12, Field::Long(7));
        expect_row(&got[1], Field::Null, "m", 5, Field::Null);
        expect_row(&got[2], s("t"), "n", -12, Field::Long(7));
    }

    #[test]
    fn a_column_whose_dictionary_overflows_is_written_plain_from_then_on() {
        let cols = [
            Column::new("Id", ColType::Text, false),
            Column::new("Kind", ColType::Text, true),
        ];
        // 20,000 distinct 64-byte ids a row group: over the 1 MB dictionary limit.
        let ids: Vec<String> = (0..40_000).map(|i| format!("{i:064}")).collect();
        let kinds = [Cell::Text("a"), Cell::Null, Cell::Text("b")];
        let data: Vec<Vec<Cell<'_>>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| vec![Cell::Text(id), kinds[i % 3]])
            .collect();
        let r = reader(write(&cols, 20_000, &data));
        let meta = r.metadata();
        assert_eq!(meta.num_row_groups(), 2);
        let dict = |g: usize, c: usize| meta.row_group(g).column(c).dictionary_page_offset();
        assert!(dict(0, 0).is_some(), "tried a dictionary first");
        assert!(dict(1, 0).is_none(), "then plain");
        assert!(dict(0, 1).is_some() && dict(1, 1).is_some());
        let got = rows(&r);
        assert_eq!(got.len(), ids.len());
        for (i, row) in got.iter().enumerate() {
            assert_eq!(row[0], Field::Str(ids[i].clone()));
            let want = match kinds[i % 3] {
                Cell::Text(s) => Field::Str(s.to_string()),
                _ => Field::Null,
            };
            assert_eq!(row[1], want);
        }
    }

    #[test]
    fn the_file_is_the_same_whatever_the_number_of_encoding_threads() {
        let d = day(2026, 5, 17);
        let data: Vec<Vec<Cell<'_>>> = (0..50i64)
            .map(|i| {
                let null = i % 4 == 0;
                let opt = |c: Cell<'static>| if null { Cell::Null } else { c };
                vec![
                    Cell::Text(["x", "yy", "zzz"][i as usize % 3]),
                    opt(Cell::Text("tag")),
                    Cell::Decimal(i128::from(i) * 1_000_000_007),
                    opt(Cell::Decimal(-i128::from(i))),
                    Cell::Int(i),
                    opt(Cell::Int(-i)),
                    Cell::Bool(i % 2 == 0),
                    opt(Cell::Bool(true)),
                    Cell::Date(d.add_days(i as i32)),
                    opt(Cell::Date(d)),
                    Cell::Timestamp(d),
                    opt(Cell::Timestamp(d.add_days(1))),
                ]
            })
            .collect();
        let files: Vec<Vec<u8>> = [1, 2, 4, 64]
            .into_iter()
            .map(|threads| {
                let mut out = Vec::new();
                let mut t = Box::new(
                    ParquetTable::with_options(&mut out, &ALL_TYPES, 16, usize::MAX, threads)
                        .unwrap(),
                );
                for r in &data {
                    t.row(r).unwrap();
                }
                t.finish().unwrap();
                out
            })
            .collect();
        assert!(files.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(rows(&reader(files[0].clone())).len(), data.len());
    }

    /// Accepts `left` bytes, then fails every write.
    struct FailingWriter {
        left: usize,
    }

    impl Write for FailingWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_output_is_an_error_and_stops_the_table() {
        for threads in [1, 2] {
            let cols = [Column::new("T", ColType::Text, false)];
            let out = FailingWriter { left: 20_000 };
            let mut t =
                Box::new(ParquetTable::with_options(out, &cols, 100, usize::MAX, threads).unwrap());
            let text = "x".repeat(100);
            let mut err = None;
            for i in 0..10_000 {
                // Distinct values, so that the output outgrows the writer's buffer.
                let cell = format!("{text}{i}");
                if let Err(e) = t.row(&[Cell::Text(&cell)]) {
                    err = Some(e);
                    break;
                }
            }
            let err = err.expect("a row fails once the output does");
            assert!(err.to_string().contains("disk full"), "{err}");
            let again = t.row(&[Cell::Text("y")]).unwrap_err();
            assert!(
                again.to_string().contains("failed to write earlier"),
                "{again}"
            );
            assert!(t.finish().is_err());
        }
    }

    #[test]
    fn a_decimal_scale_beyond_38_is_refused() {
        let cols = [Column::new("X", ColType::Decimal { scale: 39 }, false)];
        let err = ParquetTable::new(Vec::new(), &cols).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("`X`"), "{err}");
    }

    /// Throughput on usage-details-like data (36 columns). Run in release:
    /// `cargo test --release -p meterbook-io --lib parquet_throughput -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn parquet_throughput_on_usage_details() {
        use crate::report::usage::detail_schema;
        use std::fmt::Write as _;
        let rows: usize = std::env::var("PARQUET_BENCH_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let schema = detail_schema();
        let pool = |prefix: &str, n: usize| -> Vec<String> {
            (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
        };
        let small = pool("Value", 12);
        let accounts = pool("account-name", 40);
        let emails = pool("owner@contoso.example", 40);
        let instances: Vec<String> = (0..3000)
            .map(|i| {
                format!(
                    "/subscriptions/4b1c2d3e-0000-4000-8000-{i:012}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-{i}"
                )
            })
            .collect();
        let tags = [
            r#"{"env":"prod","team":"payments"}"#,
            r#"{"env":"dev"}"#,
            "",
        ];
        let info = r#"{"ImageType":"Canonical","VCPUs":4}"#;
        let mut record = String::new();
        let mut sink = CountingSink(0);
        let start = std::time::Instant::now();
        let mut t = Box::new(ParquetTable::new(&mut sink, &schema).unwrap());
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for r in 0..rows {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            record.clear();
            let _ = write!(record, "u-20260401-{r:09}");
            let res = r % instances.len();
            // As export.rs does: one cell vector per row.
            let mut cells: Vec<Cell<'_>> = Vec::with_capacity(schema.len());
            for (i, c) in schema.iter().enumerate() {
                cells.push(match (c.name, c.ty) {
                    ("RecordId", _) => Cell::Text(&record),
                    ("InstanceId", _) => Cell::Text(&instances[res]),
                    ("AccountName", _) => Cell::Text(&accounts[res % 40]),
                    ("AccountOwnerEmail", _) => Cell::Text(&emails[res % 40]),
                    ("Tags", _) => match tags[res % 3] {
                        "" => Cell::Null,
                        s => Cell::Text(s),
                    },
                    ("AdditionalInfo", _) if res.is_multiple_of(4) => Cell::Text(info),
                    ("AdditionalInfo", _) => Cell::Null,
                    ("ServiceInfo1" | "ServiceInfo2", _) => Cell::Text(""),
                    (_, ColType::Text) => Cell::Text(&small[(res + i) % small.len()]),
                    (_, ColType::Int) => Cell::Int((res % 40) as i64),
                    (_, ColType::Bool) => Cell::Bool(x.is_multiple_of(17)),
                    (_, ColType::Date) => Cell::Date(day(2026, 4, 1).add_days((r / 3000) as i32)),
                    (_, ColType::Timestamp) => Cell::Timestamp(day(2026, 4, 1)),
                    (_, ColType::Decimal { .. }) => Cell::Decimal((x % 10_000_000_000_000) as i128),
                });
            }
            t.row(&cells).unwrap();
        }
        t.finish().unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{rows} rows in {secs:.2}s: {:.0} rows/s, {:.1} MB written ({:.1} MB/s)",
            rows as f64 / secs,
            sink.0 as f64 / 1e6,
            sink.0 as f64 / 1e6 / secs
        );
    }

    struct CountingSink(u64);

    impl Write for CountingSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
