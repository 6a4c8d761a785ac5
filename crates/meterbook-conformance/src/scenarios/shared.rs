//! The state every node of a deployment shares (`meterbook_core::shared`):
//! failed-attempt counters, token buckets, key flashes. Times are arguments,
//! so the scenarios move them by hand.

use meterbook_core::shared::{SharedState, TokenRate, FLASH_SECS};
use meterbook_core::store::Store;

const WINDOW: i64 = 60;

fn rate(milli_per_sec: u64, burst_milli: u64) -> TokenRate {
    TokenRate {
        milli_per_sec,
        burst_milli,
    }
}

/// Counters refuse at their limit and say the seconds left, a refused
/// attempt counts nothing, a window over starts anew, and a success clears
/// or gives back; a bucket refills by the given clock, up to its burst; a
/// flash is taken once, per session and enrollment, and not after it expires.
pub fn shared_state_counts_refills_and_flashes<S: Store>(s: &S) {
    let s: &dyn SharedState = s;
    let t0 = 1_800_000_000;
    // Limits: "p" 2, "q" 9.
    let both = [("p", 2), ("q", 9)];
    assert_eq!(s.attempt(&both, WINDOW, t0).unwrap(), Ok(vec![1, 1]));
    assert_eq!(s.attempt(&both, WINDOW, t0 + 10).unwrap(), Ok(vec![2, 2]));
    assert_eq!(s.attempt(&both, WINDOW, t0 + 20).unwrap(), Err(40));
    // The refused attempt counted against neither key.
    assert_eq!(
        s.attempt(&[("q", 9)], WINDOW, t0 + 20).unwrap(),
        Ok(vec![3])
    );
    // A success clears "p" and gives "q" its attempt back (3 → 2).
    s.succeeded(&["p"], "q").unwrap();
    assert_eq!(s.attempt(&both, WINDOW, t0 + 31).unwrap(), Ok(vec![1, 3]));
    s.succeeded(&[], "q").unwrap();
    s.succeeded(&["nobody"], "no one").unwrap();
    assert_eq!(
        s.attempt(&[("q", 9)], WINDOW, t0 + 33).unwrap(),
        Ok(vec![3])
    );
    // "p"'s new window began at t0 + 31.
    assert_eq!(
        s.attempt(&[("p", 2)], WINDOW, t0 + 34).unwrap(),
        Ok(vec![2])
    );
    assert_eq!(s.attempt(&[("p", 2)], WINDOW, t0 + 35).unwrap(), Err(56));
    assert_eq!(s.attempt(&[("p", 2)], WINDOW, t0 + 90).unwrap(), Err(1));
    // Windows over: each key starts a new one.
    assert_eq!(
        s.attempt(&[("p", 2)], WINDOW, t0 + 91).unwrap(),
        Ok(vec![1])
    );
    assert_eq!(
        s.attempt(&[("q", 9)], WINDOW, t0 + 59).unwrap(),
        Ok(vec![4])
    );
    assert_eq!(
        s.attempt(&[("q", 9)], WINDOW, t0 + 60).unwrap(),
        Ok(vec![1])
    );
    // Keys are exact strings: a prefix is another key.
    assert_eq!(
        s.attempt(&[("p|", 2)], WINDOW, t0 + 92).unwrap(),
        Ok(vec![1])
    );

    // One token a second, three at most; milliseconds.
    let ms = 1_800_000_000_000;
    let r = rate(1000, 3000);
    assert_eq!(
        s.take_token("k", r, ms).unwrap(),
        Ok(true),
        "the first use is recorded"
    );
    assert_eq!(s.take_token("k", r, ms).unwrap(), Ok(false));
    assert_eq!(s.take_token("k", r, ms).unwrap(), Ok(false));
    assert_eq!(s.take_token("k", r, ms).unwrap(), Err(1));
    assert_eq!(s.take_token("k", r, ms + 999).unwrap(), Err(1));
    assert_eq!(s.take_token("k", r, ms + 1000).unwrap(), Ok(false));
    assert_eq!(s.take_token("k", r, ms + 1000).unwrap(), Err(1));
    assert_eq!(s.take_token("other", r, ms + 1000).unwrap(), Ok(true));
    // A long pause refills to the burst, no further; the use is due again.
    let later = ms + 100_000;
    assert_eq!(s.take_token("k", r, later).unwrap(), Ok(true));
    assert_eq!(s.take_token("k", r, later).unwrap(), Ok(false));
    assert_eq!(s.take_token("k", r, later).unwrap(), Ok(false));
    assert_eq!(s.take_token("k", r, later).unwrap(), Err(1));
    // Within a minute of the last record, none is due.
    assert_eq!(s.take_token("k", r, later + 60_000).unwrap(), Ok(false));
    assert_eq!(s.take_token("k", r, later + 61_001).unwrap(), Ok(true));
    // 0.4 tokens a second: 2.5 s to the next, so 3 whole seconds.
    let slow = rate(400, 1000);
    assert_eq!(s.take_token("slow", slow, ms).unwrap(), Ok(true));
    assert_eq!(s.take_token("slow", slow, ms).unwrap(), Err(3));
    assert_eq!(s.take_token("slow", slow, ms + 2499).unwrap(), Err(1));
    assert_eq!(s.take_token("slow", slow, ms + 2500).unwrap(), Ok(false));
    // A bucket that never refills says a minute.
    let none = rate(0, 1000);
    assert_eq!(s.take_token("none", none, ms).unwrap(), Ok(true));
    assert_eq!(s.take_token("none", none, ms + 3_600_000).unwrap(), Err(60));

    // Flashes, by session and enrollment.
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let t = 1_800_000_000;
    s.put_flash(&a, "E1", b"one", t).unwrap();
    assert_eq!(s.take_flash(&b, "E1", t).unwrap(), None, "another session");
    assert_eq!(
        s.take_flash(&a, "E2", t).unwrap(),
        None,
        "another enrollment"
    );
    assert_eq!(
        s.take_flash(&a, "E1", t + 1).unwrap().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(s.take_flash(&a, "E1", t + 1).unwrap(), None, "taken once");
    // A second put replaces the first.
    s.put_flash(&a, "E1", b"x", t).unwrap();
    s.put_flash(&a, "E1", b"y", t + 1).unwrap();
    assert_eq!(
        s.take_flash(&a, "E1", t + 2).unwrap().as_deref(),
        Some(&b"y"[..])
    );
    // Each pair holds its own; any bytes come back as they went in.
    let bytes: Vec<u8> = (0..=255).collect();
    s.put_flash(&a, "E1", b"a1", t).unwrap();
    s.put_flash(&a, "E2", &bytes, t).unwrap();
    s.put_flash(&b, "E1", b"", t).unwrap();
    assert_eq!(
        s.take_flash(&b, "E1", t).unwrap().as_deref(),
        Some(&b""[..])
    );
    assert_eq!(s.take_flash(&a, "E2", t).unwrap(), Some(bytes));
    assert_eq!(
        s.take_flash(&a, "E1", t).unwrap().as_deref(),
        Some(&b"a1"[..])
    );
    // Expiry: shown a second before, never at FLASH_SECS.
    s.put_flash(&a, "E1", b"just", t).unwrap();
    assert_eq!(
        s.take_flash(&a, "E1", t + FLASH_SECS - 1)
            .unwrap()
            .as_deref(),
        Some(&b"just"[..])
    );
    s.put_flash(&a, "E1", b"late", t).unwrap();
    assert_eq!(s.take_flash(&a, "E1", t + FLASH_SECS).unwrap(), None);
    assert_eq!(
        s.take_flash(&a, "E1", t).unwrap(),
        None,
        "an expired take removes it"
    );
}

/// Two handles on one deployment's state see the same counters, buckets and
/// flashes, also when used at once from many threads: a limit lets exactly
/// its number through, a bucket gives out exactly its tokens, a flash is
/// taken once. (The embedded store has one handle per process: it passes the
/// same one twice.)
pub fn shared_state_is_seen_by_every_handle<S: Store>(one: &S, two: &S) {
    let (x, y): (&(dyn SharedState + Sync), &(dyn SharedState + Sync)) = (one, two);
    let t = 1_800_000_000;
    assert_eq!(x.attempt(&[("h", 1)], WINDOW, t).unwrap(), Ok(vec![1]));
    assert_eq!(y.attempt(&[("h", 1)], WINDOW, t + 1).unwrap(), Err(59));
    y.succeeded(&["h"], "").unwrap();
    assert_eq!(x.attempt(&[("h", 1)], WINDOW, t + 2).unwrap(), Ok(vec![1]));

    let ms = t * 1000;
    let once = rate(0, 1000);
    assert_eq!(x.take_token("b", once, ms).unwrap(), Ok(true));
    assert_eq!(y.take_token("b", once, ms).unwrap(), Err(60));

    let session = [7u8; 32];
    x.put_flash(&session, "E1", b"secret", t).unwrap();
    assert_eq!(
        y.take_flash(&session, "E1", t).unwrap().as_deref(),
        Some(&b"secret"[..])
    );
    assert_eq!(x.take_flash(&session, "E1", t).unwrap(), None);

    // At once: 8 threads, alternating handles.
    let handles = [x, y];
    let mut counts: Vec<u32> = std::thread::scope(|sc| {
        let runs: Vec<_> = (0..8)
            .map(|i| {
                let h = handles[i % 2];
                sc.spawn(move || {
                    (0..5)
                        .filter_map(|_| h.attempt(&[("race", 20)], WINDOW, t).unwrap().ok())
                        .map(|c| c[0])
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        runs.into_iter()
            .flat_map(|r| r.join().expect("thread"))
            .collect()
    });
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<u32>>(),
        "each count once, 20 let through"
    );

    let ten = rate(0, 10_000);
    let taken: usize = std::thread::scope(|sc| {
        let runs: Vec<_> = (0..8)
            .map(|i| {
                let h = handles[i % 2];
                sc.spawn(move || {
                    (0..3)
                        .filter(|_| h.take_token("race", ten, ms).unwrap().is_ok())
                        .count()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("thread")).sum()
    });
    assert_eq!(taken, 10, "a bucket of ten gives out ten tokens");

    x.put_flash(&session, "E2", b"once", t).unwrap();
    let got: usize = std::thread::scope(|sc| {
        let runs: Vec<_> = (0..8)
            .map(|i| {
                let h = handles[i % 2];
                sc.spawn(move || usize::from(h.take_flash(&session, "E2", t).unwrap().is_some()))
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("thread")).sum()
    });
    assert_eq!(got, 1, "a flash is taken once");
}
