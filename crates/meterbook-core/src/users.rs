//! People who sign in to the portal: users, their roles in enrollments,
//! sessions, one-time set-password links, and the audit log.
//!
//! Secrets never reach the store in the clear: passwords as argon2id PHC
//! strings, session and set-password tokens as SHA-256.

use crate::access::Scope;
use crate::enrollment::EnrollmentNumber;
use crate::store::StoreResult;

/// A role in one enrollment (design §5): a scope, and whether it may change
/// things (users, keys, settings). Account owners are never read-only: there
/// is nothing below them to manage but their own keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub enrollment: EnrollmentNumber,
    pub scope: Scope,
    pub read_only: bool,
}

impl Role {
    /// "Enterprise administrator", "Department administrator (read-only)", ...
    pub fn title(&self) -> String {
        let base = match self.scope {
            Scope::Enrollment => "Enterprise administrator",
            Scope::Department(_) => "Department administrator",
            Scope::Account(_) => "Account owner",
        };
        if self.read_only {
            format!("{base} (read-only)")
        } else {
            base.to_string()
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    /// Lower-cased; unique.
    pub email: String,
    pub name: String,
    /// argon2id PHC string; `None` until the invited user sets one.
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub disabled: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A signed-in browser. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub token_hash: [u8; 32],
    pub user_id: i64,
    /// The form token of this session (CSRF), sent in every form.
    pub csrf: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// One line of an enrollment's audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: i64,
    /// The user's e-mail, `cli`, or a key id.
    pub actor: String,
    /// `sign-in`, `sign-in-failed`, `key-generated`, `setting-changed`, `download`, ...
    pub action: String,
    pub detail: String,
}

pub trait UserStore {
    /// Creates a user; a Conflict if the e-mail is taken.
    fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: Option<&str>,
        at: i64,
    ) -> StoreResult<User>;
    fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    fn user(&self, id: i64) -> StoreResult<Option<User>>;
    /// Every user, by id (for copying a store; roles come from [`UserStore::roles`]).
    fn users(&self) -> StoreResult<Vec<User>>;
    fn set_password(&self, user_id: i64, password_hash: &str) -> StoreResult<()>;
    fn set_user_disabled(&self, user_id: i64, disabled: bool) -> StoreResult<()>;
    /// Grants `role` (replacing the user's role in that enrollment).
    fn grant_role(&self, user_id: i64, role: &Role) -> StoreResult<()>;
    fn revoke_role(&self, user_id: i64, n: &EnrollmentNumber) -> StoreResult<()>;
    fn roles(&self, user_id: i64) -> StoreResult<Vec<Role>>;
    /// The users holding a role in the enrollment, with it.
    fn enrollment_users(&self, n: &EnrollmentNumber) -> StoreResult<Vec<(User, Role)>>;

    fn create_session(&self, s: &Session) -> StoreResult<()>;
    fn session(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Session>>;
    fn touch_session(&self, token_hash: &[u8; 32], at: i64) -> StoreResult<()>;
    fn delete_session(&self, token_hash: &[u8; 32]) -> StoreResult<()>;
    /// Signs the user out everywhere.
    fn delete_user_sessions(&self, user_id: i64) -> StoreResult<()>;

    /// A one-time set-password token (its hash) for the user, until `expires_at`.
    fn put_password_token(
        &self,
        token_hash: &[u8; 32],
        user_id: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Uses up a token: the user it was for, if it exists and has not expired.
    /// Using one ends every other token of that user.
    fn take_password_token(&self, token_hash: &[u8; 32], now: i64) -> StoreResult<Option<i64>>;

    fn audit(&self, n: &EnrollmentNumber, e: &AuditEntry) -> StoreResult<()>;
    /// The newest `limit` entries, newest first.
    fn audit_log(&self, n: &EnrollmentNumber, limit: usize) -> StoreResult<Vec<AuditEntry>>;
}
