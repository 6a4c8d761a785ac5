//! Usage details and Marketplace charges: one row per usage record, streamed
//! from the store's ordered scan.

mod columns;
mod encode;
mod filter;
mod report;

pub use columns::{Col, LEGACY_DETAIL_COLUMNS, MARKETPLACE_COLUMNS, USAGE_DETAIL_COLUMNS};
pub(crate) use encode::csv_field;
pub use encode::{detail_cells, detail_schema};
pub use filter::{Reach, UsageFilter};
pub use report::{DetailRow, MeterView, ReportError, ReportTotals, UsageReport, TICK};
