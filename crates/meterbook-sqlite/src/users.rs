//! [`UserStore`] on SQLite.

use crate::keys::scope_parts;
use crate::{backend, SqliteStore};
use meterbook_core::access::Scope;
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::users::{AuditEntry, Role, Session, User, UserStore};
use meterbook_core::EnrollmentNumber;
use rusqlite::{params, OptionalExtension, Row};

const USER_COLUMNS: &str = "u.id, u.email, u.name, u.password_hash, u.created_at, u.disabled";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        password_hash: r.get(3)?,
        created_at: r.get(4)?,
        disabled: r.get(5)?,
    })
}

fn scope_of(kind: i64, id: i64) -> Scope {
    match kind {
        0 => Scope::Enrollment,
        1 => Scope::Department(id),
        _ => Scope::Account(id),
    }
}

fn role_from(number: String, kind: i64, id: i64, ro: bool) -> rusqlite::Result<Role> {
    Ok(Role {
        enrollment: EnrollmentNumber::parse(&number).map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                "enrollment number".into(),
            )
        })?,
        scope: scope_of(kind, id),
        read_only: ro,
    })
}

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<Session> {
    let h: Vec<u8> = r.get(0)?;
    Ok(Session {
        token_hash: h.try_into().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Blob,
                "session hash".into(),
            )
        })?,
        user_id: r.get(1)?,
        csrf: r.get(2)?,
        created_at: r.get(3)?,
        last_seen_at: r.get(4)?,
    })
}

