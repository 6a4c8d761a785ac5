//! One entry point for a usage export in any file format: the monthly and
//! advanced report downloads, the CLI and the background jobs all call
//! [`export`], so a format behaves the same wherever it is asked for.

use super::focus::{self, FocusSettings};
use super::parquet::ParquetTable;
use super::table::{Cell, CsvTable, TableSink};
use super::usage::{detail_cells, detail_schema, ReportError, ReportTotals, UsageReport};
use super::ReportFormat;
use meterbook_core::store::{Flow, MetadataStore, UsageStore};
use meterbook_core::EnrollmentNumber;
use std::io::Write;

/// File formats of a usage export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// Usage details (design §4) as CSV.
    Csv,
    /// The same, gzip-compressed.
    CsvGzip,
    /// Usage details with typed columns.
    Parquet,
    /// The FinOps FOCUS 1.2 cost and usage dataset as CSV.
    FocusCsv,
    /// FOCUS 1.2 as typed Parquet.
    FocusParquet,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 5] = [
        ExportFormat::Csv,
        ExportFormat::CsvGzip,
        ExportFormat::Parquet,
        ExportFormat::FocusCsv,
        ExportFormat::FocusParquet,
    ];

    /// The name used on the CLI, in the API and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::CsvGzip => "csv.gz",
            ExportFormat::Parquet => "parquet",
            ExportFormat::FocusCsv => "focus-csv",
            ExportFormat::FocusParquet => "focus-parquet",
        }
    }

    pub fn parse(s: &str) -> Option<ExportFormat> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    /// File extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv | ExportFormat::FocusCsv => "csv",
            ExportFormat::CsvGzip => "csv.gz",
            ExportFormat::Parquet | ExportFormat::FocusParquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv | ExportFormat::FocusCsv => "text/csv; charset=utf-8",
            ExportFormat::CsvGzip => "application/gzip",
            ExportFormat::Parquet | ExportFormat::FocusParquet => "application/vnd.apache.parquet",
        }
    }
}

/// Calls `progress` with the rows written so far, every few thousand rows;
/// returning `false` stops the export (cancel, time limit).
pub type ProgressFn<'a> = dyn FnMut(u64) -> bool + Send + 'a;

const PROGRESS_EVERY: u64 = 8192;

/// Writes `report` to `out` in `format`. The caller owns atomicity (temp file, rename).
pub fn export<S: MetadataStore + UsageStore + ?Sized>(
    store: &S,
    n: &EnrollmentNumber,
    report: &UsageReport,
    format: ExportFormat,
    focus_settings: &FocusSettings,
    out: &mut (dyn Write + Send),
    progress: &mut ProgressFn<'_>,
) -> Result<ReportTotals, ReportError> {
    let cancelled = || ReportError::Io(std::io::Error::other("the export was stopped"));
    match format {
        ExportFormat::Csv | ExportFormat::CsvGzip => {
            let mut stopped = false;
            let t = if format == ExportFormat::CsvGzip {
                let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
                let mut counted = Counted::new(&mut gz, progress, &mut stopped);
                let t = report.write(store, n, ReportFormat::Csv, &mut counted);
                // The last use of `counted`: its borrows of the output,
                // `progress` and `stopped` end here.
                let rows = counted.lines.saturating_sub(1);
                let t = t.map_err(|e| if stopped { cancelled() } else { e })?;
                gz.finish()?;
                progress(rows);
                t
            } else {
                let mut counted = Counted::new(out, progress, &mut stopped);
                let t = report.write(store, n, ReportFormat::Csv, &mut counted);
                // The last use of `counted`: its borrows of the output,
                // `progress` and `stopped` end here.
                let rows = counted.lines.saturating_sub(1);
                let t = t.map_err(|e| if stopped { cancelled() } else { e })?;
                progress(rows);
                t
            };
            Ok(t)
        }
        ExportFormat::Parquet => {
            let schema = detail_schema();
            let mut sink: Box<dyn TableSink + '_> = Box::new(ParquetTable::new(out, &schema)?);
            let mut rows = 0u64;
            let t = report.for_each_row(store, n, &mut |r| {
                let mut cells: Vec<Cell<'_>> = Vec::with_capacity(schema.len());
                detail_cells(r, &mut cells);
                sink.row(&cells)?;
                rows += 1;
                if rows.is_multiple_of(PROGRESS_EVERY) && !progress(rows) {
                    return Err(std::io::Error::other("the export was stopped"));
                }
                Ok(Flow::Continue)
            })?;
            sink.finish()?;
            progress(rows);
            Ok(t)
        }
        ExportFormat::FocusCsv | ExportFormat::FocusParquet => {
            let schema = focus::schema();
            let sink: Box<dyn TableSink + '_> = if format == ExportFormat::FocusCsv {
                Box::new(CsvTable::new(
                    std::io::BufWriter::with_capacity(1 << 20, out),
                    &schema,
                )?)
            } else {
                Box::new(ParquetTable::new(out, &schema)?)
            };
            focus::write(report, store, n, focus_settings, sink, progress)
        }
    }
}

/// Passes CSV bytes through and reports progress by the lines it has seen (a
/// field with a line break makes this count run ahead a little; the job's final
/// row count comes from the report's own totals).
struct Counted<'a, 'b> {
    out: &'a mut (dyn Write + Send),
    lines: u64,
    progress: &'a mut ProgressFn<'b>,
    stopped: &'a mut bool,
}

impl<'a, 'b> Counted<'a, 'b> {
    fn new(
        out: &'a mut (dyn Write + Send),
        progress: &'a mut ProgressFn<'b>,
        stopped: &'a mut bool,
    ) -> Self {
        Counted {
            out,
            lines: 0,
            progress,
            stopped,
        }
    }
}

impl Write for Counted<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        if !(self.progress)(self.lines.saturating_sub(1)) {
            *self.stopped = true;
            return Err(std::io::Error::other("the export was stopped"));
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
