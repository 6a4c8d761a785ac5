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
