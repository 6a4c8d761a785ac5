//! Running jobs: validating requests, claiming work, writing the file with
//! its manifest, reporting progress, honouring cancel and time limits, and
//! cleaning up after retention.

mod produce;
mod request;
mod run;
mod workers;

pub use produce::*;
pub use request::*;
pub use run::*;
pub use workers::*;
