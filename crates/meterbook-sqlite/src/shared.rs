//! [`SharedState`] of the embedded store: in this process's memory.
//!
//! An embedded deployment is one process (`serve` holds the database file's
//! server lock, and SQLite has one writer anyway), so what its requests share
//! needs no table: throttles, rate limits and key flashes live in a
//! [`MemSharedState`](meterbook_core::shared::MemSharedState) and are forgotten at a restart, as they always were. A
//! deployment of several nodes shares them through PostgreSQL instead.

use crate::SqliteStore;
use meterbook_core::shared::{SharedState, TokenRate};
use meterbook_core::store::StoreResult;

impl SharedState for SqliteStore {
    fn attempt(
        &self,
        keys: &[(&str, u32)],
        window_secs: i64,
        now: i64,
    ) -> StoreResult<Result<Vec<u32>, i64>> {
        self.shared.attempt(keys, window_secs, now)
    }

    fn succeeded(&self, clear: &[&str], give_back: &str) -> StoreResult<()> {
        self.shared.succeeded(clear, give_back)
    }

    fn take_token(
        &self,
        key: &str,
        rate: TokenRate,
        now_millis: i64,
    ) -> StoreResult<Result<bool, i64>> {
        self.shared.take_token(key, rate, now_millis)
    }

    fn put_flash(
        &self,
        session: &[u8; 32],
        enrollment: &str,
        payload: &[u8],
        now: i64,
    ) -> StoreResult<()> {
        self.shared.put_flash(session, enrollment, payload, now)
    }

    fn take_flash(
        &self,
        session: &[u8; 32],
        enrollment: &str,
        now: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        self.shared.take_flash(session, enrollment, now)
    }
}
