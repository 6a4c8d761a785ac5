//! State the server keeps between requests that every node serving one
//! deployment must see alike: failed-attempt counters (sign-in and
//! set-password throttles), API rate limits (a token bucket per key), and
//! the one-time display of a new API key ("flashes").
//!
//! One process used to hold these in its own memory. With several `serve`
//! nodes behind a load balancer that is wrong in ways that matter: a guesser
//! gets each node's allowance (N nodes, N times the attempts), a key its
//! rate N times over, and the page that shows a new key once lands on a node
//! that never saw it. So they live behind [`SharedState`], part of every
//! [`crate::store::Store`]: the embedded SQLite store keeps them in memory
//! ([`MemSharedState`]; it serves one process), the PostgreSQL store in
//! tables that every node reads and writes under row locks.
//!
//! Semantics, for every implementation (the conformance suite checks them):
//! - All time comes in as arguments (from the server's
//!   [`crate::clock::Clock`]), so tests drive it and nodes agree as well as
//!   their clocks do.
//! - Arithmetic is exact integers: a bucket holds micro-tokens, refills at
//!   [`TokenRate::milli_per_sec`] micro-tokens a millisecond, so SQL and Rust
//!   compute the same numbers.
//! - Each operation is atomic: two nodes counting the same attempt at once
//!   both count it, and a flash is taken at most once.
//! - Everything is bounded: expired entries are swept, flashes are capped at
//!   [`FLASH_LIMIT`] (the oldest go first).

use crate::store::StoreResult;
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a new key waits for its page (seconds).
pub const FLASH_SECS: i64 = 300;
/// The most flashes held at once (the oldest are dropped first).
pub const FLASH_LIMIT: usize = 10_000;
/// A key's last use is worth recording at most this often (milliseconds).
pub const TOUCH_MILLIS: i64 = 60_000;
/// Retry-After when a bucket never refills (a rate of zero).
pub const NO_REFILL_RETRY_SECS: i64 = 60;
/// Micro-tokens in a token.
pub const MICRO: i64 = 1_000_000;

/// A token bucket's rate and size, in exact integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenRate {
    /// Tokens added per second, in thousandths (1500: one and a half a
    /// second). Equally: micro-tokens added per millisecond.
    pub milli_per_sec: u64,
    /// What a full bucket holds, in thousandths of a token (at least 1000).
    pub burst_milli: u64,
}

impl TokenRate {
    /// The rate of settings given in tokens (the command line's
    /// `--rate-limit 2.5 --rate-burst 10`), to the nearest thousandth; a
    /// bucket holds at least one token.
    pub fn from_tokens(per_sec: f64, burst: f64) -> TokenRate {
        let milli = |x: f64| {
            if x.is_finite() && x > 0.0 {
                // Saturates at u64::MAX for huge values.
                (x * 1000.0).round() as u64
            } else {
                0
            }
        };
        TokenRate {
            milli_per_sec: milli(per_sec).min(i64::MAX as u64 / 1_000_000),
            burst_milli: milli(burst).clamp(1000, i64::MAX as u64 / 1_000_000),
        }
    }

    /// A full bucket, in micro-tokens.
    pub fn burst_micro(&self) -> i64 {
        (self.burst_milli.max(1000) as i64).saturating_mul(1000)
    }

    /// Milliseconds an empty bucket takes to fill (0 when it never does):
    /// elapsed time is capped at this before it is multiplied, so nothing
    /// overflows.
    pub fn fill_millis(&self) -> i64 {
        let rate = self.milli_per_sec as i64;
        if rate == 0 {
            return 0;
        }
        let full = self.burst_micro();
        full / rate + i64::from(full % rate != 0)
    }

    /// The level of a bucket last at `level` (micro-tokens) at `at`, at `now`
    /// (milliseconds): refilled for the time since, up to full.
    pub fn refill(&self, level: i64, at: i64, now: i64) -> i64 {
        let elapsed = now.saturating_sub(at).clamp(0, self.fill_millis());
        level
            .saturating_add((self.milli_per_sec as i64).saturating_mul(elapsed))
            .min(self.burst_micro())
    }

    /// Whole seconds until a bucket at `level` (< one token) holds a token.
    pub fn retry_after(&self, level: i64) -> i64 {
        let rate = self.milli_per_sec as i64;
        if rate == 0 {
            return NO_REFILL_RETRY_SECS;
        }
        let need = (MICRO - level).max(1);
        let per_sec = rate.saturating_mul(1000);
        need / per_sec + i64::from(need % per_sec != 0)
    }
}

