//! The dataset's columns, their types, and one row's cells.

use crate::report::table::{Cell, ColType, Column};
use meterbook_core::Quantity;

pub(super) const COST_SCALE: u32 = meterbook_core::Amount::SCALE;
pub(super) const UNIT_PRICE_SCALE: u32 = meterbook_core::Price::SCALE;
/// Costs: exact amounts (quantity × rate has 6 + 12 decimals).
const COST: ColType = ColType::Decimal { scale: COST_SCALE };
/// Unit prices, as the price sheet and ResourceRate hold them.
const UNIT_PRICE: ColType = ColType::Decimal {
    scale: UNIT_PRICE_SCALE,
};
/// Quantities, as usage records hold them.
const QUANTITY: ColType = ColType::Decimal {
    scale: Quantity::SCALE,
};

/// Declares the column enum and its list in file order from one list of names.
macro_rules! columns {
    ($($name:ident),* $(,)?) => {
        /// The dataset's columns, in file order: FOCUS columns alphabetically, then
        /// Meterbook's `x_` columns (FOCUS wants custom columns last, prefixed `x_`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) enum F {
            $($name),*
        }

        impl F {
            const ALL: &'static [F] = &[$(F::$name),*];
        }
    };
}

columns!(
    AvailabilityZone,
    BilledCost,
    BillingAccountId,
    BillingAccountName,
    BillingCurrency,
    BillingPeriodEnd,
    BillingPeriodStart,
    ChargeCategory,
    ChargeClass,
    ChargeDescription,
    ChargeFrequency,
    ChargePeriodEnd,
    ChargePeriodStart,
    CommitmentDiscountStatus,
    ConsumedQuantity,
    ConsumedUnit,
    ContractedCost,
    ContractedUnitPrice,
    EffectiveCost,
    InvoiceId,
    InvoiceIssuerName,
    ListCost,
    ListUnitPrice,
    PricingCategory,
    PricingQuantity,
    PricingUnit,
    ProviderName,
    PublisherName,
    RegionId,
    RegionName,
    ResourceId,
    ResourceName,
    ServiceCategory,
    ServiceName,
    ServiceSubcategory,
    SkuId,
    SkuMeter,
    SkuPriceDetails,
    SkuPriceId,
    SubAccountId,
    SubAccountName,
    Tags,
    XAccountName,
    XCostCenter,
    XDepartmentName,
    XRecordId,
);

const NCOLS: usize = F::ALL.len();

impl F {
    /// Name, type and whether nulls occur. Not-null columns are the ones FOCUS
    /// forbids nulls in (for every charge category Meterbook writes).
    fn column(self) -> Column {
        use ColType::{Text, Timestamp};
        use F::*;
        let (name, ty, nullable) = match self {
            // Meterbook knows no zones: always null (FOCUS: null when a charge is
            // not specific to a zone).
            AvailabilityZone => ("AvailabilityZone", Text, true),
            BilledCost => ("BilledCost", COST, false),
            BillingAccountId => ("BillingAccountId", Text, false),
            BillingAccountName => ("BillingAccountName", Text, false),
            BillingCurrency => ("BillingCurrency", Text, false),
            BillingPeriodEnd => ("BillingPeriodEnd", Timestamp, false),
            BillingPeriodStart => ("BillingPeriodStart", Timestamp, false),
            ChargeCategory => ("ChargeCategory", Text, false),
            ChargeClass => ("ChargeClass", Text, true),
            ChargeDescription => ("ChargeDescription", Text, false),
            ChargeFrequency => ("ChargeFrequency", Text, false),
            ChargePeriodEnd => ("ChargePeriodEnd", Timestamp, false),
            ChargePeriodStart => ("ChargePeriodStart", Timestamp, false),
            // Meterbook has no commitment discounts, so this is always null. It is
            // written because the validator's ConsumedQuantity rules read it for
            // every Usage row and fail when it is missing; null is the value FOCUS
            // gives charges without a commitment discount.
            CommitmentDiscountStatus => ("CommitmentDiscountStatus", Text, true),
            ConsumedQuantity => ("ConsumedQuantity", QUANTITY, true),
            ConsumedUnit => ("ConsumedUnit", Text, true),
            ContractedCost => ("ContractedCost", COST, false),
            ContractedUnitPrice => ("ContractedUnitPrice", UNIT_PRICE, true),
            EffectiveCost => ("EffectiveCost", COST, false),
            // Meterbook keeps statements, not invoices: the invoice the provider
            // issues from a statement has a number Meterbook never learns, and an
            // id made up per period would break "the BilledCost of an InvoiceId
            // adds up to the invoice's payable amount" (usage drawn from the
            // prepaid commitment is not payable again). So: always null.
            InvoiceId => ("InvoiceId", Text, true),
            InvoiceIssuerName => ("InvoiceIssuerName", Text, false),
            ListCost => ("ListCost", COST, false),
            ListUnitPrice => ("ListUnitPrice", UNIT_PRICE, true),
            PricingCategory => ("PricingCategory", Text, true),
            PricingQuantity => ("PricingQuantity", QUANTITY, true),
            PricingUnit => ("PricingUnit", Text, true),
            ProviderName => ("ProviderName", Text, false),
            PublisherName => ("PublisherName", Text, false),
            RegionId => ("RegionId", Text, true),
            RegionName => ("RegionName", Text, true),
            ResourceId => ("ResourceId", Text, true),
            ResourceName => ("ResourceName", Text, true),
            ServiceCategory => ("ServiceCategory", Text, false),
            ServiceName => ("ServiceName", Text, false),
            ServiceSubcategory => ("ServiceSubcategory", Text, false),
            SkuId => ("SkuId", Text, true),
            SkuMeter => ("SkuMeter", Text, true),
            // No FOCUS-defined SKU price property applies to a price-sheet meter:
            // always null (FOCUS allows it).
            SkuPriceDetails => ("SkuPriceDetails", Text, true),
            SkuPriceId => ("SkuPriceId", Text, true),
            SubAccountId => ("SubAccountId", Text, true),
            SubAccountName => ("SubAccountName", Text, true),
            Tags => ("Tags", Text, true),
            XAccountName => ("x_AccountName", Text, true),
            XCostCenter => ("x_CostCenter", Text, true),
            XDepartmentName => ("x_DepartmentName", Text, true),
            XRecordId => ("x_RecordId", Text, true),
        };
        Column::new(name, ty, nullable)
    }
}

