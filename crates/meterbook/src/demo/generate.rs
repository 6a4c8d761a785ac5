//! Generated input files, and loading them as an operator does.

use anyhow::Result;
use meterbook_app::Operator;
use meterbook_core::{Day, EnrollmentNumber, Period};
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::sample::*;

pub fn guid(i: usize) -> String {
    let h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:08x}-{:04x}-4{:03x}-9{:03x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        (h >> 4) as u16 & 0xfff,
        (h >> 40) as u16 & 0xfff,
        h & 0xffff_ffff_ffff
    )
}

/// The generated input files.
pub struct Generated {
    pub hierarchy: PathBuf,
    pub prices: Vec<(Period, PathBuf)>,
    pub usage: PathBuf,
    pub subscriptions: Vec<(String, &'static str)>,
}

/// Writes hierarchy, one price sheet per period and about `rows` usage rows,
/// daily from `first` through `last`, into `dir`. Deterministic for a seed.
pub fn generate(dir: &Path, rows: u64, first: Day, last: Day, seed: u64) -> Result<Generated> {
    std::fs::create_dir_all(dir)?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let hierarchy = dir.join("hierarchy.csv");
    let mut h = BufWriter::new(std::fs::File::create(&hierarchy)?);
    writeln!(h, "DepartmentName,DepartmentCostCenter,AccountName,AccountOwnerEmail,AccountCostCenter,SubscriptionGuid,SubscriptionName")?;
    let mut subs = Vec::new();
    for (dept, dcc, acct, owner, acc, names) in ORG {
        for name in names.iter() {
            let g = guid(subs.len());
            writeln!(h, "{dept},{dcc},{acct},{owner},{acc},{g},{name}")?;
            subs.push((g, *acct));
        }
    }
    h.flush()?;

    let mut prices = Vec::new();
    for p in first.period().through(last.period()) {
        let path = dir.join(format!("prices-{p}.csv"));
        let mut w = BufWriter::new(std::fs::File::create(&path)?);
        writeln!(w, "MeterId,MeterName,MeterCategory,MeterSubCategory,MeterRegion,UnitOfMeasure,PartNumber,UnitPrice,IncludedQuantity,TierMinimumUnits,ChargesBilledSeparately,PublisherName,OfferName,PlanName")?;
        for (mi, m) in METERS.iter().enumerate() {
            for (ti, (min, price)) in m.tiers.iter().enumerate() {
                // A price cut on the D-series VM from the fourth period on.
                let price = if mi == 0 && ti == 0 && p >= first.period().next().next().next() {
                    "0.0912"
                } else {
                    price
                };
                writeln!(
                    w,
                    "{},{},{},{},EU West,{},{},{},{},{},{},{},{},{}",
                    m.id,
                    m.name,
                    m.category,
                    m.sub,
                    m.unit,
                    m.part,
                    price,
                    m.included,
                    min,
                    m.separately,
                    m.publisher.0,
                    m.publisher.1,
                    m.publisher.2
                )?;
            }
        }
        w.flush()?;
        prices.push((p, path));
    }

    // Resources: each subscription runs a fixed set, each on one meter; one row
    // per resource per day (as the Enterprise Agreement's daily usage).
    let days = (last.raw() - first.raw() + 1).max(1) as u64;
    let per_day = (rows / days).max(1) as usize;
    struct Res {
        sub: usize,
        meter: usize,
        instance: String,
        group: String,
        region: &'static str,
        tags: &'static str,
        info: String,
    }
    let mut resources = Vec::with_capacity(per_day);
    for i in 0..per_day {
        let sub = rng.usize(..subs.len());
        // The support plan and marketplace meters are rare; compute and storage common.
        let meter = match rng.u32(..100) {
            0 => 9,
            1 => 10,
            2 => 11,
            x => [0, 1, 1, 2, 3, 3, 4, 4, 5, 6, 7, 8][x as usize % 12],
        };
        let m = &METERS[meter];
        let group = format!("rg-{}", ["app", "data", "etl", "web", "ml", "core"][i % 6]);
        let instance = format!(
            "/subscriptions/{}/resourceGroups/{group}/providers/{}/{}-{i}",
            subs[sub].0,
            m.provider,
            m.id.split('-').next().unwrap_or("res")
        );
        let info = if m.category == "Virtual Machines" {
            format!(
                r#"{{"ImageType":"Canonical","VCPUs":{}}}"#,
                [2, 4, 24][meter.min(2)]
            )
        } else {
            String::new()
        };
        resources.push(Res {
            sub,
            meter,
            instance,
            group,
            region: REGIONS[rng.usize(..REGIONS.len())],
            tags: TAGS[rng.usize(..TAGS.len())],
            info,
        });
    }
    let usage = dir.join("usage.csv");
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&usage)?);
    writeln!(w, "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,InstanceId,ResourceGroup,ResourceLocation,ConsumedService,Tags,AdditionalInfo,ServiceInfo1,ServiceInfo2")?;

    let mut line = String::with_capacity(512);
    let mut day = first;
    while day <= last {
        let mut date = String::new();
        day.write_iso(&mut date);
        let compact = date.replace('-', "");
        for (i, r) in resources.iter().enumerate() {
            let m = &METERS[r.meter];
            let (lo, hi) = m.daily;
            let q = if hi > lo { lo + rng.u64(..hi - lo) } else { lo };
            line.clear();
            let _ = write!(
                line,
                "u-{compact}-{i:06},{},{date},{},{}.{:06},{},{},{},{},",
                subs[r.sub].0,
                m.id,
                q / 1_000_000,
                q % 1_000_000,
                r.instance,
                r.group,
                r.region,
                m.service
            );
            push_csv(&mut line, r.tags);
            line.push(',');
            push_csv(&mut line, &r.info);
            line.push_str(",,\n");
            w.write_all(line.as_bytes())?;
        }
        day = day.succ();
    }
    w.flush()?;
    Ok(Generated {
        hierarchy,
        prices,
        usage,

        subscriptions: subs,
    })
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

/// Loads generated files into a new enrollment with the operator's code paths.
pub fn load(op: &Operator, n: &EnrollmentNumber, g: &Generated) -> Result<()> {
    let rows =
        meterbook_io::input::hierarchy::read("hierarchy.csv", std::fs::File::open(&g.hierarchy)?)?;
    op.import_hierarchy(n, &rows)?;
    for (p, path) in &g.prices {
        let name = path.display().to_string();
        let rows = meterbook_io::input::prices::read(&name, std::fs::File::open(path)?)?;
        op.import_prices(n, *p, &name, &rows)?;
    }
    Ok(())
}
