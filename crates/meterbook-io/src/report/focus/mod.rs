//! The FinOps FOCUS 1.2 cost and usage dataset: the usage-details rows of a
//! report, plus the enrollment's purchases and adjustments, in the columns and
//! values FOCUS defines, so FinOps tools read a Meterbook export like any
//! cloud's.
//!
//! Columns: all 21 mandatory FOCUS 1.2 columns, the 4 recommended ones
//! (AvailabilityZone, ChargeFrequency, InvoiceId, ServiceSubcategory), the
//! conditional ones that Meterbook's data supports (usage measurement, unit and
//! negotiated pricing, SKUs, regions, resources, sub accounts, tags, a pricing
//! category), then a few `x_` columns for Meterbook's own hierarchy. With the
//! FOCUS validator, declare the applicability criteria
//! [`APPLICABILITY_CRITERIA`].
//!
//! Mapping decisions (each column's details are at [`schema`] and the cell builders):
//!
//! * One `Usage` row per usage-details row, in the report's (store's) order, so
//!   the Usage rows' BilledCost adds up exactly to the usage report's Cost total
//!   and to the statement's charges. Purchases and adjustments follow, by date.
//! * Costs: BilledCost = EffectiveCost = ContractedCost = ListCost = the row's exact
//!   Cost (ConsumedQuantity × ResourceRate, design §3.3) at 18 decimals. Meterbook
//!   has one price per meter and period, the enrollment's price sheet, and no
//!   separate public list price; the blended ResourceRate is what that sheet charges
//!   per unit (tiers and included units folded in, design §3.2), so it is both the
//!   ListUnitPrice and the ContractedUnitPrice, and unit price × PricingQuantity
//!   equals each cost exactly, as FOCUS requires.
//! * A usage row dated in a closed period and booked in a later one (design §3.4)
//!   is a correction to a period already invoiced: ChargeClass `Correction`, the
//!   charge period its original day, the billing period the one it is booked in.
//! * Purchases (monetary commitment) are `Purchase` rows, `One-Time`: BilledCost the
//!   amount (it is invoiced), EffectiveCost 0 (the prepayment covers future usage,
//!   whose rows carry the effective cost; counting both would count it twice).
//!   BilledCost stays the row's Cost on Usage rows, as in usage details: the
//!   statement settles a period's eligible charges from the commitment in one sum,
//!   not per row, so summing BilledCost over Usage and Purchase rows counts the
//!   usage the commitment covers twice (EffectiveCost does not).
//!   Adjustments credit (+) or debit (−) the commitment: a credit is a `Credit` row
//!   with negative costs (money back to the customer), a debit an `Adjustment` row
//!   with positive costs. Both belong to the whole enrollment: they appear only in
//!   an unfiltered report whose viewer sees the balance (design §5).
//! * Accounts: BillingAccountId is the enrollment, fully qualified
//!   (`/enrollments/8608480`), BillingAccountName its name; sub accounts are
//!   subscriptions (GUID and name). Provider and invoice issuer come from the
//!   operator's settings; a marketplace meter's publisher is its PublisherName.
//! * Units: the price sheet's UnitOfMeasure, except the Enterprise Agreement's
//!   per-time forms, which FOCUS spells differently (`1/Month` → `Months`,
//!   `1 GB/Month` → `GB-Months`).
//! * Where the viewer may not see costs, every cost and unit price reads 0 (design §5).
//! * Nothing in a row depends on when the file was made: the same data gives the
//!   same file, byte for byte.

mod columns;
mod vocabulary;
mod write;

pub use columns::schema;
pub use write::{write, FocusSettings, APPLICABILITY_CRITERIA};
