//! The state every `serve` node shares, on PostgreSQL: the conformance
//! scenarios on one store, then on two stores opened on the same database
//! (two nodes, each with its own pool), then what only the tables show: a
//! new key is sealed there and bound to its row, flashes are capped, and
//! expired counters and buckets are swept.
//!
//! Needs `MB_TEST_STORE` (see `common`); skipped with a note without it
//! unless `MB_REQUIRE_CLUSTER=1`.

mod common;

use common::{url, TestStore};
use meterbook_conformance::scenarios;
use meterbook_core::shared::{SharedState, TokenRate, FLASH_LIMIT};
use meterbook_core::store::StoreError;
use postgres::NoTls;

fn sql(t: &TestStore) -> postgres::Client {
    t.schema.config().connect(NoTls).expect("connect")
}

#[test]
fn shared_state_counts_refills_and_flashes() {
    let Some(url) = url("shared_state_counts_refills_and_flashes") else {
        return;
    };
    let t = TestStore::new(&url);
    scenarios::shared_state_counts_refills_and_flashes(&*t);
}

/// Two stores on one database, as two nodes have.
#[test]
fn shared_state_is_seen_by_every_handle() {
    let Some(url) = url("shared_state_is_seen_by_every_handle") else {
        return;
    };
    let t = TestStore::new(&url);
    let other = t.another();
    scenarios::shared_state_is_seen_by_every_handle(&*t, &other);
}

/// The secret is not in the table; a sealed flash moved to another session
/// does not open there; the other node opens what this one sealed.
#[test]
fn a_new_key_is_sealed_and_bound_to_its_row() {
    let Some(url) = url("a_new_key_is_sealed_and_bound_to_its_row") else {
        return;
    };
    let t = TestStore::new(&url);
    let secret = b"mbk_0123456789abcdef_the-secret-part-of-a-new-key";
    let (mine, theirs) = ([1u8; 32], [2u8; 32]);
    let now = 1_800_000_000;
    t.put_flash(&mine, "E1", secret, now).unwrap();
    let mut c = sql(&t);
    let rows = c
        .query(
            "SELECT session, enrollment, sealed FROM shared_key_flash",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    let sealed: Vec<u8> = rows[0].get(2);
    assert!(
        !sealed
            .windows(10)
            .any(|w| secret.windows(10).any(|s| s == w)),
        "no ten bytes of the secret in the table"
    );
    assert_eq!(sealed.len(), secret.len() + 16, "the text and its tag");
    // Moved to another session's row, it does not open.
    c.execute("UPDATE shared_key_flash SET session = $1", &[&&theirs[..]])
        .unwrap();
    assert!(matches!(
        t.take_flash(&theirs, "E1", now),
        Err(StoreError::Backend(_))
    ));
    // Sealed on one node, opened on another.
    t.put_flash(&mine, "E1", secret, now).unwrap();
    let other = t.another();
    assert_eq!(
        other.take_flash(&mine, "E1", now + 1).unwrap().as_deref(),
        Some(&secret[..])
    );
}

/// At the cap, a new flash makes room by dropping the oldest; expired ones
/// go first.
#[test]
fn flashes_are_capped_oldest_first() {
    let Some(url) = url("flashes_are_capped_oldest_first") else {
        return;
    };
    let t = TestStore::new(&url);
    let now = 1_800_000_000;
    let mut c = sql(&t);
    // FLASH_LIMIT live ones (oldest: `now - 200`) and ten expired ones.
    c.execute(
        "INSERT INTO shared_key_flash (session, enrollment, created_at, nonce, sealed) \
         SELECT sha256(i::TEXT::BYTEA), 'E1', $1::BIGINT + i / 100, '\\x000000000000000000000000', '\\x00' \
         FROM generate_series(0, $2::BIGINT - 1) AS i",
        &[&(now - 200), &(FLASH_LIMIT as i64)],
    )
    .unwrap();
    c.execute(
        "INSERT INTO shared_key_flash (session, enrollment, created_at, nonce, sealed) \
         SELECT sha256(i::TEXT::BYTEA), 'E2', $1::BIGINT, '\\x000000000000000000000000', '\\x00' \
         FROM generate_series(1, 10) AS i",
        &[&(now - 10_000)],
    )
    .unwrap();
    t.put_flash(&[9u8; 32], "E1", b"new", now).unwrap();
    let count = |c: &mut postgres::Client, q: &str| -> i64 { c.query_one(q, &[]).unwrap().get(0) };
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM shared_key_flash"),
        FLASH_LIMIT as i64
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM shared_key_flash WHERE enrollment = 'E2'"
        ),
        0,
        "expired ones are swept"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM shared_key_flash WHERE created_at = $0::BIGINT"
                .replace("$0", &(now - 200).to_string())
                .as_str()
        ),
        99,
        "one of the oldest made room"
    );
    assert_eq!(
        t.take_flash(&[9u8; 32], "E1", now).unwrap().as_deref(),
        Some(&b"new"[..])
    );
}

/// Counters whose window is over and buckets that have refilled are swept
/// (now and then), and live ones are kept.
#[test]
fn expired_counters_and_buckets_are_swept() {
    let Some(url) = url("expired_counters_and_buckets_are_swept") else {
        return;
    };
    let t = TestStore::new(&url);
    let now = 1_800_000_000;
    let rate = TokenRate {
        milli_per_sec: 1000,
        burst_milli: 5000,
    };
    t.attempt(&[("old", 5)], 60, now - 600).unwrap().unwrap();
    t.take_token("old", rate, (now - 600) * 1000)
        .unwrap()
        .unwrap();
    t.attempt(&[("live", 5)], 60, now - 10).unwrap().unwrap();
    t.take_token("live", rate, (now - 1) * 1000)
        .unwrap()
        .unwrap();
    let mut c = sql(&t);
    let mut gone = false;
    for i in 0..1000 {
        t.attempt(&[("busy", u32::MAX)], 60, now).unwrap().unwrap();
        t.take_token(&format!("busy{}", i % 2), rate, now * 1000)
            .unwrap()
            .ok();
        let left: i64 = c
            .query_one(
                "SELECT (SELECT count(*) FROM shared_counter WHERE key = 'old') \
                      + (SELECT count(*) FROM shared_bucket WHERE key = 'old')",
                &[],
            )
            .unwrap()
            .get(0);
        if left == 0 {
            gone = true;
            break;
        }
    }
    assert!(gone, "the expired rows were never swept");
    let live: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM shared_counter WHERE key = 'live') \
                  + (SELECT count(*) FROM shared_bucket WHERE key = 'live')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(live, 2, "live rows are kept");
}

/// Two nodes claiming the same export run keys at once: one wins each.
#[test]
fn export_runs_are_claimed_once_across_nodes() {
    let Some(url) = url("export_runs_are_claimed_once_across_nodes") else {
        return;
    };
    let t = TestStore::new(&url);
    let other = t.another();
    scenarios::export_runs_are_claimed_once_across_handles(&*t, &other);
}
