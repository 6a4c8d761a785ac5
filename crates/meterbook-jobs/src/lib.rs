//! Advanced report downloads: jobs requested through the API or the CLI,
//! prepared in the background by a bounded pool of worker threads, written to
//! a report file store, and cleaned up when their retention ends.
//!
//! Workers are plain threads, not tasks of the HTTP server's runtime: a report
//! is minutes of CPU and disk work, and running it off the runtime keeps the
//! API answering while reports run. Work is found by polling the store (and
//! woken early by [`Workers::notify`]), so a job queued by another process
//! (the CLI) is picked up too, and a job whose worker died is taken over once
//! its lease runs out.
#![forbid(unsafe_code)]

pub mod availability;
pub mod exports;
pub mod files;
pub mod runner;
#[cfg(feature = "s3")]
pub mod s3_files;

pub use availability::{file_state, FileState};
pub use files::{DirReportFiles, PendingFile, ReportFile, ReportFiles};
pub use runner::{JobSettings, Manifest, Runner, Workers};
#[cfg(feature = "s3")]
pub use s3_files::S3ReportFiles;

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new job id: 128 random bits in hex (unguessable, so a link can't be
/// found by counting).
pub fn new_job_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