/// The state shared by every node of a deployment (see the module doc).
/// Errors are the store's (a PostgreSQL node may lose its connection);
/// callers decide whether to fail open or closed.
pub trait SharedState {
    /// Counts an attempt against every key (each with its limit), atomically:
    /// when any key is at its limit within `window_secs` of its window's
    /// start, counts nothing and returns `Err(seconds left)` of that window;
    /// otherwise counts it against all of them (a key whose window is over
    /// starts a new one at `now`) and returns each key's count with this
    /// attempt, in order.
    fn attempt(
        &self,
        keys: &[(&str, u32)],
        window_secs: i64,
        now: i64,
    ) -> StoreResult<Result<Vec<u32>, i64>>;

    /// Takes back a successful attempt: the `clear` keys start afresh, the
    /// `give_back` key gets one attempt back.
    fn succeeded(&self, clear: &[&str], give_back: &str) -> StoreResult<()>;

    /// Takes a token from `key`'s bucket (a new bucket starts full) at
    /// `now_millis`. `Ok(true)` when the key's last use is due to be recorded
    /// (the first token, then at most once per [`TOUCH_MILLIS`]); `Err(secs)`
    /// when the bucket holds less than a token: nothing is taken, and a token
    /// will be there in `secs` seconds (at least 1).
    fn take_token(
        &self,
        key: &str,
        rate: TokenRate,
        now_millis: i64,
    ) -> StoreResult<Result<bool, i64>>;

    /// Holds `payload` for the session (its token's SHA-256) and enrollment,
    /// replacing what was held there, for [`FLASH_SECS`].
    fn put_flash(
        &self,
        session: &[u8; 32],
        enrollment: &str,
        payload: &[u8],
        now: i64,
    ) -> StoreResult<()>;

    /// The payload held for the session and enrollment, removed: a second
    /// take finds nothing. Nothing once [`FLASH_SECS`] have passed.
    fn take_flash(
        &self,
        session: &[u8; 32],
        enrollment: &str,
        now: i64,
    ) -> StoreResult<Option<Vec<u8>>>;
}

/// Counters by key: (attempts, the window's start in Unix seconds).
pub type Counters = HashMap<String, (u32, i64)>;
/// A bucket: (micro-tokens, at (Unix ms), when its use was last recorded).
pub type BucketState = (i64, i64, Option<i64>);
/// Flashes by (session, enrollment): (when put, payload).
type Flashes = HashMap<([u8; 32], String), (i64, Vec<u8>)>;

/// [`SharedState`] in this process's memory: right for a deployment of one
/// process (the embedded SQLite store), and the reference the others match.
#[derive(Default)]
pub struct MemSharedState {
    counters: Mutex<HashMap<String, Counter>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    flashes: Mutex<Flashes>,
}

#[derive(Clone, Copy)]
struct Counter {
    count: u32,
    start: i64,
}

#[derive(Clone, Copy)]
struct Bucket {
    /// Micro-tokens at `at`.
    level: i64,
    /// Milliseconds.
    at: i64,
    touched: Option<i64>,
}

/// Counters and buckets kept before the stale ones are swept.
const SWEEP_ABOVE: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The one decision of [`SharedState::attempt`] given each key's counter (as
/// found, `None` when it has none): `Err(secs left)`, or the counters to
/// store and the counts to return. Shared by the implementations so they
/// cannot drift apart.
pub fn decide_attempt(
    keys: &[(&str, u32)],
    found: &Counters,
    window_secs: i64,
    now: i64,
) -> Result<(Counters, Vec<u32>), i64> {
    for (key, max) in keys {
        if let Some((n, start)) = found.get(*key) {
            if *n >= *max && now - start < window_secs {
                return Err(window_secs - (now - start));
            }
        }
    }
    let mut next = found.clone();
    let counts = keys
        .iter()
        .map(|(key, _)| {
            let e = next.entry(key.to_string()).or_insert((0, now));
            if now - e.1 >= window_secs {
                *e = (0, now);
            }
            e.0 = e.0.saturating_add(1);
            e.0
        })
        .collect();
    Ok((next, counts))
}

/// The one decision of [`SharedState::take_token`] for a bucket as found
/// (`None`: new, so full): the bucket to store, and the answer.
pub fn decide_token(
    found: Option<BucketState>,
    rate: TokenRate,
    now: i64,
) -> (BucketState, Result<bool, i64>) {
    let (level, at, touched) = found.unwrap_or((rate.burst_micro(), now, None));
    let level = rate.refill(level, at, now);
    let at = at.max(now);
    if level < MICRO {
        return ((level, at, touched), Err(rate.retry_after(level)));
    }
    let due = touched.is_none_or(|t| now - t > TOUCH_MILLIS);
    let touched = if due { Some(now) } else { touched };
    ((level - MICRO, at, touched), Ok(due))
}

