//! The Parquet file writer: row groups buffered by the caller, encoded on a
//! background thread and spliced into the file in order.

use crate::report::table::{Cell, ColType, Column, TableSink};
use bytes::Bytes;
use parquet::basic::Compression;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::properties::{
    EnabledStatistics, WriterProperties, WriterPropertiesPtr, WriterVersion,
};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use std::io::{self, Write};
use std::sync::{mpsc, Arc};
use std::thread;

use super::column::*;
use super::schema::schema;

/// Most rows in a row group (DuckDB's default), for narrow tables.
const ROW_GROUP_ROWS: usize = 122_880;

/// A row group is cut once this much text is buffered. Two groups are in
/// memory at a time (one buffered, one encoded), with per-value overhead on top
/// of the text: usage details (about 500 bytes of text a row) make groups of
/// about 33,000 rows and a process of 120 to 200 MB.
const ROW_GROUP_TEXT_BYTES: usize = 16 << 20;

/// Most threads encoding a row group.
const MAX_THREADS: usize = 4;

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
