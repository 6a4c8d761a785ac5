//! Portal sign-in before there is an [`crate::Access`]: checking an e-mail
//! and password, opening and ending sessions, and setting a password from a
//! one-time link. Sessions are found again by [`App::session`].
//!
//! A failed sign-in reads the same and takes as long whether or not the
//! e-mail is known (the password is verified against a decoy hash). Throttling
//! of attempts is the front end's (it knows the client's address).

use crate::access::SignedIn;
use crate::{credentials, password, App, AppError, AppResult};
use meterbook_core::users::{AuditEntry, Session};
use meterbook_core::EnrollmentNumber;

/// A session just opened: its token (the cookie's value, never stored) and
/// who it is for.
#[derive(Debug)]
pub struct NewSession {
    pub token: String,
    pub signed_in: SignedIn,
}

fn random() -> AppResult<String> {
    credentials::random_token().map_err(|e| AppError::Internal(format!("no randomness: {e}")))
}

impl App {
    /// Writes an audit line for `actor`, who has no [`crate::Access`] (yet):
    /// failures are logged, not raised.
    pub(crate) fn audit_as(&self, n: &EnrollmentNumber, actor: &str, action: &str, detail: &str) {
        let e = AuditEntry {
            at: self.clock().now_unix(),
            actor: actor.to_string(),
            action: action.to_string(),
            detail: detail.to_string(),
        };
        if let Err(err) = self.store().audit(n, &e) {
            tracing::warn!(error = %err, "cannot write the audit log");
        }
    }

    /// Signs in with an e-mail (compared lower-cased) and a password: a new
    /// session, audited as `sign-in` (`detail`, e.g. the client's address) in
    /// each enrollment the person holds a role in; `None` when the e-mail is
    /// unknown, the password wrong, none is set yet or the user is disabled.
    pub fn sign_in(
        &self,
        email: &str,
        password: &str,
        detail: &str,
    ) -> AppResult<Option<NewSession>> {
        let s = self.store();
        let email = email.trim().to_ascii_lowercase();
        let user = s.user_by_email(&email)?;
        let hash = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| password::decoy().to_string());
        let ok = password::verify(password, &hash);
        let Some(user) = user.filter(|u| ok && !u.disabled && u.password_hash.is_some()) else {
            return Ok(None);
        };
        let token = random()?;
        let now = self.clock().now_unix();
        let session = Session {
            token_hash: credentials::hash_secret(&token),
            user_id: user.id,
            csrf: random()?,
            created_at: now,
            last_seen_at: now,
        };
        s.create_session(&session)?;
        let roles = s.roles(user.id)?;
        for r in &roles {
            self.audit_as(&r.enrollment, &user.email, "sign-in", detail);
        }
        Ok(Some(NewSession {
            token,
            signed_in: SignedIn {
                session,
                user,
                roles,
            },
        }))
    }

    /// Records a failed sign-in as `sign-in-failed` in the enrollments of the
    /// user with this e-mail, if there is one (the front end calls it off the
    /// answer's path, so its timing does not tell known e-mails apart).
    pub fn sign_in_failed(&self, email: &str, detail: &str) -> AppResult<()> {
        let s = self.store();
        let email = email.trim().to_ascii_lowercase();
        if let Some(u) = s.user_by_email(&email)? {
            for r in s.roles(u.id)? {
                self.audit_as(&r.enrollment, &email, "sign-in-failed", detail);
            }
        }
        Ok(())
    }

    /// Sets a password with a one-time link's token: `Ok(false)` when the
    /// token is unknown, used or expired. Every session of the user ends.
    /// A password shorter than [`password::MIN_LEN`] is `Invalid`.
    pub fn set_password(&self, token: &str, new_password: &str) -> AppResult<bool> {
        if new_password.chars().count() < password::MIN_LEN {
            return Err(AppError::Invalid(format!(
                "a password needs at least {} characters",
                password::MIN_LEN
            )));
        }
        let hash = password::hash(new_password).map_err(AppError::Internal)?;
        let s = self.store();
        let th = credentials::hash_secret(token);
        let Some(uid) = s.take_password_token(&th, self.clock().now_unix())? else {
            return Ok(false);
        };
        s.set_password(uid, &hash)?;
        s.delete_user_sessions(uid)?;
        Ok(true)
    }
}

impl SignedIn {
    /// Ends this session.
    pub fn sign_out(&self, app: &App) -> AppResult<()> {
        Ok(app.store().delete_session(&self.session.token_hash)?)
    }

    /// Ends every session of this person.
    pub fn sign_out_everywhere(&self, app: &App) -> AppResult<()> {
        Ok(app.store().delete_user_sessions(self.user.id)?)
    }
}
