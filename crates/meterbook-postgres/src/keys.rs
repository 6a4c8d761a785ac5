//! [`KeyStore`] and [`OperatorStore`] on PostgreSQL.

use crate::metadata::enrollment_id;
use crate::tx::is_unique_violation;
use crate::tx::pg;
use crate::PgStore;
use meterbook_core::access::{KeyRecord, KeyStore, OperatorStore, OperatorToken, Scope, Slot};
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::EnrollmentNumber;
use postgres::types::Type;
use postgres::Row;

/// A scope as stored: (kind, id) — 0 enrollment, 1 department, 2 account.
pub(crate) fn scope_parts(s: Scope) -> (i16, i64) {
    match s {
        Scope::Enrollment => (0, 0),
        Scope::Department(d) => (1, d),
        Scope::Account(a) => (2, a),
    }
}

pub(crate) fn scope_of(kind: i16, id: i64) -> Scope {
    match kind {
        0 => Scope::Enrollment,
        1 => Scope::Department(id),
        _ => Scope::Account(id),
    }
}

fn slot_code(s: Slot) -> i16 {
    match s {
        Slot::Primary => 0,
        Slot::Secondary => 1,
    }
}

/// A 32-byte hash from a BYTEA column.
pub(crate) fn hash_from_sql(v: Vec<u8>, what: &str) -> StoreResult<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Backend(format!("corrupt {what} in database")))
}

const KEY_COLUMNS: &str =
    "k.id, e.number, k.scope_kind, k.scope_id, k.slot, k.read_only, k.secret_hash, \
     k.created_at, k.expires_at, k.disabled, k.last_used_at";

fn key_from_row(r: &Row) -> StoreResult<KeyRecord> {
    let number: String = r.get(1);
    Ok(KeyRecord {
        id: r.get(0),
        enrollment: EnrollmentNumber::parse(&number)
            .map_err(|_| StoreError::Backend("corrupt enrollment number in database".into()))?,
        scope: scope_of(r.get(2), r.get(3)),
        slot: if r.get::<_, i16>(4) == 0 {
            Slot::Primary
        } else {
            Slot::Secondary
        },
        read_only: r.get(5),
        secret_hash: hash_from_sql(r.get(6), "key hash")?,
        created_at: r.get(7),
        expires_at: r.get(8),
        disabled: r.get(9),
        last_used_at: r.get(10),
    })
}

impl KeyStore for PgStore {
    fn put_key(&self, k: &KeyRecord) -> StoreResult<()> {
        let (kind, sid) = scope_parts(k.scope);
        self.write(|tx| {
            let eid = enrollment_id(tx, &k.enrollment)?;
            // One statement replaces the slot's key, so two nodes storing a
            // key in the same slot at once leave one of them, never an error.
            tx.execute(
                "INSERT INTO api_key (id, enrollment_id, scope_kind, scope_id, slot, read_only, \
                 secret_hash, created_at, expires_at, disabled, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (enrollment_id, scope_kind, scope_id, slot) DO UPDATE SET \
                 id = excluded.id, read_only = excluded.read_only, secret_hash = excluded.secret_hash, \
                 created_at = excluded.created_at, expires_at = excluded.expires_at, \
                 disabled = excluded.disabled, last_used_at = excluded.last_used_at",
                &[
                    &k.id,
                    &eid,
                    &kind,
                    &sid,
                    &slot_code(k.slot),
                    &k.read_only,
                    &&k.secret_hash[..],
                    &k.created_at,
                    &k.expires_at,
                    &k.disabled,
                    &k.last_used_at,
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("key id already in use".into())
                } else {
                    pg(e)
                }
            })?;
            Ok(())
        })
    }

    fn key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        self.read(|tx| {
            tx.query_typed_opt(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_key k JOIN enrollment e ON e.id = k.enrollment_id \
                     WHERE k.id = $1"
                ),
                &[(&id, Type::TEXT)],
            )
            .map_err(pg)?
            .as_ref()
            .map(key_from_row)
            .transpose()
        })
    }

    fn keys(&self, n: &EnrollmentNumber) -> StoreResult<Vec<KeyRecord>> {
        self.read(|tx| {
            let eid = enrollment_id(tx, n)?;
            tx.query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_key k JOIN enrollment e ON e.id = k.enrollment_id \
                     WHERE k.enrollment_id = $1 ORDER BY k.scope_kind, k.scope_id, k.slot"
                ),
                &[&eid],
            )
            .map_err(pg)?
            .iter()
            .map(key_from_row)
            .collect()
        })
    }

    fn set_key_disabled(
        &self,
        n: &EnrollmentNumber,
        scope: Scope,
        slot: Slot,
        disabled: bool,
    ) -> StoreResult<bool> {
        let (kind, sid) = scope_parts(scope);
        self.write(|tx| {
            let eid = enrollment_id(tx, n)?;
            let changed = tx
                .execute(
                    "UPDATE api_key SET disabled = $5 WHERE enrollment_id = $1 AND scope_kind = $2 \
                     AND scope_id = $3 AND slot = $4",
                    &[&eid, &kind, &sid, &slot_code(slot), &disabled],
                )
                .map_err(pg)?;
            Ok(changed > 0)
        })
    }

    fn touch_key(&self, id: &str, at: i64) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute_typed(
                "UPDATE api_key SET last_used_at = $2 WHERE id = $1",
                &[(&id, Type::TEXT), (&at, Type::INT8)],
            )
            .map_err(pg)?;
            Ok(())
        })
    }
}

const TOKEN_COLUMNS: &str = "id, name, secret_hash, created_at, disabled";

fn operator_token_row(r: &Row) -> StoreResult<OperatorToken> {
    Ok(OperatorToken {
        id: r.get(0),
        name: r.get(1),
        secret_hash: hash_from_sql(r.get(2), "token hash")?,
        created_at: r.get(3),
        disabled: r.get(4),
    })
}

impl OperatorStore for PgStore {
    fn put_operator_token(&self, t: &OperatorToken) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO operator_token (id, name, secret_hash, created_at, disabled) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &t.id,
                    &t.name,
                    &&t.secret_hash[..],
                    &t.created_at,
                    &t.disabled,
                ],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn operator_token(&self, id: &str) -> StoreResult<Option<OperatorToken>> {
        self.read(|tx| {
            tx.query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM operator_token WHERE id = $1"),
                &[&id],
            )
            .map_err(pg)?
            .as_ref()
            .map(operator_token_row)
            .transpose()
        })
    }

    fn operator_tokens(&self) -> StoreResult<Vec<OperatorToken>> {
        self.read(|tx| {
            tx.query(
                &format!("SELECT {TOKEN_COLUMNS} FROM operator_token ORDER BY created_at, id"),
                &[],
            )
            .map_err(pg)?
            .iter()
            .map(operator_token_row)
            .collect()
        })
    }

    fn set_operator_token_disabled(&self, id: &str, disabled: bool) -> StoreResult<bool> {
        self.write(|tx| {
            let changed = tx
                .execute(
                    "UPDATE operator_token SET disabled = $2 WHERE id = $1",
                    &[&id, &disabled],
                )
                .map_err(pg)?;
            Ok(changed == 1)
        })
    }
}
