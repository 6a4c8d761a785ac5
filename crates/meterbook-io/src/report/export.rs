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

/// Calls `progress` with the rows written so far, every few thousand rows
/// scanned; returning `false` stops the export (cancel, time limit).
pub type ProgressFn<'a> = dyn FnMut(u64) -> bool + Send + 'a;

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
    match format {
        ExportFormat::Csv => report.write_with_progress(store, n, ReportFormat::Csv, out, progress),
        ExportFormat::CsvGzip => {
            let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            let t = report.write_with_progress(store, n, ReportFormat::Csv, &mut gz, progress)?;
            gz.finish()?;
            Ok(t)
        }
        ExportFormat::Parquet => {
            let schema = detail_schema();
            let mut sink: Box<dyn TableSink + '_> = Box::new(ParquetTable::new(out, &schema)?);
            let t = report.for_each_row(
                store,
                n,
                &mut |r| {
                    let mut cells: Vec<Cell<'_>> = Vec::with_capacity(schema.len());
                    detail_cells(r, &mut cells);
                    sink.row(&cells)?;
                    Ok(Flow::Continue)
                },
                progress,
            )?;
            sink.finish()?;
            progress(t.rows);
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