impl UserStore for SqliteStore {
    fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: Option<&str>,
        at: i64,
    ) -> StoreResult<User> {
        let conn = self.write_conn();
        let email = email.trim().to_ascii_lowercase();
        conn.execute(
            "INSERT INTO app_user (email, name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![email, name, password_hash, at],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict(format!("a user with e-mail {email} exists"))
            }
            e => backend(e),
        })?;
        let id = conn.last_insert_rowid();
        conn.query_row(
            &format!("SELECT {USER_COLUMNS} FROM app_user u WHERE u.id = ?1"),
            [id],
            user_from_row,
        )
        .map_err(backend)
    }

    fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let c = self.read_conn()?;
        c.query_row(
            &format!("SELECT {USER_COLUMNS} FROM app_user u WHERE u.email = ?1"),
            [email.trim().to_ascii_lowercase()],
            user_from_row,
        )
        .optional()
        .map_err(backend)
    }

    fn user(&self, id: i64) -> StoreResult<Option<User>> {
        let c = self.read_conn()?;
        c.query_row(
            &format!("SELECT {USER_COLUMNS} FROM app_user u WHERE u.id = ?1"),
            [id],
            user_from_row,
        )
        .optional()
        .map_err(backend)
    }

    fn users(&self) -> StoreResult<Vec<User>> {
        let c = self.read_conn()?;
        let mut st = c
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM app_user u ORDER BY u.id"
            ))
            .map_err(backend)?;
        let rows = st.query_map([], user_from_row).map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn set_password(&self, user_id: i64, password_hash: &str) -> StoreResult<()> {
        let n = self
            .write_conn()
            .execute(
                "UPDATE app_user SET password_hash = ?2 WHERE id = ?1",
                params![user_id, password_hash],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no user {user_id}")));
        }
        Ok(())
    }

    fn set_user_disabled(&self, user_id: i64, disabled: bool) -> StoreResult<()> {
        self.write_conn()
            .execute(
                "UPDATE app_user SET disabled = ?2 WHERE id = ?1",
                params![user_id, disabled],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn grant_role(&self, user_id: i64, role: &Role) -> StoreResult<()> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, &role.enrollment)?;
        let (kind, sid) = scope_parts(role.scope);
        conn.execute(
            "INSERT INTO user_role (user_id, enrollment_id, scope_kind, scope_id, read_only) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user_id, enrollment_id) DO UPDATE SET \
             scope_kind = excluded.scope_kind, scope_id = excluded.scope_id, read_only = excluded.read_only",
            params![user_id, eid, kind, sid, role.read_only],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn revoke_role(&self, user_id: i64, n: &EnrollmentNumber) -> StoreResult<()> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        conn.execute(
            "DELETE FROM user_role WHERE user_id = ?1 AND enrollment_id = ?2",
            params![user_id, eid],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn roles(&self, user_id: i64) -> StoreResult<Vec<Role>> {
        let c = self.read_conn()?;
        let mut st = c
            .prepare(
                "SELECT e.number, r.scope_kind, r.scope_id, r.read_only FROM user_role r \
                 JOIN enrollment e ON e.id = r.enrollment_id WHERE r.user_id = ?1 ORDER BY e.number",
            )
            .map_err(backend)?;
        let rows = st
            .query_map([user_id], |r| {
                role_from(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)
            })
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }

    fn enrollment_users(&self, n: &EnrollmentNumber) -> StoreResult<Vec<(User, Role)>> {
        let c = self.read_conn()?;
        let eid = Self::enrollment_id(&c, n)?;
        let mut st = c
            .prepare(&format!(
                "SELECT {USER_COLUMNS}, r.scope_kind, r.scope_id, r.read_only FROM user_role r \
                 JOIN app_user u ON u.id = r.user_id WHERE r.enrollment_id = ?1 ORDER BY u.email"
            ))
            .map_err(backend)?;
        let rows = st
            .query_map([eid], |r| {
                Ok((
                    user_from_row(r)?,
                    role_from(n.to_string(), r.get(6)?, r.get(7)?, r.get(8)?)?,
                ))
            })
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }

    fn create_session(&self, s: &Session) -> StoreResult<()> {
        self.write_conn()
            .execute(
                "INSERT INTO user_session (token_hash, user_id, csrf, created_at, last_seen_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    s.token_hash.as_slice(),
                    s.user_id,
                    s.csrf,
                    s.created_at,
                    s.last_seen_at
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn session(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Session>> {
        let c = self.read_conn()?;
        c.query_row(
            "SELECT token_hash, user_id, csrf, created_at, last_seen_at FROM user_session \
             WHERE token_hash = ?1",
            [token_hash.as_slice()],
            session_from_row,
        )
        .optional()
        .map_err(backend)
    }

    fn touch_session(&self, token_hash: &[u8; 32], at: i64) -> StoreResult<()> {
        self.write_conn()
            .execute(
                "UPDATE user_session SET last_seen_at = ?2 WHERE token_hash = ?1",
                params![token_hash.as_slice(), at],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn delete_session(&self, token_hash: &[u8; 32]) -> StoreResult<()> {
        self.write_conn()
            .execute(
                "DELETE FROM user_session WHERE token_hash = ?1",
                [token_hash.as_slice()],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn delete_user_sessions(&self, user_id: i64) -> StoreResult<()> {
        self.write_conn()
            .execute("DELETE FROM user_session WHERE user_id = ?1", [user_id])
            .map_err(backend)?;
        Ok(())
    }

    fn put_password_token(
        &self,
        token_hash: &[u8; 32],
        user_id: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.write_conn()
            .execute(
                "INSERT INTO password_token (token_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
                params![token_hash.as_slice(), user_id, expires_at],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn take_password_token(&self, token_hash: &[u8; 32], now: i64) -> StoreResult<Option<i64>> {
        let mut conn = self.write_conn();
        let tx = conn.transaction().map_err(backend)?;
        let found: Option<(i64, i64)> = tx
            .query_row(
                "SELECT user_id, expires_at FROM password_token WHERE token_hash = ?1",
                [token_hash.as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend)?;
        tx.execute(
            "DELETE FROM password_token WHERE token_hash = ?1 OR expires_at <= ?2",
            params![token_hash.as_slice(), now],
        )
        .map_err(backend)?;
        // A token used up ends every other token of its user: an older link
        // cannot reset the password that was just set.
        if let Some((user, exp)) = found {
            if exp > now {
                tx.execute("DELETE FROM password_token WHERE user_id = ?1", [user])
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        Ok(found.filter(|(_, exp)| *exp > now).map(|(u, _)| u))
    }

    fn audit(&self, n: &EnrollmentNumber, e: &AuditEntry) -> StoreResult<()> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        conn.execute(
            "INSERT INTO audit_log (enrollment_id, at, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![eid, e.at, e.actor, e.action, e.detail],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn audit_log(&self, n: &EnrollmentNumber, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        let c = self.read_conn()?;
        let eid = Self::enrollment_id(&c, n)?;
        let mut st = c
            .prepare(
                "SELECT at, actor, action, detail FROM audit_log WHERE enrollment_id = ?1 \
                 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(backend)?;
        let rows = st
            .query_map(params![eid, limit as i64], |r| {
                Ok(AuditEntry {
                    at: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    detail: r.get(3)?,
                })
            })
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }
}
