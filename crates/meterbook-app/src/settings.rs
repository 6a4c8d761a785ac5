//! The enrollment's settings: what the provider set (read by every
//! enterprise administrator) and the charge visibility its read-write
//! enterprise administrators choose (design §5).

use crate::{Admin, AppResult, Enterprise};
use meterbook_core::enrollment::ChargeVisibility;
use meterbook_core::{Enrollment, Period};

/// The enrollment as it is now, and where its billing periods stand.
#[derive(Clone, Debug)]
pub struct Settings {
    pub enrollment: Enrollment,
    /// The latest closed billing period.
    pub closed_through: Option<Period>,
    /// The oldest billing period still open.
    pub oldest_open: Option<Period>,
}

impl Enterprise<'_> {
    pub fn settings(&self) -> AppResult<Settings> {
        let s = self.0.app.store();
        let n = self.0.number();
        let enrollment = s.enrollment(n)?;
        let periods = s.periods(n)?;
        Ok(Settings {
            enrollment,
            closed_through: periods.iter().filter(|p| p.closed).map(|p| p.period).max(),
            oldest_open: periods.iter().find(|p| !p.closed).map(|p| p.period),
        })
    }
}

impl Admin<'_> {
    /// Sets who besides enterprise administrators sees charges. Each setting
    /// that changes is audited as `setting-changed` (`Name: old → new`); the
    /// answer lists them (empty when nothing changed).
    pub fn set_visibility(&self, want: ChargeVisibility) -> AppResult<Vec<String>> {
        let s = self.0.app.store();
        let n = self.0.number();
        let before = s.enrollment(n)?.visibility;
        if before == want {
            return Ok(Vec::new());
        }
        s.set_visibility(n, want)?;
        let mut changes = Vec::new();
        for (name, old, new) in [
            (
                "DepartmentAdminsViewCharges",
                before.department_admins_view_charges,
                want.department_admins_view_charges,
            ),
            (
                "AccountOwnersViewCharges",
                before.account_owners_view_charges,
                want.account_owners_view_charges,
            ),
        ] {
            if old != new {
                let c = format!("{name}: {old} → {new}");
                self.0.audit("setting-changed", c.clone());
                changes.push(c);
            }
        }
        Ok(changes)
    }
}
