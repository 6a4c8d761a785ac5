//! Transactions and error mapping shared by the ledger's modules.
//!
//! Every trait method runs as one transaction. Writes run at READ COMMITTED
//! and take row locks before they check anything (the enrollment row for
//! writes within an enrollment, `FOR UPDATE SKIP LOCKED` for job claims):
//! once a lock is held, each later statement of the transaction sees what the
//! previous holder committed, which is what SQLite's single writer gave the
//! embedded store. Reads of more than one statement run at REPEATABLE READ,
//! READ ONLY, so they see one snapshot (and never fail to serialize).

use crate::{backend, PgStore};
use meterbook_core::store::{StoreError, StoreResult};
use postgres::error::SqlState;
use postgres::{IsolationLevel, Transaction};

impl PgStore {
    /// Runs `f` in a read-write transaction (READ COMMITTED) and commits it
    /// if `f` returns Ok; an Err rolls it back.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(backend)?;
        let v = f(&mut tx)?;
        tx.commit().map_err(backend)?;
        Ok(v)
    }

    /// Runs `f` in a read-only transaction that sees one snapshot.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut c = self.conn()?;
        let mut tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(backend)?;
        let v = f(&mut tx)?;
        tx.commit().map_err(backend)?;
        Ok(v)
    }
}

/// Whether `e` is a violated unique (or primary key) constraint.
pub(crate) fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A PostgreSQL error as a store error: a text PostgreSQL cannot hold (a
/// NUL character, which SQLite stores) is the input's fault and says so;
/// anything else is a backend error.
pub(crate) fn pg(e: postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::CHARACTER_NOT_IN_REPERTOIRE) {
        StoreError::Invalid(
            "a value holds a NUL character, which the PostgreSQL store cannot keep".into(),
        )
    } else {
        backend(e)
    }
}
