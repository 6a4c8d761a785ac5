//! What the use-case layer's tests share: the layer over a store with report
//! files in a folder of the test's own and a clock the test moves.
#![allow(dead_code)] // each test file uses its part

use meterbook_app::App;
use meterbook_conformance::fixture::day;
use meterbook_core::clock::ManualClock;
use meterbook_core::store::Store;
use std::path::Path;
use std::sync::Arc;

/// `hour`:00 UTC on day `d` (YYYY-MM-DD), in Unix milliseconds.
pub fn at(d: &str, hour: u32) -> i64 {
    day(d)
        .naive()
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// Noon UTC on day `d`.
pub fn noon(d: &str) -> i64 {
    at(d, 12)
}

/// The use-case layer over `store`, keeping report files in `reports`, on `clock`.
pub fn layer(store: Arc<dyn Store>, reports: impl AsRef<Path>, clock: ManualClock) -> App {
    App::new(
        store,
        Arc::new(meterbook_jobs::DirReportFiles::new(reports.as_ref()).unwrap()),
        meterbook_jobs::JobSettings::default(),
        Arc::new(clock),
    )
}
