//! Command-line arguments.

mod commands;
mod options;
mod report;

pub use commands::*;
pub use options::*;
pub use report::*;
