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

use super::PortalSettings;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Failed attempts per key in a window.
#[derive(Default)]
pub struct Throttle {
    map: Mutex<HashMap<String, (u32, i64)>>,
}

impl Throttle {
    /// Counts an attempt against every key, atomically, before the password is
    /// checked (so parallel requests cannot all slip under the limit), and
    /// returns each key's count with this attempt; or, when a key is at its
    /// limit, counts nothing and says how many seconds are left. A successful
    /// attempt is taken back with [`Throttle::succeeded`].
    pub(crate) fn attempt(
        &self,
        keys: &[(&str, u32)],
        window: i64,
        now: i64,
    ) -> Result<Vec<u32>, i64> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            m.retain(|_, (_, start)| now - *start < window);
        }
        for (key, max) in keys {
            if let Some((n, start)) = m.get(*key) {
                if *n >= *max && now - start < window {
                    return Err(window - (now - start));
                }
            }
        }
        Ok(keys
            .iter()
            .map(|(key, _)| {
                let e = m.entry(key.to_string()).or_insert((0, now));
                if now - e.1 >= window {
                    *e = (0, now);
                }
                e.0 += 1;
                e.0
            })
            .collect())
    }

    /// Takes back a successful attempt: the `clear` keys start afresh, the
    /// `give_back` key gets its attempt back.
    pub(crate) fn succeeded(&self, clear: &[&str], give_back: &str) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for k in clear {
            m.remove(*k);
        }
        if let Some(e) = m.get_mut(give_back) {
            e.0 = e.0.saturating_sub(1);
        }
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