impl SharedState for MemSharedState {
    fn attempt(
        &self,
        keys: &[(&str, u32)],
        window_secs: i64,
        now: i64,
    ) -> StoreResult<Result<Vec<u32>, i64>> {
        let mut m = lock(&self.counters);
        if m.len() > SWEEP_ABOVE {
            m.retain(|_, c| now - c.start < window_secs);
        }
        let found = keys
            .iter()
            .filter_map(|(k, _)| m.get(*k).map(|c| (k.to_string(), (c.count, c.start))))
            .collect();
        Ok(match decide_attempt(keys, &found, window_secs, now) {
            Err(secs) => Err(secs),
            Ok((next, counts)) => {
                for (k, (count, start)) in next {
                    m.insert(k, Counter { count, start });
                }
                Ok(counts)
            }
        })
    }

    fn succeeded(&self, clear: &[&str], give_back: &str) -> StoreResult<()> {
        let mut m = lock(&self.counters);
        for k in clear {
            m.remove(*k);
        }
        if let Some(c) = m.get_mut(give_back) {
            c.count = c.count.saturating_sub(1);
        }
        Ok(())
    }

    fn take_token(
        &self,
        key: &str,
        rate: TokenRate,
        now_millis: i64,
    ) -> StoreResult<Result<bool, i64>> {
        let now = now_millis;
        let mut m = lock(&self.buckets);
        if m.len() > SWEEP_ABOVE {
            // A bucket that has refilled and whose last use is recorded long
            // enough ago is the same as none: forgetting it changes nothing.
            m.retain(|_, b| {
                rate.refill(b.level, b.at, now) < rate.burst_micro()
                    || b.touched.is_some_and(|t| now - t <= TOUCH_MILLIS)
            });
        }
        let found = m.get(key).map(|b| (b.level, b.at, b.touched));
        let ((level, at, touched), answer) = decide_token(found, rate, now);
        m.insert(key.to_string(), Bucket { level, at, touched });
        Ok(answer)
    }

    fn put_flash(
        &self,
        session: &[u8; 32],
        enrollment: &str,
        payload: &[u8],
        now: i64,
    ) -> StoreResult<()> {
        let mut m = lock(&self.flashes);
        m.retain(|_, (at, _)| now - *at < FLASH_SECS);
        let key = (*session, enrollment.to_string());
        if !m.contains_key(&key) && m.len() >= FLASH_LIMIT {
            if let Some(oldest) = m
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
        }
        m.insert(key, (now, payload.to_vec()));
        Ok(())
    }

    fn take_flash(
        &self,
        session: &[u8; 32],
        enrollment: &str,
        now: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        let mut m = lock(&self.flashes);
        Ok(m.remove(&(*session, enrollment.to_string()))
            .filter(|(at, _)| now - *at < FLASH_SECS)
            .map(|(_, p)| p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_exact_thousandths() {
        let r = TokenRate::from_tokens(2.5, 0.2);
        assert_eq!(r.milli_per_sec, 2500);
        assert_eq!(r.burst_milli, 1000, "a bucket holds at least one token");
        assert_eq!(TokenRate::from_tokens(f64::NAN, -1.0).milli_per_sec, 0);
        let huge = TokenRate::from_tokens(1e300, 1e300);
        // Nothing overflows at the extremes.
        assert!(huge.refill(0, 0, i64::MAX) <= huge.burst_micro());
        assert!(huge.retry_after(0) >= 1);
    }

    #[test]
    fn refill_and_retry_after() {
        let r = TokenRate {
            milli_per_sec: 1000,
            burst_milli: 3000,
        };
        assert_eq!(r.fill_millis(), 3000);
        assert_eq!(r.refill(0, 0, 500), MICRO / 2);
        assert_eq!(r.refill(0, 0, 10_000), 3 * MICRO);
        assert_eq!(
            r.refill(MICRO, 1000, 0),
            MICRO,
            "time going back refills nothing"
        );
        assert_eq!(r.retry_after(0), 1);
        assert_eq!(r.retry_after(MICRO - 1), 1);
        let slow = TokenRate {
            milli_per_sec: 400,
            burst_milli: 1000,
        };
        // 1 token at 0.4/s: 2.5 s, so 3 whole seconds.
        assert_eq!(slow.retry_after(0), 3);
        let never = TokenRate {
            milli_per_sec: 0,
            burst_milli: 1000,
        };
        assert_eq!(never.retry_after(0), NO_REFILL_RETRY_SECS);
        assert_eq!(never.refill(0, 0, 1_000_000), 0);
    }

    #[test]
    fn a_counter_at_its_limit_counts_nothing() {
        let s = MemSharedState::default();
        assert_eq!(
            s.attempt(&[("a", 2), ("b", 9)], 60, 0).unwrap(),
            Ok(vec![1, 1])
        );
        assert_eq!(
            s.attempt(&[("a", 2), ("b", 9)], 60, 1).unwrap(),
            Ok(vec![2, 2])
        );
        assert_eq!(s.attempt(&[("a", 2), ("b", 9)], 60, 10).unwrap(), Err(50));
        // "b" was not counted by the refused attempt.
        assert_eq!(s.attempt(&[("b", 9)], 60, 10).unwrap(), Ok(vec![3]));
    }
}
