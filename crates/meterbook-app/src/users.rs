//! The people of an enrollment: who holds which role (every enterprise
//! administrator may read it, read-only ones too), inviting someone with a
//! one-time set-password link, changing and removing roles (read-write
//! enterprise administrators), and the audit log.
//!
//! Roles travel as short values (`enterprise-admin`, `enterprise-reader`,
//! `department-admin:<id>`, `department-reader:<id>`, `account-owner:<id>`):
//! [`role_value`] writes one, [`Admin`] methods parse them against the
//! hierarchy.
//!
//! Nobody changes or removes their own role here (another administrator
//! can), so an enrollment never loses its last administrator by accident.
//! A set-password link is issued only for a person without a password who
//! holds roles in this enrollment alone: a link for someone with roles
//! elsewhere would let this enrollment's administrators take over their
//! account.

use crate::{credentials, Admin, AppError, AppResult, Enterprise, Operator};
use meterbook_core::access::Scope;
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::store::StoreError;
use meterbook_core::users::{AuditEntry, Role, User};
use meterbook_core::EnrollmentNumber;

/// How long a set-password link works (as `meterbook user create` makes them).
pub const INVITE_DAYS: i64 = 7;

/// A role as a value: see the module's documentation.
pub fn role_value(r: &Role) -> String {
    match (r.scope, r.read_only) {
        (Scope::Enrollment, false) => "enterprise-admin".into(),
        (Scope::Enrollment, true) => "enterprise-reader".into(),
        (Scope::Department(d), false) => format!("department-admin:{d}"),
        (Scope::Department(d), true) => format!("department-reader:{d}"),
        (Scope::Account(a), _) => format!("account-owner:{a}"),
    }
}

/// A role for reading, with its department's or account's name.
pub fn role_label(r: &Role, h: &Hierarchy) -> String {
    match r.scope {
        Scope::Enrollment => r.title(),
        Scope::Department(d) => format!(
            "{} of {}",
            r.title(),
            h.departments.get(&d).map_or("?", |d| d.name.as_str())
        ),
        Scope::Account(a) => format!(
            "{} of {}",
            r.title(),
            h.accounts.get(&a).map_or("?", |a| a.name.as_str())
        ),
    }
}

/// The role a value names in enrollment `n`: `Invalid` when it is no role's
/// shape, `NotFound` when its department or account does not exist.
pub fn parse_role(v: &str, h: &Hierarchy, n: &EnrollmentNumber) -> AppResult<Role> {
    let bad = || {
        AppError::Invalid(format!(
            "`{}` is not a role",
            meterbook_core::quote::quote(v)
        ))
    };
    let (kind, id) = match v.split_once(':') {
        Some((k, id)) => (k, Some(id.parse::<i64>().map_err(|_| bad())?)),
        None => (v, None),
    };
    let dept = |id: Option<i64>| -> AppResult<i64> {
        id.filter(|d| h.departments.contains_key(d))
            .ok_or_else(|| AppError::NotFound("no such department".into()))
    };
    let (scope, read_only) = match kind {
        "enterprise-admin" if id.is_none() => (Scope::Enrollment, false),
        "enterprise-reader" if id.is_none() => (Scope::Enrollment, true),
        "department-admin" => (Scope::Department(dept(id)?), false),
        "department-reader" => (Scope::Department(dept(id)?), true),
        "account-owner" => (
            Scope::Account(
                id.filter(|a| h.accounts.contains_key(a))
                    .ok_or_else(|| AppError::NotFound("no such account".into()))?,
            ),
            false,
        ),
        _ => return Err(bad()),
    };
    Ok(Role {
        enrollment: n.clone(),
        scope,
        read_only,
    })
}

