//! Command-line arguments.

mod commands;
mod exports;
mod options;
mod report;

pub use commands::*;
pub use exports::*;
pub use options::*;
pub use report::*;
