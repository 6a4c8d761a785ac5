//! [`UserStore`] on PostgreSQL.

use crate::keys::{hash_from_sql, scope_of, scope_parts};
use crate::metadata::enrollment_id;
use crate::tx::is_unique_violation;
use crate::tx::pg;
use crate::PgStore;
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::users::{AuditEntry, Role, Session, User, UserStore};
use meterbook_core::EnrollmentNumber;
use postgres::types::Type;
use postgres::Row;

const USER_COLUMNS: &str = "u.id, u.email, u.name, u.password_hash, u.created_at, u.disabled";

fn user_from_row(r: &Row) -> User {
    User {
        id: r.get(0),
        email: r.get(1),
        name: r.get(2),
        password_hash: r.get(3),
        created_at: r.get(4),
        disabled: r.get(5),
    }
}

fn role_from(number: &str, kind: i16, id: i64, read_only: bool) -> StoreResult<Role> {
    Ok(Role {
        enrollment: EnrollmentNumber::parse(number)
            .map_err(|_| StoreError::Backend("corrupt enrollment number in database".into()))?,
        scope: scope_of(kind, id),
        read_only,
    })
}

fn session_from_row(r: &Row) -> StoreResult<Session> {
    Ok(Session {
        token_hash: hash_from_sql(r.get(0), "session hash")?,
        user_id: r.get(1),
        csrf: r.get(2),
        created_at: r.get(3),
        last_seen_at: r.get(4),
    })
}

