//! Portal users and their roles.
//!
//! The operator's part (the CLI's `user create`): making a person a user of
//! any enrollment with a role, and the one-time link that lets an invited
//! user choose a password. Password hashing and token generation belong to
//! the portal; these take their results.

use crate::{AppError, AppResult, Operator};
use meterbook_core::store::StoreError;
use meterbook_core::users::{Role, User};

/// How long an invitation's set-password link stays valid.
pub const INVITE_LINK_SECS: i64 = 7 * 86_400;

impl Operator {
    /// Makes `email` a user (with `password_hash`, or none until they set
    /// one) unless they are one already — then a given hash replaces their
    /// password — and grants `role` (replacing their role in its
    /// enrollment). Returns the user and whether they were created.
    pub fn ensure_user(
        &self,
        email: &str,
        name: &str,
        password_hash: Option<&str>,
        role: &Role,
    ) -> AppResult<(User, bool)> {
        let s = self.app.store();
        // The enrollment must exist before anyone is made a user of it.
        self.enrollment(&role.enrollment)?;
        let now = self.app.clock().now_unix();
        let (user, created) = match s.create_user(email, name, password_hash, now) {
            Ok(u) => (u, true),
            Err(StoreError::Conflict(_)) => {
                let u = s
                    .user_by_email(email)?
                    .ok_or_else(|| AppError::Internal(format!("user {email} vanished")))?;
                if let Some(h) = password_hash {
                    s.set_password(u.id, h)?;
                }
                (u, false)
            }
            Err(e) => return Err(e.into()),
        };
        s.grant_role(user.id, role)?;
        Ok((user, created))
    }

    /// Records the one-time set-password link of user `user_id` (by its
    /// token's hash), valid [`INVITE_LINK_SECS`], if they have no password
    /// yet; returns whether it did.
    pub fn invite(&self, user_id: i64, token_hash: &[u8; 32]) -> AppResult<bool> {
        let s = self.app.store();
        let needs = s.user(user_id)?.is_some_and(|u| u.password_hash.is_none());
        if needs {
            let until = self.app.clock().now_unix() + INVITE_LINK_SECS;
            s.put_password_token(token_hash, user_id, until)?;
        }
        Ok(needs)
    }
}
