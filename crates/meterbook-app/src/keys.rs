//! API access keys: who sees which, generating (or regenerating) and
//! disabling them, each bounded by the caller's reach. A new key's secret is
//! returned once and only its hash is stored.

use crate::{credentials, Access, AppError, AppResult, Operator, Writer};
use meterbook_core::access::{KeyRecord, Scope, Slot};
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::users::AuditEntry;
use meterbook_core::EnrollmentNumber;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// How long keys live: the lifetime a request gets when it names none, and
/// the longest the operator allows.
#[derive(Clone, Copy, Debug)]
pub struct KeyLifetime {
    pub default_days: u32,
    pub max_days: u32,
}

impl KeyLifetime {
    /// The lifetime of a request: `days` if given and allowed, else the default.
    pub fn days(&self, days: Option<u32>) -> AppResult<u32> {
        let d = days.unwrap_or(self.default_days.min(self.max_days));
        if d == 0 || d > self.max_days {
            return Err(AppError::Invalid(format!(
                "the lifetime must be 1 to {} days",
                self.max_days
            )));
        }
        Ok(d)
    }
}

/// A key just made: the record, and the full key to show once.
pub struct NewKey {
    pub record: KeyRecord,
    pub token: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// The scope a request names: `enrollment`, or `department`/`account` with a
/// name of the hierarchy.
pub fn named_scope(h: &Hierarchy, kind: &str, name: Option<&str>) -> AppResult<Scope> {
    let name =
        || name.ok_or_else(|| AppError::Invalid(format!("`name` is required for scope {kind}")));
    match kind.to_ascii_lowercase().as_str() {
        "enrollment" => Ok(Scope::Enrollment),
        "department" => h
            .department_by_name(name()?)
            .map(|d| Scope::Department(d.id))
            .ok_or_else(|| AppError::NotFound(format!("no department {}", name().unwrap_or("")))),
        "account" => h
            .account_by_name(name()?)
            .map(|a| Scope::Account(a.id))
            .ok_or_else(|| AppError::NotFound(format!("no account {}", name().unwrap_or("")))),
        other => Err(AppError::Invalid(format!(
            "`scope` must be enrollment, department or account, not `{}`",
            meterbook_core::quote::quote(other)
        ))),
    }
}

/// The name of a key's department or account (`None` for the enrollment).
pub fn scope_name(h: &Hierarchy, s: Scope) -> Option<String> {
    match s {
        Scope::Enrollment => None,
        Scope::Department(d) => h.departments.get(&d).map(|d| d.name.clone()),
        Scope::Account(a) => h.accounts.get(&a).map(|a| a.name.clone()),
    }
}

impl Access {
    /// The keys of scopes within this caller's reach, and the hierarchy that
    /// names them.
    pub fn keys(&self) -> AppResult<(Hierarchy, Vec<KeyRecord>)> {
        let s = self.app.store();
        let h = s.hierarchy(self.number())?;
        let keys = s
            .keys(self.number())?
            .into_iter()
            .filter(|k| self.scope().covers(k.scope, &h))
            .collect();
        Ok((h, keys))
    }

    /// Records an audit line as this caller (failures are logged, not raised:
    /// the change it describes has happened).
    pub fn audit(&self, action: &str, detail: String) {
        let actor = match self.actor() {
            crate::Actor::User { email, .. } => email.clone(),
            crate::Actor::Key(id) => format!("key {}{id}", credentials::PREFIX),
            crate::Actor::Operator(name) => format!("operator {name}"),
        };
        let e = AuditEntry {
            at: self.app.clock().now_unix(),
            actor,
            action: action.to_string(),
            detail,
        };
        if let Err(err) = self.app.store().audit(self.number(), &e) {
            tracing::warn!(error = %err, "cannot write the audit log");
        }
    }
}

impl Writer<'_> {
    /// Checks that `scope` exists and is one this caller may make keys for.
    fn within(&self, h: &Hierarchy, scope: Scope) -> AppResult<()> {
        let known = match scope {
            Scope::Enrollment => true,
            Scope::Department(d) => h.departments.contains_key(&d),
            Scope::Account(a) => h.accounts.contains_key(&a),
        };
        if !known {
            return Err(AppError::NotFound(
                "there is no such department or account".into(),
            ));
        }
        if self.access().scope().covers(scope, h) {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "your scope does not include that scope: you can make keys only for what you can see"
                    .into(),
            ))
        }
    }

    /// A new key in `slot` of `scope`, replacing the one there; lives `days`.
    pub fn generate_key(&self, scope: Scope, slot: Slot, days: u32) -> AppResult<NewKey> {
        let a = self.access();
        let h = a.hierarchy()?;
        self.within(&h, scope)?;
        let new = put_new_key(a, scope, slot, days, false)?;
        a.audit(
            "key-generated",
            format!(
                "{} {}, {} key {}{}",
                scope.kind(),
                scope_name(&h, scope).unwrap_or_default(),
                slot.as_str(),
                credentials::PREFIX,
                new.record.id
            ),
        );
        Ok(new)
    }

    /// Disables (or re-enables) the key in `slot` of `scope`.
    pub fn set_key_disabled(&self, scope: Scope, slot: Slot, disabled: bool) -> AppResult<()> {
        let a = self.access();
        let h = a.hierarchy()?;
        self.within(&h, scope)?;
        if !a
            .app
            .store()
            .set_key_disabled(a.number(), scope, slot, disabled)?
        {
            return Err(AppError::NotFound("there is no key in that slot".into()));
        }
        a.audit(
            if disabled {
                "key-disabled"
            } else {
                "key-enabled"
            },
            format!(
                "{} {}, {} key",
                scope.kind(),
                scope_name(&h, scope).unwrap_or_default(),
                slot.as_str()
            ),
        );
        Ok(())
    }
}

pub(crate) fn put_new_key(
    a: &Access,
    scope: Scope,
    slot: Slot,
    days: u32,
    read_only: bool,
) -> AppResult<NewKey> {
    let new = credentials::generate().map_err(|e| AppError::Internal(e.to_string()))?;
    let now = a.app.clock().now_unix();
    let record = KeyRecord {
        id: new.id,
        enrollment: a.number().clone(),
        scope,
        slot,
        read_only,
        secret_hash: new.secret_hash,
        created_at: now,
        expires_at: now + i64::from(days) * DAY,
        disabled: false,
        last_used_at: None,
    };
    a.app.store().put_key(&record)?;
    Ok(NewKey {
        record,
        token: new.token,
    })
}

impl Operator {
    /// An enterprise administrator's key for a customer (read-only if asked).
    pub fn enterprise_key(
        &self,
        n: &EnrollmentNumber,
        slot: Slot,
        days: u32,
        read_only: bool,
    ) -> AppResult<NewKey> {
        let a = self.enrollment(n)?;
        let new = put_new_key(&a, Scope::Enrollment, slot, days, read_only)?;
        a.audit(
            "key-generated",
            format!(
                "enterprise {} key {}{}{}",
                slot.as_str(),
                credentials::PREFIX,
                new.record.id,
                if read_only { " (read-only)" } else { "" }
            ),
        );
        Ok(new)
    }
}
