//! Who is asking, resolved once into a handle that carries their rights.
//!
//! An [`Access`] is one enrollment seen by one caller: its reach ([`Scope`]:
//! the enterprise, a department, an account), whether costs show, whether it
//! may change anything. It can only be made here — from a verified API key, a
//! verified portal session's role, or the operator — and every read it offers
//! is bounded by its reach. Rights beyond reading are narrower handles that
//! exist only when the right does:
//!
//! | handle | who | what it adds |
//! |---|---|---|
//! | [`Enterprise`] | enterprise administrators (read-only too) | statements, balances, price sheets |
//! | [`Writer`] | anyone not read-only | API keys within their reach |
//! | [`Admin`] | read-write enterprise administrators | users, settings, hierarchy edits |
//! | [`Operator`] | the provider | every enrollment, ingest, prices, entries |

use crate::credentials;
use crate::{App, AppError, AppResult};
use meterbook_core::access::Scope;
use meterbook_core::users::{Role, Session, User};
use meterbook_core::{Enrollment, EnrollmentNumber};

/// Who a handle acts for (audit lines, job ownership, quotas).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// An API key, by its public id.
    Key(String),
    /// A person signed in to the portal.
    User { id: i64, email: String },
    /// The provider: an operator token's name, or `cli` for whoever can
    /// open the database file.
    Operator(String),
}

impl Actor {
    /// The requester a report job is recorded under (its quota is counted
    /// per requester): the key id, the user's e-mail, or the operator's name.
    pub fn requester(&self) -> &str {
        match self {
            Actor::Key(id) => id,
            Actor::User { email, .. } => email,
            Actor::Operator(name) => name,
        }
    }
}

/// One enrollment as one caller may see it. Cheap to clone; `Send`, so it
/// moves into blocking tasks.
#[derive(Clone)]
pub struct Access {
    pub(crate) app: App,
    pub(crate) e: Enrollment,
    scope: Scope,
    read_only: bool,
    actor: Actor,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("enrollment", &self.e.number)
            .field("scope", &self.scope)
            .field("read_only", &self.read_only)
            .field("actor", &self.actor)
            .finish()
    }
}

impl Access {
    fn new(app: &App, e: Enrollment, scope: Scope, read_only: bool, actor: Actor) -> Access {
        Access {
            app: app.clone(),
            e,
            scope,
            read_only,
            actor,
        }
    }

    /// The enrollment as it was when this handle was made.
    pub fn enrollment(&self) -> &Enrollment {
        &self.e
    }

    pub fn number(&self) -> &EnrollmentNumber {
        &self.e.number
    }

    /// The caller's reach inside the enrollment.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Whether costs show to this caller (design §5: hidden costs read 0).
    pub fn sees_charges(&self) -> bool {
        self.scope.sees_costs(self.e.visibility)
    }

    /// Whether balances and price sheets show (enterprise administrators).
    pub fn sees_balance(&self) -> bool {
        self.scope.sees_balance()
    }

    /// Balances, statements and price sheets: enterprise administrators only.
    pub fn enterprise(&self) -> AppResult<Enterprise<'_>> {
        if self.scope == Scope::Enrollment {
            Ok(Enterprise(self))
        } else {
            Err(AppError::Forbidden(
                "balance and price sheet are visible to enterprise administrators only".into(),
            ))
        }
    }

    /// Changes within the caller's reach (its keys): not for read-only callers.
    pub fn writer(&self) -> AppResult<Writer<'_>> {
        if self.read_only {
            Err(AppError::Forbidden(
                "a read-only administrator cannot change anything".into(),
            ))
        } else {
            Ok(Writer(self))
        }
    }

    /// Users, settings and the hierarchy: read-write enterprise administrators.
    pub fn admin(&self) -> AppResult<Admin<'_>> {
        self.enterprise()?;
        self.writer()?;
        Ok(Admin(self))
    }
}

/// An enterprise administrator's view (read-only ones included).
#[derive(Clone, Copy)]
pub struct Enterprise<'a>(pub(crate) &'a Access);

/// A caller who may change what is within their reach.
#[derive(Clone, Copy)]
pub struct Writer<'a>(pub(crate) &'a Access);

/// A read-write enterprise administrator.
#[derive(Clone, Copy)]
pub struct Admin<'a>(pub(crate) &'a Access);

impl<'a> Enterprise<'a> {
    pub fn access(&self) -> &'a Access {
        self.0
    }
}

impl<'a> Writer<'a> {
    pub fn access(&self) -> &'a Access {
        self.0
    }
}

impl<'a> Admin<'a> {
    pub fn access(&self) -> &'a Access {
        self.0
    }
}

/// The provider's rights: every enrollment, and the feeds (usage, prices,
/// hierarchy, commitment entries, periods).
#[derive(Clone)]
pub struct Operator {
    pub(crate) app: App,
    name: String,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("name", &self.name)
            .finish()
    }
}

impl Operator {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An enrollment with an enterprise administrator's full rights, acting
    /// as the operator.
    pub fn enrollment(&self, n: &EnrollmentNumber) -> AppResult<Access> {
        let e = self.app.store().enrollment(n)?;
        Ok(Access::new(
            &self.app,
            e,
            Scope::Enrollment,
            false,
            Actor::Operator(self.name.clone()),
        ))
    }

