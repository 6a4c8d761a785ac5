//! Where "now" comes from. Everything that depends on the time of day (session
//! idle and absolute timeouts, key and link expiry, job leases and retention,
//! "the current period") asks a [`Clock`], so tests move time forward instead
//! of sleeping.

use crate::calendar::Day;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// The current instant as a date-time (UTC).
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.now_millis()).unwrap_or_default()
    }

    /// Today's date (UTC).
    fn today(&self) -> Day {
        Day::from_naive(self.now().date_naive())
    }

    /// RFC 3339 to the second, as report metadata states it.
    fn now_rfc3339(&self) -> String {
        self.now()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// The clock to use when none is given.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that stands still until it is moved (for tests). Clones share the
/// same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `unix_millis`.
    pub fn at_millis(unix_millis: i64) -> ManualClock {
        ManualClock {
            millis: Arc::new(AtomicI64::new(unix_millis)),
        }
    }

    /// A clock standing at the system's current time.
    pub fn now() -> ManualClock {
        ManualClock::at_millis(SystemClock.now_millis())
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.millis.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `unix_millis`.
    pub fn set_millis(&self, unix_millis: i64) {
        self.millis.store(unix_millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.millis.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = ManualClock::at_millis(1_700_000_000_000);
        let d = c.clone();
        assert_eq!(c.now_unix(), 1_700_000_000);
        c.advance(std::time::Duration::from_secs(90));
        assert_eq!(d.now_unix(), 1_700_000_090);
        assert_eq!(d.today().to_string(), "2023-11-14");
        assert_eq!(d.now_rfc3339(), "2023-11-14T22:14:50Z");
    }

    #[test]
    fn system_clock_is_close_to_chrono() {
        let a = SystemClock.now_unix();
        let b = chrono::Utc::now().timestamp();
        assert!((a - b).abs() <= 1);
    }
}
