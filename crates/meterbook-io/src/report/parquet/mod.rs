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

mod column;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

pub use writer::ParquetTable;
