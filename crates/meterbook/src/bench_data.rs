//! `meterbook bench`'s realistic data set: usage shaped like a real
//! Enterprise Agreement feed (docs/benchmarks.md, "Data shapes").
//!
//! - RecordId: a random UUIDv4 per row; rows of a day come in no order.
//! - Resources: 3 per 100 rows asked for (about 30k for 1M rows), each on
//!   one meter, in one subscription and resource group, alive for a random
//!   stretch of the six months (33 days on average) with one row a day; its
//!   InstanceId is `/subscriptions/<guid>/resourceGroups/<rg>/providers/<provider>/<type>/<name>`
//!   and it carries JSON tags of its own.
//! - 72 subscriptions (6 departments × 3 accounts × 4 subscriptions).
//! - 40 meters with GUID ids, a fifth of them (8) tiered.
//! - Six months: 2025-07-01 through 2025-12-31.
//!
//! Deterministic for a seed; written to files first, so a bench times the
//! ingest of a file and never the generator.

use crate::demo::Generated;
use anyhow::Result;
use meterbook_core::Day;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;

pub const SUBSCRIPTIONS: usize = 72;
pub const METERS: usize = 40;
/// Every fifth meter has three price tiers.
pub const TIERED_EVERY: usize = 5;
/// Resources per 100 rows asked for.
const RESOURCES_PER_100_ROWS: u64 = 3;

pub fn first_day() -> Day {
    "2025-07-01".parse().expect("date")
}

pub fn last_day() -> Day {
    "2025-12-31".parse().expect("date")
}

const DEPARTMENTS: [(&str, &str); 6] = [
    ("Research", "RD-400"),
    ("Operations", "OP-100"),
    ("Marketing", "MK-200"),
    ("Finance", "FN-300"),
    ("Sales", "SL-500"),
    ("Platform", "PL-600"),
];

const REGIONS: [&str; 8] = [
    "EU West",
    "EU North",
    "US East",
    "US East 2",
    "US West 2",
    "UK South",
    "AP Southeast",
    "JA East",
];

/// (category, subcategory prefix, unit, provider, consumed service,
/// daily quantity range in micro-units, base unit price in micro-dollars)
type Kind = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    (u64, u64),
    u64,
);

const KINDS: [Kind; 10] = [
    (
        "Virtual Machines",
        "Dsv5 Series",
        "1 Hour",
        "Microsoft.Compute/virtualMachines",
        "Microsoft.Compute",
        (1_000_000, 24_000_000),
        96_000,
    ),
    (
        "Storage",
        "Premium SSD Managed Disks",
        "1/Month",
        "Microsoft.Compute/disks",
        "Microsoft.Compute",
        (33_333, 33_334),
        19_710_000,
    ),
    (
        "Storage",
        "Blob Storage",
        "1 GB/Month",
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Storage",
        (1_000_000, 900_000_000),
        19_600,
    ),
    (
        "Bandwidth",
        "Inter-Region",
        "1 GB",
        "Microsoft.Network/publicIPAddresses",
        "Microsoft.Network",
        (1_000, 60_000_000),
        87_000,
    ),
    (
        "SQL Database",
        "General Purpose - Compute Gen5",
        "1 Hour",
        "Microsoft.Sql/servers",
        "Microsoft.Sql",
        (24_000_000, 24_000_000),
        504_400,
    ),
    (
        "Functions",
        "Consumption",
        "1 GB Second",
        "Microsoft.Web/sites",
        "Microsoft.Web",
        (100_000_000, 9_000_000_000),
        16,
    ),
    (
        "Log Analytics",
        "Analytics Logs",
        "1 GB",
        "Microsoft.OperationalInsights/workspaces",
        "Microsoft.OperationalInsights",
        (100_000, 4_000_000),
        2_760_000,
    ),
    (
        "Azure Cosmos DB",
        "Autoscale",
        "100 RU/s",
        "Microsoft.DocumentDB/databaseAccounts",
        "Microsoft.DocumentDB",
        (24_000_000, 240_000_000),
        12_000,
    ),
    (
        "Azure Kubernetes Service",
        "Standard",
        "1 Hour",
        "Microsoft.ContainerService/managedClusters",
        "Microsoft.ContainerService",
        (24_000_000, 24_000_000),
        100_000,
    ),
    (
        "Key Vault",
        "Standard",
        "10K Operations",
        "Microsoft.KeyVault/vaults",
        "Microsoft.KeyVault",
        (1_000, 50_000_000),
        30_000,
    ),
];

