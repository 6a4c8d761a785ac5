//! [`SharedState`] in PostgreSQL: what every `serve` node must see alike
//! (failed-attempt counters, token buckets, new keys waiting to be shown),
//! in three tables of migration 0003.
//!
//! **One short transaction an operation, under row locks.** A counter
//! attempt upserts every key's row (a no-op update that takes its lock,
//! keys in sorted order so two attempts cannot deadlock), decides with
//! [`decide_attempt`] — the in-memory reference's own code — and writes the
//! counts, or rolls back when refused: a refused attempt leaves no trace, as
//! in memory. A token take is one `INSERT … ON CONFLICT DO UPDATE …
//! RETURNING` whose arithmetic is [`TokenRate`]'s in integers (micro-tokens,
//! milliseconds, elapsed time capped at the time to fill so nothing
//! overflows): one round trip on every API request. A flash is taken with
//! `DELETE … RETURNING`, so of two nodes taking it at once exactly one gets it.
//!
//! **Bounded.** Expired rows are swept now and then (every
//! [`SWEEP_EVERY`]th operation of a process): counters whose window is over,
//! buckets that have refilled and whose use is recorded, flashes past
//! [`FLASH_SECS`]. A swept row is one the next operation would treat as
//! absent anyway, so sweeping changes no answer. Sweeps skip locked rows
//! (`FOR UPDATE SKIP LOCKED`): they never wait for, or deadlock with, an
//! operation. Flashes are also capped at [`FLASH_LIMIT`], oldest first,
//! under an advisory lock that orders the (rare) puts.
//!
//! **A new key is sealed.** Its secret is on its way to the one page that
//! shows it, and must not sit readable in the database meanwhile: not in a
//! dump, a replica, a query log or an operator's `SELECT`. Each flash is
//! sealed with ChaCha20-Poly1305 under a key derived by HMAC-SHA256 from a
//! server secret of its own (`JobStore::secret("shared-state-seal")`, 32
//! random bytes made once and shared by every node), with a random 96-bit
//! nonce, and the session hash and enrollment as associated data: a sealed
//! flash moved to another session's row does not open. What this does not
//! do: someone holding the whole database (the secret's row included)
//! within the five minutes a flash lives could open it; against that, the
//! flash is gone once shown and swept once expired, and the secret never
//! leaves the database in any other form.

use crate::{backend, PgStore};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use meterbook_core::jobs::JobStore;
use meterbook_core::shared::{
    decide_attempt, Counters, SharedState, TokenRate, FLASH_LIMIT, FLASH_SECS, MICRO, TOUCH_MILLIS,
};
use meterbook_core::store::StoreResult;
use sha2::Sha256;
use std::sync::atomic::{AtomicU64, Ordering};

/// Operations of a kind between two sweeps of its table, in one process.
const SWEEP_EVERY: u64 = 64;
/// Rows one sweep deletes at most.
const SWEEP_ROWS: i64 = 1000;
/// The advisory lock that orders flash puts (so the cap holds).
const FLASH_LOCK: i64 = 0x6d62_666c_6173;
/// The server secret the sealing key is derived from.
const SEAL_SECRET: &str = "shared-state-seal";
/// What the derivation is for (changing it changes every key).
const SEAL_INFO: &[u8] = b"meterbook key flash ChaCha20-Poly1305 v1";

static COUNTER_OPS: AtomicU64 = AtomicU64::new(0);
static BUCKET_OPS: AtomicU64 = AtomicU64::new(0);

fn sweep_due(ops: &AtomicU64) -> bool {
    ops.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
}

/// The take of a token, as one statement: `$1` key, `$2` a full bucket
/// (micro-tokens), `$3` now (ms), `$4` rate (micro-tokens a ms), `$5` the
/// time to fill (ms). `R` is the refilled level, as [`TokenRate::refill`].
fn take_sql() -> String {
    let r = "LEAST($2::BIGINT, b.level + $4::BIGINT * LEAST(GREATEST($3::BIGINT - b.at_ms, 0), $5::BIGINT))";
    let due = format!("(b.touched_ms IS NULL OR $3::BIGINT - b.touched_ms > {TOUCH_MILLIS})");
    format!(
        "INSERT INTO shared_bucket AS b (key, level, at_ms, touched_ms, outcome) \
         VALUES ($1, $2::BIGINT - {MICRO}, $3::BIGINT, $3::BIGINT, 2) \
         ON CONFLICT (key) DO UPDATE SET \
           level = CASE WHEN {r} >= {MICRO} THEN {r} - {MICRO} ELSE {r} END, \
           at_ms = GREATEST(b.at_ms, $3::BIGINT), \
           touched_ms = CASE WHEN {r} >= {MICRO} AND {due} THEN $3::BIGINT ELSE b.touched_ms END, \
           outcome = CASE WHEN {r} < {MICRO} THEN 0 WHEN {due} THEN 2 ELSE 1 END \
         RETURNING level, outcome"
    )
}