impl UserStore for PgStore {
    fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: Option<&str>,
        at: i64,
    ) -> StoreResult<User> {
        let email = email.trim().to_ascii_lowercase();
        let taken = || StoreError::Conflict(format!("a user with e-mail {email} exists"));
        self.write(|tx| {
            // Looked for first: a refused insert would still take an id.
            if tx
                .query_opt("SELECT 1 FROM app_user WHERE email = $1", &[&email])
                .map_err(pg)?
                .is_some()
            {
                return Err(taken());
            }
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO app_user AS u (email, name, password_hash, created_at) \
                         VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"
                    ),
                    &[&email, &name, &password_hash, &at],
                )
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        taken()
                    } else {
                        pg(e)
                    }
                })?;
            Ok(user_from_row(&row))
        })
    }

    fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = email.trim().to_ascii_lowercase();
        self.read(|tx| {
            Ok(tx
                .query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM app_user u WHERE u.email = $1"),
                    &[&email],
                )
                .map_err(pg)?
                .as_ref()
                .map(user_from_row))
        })
    }

    fn user(&self, id: i64) -> StoreResult<Option<User>> {
        self.read(|tx| {
            Ok(tx
                .query_typed_opt(
                    &format!("SELECT {USER_COLUMNS} FROM app_user u WHERE u.id = $1"),
                    &[(&id, Type::INT8)],
                )
                .map_err(pg)?
                .as_ref()
                .map(user_from_row))
        })
    }

    fn users(&self) -> StoreResult<Vec<User>> {
        self.read(|tx| {
            Ok(tx
                .query(
                    &format!("SELECT {USER_COLUMNS} FROM app_user u ORDER BY u.id"),
                    &[],
                )
                .map_err(pg)?
                .iter()
                .map(user_from_row)
                .collect())
        })
    }

    fn set_password(&self, user_id: i64, password_hash: &str) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE app_user SET password_hash = $2 WHERE id = $1",
                    &[&user_id, &password_hash],
                )
                .map_err(pg)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("no user {user_id}")));
            }
            Ok(())
        })
    }

    fn set_user_disabled(&self, user_id: i64, disabled: bool) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE app_user SET disabled = $2 WHERE id = $1",
                &[&user_id, &disabled],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn grant_role(&self, user_id: i64, role: &Role) -> StoreResult<()> {
        let (kind, sid) = scope_parts(role.scope);
        self.write(|tx| {
            let eid = enrollment_id(tx, &role.enrollment)?;
            tx.execute(
                "INSERT INTO user_role (user_id, enrollment_id, scope_kind, scope_id, read_only) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, enrollment_id) DO UPDATE SET \
                 scope_kind = excluded.scope_kind, scope_id = excluded.scope_id, \
                 read_only = excluded.read_only",
                &[&user_id, &eid, &kind, &sid, &role.read_only],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn revoke_role(&self, user_id: i64, n: &EnrollmentNumber) -> StoreResult<()> {
        self.write(|tx| {
            let eid = enrollment_id(tx, n)?;
            tx.execute(
                "DELETE FROM user_role WHERE user_id = $1 AND enrollment_id = $2",
                &[&user_id, &eid],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn roles(&self, user_id: i64) -> StoreResult<Vec<Role>> {
        self.read(|tx| {
            tx.query(
                "SELECT e.number, r.scope_kind, r.scope_id, r.read_only FROM user_role r \
                 JOIN enrollment e ON e.id = r.enrollment_id WHERE r.user_id = $1 ORDER BY e.number",
                &[&user_id],
            )
            .map_err(pg)?
            .iter()
            .map(|r| role_from(r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
        })
    }

    fn enrollment_users(&self, n: &EnrollmentNumber) -> StoreResult<Vec<(User, Role)>> {
        self.read(|tx| {
            let eid = enrollment_id(tx, n)?;
            tx.query(
                &format!(
                    "SELECT {USER_COLUMNS}, r.scope_kind, r.scope_id, r.read_only FROM user_role r \
                     JOIN app_user u ON u.id = r.user_id WHERE r.enrollment_id = $1 ORDER BY u.email"
                ),
                &[&eid],
            )
            .map_err(pg)?
            .iter()
            .map(|r| {
                Ok((
                    user_from_row(r),
                    role_from(n.as_str(), r.get(6), r.get(7), r.get(8))?,
                ))
            })
            .collect()
        })
    }

    fn create_session(&self, s: &Session) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO user_session (token_hash, user_id, csrf, created_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &s.token_hash.as_slice(),
                    &s.user_id,
                    &s.csrf,
                    &s.created_at,
                    &s.last_seen_at,
                ],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn session(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Session>> {
        self.read(|tx| {
            tx.query_typed_opt(
                "SELECT token_hash, user_id, csrf, created_at, last_seen_at FROM user_session \
                 WHERE token_hash = $1",
                &[(&token_hash.as_slice(), Type::BYTEA)],
            )
            .map_err(pg)?
            .as_ref()
            .map(session_from_row)
            .transpose()
        })
    }

    fn touch_session(&self, token_hash: &[u8; 32], at: i64) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute_typed(
                "UPDATE user_session SET last_seen_at = $2 WHERE token_hash = $1",
                &[(&token_hash.as_slice(), Type::BYTEA), (&at, Type::INT8)],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn delete_session(&self, token_hash: &[u8; 32]) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM user_session WHERE token_hash = $1",
                &[&token_hash.as_slice()],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn delete_user_sessions(&self, user_id: i64) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM user_session WHERE user_id = $1", &[&user_id])
                .map_err(pg)?;
            Ok(())
        })
    }

    fn put_password_token(
        &self,
        token_hash: &[u8; 32],
        user_id: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO password_token (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
                &[&token_hash.as_slice(), &user_id, &expires_at],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn take_password_token(&self, token_hash: &[u8; 32], now: i64) -> StoreResult<Option<i64>> {
        self.write(|tx| {
            // Deleting is what takes the token: of two nodes taking it at
            // once, the second waits for the first's row lock and then finds
            // the row gone, so a token is used up exactly once.
            let found: Option<(i64, i64)> = tx
                .query_opt(
                    "DELETE FROM password_token WHERE token_hash = $1 RETURNING user_id, expires_at",
                    &[&token_hash.as_slice()],
                )
                .map_err(pg)?
                .map(|r| (r.get(0), r.get(1)));
            tx.execute(
                "DELETE FROM password_token WHERE expires_at <= $1",
                &[&now],
            )
            .map_err(pg)?;
            // A token used up ends every other token of its user: an older link
            // cannot reset the password that was just set.
            if let Some((user, exp)) = found {
                if exp > now {
                    tx.execute("DELETE FROM password_token WHERE user_id = $1", &[&user])
                        .map_err(pg)?;
                }
            }
            Ok(found.filter(|(_, exp)| *exp > now).map(|(u, _)| u))
        })
    }

    fn audit(&self, n: &EnrollmentNumber, e: &AuditEntry) -> StoreResult<()> {
        self.write(|tx| {
            let eid = enrollment_id(tx, n)?;
            tx.execute(
                "INSERT INTO audit_log (enrollment_id, at, actor, action, detail) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&eid, &e.at, &e.actor, &e.action, &e.detail],
            )
            .map_err(pg)?;
            Ok(())
        })
    }

    fn audit_log(&self, n: &EnrollmentNumber, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|tx| {
            let eid = enrollment_id(tx, n)?;
            Ok(tx
                .query(
                    "SELECT at, actor, action, detail FROM audit_log WHERE enrollment_id = $1 \
                     ORDER BY id DESC LIMIT $2",
                    &[&eid, &limit],
                )
                .map_err(pg)?
                .iter()
                .map(|r| AuditEntry {
                    at: r.get(0),
                    actor: r.get(1),
                    action: r.get(2),
                    detail: r.get(3),
                })
                .collect())
        })
    }
}