struct Meter {
    id: String,
    kind: usize,
    variant: usize,
}

struct Resource {
    /// Index into the plan's subscriptions and meters.
    sub: usize,
    meter: usize,
    /// The row from InstanceId through ServiceInfo2, CSV-encoded.
    rest: String,
    start: u32,
    end: u32,
}

/// The data set before it is written: subscriptions, meters, resources.
pub struct Plan {
    subs: Vec<String>,
    meters: Vec<Meter>,
    resources: Vec<Resource>,
    seed: u64,
}

/// A random UUIDv4 (version 4, RFC 4122 variant), lower-case.
pub fn uuid4(rng: &mut fastrand::Rng) -> String {
    let mut b = rng.u128(..);
    b = (b & !(0xf << 76)) | (0x4 << 76);
    b = (b & !(0x3 << 62)) | (0x2 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (b >> 96) as u32,
        (b >> 80) as u16,
        (b >> 64) as u16,
        (b >> 48) as u16,
        (b & 0xffff_ffff_ffff) as u64
    )
}

fn days() -> u32 {
    (last_day().raw() - first_day().raw() + 1) as u32
}

/// Draws subscriptions, meters and resources for about `rows` usage rows.
pub fn plan(rows: u64, seed: u64) -> Plan {
    let mut rng = fastrand::Rng::with_seed(seed);
    let subs: Vec<String> = (0..SUBSCRIPTIONS).map(|_| uuid4(&mut rng)).collect();
    let meters: Vec<Meter> = (0..METERS)
        .map(|i| Meter {
            id: uuid4(&mut rng),
            kind: i % KINDS.len(),
            variant: i / KINDS.len(),
        })
        .collect();
    let n = (rows * RESOURCES_PER_100_ROWS / 100).max(1);
    let days = days();
    // Lifetimes of 1..=2·avg−1 days average `avg`, so rows ≈ resources × avg.
    let avg = (rows as f64 / n as f64).round().max(1.0) as u32;
    let longest = (2 * avg - 1).min(days);
    let mut resources = Vec::with_capacity(n as usize);
    for i in 0..n {
        // Half spread evenly, half crowded into the first subscriptions: a
        // few hold most resources, as in real enrollments.
        let u = if rng.bool() {
            rng.f64()
        } else {
            rng.f64() * rng.f64()
        };
        let sub = ((u * SUBSCRIPTIONS as f64) as usize).min(SUBSCRIPTIONS - 1);
        let meter = rng.usize(..METERS);
        let (_, _, _, provider, service, _, _) = KINDS[meters[meter].kind];
        let app = rng.u32(..400);
        let env = ["prod", "dev", "test", "staging"][rng.usize(..4)];
        let group = format!("rg-app{app:03}-{env}");
        let name = format!("{}-{i:x}", provider.rsplit('/').next().unwrap_or("res"));
        let region = REGIONS[rng.usize(..REGIONS.len())];
        let mut rest = String::with_capacity(320);
        let _ = write!(
            rest,
            "/subscriptions/{}/resourceGroups/{group}/providers/{provider}/{name},{group},{region},{service},",
            subs[sub]
        );
        let dept = DEPARTMENTS[sub / (SUBSCRIPTIONS / DEPARTMENTS.len())].1;
        let tags = format!(
            r#"{{"env":"{env}","app":"app{app:03}","costCenter":"{dept}","owner":"team{}@contoso.example","createdBy":"pipeline-{}"}}"#,
            rng.u32(..60),
            rng.u32(..1000)
        );
        push_csv(&mut rest, &tags);
        rest.push(',');
        if KINDS[meters[meter].kind].0 == "Virtual Machines" {
            let info = format!(
                r#"{{"ImageType":"Canonical","ServiceType":"Standard_D{}s_v5","VCPUs":{}}}"#,
                2 << meters[meter].variant,
                2 << meters[meter].variant
            );
            push_csv(&mut rest, &info);
        }
        rest.push_str(",,");
        let life = 1 + rng.u32(..longest);
        let start = rng.u32(..=days - life);
        resources.push(Resource {
            sub,
            meter,
            rest,
            start,
            end: start + life,
        });
    }
    Plan {
        subs,
        meters,
        resources,
        seed,
    }
}