impl PgStore {
    /// The ChaCha20-Poly1305 key of flashes: HMAC-SHA256 of [`SEAL_INFO`]
    /// under the deployment's sealing secret (made by the first node).
    fn seal_key(&self) -> StoreResult<ChaCha20Poly1305> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| backend(format!("no randomness: {e}")))?;
        let secret = self.secret(SEAL_SECRET, &fresh)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret)
            .map_err(|e| backend(format!("the sealing secret: {e}")))?;
        mac.update(SEAL_INFO);
        let key = mac.finalize().into_bytes();
        Ok(ChaCha20Poly1305::new(Key::from_slice(&key)))
    }

    fn sweep_counters(&self, window_secs: i64, now: i64) {
        let done = self.conn().and_then(|mut c| {
            c.execute(
                "DELETE FROM shared_counter WHERE key IN (SELECT key FROM shared_counter \
                 WHERE window_start <= $1 ORDER BY window_start LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&now.saturating_sub(window_secs), &SWEEP_ROWS],
            )
            .map_err(backend)
        });
        // A failed sweep leaves the rows to the next one: nothing is wrong
        // meanwhile, and the request it follows has its answer.
        let _ = done;
    }

    fn sweep_buckets(&self, rate: TokenRate, now: i64) {
        let done = self.conn().and_then(|mut c| {
            c.execute(
                "DELETE FROM shared_bucket WHERE key IN (SELECT key FROM shared_bucket \
                 WHERE at_ms <= $1 AND (touched_ms IS NULL OR touched_ms < $2) \
                 ORDER BY at_ms LIMIT $3 FOR UPDATE SKIP LOCKED)",
                &[
                    &now.saturating_sub(rate.fill_millis()),
                    &now.saturating_sub(TOUCH_MILLIS),
                    &SWEEP_ROWS,
                ],
            )
            .map_err(backend)
        });
        let _ = done;
    }
}

fn aad(session: &[u8; 32], enrollment: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(32 + enrollment.len());
    a.extend_from_slice(session);
    a.extend_from_slice(enrollment.as_bytes());
    a
}