/// Every role of the enrollment as (value, label): enterprise roles, then
/// departments' and accounts' by name.
pub fn role_choices(h: &Hierarchy) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "enterprise-admin".to_string(),
            "Enterprise administrator".to_string(),
        ),
        (
            "enterprise-reader".to_string(),
            "Enterprise administrator (read-only)".to_string(),
        ),
    ];
    let mut depts: Vec<_> = h.departments.values().collect();
    depts.sort_by(|a, b| a.name.cmp(&b.name));
    for d in &depts {
        out.push((
            format!("department-admin:{}", d.id),
            format!("Department administrator of {}", d.name),
        ));
        out.push((
            format!("department-reader:{}", d.id),
            format!("Department administrator (read-only) of {}", d.name),
        ));
    }
    let mut accts: Vec<_> = h.accounts.values().collect();
    accts.sort_by(|a, b| a.name.cmp(&b.name));
    for a in accts {
        out.push((
            format!("account-owner:{}", a.id),
            format!("Account owner of {}", a.name),
        ));
    }
    out
}

/// Where a person stands with their account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberStatus {
    Active,
    /// Invited, no password set yet.
    Invited,
    Disabled,
}

/// A person holding a role in the enrollment (never their password hash).
#[derive(Clone, Debug)]
pub struct Member {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub status: MemberStatus,
    pub role: Role,
}

impl Member {
    fn of(u: User, role: Role) -> Member {
        Member {
            status: if u.disabled {
                MemberStatus::Disabled
            } else if u.password_hash.is_none() {
                MemberStatus::Invited
            } else {
                MemberStatus::Active
            },
            id: u.id,
            email: u.email,
            name: u.name,
            role,
        }
    }
}

/// What an invitation did.
#[derive(Debug)]
pub struct Invited {
    pub email: String,
    /// The role granted, for reading.
    pub role: String,
    /// A new user was made (else the e-mail had an account).
    pub created: bool,
    /// Their role here before, for reading, when they had one.
    pub previous: Option<String>,
    /// The user is disabled (and cannot sign in until enabled).
    pub disabled: bool,
    /// The one-time set-password token, when one was issued: shown once,
    /// only its hash is stored; it works for [`INVITE_DAYS`] days.
    pub token: Option<String>,
}

impl Enterprise<'_> {
    /// The hierarchy and the people holding a role in the enrollment.
    pub fn members(&self) -> AppResult<(Hierarchy, Vec<Member>)> {
        let (s, n) = (self.0.app.store(), self.0.number());
        let h = s.hierarchy(n)?;
        let people = s
            .enrollment_users(n)?
            .into_iter()
            .map(|(u, r)| Member::of(u, r))
            .collect();
        Ok((h, people))
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> AppResult<Vec<AuditEntry>> {
        Ok(self.0.app.store().audit_log(self.0.number(), limit)?)
    }
}

/// A checked e-mail address, lower-cased.
pub(crate) fn email_ok(v: &str) -> AppResult<String> {
    let v = v.trim().to_ascii_lowercase();
    let ok = v.len() <= 254
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        && v.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if ok {
        Ok(v)
    } else {
        Err(AppError::Invalid(format!("`{v}` is not an e-mail address")))
    }
}

