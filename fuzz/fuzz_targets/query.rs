//! The API's query-string and path parsing: no panic on any string; errors
//! are short; parameter names fold case; dates, date-times and periods that
//! parse print back to themselves; path normalisation is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterbook_core::{Day, Period};
use meterbook_fuzz::check_message;
use meterbook_server::params::{normalize_path, Params};

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    match Params::parse(Some(q)) {
        Err(e) => check_message(&e.to_string()),
        Ok(p) => {
            if let Err(e) = p.choice("format", &["csv", "json"], "csv") {
                check_message(&e.to_string());
            }
            for name in ["starttime", "endtime"] {
                let Some(v) = p.get(name) else { continue };
                match meterbook_server::parse_day_or_time(v) {
                    Err(e) => check_message(&e),
                    Ok(d) => assert_eq!(d.to_string().parse::<Day>().ok(), Some(d)),
                }
            }
            if let Some(v) = p.get("billingperiod") {
                match v.parse::<Period>() {
                    Err(e) => check_message(&e.0),
                    Ok(per) => assert_eq!(per.to_string(), v),
                }
            }
        }
    }
    let norm = |uri: &str| {
        let req = axum::extract::Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .ok()?;
        Some(normalize_path(req).uri().to_string())
    };
    if let Some(once) = norm(&format!("/{q}")) {
        assert_eq!(norm(&once).as_deref(), Some(once.as_str()), "{q:?}");
    }
});