impl SharedState for PgStore {
    fn attempt(
        &self,
        keys: &[(&str, u32)],
        window_secs: i64,
        now: i64,
    ) -> StoreResult<Result<Vec<u32>, i64>> {
        let mut locked: Vec<String> = keys.iter().map(|(k, _)| k.to_string()).collect();
        locked.sort_unstable();
        locked.dedup();
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(backend)?;
        // Every key's row, locked (in sorted order); a new one reads (0, now).
        let rows = tx
            .query(
                "INSERT INTO shared_counter (key, count, window_start) \
                 SELECT k, 0, $2 FROM unnest($1::TEXT[]) AS k ORDER BY k \
                 ON CONFLICT (key) DO UPDATE SET count = shared_counter.count \
                 RETURNING key, count, window_start, (xmax = 0) AS made",
                &[&locked, &now],
            )
            .map_err(backend)?;
        // Rows this attempt made (inserted: `xmax` is 0) stand for "no counter yet".
        let found: Counters = rows
            .iter()
            .filter(|r| !r.get::<_, bool>(3))
            .map(|r| {
                let count: i64 = r.get(1);
                (
                    r.get(0),
                    (count.clamp(0, i64::from(u32::MAX)) as u32, r.get(2)),
                )
            })
            .collect();
        let (next, counts) = match decide_attempt(keys, &found, window_secs, now) {
            Ok(v) => v,
            Err(secs) => {
                // Refused: nothing is counted, and the rows made above go.
                tx.rollback().map_err(backend)?;
                return Ok(Err(secs));
            }
        };
        let (names, (values, starts)): (Vec<String>, (Vec<i64>, Vec<i64>)) = next
            .into_iter()
            .map(|(k, (n, start))| (k, (i64::from(n), start)))
            .unzip();
        tx.execute(
            "UPDATE shared_counter AS c SET count = v.count, window_start = v.start \
             FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS v(key, count, start) \
             WHERE c.key = v.key",
            &[&names, &values, &starts],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        if sweep_due(&COUNTER_OPS) {
            self.sweep_counters(window_secs, now);
        }
        Ok(Ok(counts))
    }

    fn succeeded(&self, clear: &[&str], give_back: &str) -> StoreResult<()> {
        let clear: Vec<&str> = clear.to_vec();
        self.write(|tx| {
            tx.execute("DELETE FROM shared_counter WHERE key = ANY($1)", &[&clear])
                .map_err(backend)?;
            tx.execute(
                "UPDATE shared_counter SET count = GREATEST(count - 1, 0) WHERE key = $1",
                &[&give_back],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn take_token(
        &self,
        key: &str,
        rate: TokenRate,
        now_millis: i64,
    ) -> StoreResult<Result<bool, i64>> {
        let mut c = self.conn()?;
        let row = c
            .query_one(
                take_sql().as_str(),
                &[
                    &key,
                    &rate.burst_micro(),
                    &now_millis,
                    &(rate.milli_per_sec as i64),
                    &rate.fill_millis(),
                ],
            )
            .map_err(backend)?;
        drop(c);
        let (level, outcome): (i64, i16) = (row.get(0), row.get(1));
        if sweep_due(&BUCKET_OPS) {
            self.sweep_buckets(rate, now_millis);
        }
        Ok(match outcome {
            0 => Err(rate.retry_after(level)),
            1 => Ok(false),
            _ => Ok(true),
        })
    }

    fn put_flash(
        &self,
        session: &[u8; 32],
        enrollment: &str,
        payload: &[u8],
        now: i64,
    ) -> StoreResult<()> {
        let cipher = self.seal_key()?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| backend(format!("no randomness: {e}")))?;
        let aad = aad(session, enrollment);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: payload,
                    aad: &aad,
                },
            )
            .map_err(|_| backend("cannot seal a key flash"))?;
        let limit = FLASH_LIMIT as i64;
        self.write(|tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FLASH_LOCK])
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM shared_key_flash WHERE created_at <= $1",
                &[&now.saturating_sub(FLASH_SECS)],
            )
            .map_err(backend)?;
            // Room for this one: the oldest others go (puts are ordered by
            // the lock; takes only ever make room).
            tx.execute(
                "DELETE FROM shared_key_flash WHERE (session, enrollment) IN ( \
                   SELECT session, enrollment FROM shared_key_flash \
                   WHERE NOT (session = $1 AND enrollment = $2) \
                   ORDER BY created_at \
                   LIMIT GREATEST((SELECT count(*) FROM shared_key_flash \
                                   WHERE NOT (session = $1 AND enrollment = $2)) - ($3::BIGINT - 1), 0))",
                &[&&session[..], &enrollment, &limit],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO shared_key_flash (session, enrollment, created_at, nonce, sealed) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (session, enrollment) DO UPDATE SET \
                   created_at = EXCLUDED.created_at, nonce = EXCLUDED.nonce, sealed = EXCLUDED.sealed",
                &[&&session[..], &enrollment, &now, &&nonce[..], &sealed],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn take_flash(
        &self,
        session: &[u8; 32],
        enrollment: &str,
        now: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        let row = {
            let mut c = self.conn()?;
            c.query_opt(
                "DELETE FROM shared_key_flash WHERE session = $1 AND enrollment = $2 \
                 RETURNING created_at, nonce, sealed",
                &[&&session[..], &enrollment],
            )
            .map_err(backend)?
        };
        let Some(row) = row else { return Ok(None) };
        let (at, nonce, sealed): (i64, Vec<u8>, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
        if now - at >= FLASH_SECS {
            return Ok(None);
        }
        if nonce.len() != 12 {
            return Err(backend("a key flash's nonce is not 12 bytes"));
        }
        let aad = aad(session, enrollment);
        self.seal_key()?
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .map(Some)
            .map_err(|_| {
                backend("a key flash does not open (altered, or sealed under another secret)")
            })
    }
}
