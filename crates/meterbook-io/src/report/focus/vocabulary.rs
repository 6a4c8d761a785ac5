//! FOCUS's words for Meterbook's: service categories and units.

use std::collections::HashMap;

/// ServiceName → (ServiceCategory, ServiceSubcategory), memoised per name.
#[derive(Default)]
pub(super) struct ServiceCategories(HashMap<String, (&'static str, &'static str)>);

impl ServiceCategories {
    pub(super) fn get(&mut self, service: &str) -> (&'static str, &'static str) {
        if let Some(v) = self.0.get(service) {
            return *v;
        }
        let v = service_category(service);
        self.0.insert(service.to_string(), v);
        v
    }
}

/// FOCUS's category and subcategory for a meter category, from the names the
/// Enterprise Agreement's price sheets use (case-insensitive); anything else is
/// `Other` (FOCUS: "when no suitable ServiceCategory is available").
fn service_category(meter_category: &str) -> (&'static str, &'static str) {
    const TABLE: &[(&str, &str, &str)] = &[
        // Compute
        ("Virtual Machines", "Compute", "Virtual Machines"),
        ("Virtual Machines Licenses", "Compute", "Virtual Machines"),
        ("Cloud Services", "Compute", "Virtual Machines"),
        ("Azure Dedicated Host", "Compute", "Virtual Machines"),
        ("Batch", "Compute", "Other (Compute)"),
        ("Azure Kubernetes Service", "Compute", "Containers"),
        ("Container Instances", "Compute", "Containers"),
        ("Container Apps", "Compute", "Containers"),
        ("Container Registry", "Compute", "Containers"),
        ("Functions", "Compute", "Serverless Compute"),
        ("Azure Functions", "Compute", "Serverless Compute"),
        ("Azure Virtual Desktop", "Compute", "End User Computing"),
        ("Windows Virtual Desktop", "Compute", "End User Computing"),
        // Web
        ("App Service", "Web", "Application Platforms"),
        ("Azure App Service", "Web", "Application Platforms"),
        ("Static Web Apps", "Web", "Application Platforms"),
        // Storage
        ("Storage", "Storage", "Storage Platforms"),
        ("Backup", "Storage", "Backup Storage"),
        ("Azure NetApp Files", "Storage", "File Storage"),
        // Networking
        ("Bandwidth", "Networking", "Network Connectivity"),
        ("Virtual Network", "Networking", "Network Connectivity"),
        ("VPN Gateway", "Networking", "Network Connectivity"),
        ("ExpressRoute", "Networking", "Network Connectivity"),
        ("Networking", "Networking", "Other (Networking)"),
        ("Load Balancer", "Networking", "Application Networking"),
        (
            "Application Gateway",
            "Networking",
            "Application Networking",
        ),
        ("Content Delivery Network", "Networking", "Content Delivery"),
        ("Azure Front Door Service", "Networking", "Content Delivery"),
        ("Azure Front Door", "Networking", "Content Delivery"),
        ("Azure DNS", "Networking", "Network Routing"),
        ("Traffic Manager", "Networking", "Network Routing"),
        ("Azure Firewall", "Networking", "Network Security"),
        ("Azure DDOS Protection", "Networking", "Network Security"),
        // Databases
        ("SQL Database", "Databases", "Relational Databases"),
        ("SQL Managed Instance", "Databases", "Relational Databases"),
        (
            "Azure Database for PostgreSQL",
            "Databases",
            "Relational Databases",
        ),
        (
            "Azure Database for MySQL",
            "Databases",
            "Relational Databases",
        ),
        (
            "Azure Database for MariaDB",
            "Databases",
            "Relational Databases",
        ),
        ("Azure Cosmos DB", "Databases", "NoSQL Databases"),
        ("Redis Cache", "Databases", "Caching"),
        ("Azure Cache for Redis", "Databases", "Caching"),
        ("Azure Synapse Analytics", "Databases", "Data Warehouses"),
        ("SQL Data Warehouse", "Databases", "Data Warehouses"),
        // Analytics
        ("HDInsight", "Analytics", "Data Processing"),
        ("Azure Databricks", "Analytics", "Data Processing"),
        ("Data Factory", "Analytics", "Data Processing"),
        ("Azure Data Factory v2", "Analytics", "Data Processing"),
        ("Azure Data Explorer", "Analytics", "Analytics Platforms"),
        ("Stream Analytics", "Analytics", "Streaming Analytics"),
        ("Power BI Embedded", "Analytics", "Business Intelligence"),
        ("Azure Cognitive Search", "Analytics", "Search"),
        ("Azure AI Search", "Analytics", "Search"),
        // AI and Machine Learning
        (
            "Cognitive Services",
            "AI and Machine Learning",
            "AI Platforms",
        ),
        (
            "Azure AI Services",
            "AI and Machine Learning",
            "AI Platforms",
        ),
        ("Azure OpenAI", "AI and Machine Learning", "Generative AI"),
        (
            "Azure OpenAI Service",
            "AI and Machine Learning",
            "Generative AI",
        ),
        (
            "Machine Learning",
            "AI and Machine Learning",
            "Machine Learning",
        ),
        (
            "Azure Machine Learning",
            "AI and Machine Learning",
            "Machine Learning",
        ),
        ("Azure Bot Service", "AI and Machine Learning", "Bots"),
        // Management and Governance
        (
            "Log Analytics",
            "Management and Governance",
            "Observability",
        ),
        (
            "Azure Monitor",
            "Management and Governance",
            "Observability",
        ),
        (
            "Application Insights",
            "Management and Governance",
            "Observability",
        ),
        (
            "Insight and Analytics",
            "Management and Governance",
            "Observability",
        ),
        ("Support", "Management and Governance", "Support"),
        (
            "Azure Site Recovery",
            "Management and Governance",
            "Disaster Recovery",
        ),
        (
            "Automation",
            "Management and Governance",
            "Other (Management and Governance)",
        ),
        // Security and Identity
        ("Key Vault", "Security", "Secret Management"),
        (
            "Microsoft Defender for Cloud",
            "Security",
            "Threat Detection and Response",
        ),
        (
            "Security Center",
            "Security",
            "Threat Detection and Response",
        ),
        ("Sentinel", "Security", "Threat Detection and Response"),
        (
            "Microsoft Sentinel",
            "Security",
            "Threat Detection and Response",
        ),
        (
            "Azure Active Directory",
            "Identity",
            "Identity and Access Management",
        ),
        (
            "Azure Active Directory B2C",
            "Identity",
            "Identity and Access Management",
        ),
        (
            "Microsoft Entra ID",
            "Identity",
            "Identity and Access Management",
        ),
        // Integration, IoT, developer tools, media, migration
        ("Service Bus", "Integration", "Messaging"),
        ("Event Hubs", "Integration", "Messaging"),
        ("Event Grid", "Integration", "Messaging"),
        ("API Management", "Integration", "API Management"),
        ("Logic Apps", "Integration", "Workflow Orchestration"),
        ("IoT Hub", "Internet of Things", "IoT Platforms"),
        ("IoT Central", "Internet of Things", "IoT Platforms"),
        (
            "Time Series Insights",
            "Internet of Things",
            "IoT Analytics",
        ),
        ("Azure DevOps", "Developer Tools", "Developer Platforms"),
        (
            "Visual Studio Subscription",
            "Developer Tools",
            "Development Environments",
        ),
        ("Azure Load Testing", "Developer Tools", "Quality Assurance"),
        ("Media Services", "Media", "Media Streaming"),
        ("Notification Hubs", "Mobile", "Other (Mobile)"),
        ("Azure Migrate", "Migration", "Resource Migration"),
        (
            "Azure Database Migration Service",
            "Migration",
            "Data Migration",
        ),
    ];
    TABLE
        .iter()
        .find(|(name, _, _)| name.eq_ignore_ascii_case(meter_category.trim()))
        .map_or(("Other", "Other (Other)"), |&(_, c, s)| (c, s))
}

