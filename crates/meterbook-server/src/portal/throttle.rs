//! Counting failed attempts (sign-ins, set-password) per key in a window.
//!
//! Sign-ins are counted three ways, so that slowing a guesser never hands a
//! stranger the power to lock an owner out:
//! - per account *and* address (`max_failures_per_account`, e.g. 5): a
//!   guesser's address is refused for that account, and only it;
//! - per address across accounts (`max_failures_per_address`): one address
//!   spraying many accounts is refused;
//! - per account across every address (`max_failures_per_account_total`, much
//!   higher): the last stop for a guesser with many addresses.
//!
//! Below that ceiling an account's failures do not refuse anyone; once they
//! pass what one address may make, every attempt on the account is answered
//! more slowly (`failure_delay_step` per failure, up to `failure_delay_max`).
//!
//! The counters are the store's ([`meterbook_core::shared::SharedState`]):
//! every node of a deployment counts against the same ones, so adding nodes
//! does not multiply what a guesser may try.

use super::PortalSettings;
use crate::{ApiError, AppState};
use std::time::Duration;

/// Counts an attempt against every key, atomically, before the password is
/// checked (so parallel requests, on any node, cannot all slip under the
/// limit), and returns each key's count with this attempt; or, when a key is
/// at its limit, counts nothing and says how many seconds are left. A
/// successful attempt is taken back with [`succeeded`].
pub(crate) async fn attempt(
    state: &AppState,
    keys: Vec<(String, u32)>,
    window: i64,
    now: i64,
) -> Result<Result<Vec<u32>, i64>, ApiError> {
    state
        .run(move |app| {
            let keys: Vec<(&str, u32)> = keys.iter().map(|(k, m)| (k.as_str(), *m)).collect();
            Ok(app.shared().attempt(&keys, window, now)?)
        })
        .await
}

/// Takes back a successful attempt: the `clear` keys start afresh, the
/// `give_back` key gets its attempt back. A failure is logged: the attempt
/// it concerns has succeeded either way.
pub(crate) async fn succeeded(state: &AppState, clear: Vec<String>, give_back: String) {
    let done = state
        .run(move |app| {
            let clear: Vec<&str> = clear.iter().map(String::as_str).collect();
            Ok(app.shared().succeeded(&clear, &give_back)?)
        })
        .await;
    if let Err(e) = done {
        tracing::warn!(error = %e, "cannot take back a successful attempt");
    }
}

/// How long to wait before checking a password, given the account's failures
/// so far (from every address): nothing up to what one address may make,
/// then a step more per failure, up to the maximum.
pub(crate) fn delay(s: &PortalSettings, failures: u32) -> Duration {
    let over = failures.saturating_sub(s.max_failures_per_account);
    s.failure_delay_step
        .saturating_mul(over)
        .min(s.failure_delay_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_grows_past_one_address_worth_and_stops_at_its_maximum() {
        let s = PortalSettings {
            max_failures_per_account: 5,
            failure_delay_step: Duration::from_millis(250),
            failure_delay_max: Duration::from_secs(5),
            ..Default::default()
        };
        assert_eq!(delay(&s, 0), Duration::ZERO);
        assert_eq!(delay(&s, 5), Duration::ZERO);
        assert_eq!(delay(&s, 7), Duration::from_millis(500));
        assert_eq!(delay(&s, 90), Duration::from_secs(5));
    }
}