    /// Every enrollment.
    pub fn enrollments(&self) -> AppResult<Vec<Enrollment>> {
        Ok(self.app.store().enrollments()?)
    }
}

/// A verified portal session: the person and their roles. Made only by
/// [`App::session`].
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub session: Session,
    pub user: User,
    pub roles: Vec<Role>,
}

impl SignedIn {
    /// The signed-in person's access to enrollment `number`: `NotFound` when
    /// they hold no role in it (whether or not it exists).
    pub fn access(&self, app: &App, number: &str) -> AppResult<Access> {
        let role = self
            .roles
            .iter()
            .find(|r| r.enrollment.as_str() == number)
            .ok_or_else(|| AppError::NotFound(format!("no enrollment {number} for you")))?;
        let e = app.store().enrollment(&role.enrollment)?;
        Ok(Access::new(
            app,
            e,
            role.scope,
            role.read_only,
            Actor::User {
                id: self.user.id,
                email: self.user.email.clone(),
            },
        ))
    }
}

/// How long sessions live (part of the portal's settings).
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    pub idle_secs: i64,
    pub absolute_secs: i64,
}

impl App {
    /// The caller behind an API key (`mbk_<id>_<secret>`): verified against
    /// its hash in constant time, enabled, inside its validity.
    pub fn key(&self, token: &str) -> AppResult<Access> {
        let (id, secret) = credentials::parse(token).ok_or_else(|| {
            AppError::unauthenticated(
                "MalformedKey",
                "the Authorization header is not `bearer <key>` with a Meterbook API key (mbk_...)",
            )
        })?;
        let rec = self
            .store()
            .key(id)?
            .filter(|k| credentials::verify(secret, &k.secret_hash))
            .ok_or_else(|| AppError::unauthenticated("UnknownKey", "this API key is not known"))?;
        if rec.disabled {
            return Err(AppError::unauthenticated(
                "DisabledKey",
                "this API key is disabled",
            ));
        }
        let now = self.clock().now_unix();
        if now >= rec.expires_at {
            let date = chrono::DateTime::from_timestamp(rec.expires_at, 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            return Err(AppError::unauthenticated(
                "ExpiredKey",
                format!("this API key expired on {date}; generate a new one"),
            ));
        }
        if now < rec.created_at {
            return Err(AppError::unauthenticated(
                "KeyNotYetValid",
                "this API key is not valid yet",
            ));
        }
        let e = self.store().enrollment(&rec.enrollment)?;
        Ok(Access::new(
            self,
            e,
            rec.scope,
            rec.read_only,
            Actor::Key(rec.id),
        ))
    }

    /// Records that a key was used now (advisory; the server calls it at
    /// most once a minute per key, off the request path).
    pub fn record_key_use(&self, key_id: &str) -> AppResult<()> {
        Ok(self.store().touch_key(key_id, self.clock().now_unix())?)
    }

    /// The operator behind an operator token (`mbo_<id>_<secret>`).
    pub fn operator(&self, token: &str) -> AppResult<Operator> {
        let (id, secret) = credentials::parse_with(credentials::OPERATOR_PREFIX, token)
            .ok_or_else(|| {
                AppError::unauthenticated(
                    "MalformedToken",
                    "the Authorization header is not `bearer <token>` with a Meterbook operator token (mbo_...)",
                )
            })?;
        let t = self
            .store()
            .operator_token(id)?
            .filter(|t| credentials::verify(secret, &t.secret_hash))
            .ok_or_else(|| {
                AppError::unauthenticated("UnknownToken", "this operator token is not known")
            })?;
        if t.disabled {
            return Err(AppError::unauthenticated(
                "DisabledToken",
                "this operator token is disabled",
            ));
        }
        Ok(Operator {
            app: self.clone(),
            name: t.id,
        })
    }

    /// Operator rights for whoever can open the database file: the CLI.
    pub fn local_operator(&self) -> Operator {
        Operator {
            app: self.clone(),
            name: "cli".into(),
        }
    }

    /// The person behind a session token's hash, when the session is live:
    /// not idle past `policy.idle_secs`, not older than
    /// `policy.absolute_secs`, its user enabled. An ended session is deleted.
    /// A live one is marked used at most once a minute (often enough that a
    /// session in use never looks idle).
    pub fn session(
        &self,
        token_hash: &[u8; 32],
        policy: SessionPolicy,
    ) -> AppResult<Option<SignedIn>> {
        let s = self.store();
        let Some(session) = s.session(token_hash)? else {
            return Ok(None);
        };
        let now = self.clock().now_unix();
        let idle = now - session.last_seen_at > policy.idle_secs;
        let old = now - session.created_at > policy.absolute_secs;
        if idle || old {
            s.delete_session(token_hash)?;
            return Ok(None);
        }
        let Some(user) = s.user(session.user_id)?.filter(|u| !u.disabled) else {
            s.delete_session(token_hash)?;
            return Ok(None);
        };
        let every = (policy.idle_secs / 4).min(60);
        if now - session.last_seen_at >= every {
            s.touch_session(token_hash, now)?;
        }
        let roles = s.roles(user.id)?;
        Ok(Some(SignedIn {
            session,
            user,
            roles,
        }))
    }
}