impl Plan {
    /// Rows the usage file will hold.
    #[cfg(test)]
    fn rows(&self) -> u64 {
        self.resources
            .iter()
            .map(|r| u64::from(r.end - r.start))
            .sum()
    }

    /// Writes hierarchy.csv, one price sheet per month and (unless
    /// `with_usage` is false: files kept from an earlier run) usage.csv.
    pub fn write(&self, dir: &Path, with_usage: bool) -> Result<Generated> {
        std::fs::create_dir_all(dir)?;
        let hierarchy = dir.join("hierarchy.csv");
        let mut h = BufWriter::new(std::fs::File::create(&hierarchy)?);
        writeln!(h, "DepartmentName,DepartmentCostCenter,AccountName,AccountOwnerEmail,AccountCostCenter,SubscriptionGuid,SubscriptionName")?;
        let per_dept = SUBSCRIPTIONS / DEPARTMENTS.len();
        for (i, g) in self.subs.iter().enumerate() {
            let (dept, dcc) = DEPARTMENTS[i / per_dept];
            let acct = i / 4;
            writeln!(
                h,
                "{dept},{dcc},acct-{acct:02},owner{acct:02}@contoso.example,{dcc}-{acct:02},{g},sub-{i:02}"
            )?;
        }
        h.flush()?;

        let mut prices = Vec::new();
        for p in first_day().period().through(last_day().period()) {
            let path = dir.join(format!("prices-{p}.csv"));
            let mut w = BufWriter::new(std::fs::File::create(&path)?);
            writeln!(w, "MeterId,MeterName,MeterCategory,MeterSubCategory,MeterRegion,UnitOfMeasure,PartNumber,UnitPrice,IncludedQuantity,TierMinimumUnits,ChargesBilledSeparately,PublisherName,OfferName,PlanName")?;
            for (mi, m) in self.meters.iter().enumerate() {
                let (cat, sub, unit, _, _, _, base) = KINDS[m.kind];
                let base = base << m.variant;
                let tiers: &[(u64, u64)] = if mi % TIERED_EVERY == TIERED_EVERY - 1 {
                    &[(0, 100), (1_000, 95), (50_000, 88)]
                } else {
                    &[(0, 100)]
                };
                for (min, pct) in tiers {
                    let price = base * pct / 100;
                    writeln!(
                        w,
                        "{},{cat} {} v{},{cat},{sub},EU West,{unit},N9H-{mi:05},{}.{:06},0,{min},false,,,",
                        m.id,
                        sub,
                        m.variant + 1,
                        price / 1_000_000,
                        price % 1_000_000
                    )?;
                }
            }
            w.flush()?;
            prices.push((p, path));
        }

        let usage = dir.join("usage.csv");
        if with_usage {
            self.write_usage(&usage)?;
        }
        Ok(Generated {
            hierarchy,
            prices,
            usage,
            subscriptions: self.subs.iter().map(|g| (g.clone(), "")).collect(),
        })
    }

    fn write_usage(&self, path: &Path) -> Result<()> {
        let mut rng = fastrand::Rng::with_seed(self.seed ^ 0x5eed_5eed);
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        writeln!(w, "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,InstanceId,ResourceGroup,ResourceLocation,ConsumedService,Tags,AdditionalInfo,ServiceInfo1,ServiceInfo2")?;
        let mut line = String::with_capacity(512);
        let mut active = Vec::new();
        let mut day = first_day();
        for d in 0..days() {
            let mut date = String::new();
            day.write_iso(&mut date);
            active.clear();
            active.extend(
                (0..self.resources.len())
                    .filter(|&i| self.resources[i].start <= d && d < self.resources[i].end),
            );
            // Records of a day arrive in no order.
            rng.shuffle(&mut active);
            for &i in &active {
                let r = &self.resources[i];
                let m = &self.meters[r.meter];
                let (lo, hi) = KINDS[m.kind].5;
                let q = if hi > lo { lo + rng.u64(..hi - lo) } else { lo };
                line.clear();
                line.push_str(&uuid4(&mut rng));
                let _ = writeln!(
                    line,
                    ",{},{date},{},{}.{:06},{}",
                    self.subs[r.sub],
                    m.id,
                    q / 1_000_000,
                    q % 1_000_000,
                    r.rest
                );
                w.write_all(line.as_bytes())?;
            }
            day = day.succ();
        }
        w.flush()?;
        Ok(())
    }
}

