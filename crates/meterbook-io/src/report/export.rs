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

/// File formats of a usage export (defined beside the report jobs that
/// store them).
pub use meterbook_core::jobs::ExportFormat;

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
