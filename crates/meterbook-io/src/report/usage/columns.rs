//! The reports' columns and their names.

/// A report column: the CSV name; the JSON name is its camelCase form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Col {
    AccountId,
    AccountName,
    AccountOwnerEmail,
    AdditionalInfo,
    ChargesBilledSeparately,
    ConsumedQuantity,
    ConsumedService,
    Cost,
    CostCenter,
    Date,
    DepartmentId,
    DepartmentName,
    InstanceId,
    Location,
    MeterCategory,
    MeterId,
    MeterName,
    MeterRegion,
    MeterSubCategory,
    OfferId,
    PartNumber,
    Product,
    ResourceGroup,
    ResourceGuid,
    ResourceLocation,
    ResourceRate,
    ServiceInfo1,
    ServiceInfo2,
    ServiceName,
    ServiceTier,
    SubscriptionGuid,
    SubscriptionName,
    Tags,
    UnitOfMeasure,
    RecordId,
    IsCorrection,
    PublisherName,
    OfferName,
    PlanName,
    // The Enterprise Agreement's detail report (the legacy endpoint).
    AccountOwnerId,
    ServiceAdministratorId,
    SubscriptionId,
    Month,
    Day,
    Year,
    ExtendedCost,
    StoreServiceIdentifier,
}

impl Col {
    pub fn name(self) -> &'static str {
        use Col::*;
        match self {
            AccountId => "AccountId",
            AccountName => "AccountName",
            AccountOwnerEmail => "AccountOwnerEmail",
            AdditionalInfo => "AdditionalInfo",
            ChargesBilledSeparately => "ChargesBilledSeparately",
            ConsumedQuantity => "ConsumedQuantity",
            ConsumedService => "ConsumedService",
            Cost => "Cost",
            CostCenter => "CostCenter",
            Date => "Date",
            DepartmentId => "DepartmentId",
            DepartmentName => "DepartmentName",
            InstanceId => "InstanceId",
            Location => "Location",
            MeterCategory => "MeterCategory",
            MeterId => "MeterId",
            MeterName => "MeterName",
            MeterRegion => "MeterRegion",
            MeterSubCategory => "MeterSubCategory",
            OfferId => "OfferId",
            PartNumber => "PartNumber",
            Product => "Product",
            ResourceGroup => "ResourceGroup",
            ResourceGuid => "ResourceGuid",
            ResourceLocation => "ResourceLocation",
            ResourceRate => "ResourceRate",
            ServiceInfo1 => "ServiceInfo1",
            ServiceInfo2 => "ServiceInfo2",
            ServiceName => "ServiceName",
            ServiceTier => "ServiceTier",
            SubscriptionGuid => "SubscriptionGuid",
            SubscriptionName => "SubscriptionName",
            Tags => "Tags",
            UnitOfMeasure => "UnitOfMeasure",
            RecordId => "RecordId",
            IsCorrection => "IsCorrection",
            PublisherName => "PublisherName",
            OfferName => "OfferName",
            PlanName => "PlanName",
            AccountOwnerId => "AccountOwnerId",
            ServiceAdministratorId => "ServiceAdministratorId",
            SubscriptionId => "SubscriptionId",
            Month => "Month",
            Day => "Day",
            Year => "Year",
            ExtendedCost => "ExtendedCost",
            StoreServiceIdentifier => "StoreServiceIdentifier",
        }
    }

    /// camelCase, as the Reporting API v3 spells JSON fields.
    pub fn json_name(self) -> String {
        let n = self.name();
        let mut s = n[..1].to_ascii_lowercase();
        s.push_str(&n[1..]);
        s
    }
}

/// Usage details columns (design §4), in order.
pub const USAGE_DETAIL_COLUMNS: [Col; 36] = {
    use Col::*;
    [
        AccountId,
        AccountName,
        AccountOwnerEmail,
        AdditionalInfo,
        ChargesBilledSeparately,
        ConsumedQuantity,
        ConsumedService,
        Cost,
        CostCenter,
        Date,
        DepartmentId,
        DepartmentName,
        InstanceId,
        Location,
        MeterCategory,
        MeterId,
        MeterName,
        MeterRegion,
        MeterSubCategory,
        OfferId,
        PartNumber,
        Product,
        ResourceGroup,
        ResourceGuid,
        ResourceLocation,
        ResourceRate,
        ServiceInfo1,
        ServiceInfo2,
        ServiceName,
        ServiceTier,
        SubscriptionGuid,
        SubscriptionName,
        Tags,
        UnitOfMeasure,
        RecordId,
        IsCorrection,
    ]
};

/// Marketplace charges columns.
pub const MARKETPLACE_COLUMNS: [Col; 22] = {
    use Col::*;
    [
        AccountId,
        AccountName,
        AccountOwnerEmail,
        CostCenter,
        DepartmentName,
        SubscriptionGuid,
        SubscriptionName,
        Date,
        MeterId,
        MeterName,
        PublisherName,
        OfferName,
        PlanName,
        ConsumedQuantity,
        UnitOfMeasure,
        ResourceRate,
        Cost,
        InstanceId,
        ResourceGroup,
        Tags,
        RecordId,
        IsCorrection,
    ]
};

/// The Enterprise Agreement detail report's columns, as the legacy
/// `usage-report` endpoint spells them.
pub const LEGACY_DETAIL_COLUMNS: [Col; 31] = {
    use Col::*;
    [
        AccountOwnerId,
        AccountName,
        ServiceAdministratorId,
        SubscriptionId,
        SubscriptionGuid,
        SubscriptionName,
        Date,
        Month,
        Day,
        Year,
        Product,
        MeterId,
        MeterCategory,
        MeterSubCategory,
        MeterRegion,
        MeterName,
        ConsumedQuantity,
        ResourceRate,
        ExtendedCost,
        ResourceLocation,
        ConsumedService,
        InstanceId,
        ServiceInfo1,
        ServiceInfo2,
        AdditionalInfo,
        Tags,
        StoreServiceIdentifier,
        DepartmentName,
        CostCenter,
        UnitOfMeasure,
        ResourceGroup,
    ]
};
