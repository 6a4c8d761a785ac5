//! Who sees what (design §5), and the API access keys that carry a scope.

use crate::enrollment::{ChargeVisibility, EnrollmentNumber};
use crate::hierarchy::{Account, Hierarchy};
use crate::store::StoreResult;

/// The part of an enrollment a person (and the keys they make) may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Enterprise administrator: everything in the enrollment.
    Enrollment,
    /// Department administrator of this department.
    Department(i64),
    /// Owner of this account.
    Account(i64),
}

impl Scope {
    pub fn kind(self) -> &'static str {
        match self {
            Scope::Enrollment => "enrollment",
            Scope::Department(_) => "department",
            Scope::Account(_) => "account",
        }
    }

    /// Balance and price sheet are for enterprise administrators only.
    pub fn sees_balance(self) -> bool {
        self == Scope::Enrollment
    }

    /// Costs are visible to enterprise administrators, and to the others
    /// when the enrollment's setting allows (hidden costs read 0).
    pub fn sees_costs(self, v: ChargeVisibility) -> bool {
        match self {
            Scope::Enrollment => true,
            Scope::Department(_) => v.department_admins_view_charges,
            Scope::Account(_) => v.account_owners_view_charges,
        }
    }

    /// Whether usage attributed to `account` is inside this scope.
    pub fn covers_account(self, account: Option<&Account>) -> bool {
        match self {
            Scope::Enrollment => true,
            Scope::Department(d) => account.is_some_and(|a| a.department_id == Some(d)),
            Scope::Account(id) => account.is_some_and(|a| a.id == id),
        }
    }

    /// Whether this scope includes all of `other` (a key may only be made for a
    /// scope its maker can see).
    pub fn covers(self, other: Scope, h: &Hierarchy) -> bool {
        match (self, other) {
            (Scope::Enrollment, _) => true,
            (Scope::Department(d), Scope::Department(o)) => d == o,
            (Scope::Department(d), Scope::Account(a)) => h
                .accounts
                .get(&a)
                .is_some_and(|a| a.department_id == Some(d)),
            (Scope::Account(a), Scope::Account(o)) => a == o,
            _ => false,
        }
    }
}

/// Each scope has two keys so one can be rotated while the other works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    Primary,
    Secondary,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Primary => "primary",
            Slot::Secondary => "secondary",
        }
    }
    pub fn parse(s: &str) -> Option<Slot> {
        match s.to_ascii_lowercase().as_str() {
            "primary" => Some(Slot::Primary),
            "secondary" => Some(Slot::Secondary),
            _ => None,
        }
    }
}

/// A stored API access key. The secret is never stored, only its SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The public id part of the key (looked up without a scan).
    pub id: String,
    pub enrollment: EnrollmentNumber,
    pub scope: Scope,
    pub slot: Slot,
    /// Made by a read-only administrator: may read, never manage keys.
    pub read_only: bool,
    pub secret_hash: [u8; 32],
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: i64,
    pub disabled: bool,
    pub last_used_at: Option<i64>,
}

impl std::fmt::Debug for KeyRecord {
    // The hash stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id)
            .field("enrollment", &self.enrollment)
            .field("scope", &self.scope)
            .field("slot", &self.slot)
            .field("expires_at", &self.expires_at)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// API access keys.
pub trait KeyStore {
    /// Stores `k`, replacing any key in the same enrollment, scope and slot.
    fn put_key(&self, k: &KeyRecord) -> StoreResult<()>;
    fn key(&self, id: &str) -> StoreResult<Option<KeyRecord>>;
    fn keys(&self, n: &EnrollmentNumber) -> StoreResult<Vec<KeyRecord>>;
    /// Disables (or re-enables) the key in a slot; false when there is none.
    fn set_key_disabled(
        &self,
        n: &EnrollmentNumber,
        scope: Scope,
        slot: Slot,
        disabled: bool,
    ) -> StoreResult<bool>;
    fn touch_key(&self, id: &str, at: i64) -> StoreResult<()>;
}

/// A provider operator's token for the operator API (never a customer key).
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorToken {
    pub id: String,
    pub name: String,
    pub secret_hash: [u8; 32],
    pub created_at: i64,
    pub disabled: bool,
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Operator tokens.
pub trait OperatorStore {
    fn put_operator_token(&self, t: &OperatorToken) -> StoreResult<()>;
    fn operator_token(&self, id: &str) -> StoreResult<Option<OperatorToken>>;
    /// Every operator token, oldest first (for listing; secrets are only hashes).
    fn operator_tokens(&self) -> StoreResult<Vec<OperatorToken>>;
    /// Disables (or re-enables) a token; false when there is no such token.
    fn set_operator_token_disabled(&self, id: &str, disabled: bool) -> StoreResult<bool>;
}