impl Admin<'_> {
    /// The signed-in person's user id, if this handle is a person's.
    fn me(&self) -> Option<i64> {
        match self.0.actor() {
            crate::Actor::User { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// The person (of this enrollment) with user id `id`, and their role here.
    fn member(&self, id: i64) -> AppResult<(User, Role)> {
        self.0
            .app
            .store()
            .enrollment_users(self.0.number())?
            .into_iter()
            .find(|(u, _)| u.id == id)
            .ok_or_else(|| AppError::NotFound("no such user in this enrollment".into()))
    }

    /// Gives `email` the role `role` (a value, see [`role_value`]), making the
    /// user if the e-mail has no account (named `name`, or the e-mail's local
    /// part). Audited as `user-invited`.
    pub fn invite(&self, email: &str, name: &str, role: &str) -> AppResult<Invited> {
        let (s, n) = (self.0.app.store(), self.0.number());
        let email = email_ok(email)?;
        let name = match name.trim() {
            "" => email.split('@').next().unwrap_or_default().to_string(),
            nm if nm.chars().count() > 200 => {
                return Err(AppError::Invalid("the name is too long".into()))
            }
            nm => nm.to_string(),
        };
        let h = s.hierarchy(n)?;
        let role = parse_role(role.trim(), &h, n)?;
        let now = self.0.app.clock().now_unix();
        let (user, created) = match s.create_user(&email, &name, None, now) {
            Ok(u) => (u, true),
            Err(StoreError::Conflict(_)) => (
                s.user_by_email(&email)?
                    .ok_or_else(|| AppError::Internal("the user vanished".into()))?,
                false,
            ),
            Err(e) => return Err(e.into()),
        };
        if Some(user.id) == self.me() {
            return Err(AppError::Invalid(
                "you cannot change your own role; ask another administrator".into(),
            ));
        }
        let roles = s.roles(user.id)?;
        let before = roles.iter().find(|r| &r.enrollment == n).cloned();
        let only_here = roles.iter().all(|r| &r.enrollment == n);
        s.grant_role(user.id, &role)?;
        let token = if user.password_hash.is_none() && only_here {
            let t = credentials::random_token()
                .map_err(|e| AppError::Internal(format!("no randomness: {e}")))?;
            s.put_password_token(
                &credentials::hash_secret(&t),
                user.id,
                now + INVITE_DAYS * 86_400,
            )?;
            Some(t)
        } else {
            None
        };
        let label = role_label(&role, &h);
        self.0.audit(
            "user-invited",
            format!(
                "{email} as {label}{}{}",
                if created {
                    ", new user"
                } else {
                    ", existing user"
                },
                if token.is_some() {
                    ", set-password link issued"
                } else {
                    ""
                }
            ),
        );
        Ok(Invited {
            previous: before.map(|b| role_label(&b, &h)),
            email,
            role: label,
            created,
            disabled: user.disabled,
            token,
        })
    }

    /// Changes the role of user `id` here to `role` (a value). Audited as
    /// `role-changed`; answers what changed (`e-mail: old → new`).
    pub fn change_role(&self, id: i64, role: &str) -> AppResult<String> {
        let (s, n) = (self.0.app.store(), self.0.number());
        let (u, old) = self.member(id)?;
        if Some(u.id) == self.me() {
            return Err(AppError::Forbidden(
                "you cannot change your own role: another enterprise administrator can".into(),
            ));
        }
        let h = s.hierarchy(n)?;
        let role = parse_role(role.trim(), &h, n)?;
        if role == old {
            return Err(AppError::Invalid(format!(
                "{} already is {}",
                u.email,
                role_label(&role, &h)
            )));
        }
        s.grant_role(u.id, &role)?;
        let d = format!(
            "{}: {} → {}",
            u.email,
            role_label(&old, &h),
            role_label(&role, &h)
        );
        self.0.audit("role-changed", d.clone());
        Ok(d)
    }

    /// Removes the role of user `id` here. Audited as `role-removed`;
    /// answers whose (`e-mail (was role)`).
    pub fn remove_role(&self, id: i64) -> AppResult<String> {
        let (s, n) = (self.0.app.store(), self.0.number());
        let (u, old) = self.member(id)?;
        if Some(u.id) == self.me() {
            return Err(AppError::Forbidden(
                "you cannot remove your own role: another enterprise administrator can".into(),
            ));
        }
        let h = s.hierarchy(n)?;
        s.revoke_role(u.id, n)?;
        let d = format!("{} (was {})", u.email, role_label(&old, &h));
        self.0.audit("role-removed", d.clone());
        Ok(d)
    }
}

/// The operator's part (the CLI's `user create`): making a person a user of
/// any enrollment with a role, and the one-time link that lets an invited
/// user choose a password.
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
    /// token's hash), valid [`INVITE_DAYS`], if they have no password
    /// yet; returns whether it did.
    pub fn invite(&self, user_id: i64, token_hash: &[u8; 32]) -> AppResult<bool> {
        let s = self.app.store();
        let needs = s.user(user_id)?.is_some_and(|u| u.password_hash.is_none());
        if needs {
            let until = self.app.clock().now_unix() + INVITE_DAYS * 86_400;
            s.put_password_token(token_hash, user_id, until)?;
        }
        Ok(needs)
    }
}