/// UnitOfMeasure → FOCUS unit (see [`focus_unit`]), memoised per unit.
#[derive(Default)]
pub(super) struct Units(HashMap<String, String>);

impl Units {
    pub(super) fn get<'a>(&'a mut self, uom: &'a str) -> &'a str {
        if uom.is_empty() {
            // PricingUnit must not be null next to a quantity.
            return "Units";
        }
        if !uom.contains('/') {
            return uom;
        }
        if !self.0.contains_key(uom) {
            let v = focus_unit(uom).unwrap_or_else(|| uom.to_string());
            self.0.insert(uom.to_string(), v);
        }
        self.0.get(uom).map_or(uom, String::as_str)
    }
}

const TIME_UNITS: [&str; 6] = ["Year", "Month", "Day", "Hour", "Minute", "Second"];

/// The FOCUS spelling of the Enterprise Agreement's per-time units, which FOCUS's
/// unit format has no place for: `1/Month` (one unit for a month, e.g. a disk)
/// is `Months`, `1 GB/Month` (a GB for a month) is `GB-Months`. Every other unit
/// is kept as the price sheet spells it (`1 Hour`, `10 GB` already are FOCUS
/// units); `None` when there is nothing to rewrite.
fn focus_unit(uom: &str) -> Option<String> {
    let (left, time) = uom.rsplit_once('/')?;
    let time = TIME_UNITS.iter().find(|t| **t == time.trim())?;
    let left = left.trim();
    if left == "1" {
        return Some(format!("{time}s"));
    }
    let unit = left.strip_prefix("1 ")?.trim();
    let words_ok = !unit.is_empty()
        && unit.split(' ').all(|w| {
            w.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
                && w.bytes().all(|c| c.is_ascii_alphanumeric())
        });
    words_ok.then(|| format!("{unit}-{time}s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_categories_come_from_focus_lists() {
        assert_eq!(
            service_category("virtual machines"),
            ("Compute", "Virtual Machines")
        );
        assert_eq!(
            service_category("Bandwidth"),
            ("Networking", "Network Connectivity")
        );
        assert_eq!(service_category("Marketplace"), ("Other", "Other (Other)"));
        assert_eq!(service_category(""), ("Other", "Other (Other)"));
    }

    #[test]
    fn per_time_units_become_focus_units() {
        assert_eq!(focus_unit("1/Month").as_deref(), Some("Months"));
        assert_eq!(focus_unit("1/Day").as_deref(), Some("Days"));
        assert_eq!(focus_unit("1 GB/Month").as_deref(), Some("GB-Months"));
        assert_eq!(
            focus_unit("1 Host Unit/Hour").as_deref(),
            Some("Host Unit-Hours")
        );
        for kept in [
            "1 Hour",
            "10 GB",
            "GB/Month",
            "10 GB/Month",
            "1/Fortnight",
            "1 GB-x/Day",
        ] {
            assert_eq!(focus_unit(kept), None, "{kept}");
        }
        let mut units = Units::default();
        assert_eq!(units.get("1 GB/Month"), "GB-Months");
        assert_eq!(units.get("1 Hour"), "1 Hour");
        assert_eq!(units.get(""), "Units");
    }
}