/// The FOCUS 1.2 columns, typed: costs as exact decimals at 18 places, unit
/// prices at 12, quantities at 6 (the scales Meterbook computes at, so no value
/// is rounded); charge and billing periods as UTC timestamps.
pub fn schema() -> Vec<Column> {
    F::ALL.iter().map(|c| c.column()).collect()
}

/// One row's cells, indexed by [`F`].
pub(super) struct Cells<'a>(pub(super) [Cell<'a>; NCOLS]);

impl<'a> Cells<'a> {
    pub(super) fn new() -> Self {
        Cells([Cell::Null; NCOLS])
    }
    pub(super) fn set(&mut self, c: F, v: Cell<'a>) {
        self.0[c as usize] = v;
    }
    pub(super) fn text(&mut self, c: F, s: &'a str) {
        self.set(c, Cell::Text(s));
    }
    /// Text, or null when empty (FOCUS uses null, never "", for "no value").
    pub(super) fn opt(&mut self, c: F, s: &'a str) {
        self.set(
            c,
            if s.is_empty() {
                Cell::Null
            } else {
                Cell::Text(s)
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_order_matches_the_cell_index() {
        for (i, c) in F::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
    }

    /// The FOCUS 1.2 columns a dataset must have (21 mandatory), should have (4
    /// recommended), and the conditional ones that apply to Meterbook, with the
    /// validator's types.
    #[test]
    fn schema_has_the_focus_columns_with_their_types() {
        let s = schema();
        let find = |name: &str| {
            s.iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("missing column {name}"))
        };
        let mandatory = [
            "BilledCost",
            "BillingAccountId",
            "BillingAccountName",
            "BillingCurrency",
            "BillingPeriodEnd",
            "BillingPeriodStart",
            "ChargeCategory",
            "ChargeClass",
            "ChargeDescription",
            "ChargePeriodEnd",
            "ChargePeriodStart",
            "ContractedCost",
            "EffectiveCost",
            "InvoiceIssuerName",
            "ListCost",
            "PricingQuantity",
            "PricingUnit",
            "ProviderName",
            "PublisherName",
            "ServiceCategory",
            "ServiceName",
        ];
        let recommended = [
            "AvailabilityZone",
            "ChargeFrequency",
            "InvoiceId",
            "ServiceSubcategory",
        ];
        let conditional = [
            // Always null; see its column.
            "CommitmentDiscountStatus",
            "ConsumedQuantity",
            "ConsumedUnit",
            "ContractedUnitPrice",
            "ListUnitPrice",
            "PricingCategory",
            "RegionId",
            "RegionName",
            "ResourceId",
            "ResourceName",
            "SkuId",
            "SkuMeter",
            "SkuPriceDetails",
            "SkuPriceId",
            "SubAccountId",
            "SubAccountName",
            "Tags",
        ];
        assert_eq!(mandatory.len(), 21);
        for name in mandatory.iter().chain(&recommended).chain(&conditional) {
            find(name);
        }
        for name in ["BilledCost", "EffectiveCost", "ContractedCost", "ListCost"] {
            assert_eq!(find(name).ty, ColType::Decimal { scale: 18 }, "{name}");
            assert!(!find(name).nullable, "{name}");
        }
        for name in ["ListUnitPrice", "ContractedUnitPrice"] {
            assert_eq!(find(name).ty, ColType::Decimal { scale: 12 }, "{name}");
        }
        for name in ["ConsumedQuantity", "PricingQuantity"] {
            assert_eq!(find(name).ty, ColType::Decimal { scale: 6 }, "{name}");
        }
        for name in [
            "BillingPeriodStart",
            "BillingPeriodEnd",
            "ChargePeriodStart",
            "ChargePeriodEnd",
        ] {
            assert_eq!(find(name).ty, ColType::Timestamp, "{name}");
            assert!(!find(name).nullable, "{name}");
        }
        // Every other FOCUS column is a string; custom ones come last, prefixed.
        let numeric_or_time = 12;
        let strings = s.iter().filter(|c| c.ty == ColType::Text).count();
        assert_eq!(strings + numeric_or_time, s.len());
        let first_custom = s
            .iter()
            .position(|c| c.name.starts_with("x_"))
            .unwrap_or(s.len());
        assert_eq!(
            first_custom,
            mandatory.len() + recommended.len() + conditional.len()
        );
        assert!(s[first_custom..].iter().all(|c| c.name.starts_with("x_")));
    }
}
