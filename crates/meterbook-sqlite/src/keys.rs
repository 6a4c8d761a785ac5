//! [`KeyStore`] on SQLite.

use crate::{backend, SqliteStore};
use meterbook_core::access::{KeyRecord, KeyStore, OperatorStore, OperatorToken, Scope, Slot};
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::EnrollmentNumber;
use rusqlite::{params, OptionalExtension, Row};

pub(crate) fn scope_parts(s: Scope) -> (i64, i64) {
    match s {
        Scope::Enrollment => (0, 0),
        Scope::Department(d) => (1, d),
        Scope::Account(a) => (2, a),
    }
}

fn slot_code(s: Slot) -> i64 {
    match s {
        Slot::Primary => 0,
        Slot::Secondary => 1,
    }
}

const KEY_COLUMNS: &str =
    "k.id, e.number, k.scope_kind, k.scope_id, k.slot, k.read_only, k.secret_hash, \
     k.created_at, k.expires_at, k.disabled, k.last_used_at";

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let number: String = r.get(1)?;
    let kind: i64 = r.get(2)?;
    let sid: i64 = r.get(3)?;
    let hash: Vec<u8> = r.get(6)?;
    let bad = |m: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            m.to_string().into(),
        )
    };
    Ok(KeyRecord {
        id: r.get(0)?,
        enrollment: EnrollmentNumber::parse(&number).map_err(|_| bad("enrollment number"))?,
        scope: match kind {
            0 => Scope::Enrollment,
            1 => Scope::Department(sid),
            _ => Scope::Account(sid),
        },
        slot: if r.get::<_, i64>(4)? == 0 {
            Slot::Primary
        } else {
            Slot::Secondary
        },
        read_only: r.get(5)?,
        secret_hash: hash.try_into().map_err(|_| bad("key hash"))?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        disabled: r.get(9)?,
        last_used_at: r.get(10)?,
    })
}

impl KeyStore for SqliteStore {
    fn put_key(&self, k: &KeyRecord) -> StoreResult<()> {
        let mut conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, &k.enrollment)?;
        let (kind, sid) = scope_parts(k.scope);
        let tx = conn.transaction().map_err(backend)?;
        tx.execute(
            "DELETE FROM api_key WHERE enrollment_id = ?1 AND scope_kind = ?2 AND scope_id = ?3 AND slot = ?4",
            params![eid, kind, sid, slot_code(k.slot)],
        )
        .map_err(backend)?;
        tx.execute(
            "INSERT INTO api_key (id, enrollment_id, scope_kind, scope_id, slot, read_only, secret_hash, \
             created_at, expires_at, disabled, last_used_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                k.id,
                eid,
                kind,
                sid,
                slot_code(k.slot),
                k.read_only,
                &k.secret_hash[..],
                k.created_at,
                k.expires_at,
                k.disabled,
                k.last_used_at
            ],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                StoreError::Conflict("key id already in use".into())
            }
            e => backend(e),
        })?;
        tx.commit().map_err(backend)
    }

    fn key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        let conn = self.read_conn()?;
        let found = conn
            .prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_key k JOIN enrollment e ON e.id = k.enrollment_id WHERE k.id = ?1"
            ))
            .map_err(backend)?
            .query_row([id], key_from_row)
            .optional()
            .map_err(backend);
        found
    }

    fn keys(&self, n: &EnrollmentNumber) -> StoreResult<Vec<KeyRecord>> {
        let conn = self.read_conn()?;
        let eid = Self::enrollment_id(&conn, n)?;
        let mut st = conn
            .prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_key k JOIN enrollment e ON e.id = k.enrollment_id \
                 WHERE k.enrollment_id = ?1 ORDER BY k.scope_kind, k.scope_id, k.slot"
            ))
            .map_err(backend)?;
        let rows = st
            .query_map([eid], key_from_row)
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(rows)
    }

    fn set_key_disabled(
        &self,
        n: &EnrollmentNumber,
        scope: Scope,
        slot: Slot,
        disabled: bool,
    ) -> StoreResult<bool> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let (kind, sid) = scope_parts(scope);
        let changed = conn
            .execute(
                "UPDATE api_key SET disabled = ?5 WHERE enrollment_id = ?1 AND scope_kind = ?2 AND scope_id = ?3 AND slot = ?4",
                params![eid, kind, sid, slot_code(slot), disabled],
            )
            .map_err(backend)?;
        Ok(changed > 0)
    }

    fn touch_key(&self, id: &str, at: i64) -> StoreResult<()> {
        self.write_conn()
            .execute(
                "UPDATE api_key SET last_used_at = ?2 WHERE id = ?1",
                params![id, at],
            )
            .map_err(backend)?;
        Ok(())
    }
}

impl OperatorStore for SqliteStore {
    fn put_operator_token(&self, t: &OperatorToken) -> StoreResult<()> {
        self.write_conn()
            .execute(
                "INSERT INTO operator_token (id, name, secret_hash, created_at, disabled) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.id, t.name, &t.secret_hash[..], t.created_at, t.disabled],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn operator_token(&self, id: &str) -> StoreResult<Option<OperatorToken>> {
        let conn = self.read_conn()?;
        let found = conn
            .prepare_cached(
                "SELECT id, name, secret_hash, created_at, disabled FROM operator_token WHERE id = ?1",
            )
            .map_err(backend)?
            .query_row([id], operator_token_row)
            .optional()
            .map_err(backend);
        found
    }

    fn operator_tokens(&self) -> StoreResult<Vec<OperatorToken>> {
        let conn = self.read_conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, name, secret_hash, created_at, disabled FROM operator_token ORDER BY created_at, id",
            )
            .map_err(backend)?;
        let rows = stmt.query_map([], operator_token_row).map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn set_operator_token_disabled(&self, id: &str, disabled: bool) -> StoreResult<bool> {
        let changed = self
            .write_conn()
            .execute(
                "UPDATE operator_token SET disabled = ?2 WHERE id = ?1",
                params![id, disabled],
            )
            .map_err(backend)?;
        Ok(changed == 1)
    }
}

fn operator_token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OperatorToken> {
    let hash: Vec<u8> = r.get(2)?;
    Ok(OperatorToken {
        id: r.get(0)?,
        name: r.get(1)?,
        secret_hash: hash.try_into().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Blob,
                "token hash".into(),
            )
        })?,
        created_at: r.get(3)?,
        disabled: r.get(4)?,
    })
}
