//! Typed Parquet output. (Being written: this stub refuses every write.)

use super::table::{Cell, Column, TableSink};
use std::io::{self, Write};

pub struct ParquetTable<W: Write + Send> {
    _out: W,
}

impl<W: Write + Send> ParquetTable<W> {
    pub fn new(out: W, _cols: &[Column]) -> io::Result<ParquetTable<W>> {
        Ok(ParquetTable { _out: out })
    }
}

impl<W: Write + Send> TableSink for ParquetTable<W> {
    fn row(&mut self, _cells: &[Cell<'_>]) -> io::Result<()> {
        Err(io::Error::other("Parquet output is not implemented yet"))
    }
    fn finish(self: Box<Self>) -> io::Result<()> {
        Err(io::Error::other("Parquet output is not implemented yet"))
    }
}
