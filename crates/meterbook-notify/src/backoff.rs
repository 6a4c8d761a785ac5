//! When to try a failed delivery again.
//!
//! Exponential backoff (the delay doubles after each failed attempt) capped at
//! `cap_ms`, with "equal jitter": the delay is drawn between half of the
//! exponential figure and all of it, so that deliveries that failed together
//! (a receiver down for ten minutes) do not all come back at the same second,
//! while a delivery still never waits less than half its step. The random
//! number comes in as an argument, so the schedule is a pure function and
//! tests pin it.

/// A retry schedule. `max_attempts` counts every attempt, the first included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: i64,
    pub cap_ms: i64,
    pub max_attempts: u32,
}

impl Backoff {
    /// The schedule deliveries use unless configured otherwise: 30 s, doubling
    /// up to 6 hours, 14 attempts: the last attempt comes 26½ hours after the
    /// first at most (13¼ at the least, with jitter), so a receiver
    /// down over a night or a weekend day still gets its notifications.
    pub const DEFAULT: Backoff = Backoff {
        base_ms: 30_000,
        cap_ms: 6 * 3_600_000,
        max_attempts: 14,
    };

    /// The time (unix ms) of the next attempt after `attempts_done` attempts
    /// have failed, or `None` when none is left (the delivery has failed for
    /// good). `jitter` is any random number (`0` gives the shortest delay,
    /// `u64::MAX` the longest). With `attempts_done == 0` (nothing tried yet)
    /// the answer is `now_ms`.
    pub fn next_attempt(&self, attempts_done: u32, now_ms: i64, jitter: u64) -> Option<i64> {
        if attempts_done >= self.max_attempts {
            return None;
        }
        if attempts_done == 0 {
            return Some(now_ms);
        }
        let delay = self.delay_ms(attempts_done, jitter);
        Some(now_ms.saturating_add(delay))
    }

    /// The delay after `attempts_done >= 1` failed attempts.
    fn delay_ms(&self, attempts_done: u32, jitter: u64) -> i64 {
        let base = self.base_ms.max(1) as i128;
        let cap = (self.cap_ms as i128).max(base);
        // base × 2^(n-1), saturating long before i128 could overflow.
        let shift = (attempts_done - 1).min(62);
        let full = (base << shift).min(cap);
        let half = full / 2;
        let extra = (full - half) * jitter as i128 / u64::MAX as i128;
        (half + extra) as i64
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base_ms: 1_000,
        cap_ms: 60_000,
        max_attempts: 10,
    };

    #[test]
    fn the_first_attempt_is_now() {
        assert_eq!(B.next_attempt(0, 5_000, 77), Some(5_000));
    }

    #[test]
    fn doubles_from_base_and_caps_without_jitter_at_the_top() {
        let delays: Vec<i64> = (1..10)
            .map(|n| B.next_attempt(n, 0, u64::MAX).unwrap())
            .collect();
        assert_eq!(
            delays,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
        );
    }

    #[test]
    fn lowest_jitter_is_half_the_step() {
        let delays: Vec<i64> = (1..10).map(|n| B.next_attempt(n, 0, 0).unwrap()).collect();
        assert_eq!(
            delays,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
    }

    #[test]
    fn monotone_and_capped_for_any_jitter() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..1_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut last = 0;
            for n in 1..B.max_attempts {
                let d = B.next_attempt(n, 1_000_000, rng).unwrap() - 1_000_000;
                assert!(d >= last, "attempt {n}: {d} < {last}");
                assert!(d <= B.cap_ms);
                assert!(d >= (B.base_ms << (n - 1)).min(B.cap_ms) / 2);
                last = d;
            }
        }
    }

    #[test]
    fn gives_up_after_max_attempts() {
        assert!(B.next_attempt(9, 0, 0).is_some());
        assert_eq!(B.next_attempt(10, 0, 0), None);
        assert_eq!(B.next_attempt(u32::MAX, 0, 0), None);
        let once = Backoff {
            max_attempts: 1,
            ..B
        };
        assert_eq!(once.next_attempt(1, 0, 0), None);
    }

    #[test]
    fn odd_settings_neither_panic_nor_go_backwards() {
        let odd = Backoff {
            base_ms: 0,
            cap_ms: -5,
            max_attempts: u32::MAX,
        };
        let mut last = 0;
        for n in [1, 2, 63, 64, 1_000, u32::MAX - 1] {
            let d = odd.next_attempt(n, i64::MAX - 10, u64::MAX).unwrap();
            assert!(d >= last);
            last = d;
        }
        let huge = Backoff {
            base_ms: i64::MAX,
            cap_ms: i64::MAX,
            max_attempts: 100,
        };
        assert_eq!(huge.next_attempt(99, 0, u64::MAX), Some(i64::MAX));
    }

    #[test]
    fn default_schedule_spans_about_a_day() {
        let b = Backoff::DEFAULT;
        let total = |jitter| {
            (1..b.max_attempts)
                .map(|n| b.next_attempt(n, 0, jitter).unwrap())
                .sum::<i64>()
        };
        let hours = |ms: i64| ms as f64 / 3_600_000.0;
        assert!(
            (26.0..28.0).contains(&hours(total(u64::MAX))),
            "{}",
            hours(total(u64::MAX))
        );
        assert!(
            (13.0..15.0).contains(&hours(total(0))),
            "{}",
            hours(total(0))
        );
    }
}
