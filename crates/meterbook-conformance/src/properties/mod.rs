//! Property tests over generated data, run against any backend: rows add up
//! exactly to charges, and the order, batching and repetition of ingestion
//! never change a report.

mod charges;
/// The generators, public so other crates' property tests draw the same data.
pub mod generated;
/// Realistic-shaped usage, public so other crates' tests draw the same data.
pub mod realistic;
mod realistic_ingest;
mod tie_out;

pub use charges::*;
pub use realistic_ingest::*;
pub use tie_out::*;
