//! What a report includes, and whose rows it may show.

use meterbook_core::store::UsageSelection;

/// Whose rows a report may show (design §5). There is no default: every
/// report states whether a viewer's scope bounds it or it is an operator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Only rows within this scope.
    Scope(meterbook_core::access::Scope),
    /// Every row of the enrollment: operators only.
    Everything,
}

/// What to include. There is no `Default`: a filter is made by
/// [`UsageFilter::within`] (a viewer's scope) or [`UsageFilter::operator`]
/// (everything), so no report sees everything by accident.
#[derive(Clone, Debug)]
pub struct UsageFilter {
    pub selection: UsageSelection,
    /// Account names; with `departments`, a row is kept if either matches. Both empty: all rows.
    pub accounts: Vec<String>,
    pub departments: Vec<String>,
    /// False where the viewer may not see costs: cost and rate read 0 (design §5).
    pub show_costs: bool,
    /// Only marketplace meters (the Marketplace charges report).
    pub marketplace_only: bool,
    /// Rows outside this reach are left out (design §5).
    pub reach: Reach,
    /// The legacy layout (overrides `marketplace_only`'s columns, not its rows).
    pub legacy: bool,
}

impl UsageFilter {
    /// The rows of `selection` within `scope`, costs shown only if
    /// `show_costs`; no account or department filter, usage details layout.
    pub fn within(
        scope: meterbook_core::access::Scope,
        show_costs: bool,
        selection: UsageSelection,
    ) -> UsageFilter {
        UsageFilter::new(Reach::Scope(scope), show_costs, selection)
    }

    /// Every row of `selection`, costs shown: the operator's view.
    pub fn operator(selection: UsageSelection) -> UsageFilter {
        UsageFilter::new(Reach::Everything, true, selection)
    }

    fn new(reach: Reach, show_costs: bool, selection: UsageSelection) -> UsageFilter {
        UsageFilter {
            selection,
            accounts: Vec::new(),
            departments: Vec::new(),
            show_costs,
            marketplace_only: false,
            reach,
            legacy: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meterbook_core::access::Scope;

    /// A filter names its reach: a viewer's scope (costs as the viewer may
    /// see them) or, for operators only, everything with costs shown.
    #[test]
    fn constructors_state_the_reach() {
        let within = UsageFilter::within(Scope::Account(7), false, UsageSelection::default());
        assert_eq!(within.reach, Reach::Scope(Scope::Account(7)));
        assert!(!within.show_costs);
        let operator = UsageFilter::operator(UsageSelection::default());
        assert_eq!(operator.reach, Reach::Everything);
        assert!(operator.show_costs);
        for f in [within, operator] {
            assert!(f.accounts.is_empty() && f.departments.is_empty());
            assert!(!f.marketplace_only && !f.legacy);
        }
    }
}