fn push_csv(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meterbook_core::ingest::UsageSource;
    use meterbook_io::input::usage::UsageReader;
    use std::collections::{BTreeMap, HashSet};

    #[test]
    fn a_million_rows_plan_about_30k_resources_over_72_subscriptions() {
        let p = plan(1_000_000, 42);
        assert_eq!(p.resources.len(), 30_000);
        let rows = p.rows();
        assert!((980_000..=1_020_000).contains(&rows), "{rows} rows");
        let subs: HashSet<_> = p.resources.iter().map(|r| r.sub).collect();
        assert_eq!(subs.len(), SUBSCRIPTIONS);
        assert_eq!(p.meters.len(), METERS);
        // Deterministic for a seed.
        assert_eq!(plan(1_000_000, 42).rows(), rows);
        assert_ne!(plan(1_000_000, 43).rows(), rows);
    }

    #[test]
    fn a_sample_has_the_realistic_shape() {
        let dir = tempfile::tempdir().unwrap();
        let g = plan(20_000, 7).write(dir.path(), true).unwrap();

        // Hierarchy: 72 subscriptions.
        let h = std::fs::read_to_string(&g.hierarchy).unwrap();
        let guids: HashSet<&str> = h
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(5).unwrap())
            .collect();
        assert_eq!(guids.len(), 72);

        // Price sheets: six months, 40 meters, 8 of them with three tiers.
        assert_eq!(g.prices.len(), 6);
        let sheet = std::fs::read_to_string(&g.prices[0].1).unwrap();
        let mut tiers: BTreeMap<&str, usize> = BTreeMap::new();
        for l in sheet.lines().skip(1) {
            *tiers.entry(l.split(',').next().unwrap()).or_default() += 1;
        }
        assert_eq!(tiers.len(), 40);
        assert_eq!(tiers.values().filter(|&&n| n > 1).count(), 8);
        let meters: HashSet<&str> = tiers.keys().copied().collect();

        // Usage, read with the ingest's own reader.
        let mut r = UsageReader::open(std::fs::File::open(&g.usage).unwrap(), None).unwrap();
        let (mut n, mut ordered, mut prev_date, mut prev_id) = (0, 0, String::new(), String::new());
        let (mut ids, mut resources, mut subs, mut months, mut used_meters) = (
            HashSet::new(),
            HashSet::new(),
            HashSet::new(),
            HashSet::new(),
            HashSet::new(),
        );
        while let Some(rec) = r.next_record() {
            let rec = rec.unwrap();
            n += 1;
            // A UUIDv4: 8-4-4-4-12 hex, version 4, variant 10xx.
            let id = rec.record_id;
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(
                id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
                "{id}"
            );
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
            assert!(ids.insert(id.to_string()), "duplicate RecordId {id}");
            // Days in order; ids within a day in no order.
            assert!(rec.date >= prev_date.as_str());
            if rec.date == prev_date && id > prev_id.as_str() {
                ordered += 1;
            }
            prev_date = rec.date.to_string();
            prev_id = id.to_string();
            assert!(
                rec.instance_id.starts_with(&format!(
                    "/subscriptions/{}/resourceGroups/{}/providers/",
                    rec.subscription_guid, rec.resource_group
                )),
                "{}",
                rec.instance_id
            );
            assert!(guids.contains(rec.subscription_guid));
            assert!(meters.contains(rec.meter_id));
            let tags: serde_json::Value = serde_json::from_str(rec.tags).unwrap();
            assert!(
                tags.is_object() && tags["costCenter"].is_string(),
                "{}",
                rec.tags
            );
            if !rec.additional_info.is_empty() {
                serde_json::from_str::<serde_json::Value>(rec.additional_info).unwrap();
            }
            resources.insert(rec.instance_id.to_string());
            subs.insert(rec.subscription_guid.to_string());
            used_meters.insert(rec.meter_id.to_string());
            months.insert(rec.date[..7].to_string());
        }
        assert!((19_000..=21_000).contains(&n), "{n} rows");
        // Ascending neighbours about half the time: no order.
        assert!(
            (n * 4 / 10..n * 6 / 10).contains(&ordered),
            "{ordered} of {n} ascending"
        );
        assert_eq!(resources.len(), 600);
        assert!(subs.len() > 60, "{} subscriptions", subs.len());
        assert_eq!(used_meters.len(), 40);
        assert_eq!(months.len(), 6);
    }
}
