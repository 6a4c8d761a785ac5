//! Typed tables: one schema and one row type shared by every typed output
//! (CSV for FOCUS, Parquet for usage details and FOCUS), so a dataset is
//! described once and every format writes the same values.

use meterbook_core::Day;
use std::io::{self, Write};

/// The type of a column, as a typed format (Parquet) stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColType {
    Text,
    /// An exact decimal: the cell holds the value times 10^scale.
    Decimal {
        scale: u32,
    },
    Int,
    Bool,
    /// A calendar date.
    Date,
    /// An instant in UTC; cells give midnight of a day (CSV `YYYY-MM-DDT00:00:00Z`).
    Timestamp,
}

#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
    pub nullable: bool,
}

impl Column {
    pub const fn new(name: &'static str, ty: ColType, nullable: bool) -> Column {
        Column { name, ty, nullable }
    }
}

/// One cell; its variant matches its column's [`ColType`] (or is `Null`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    Text(&'a str),
    /// Raw value at the column's scale.
    Decimal(i128),
    Int(i64),
    Bool(bool),
    Date(Day),
    Timestamp(Day),
}

/// Where typed rows go. `finish` completes the output (footers, flush).
pub trait TableSink {
    fn row(&mut self, cells: &[Cell<'_>]) -> io::Result<()>;
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Writes typed rows as RFC 4180 CSV: header first, decimals in plain notation
/// with at least one fraction digit (`3.0`, not `3`: readers that infer types
/// from CSV, such as the FOCUS validator, would otherwise take a column of whole
/// amounts for integers), nulls as empty fields, timestamps as `YYYY-MM-DDT00:00:00Z`.
pub struct CsvTable<W: Write> {
    out: W,
    cols: Vec<Column>,
    line: Vec<u8>,
    buf: String,
}

impl<W: Write> CsvTable<W> {
    pub fn new(mut out: W, cols: &[Column]) -> io::Result<CsvTable<W>> {
        let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
        out.write_all(names.join(",").as_bytes())?;
        out.write_all(b"\n")?;
        Ok(CsvTable {
            out,
            cols: cols.to_vec(),
            line: Vec::with_capacity(4096),
            buf: String::new(),
        })
    }
}

impl<W: Write> TableSink for CsvTable<W> {
    fn row(&mut self, cells: &[Cell<'_>]) -> io::Result<()> {
        debug_assert_eq!(cells.len(), self.cols.len());
        self.line.clear();
        for (i, (cell, col)) in cells.iter().zip(&self.cols).enumerate() {
            if i > 0 {
                self.line.push(b',');
            }
            self.buf.clear();
            match *cell {
                Cell::Null => {}
                Cell::Text(s) => super::usage::csv_field(&mut self.line, s),
                Cell::Decimal(v) => {
                    let scale = match col.ty {
                        ColType::Decimal { scale } => scale,
                        _ => 0,
                    };
                    meterbook_core::fixed::write_fixed(&mut self.buf, v, scale, scale.min(1));
                }
                Cell::Int(v) => {
                    use std::fmt::Write as _;
                    let _ = write!(self.buf, "{v}");
                }
                Cell::Bool(b) => self.buf.push_str(if b { "true" } else { "false" }),
                Cell::Date(d) => d.write_iso(&mut self.buf),
                Cell::Timestamp(d) => {
                    d.write_iso(&mut self.buf);
                    self.buf.push_str("T00:00:00Z");
                }
            }
            self.line.extend_from_slice(self.buf.as_bytes());
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_table_writes_typed_cells_in_plain_notation() {
        let cols = [
            Column::new("Name", ColType::Text, true),
            Column::new("Cost", ColType::Decimal { scale: 6 }, false),
            Column::new("Start", ColType::Timestamp, false),
            Column::new("Day", ColType::Date, false),
            Column::new("N", ColType::Int, true),
            Column::new("B", ColType::Bool, false),
        ];
        let mut out = Vec::new();
        let mut t = Box::new(CsvTable::new(&mut out, &cols).unwrap());
        let d = Day::from_ymd(2026, 3, 1).unwrap();
        t.row(&[
            Cell::Text("a,b"),
            Cell::Decimal(-1_500_000),
            Cell::Timestamp(d),
            Cell::Date(d),
            Cell::Null,
            Cell::Bool(true),
        ])
        .unwrap();
        t.row(&[
            Cell::Null,
            Cell::Decimal(3_000_000),
            Cell::Timestamp(d),
            Cell::Date(d),
            Cell::Int(7),
            Cell::Bool(false),
        ])
        .unwrap();
        t.finish().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Name,Cost,Start,Day,N,B\n\"a,b\",-1.5,2026-03-01T00:00:00Z,2026-03-01,,true\n\
             ,3.0,2026-03-01T00:00:00Z,2026-03-01,7,false\n"
        );
    }
}
