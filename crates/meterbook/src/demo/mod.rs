//! A realistic demo enrollment: generated input files, ingested through the
//! same paths an operator uses. Also the data set of `meterbook bench`.

mod finance;
mod generate;
mod run;
mod sample;

pub use generate::*;
pub use run::*;
