//! A realistic demo enrollment: generated input files, ingested through the
//! same paths an operator uses. Also the data set of `meterbook bench`.

use crate::cli::DemoArgs;
use crate::commands::ingest_file;
use crate::settings::Settings;
use anyhow::Result;
use meterbook_app::{AppError, Operator};
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::EntryKind;
use meterbook_core::{Currency, Day, EnrollmentNumber, Money, Period};
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// (department, cost center, account, owner, account cost center, subscriptions)
type OrgRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const ORG: &[OrgRow] = &[
    (
        "Research",
        "RD-400",
        "lab-analytics",
        "dana@northwind.example",
        "RD-410",
        &["analytics-prod", "analytics-sandbox", "ml-training"],
    ),
    (
        "Research",
        "RD-400",
        "lab-genomics",
        "li@northwind.example",
        "RD-420",
        &["genomics-pipeline", "genomics-dev"],
    ),
    (
        "Operations",
        "OP-100",
        "ops-web",
        "erik@northwind.example",
        "OP-120",
        &["web-frontend", "web-backend", "web-staging"],
    ),
    (
        "Operations",
        "OP-100",
        "ops-data",
        "grace@northwind.example",
        "OP-130",
        &["warehouse", "etl"],
    ),
    (
        "Marketing",
        "MK-200",
        "mk-campaigns",
        "hana@northwind.example",
        "MK-210",
        &["campaign-sites", "email-engine"],
    ),
    (
        "Marketing",
        "MK-200",
        "mk-insights",
        "ivan@northwind.example",
        "MK-220",
        &["insights-bi"],
    ),
    (
        "Finance",
        "FN-300",
        "fin-apps",
        "jorge@northwind.example",
        "FN-310",
        &["erp-prod", "erp-test"],
    ),
    (
        "Finance",
        "FN-300",
        "fin-reporting",
        "kim@northwind.example",
        "FN-320",
        &["reporting"],
    ),
    (
        "",
        "",
        "shared-it",
        "fatima@northwind.example",
        "IT-001",
        &["identity-core", "network-hub", "monitoring"],
    ),
];

struct MeterSpec {
    id: &'static str,
    name: &'static str,
    category: &'static str,
    sub: &'static str,
    unit: &'static str,
    part: &'static str,
    included: &'static str,
    /// (tier minimum, unit price)
    tiers: &'static [(&'static str, &'static str)],
    separately: bool,
    publisher: (&'static str, &'static str, &'static str),
    /// Typical daily quantity per resource (micro-units), and resource kind.
    daily: (u64, u64),
    provider: &'static str,
    service: &'static str,
}

const METERS: &[MeterSpec] = &[
    MeterSpec {
        id: "vm-d2s",
        name: "D2s v5",
        category: "Virtual Machines",
        sub: "Dsv5 Series",
        unit: "1 Hour",
        part: "N9H-00401",
        included: "0",
        tiers: &[("0", "0.096")],
        separately: false,
        publisher: ("", "", ""),
        daily: (6_000_000, 24_000_000),
        provider: "Compute/virtualMachines",
        service: "Compute",
    },
    MeterSpec {
        id: "vm-e4s",
        name: "E4s v5",
        category: "Virtual Machines",
        sub: "Esv5 Series",
        unit: "1 Hour",
        part: "N9H-00412",
        included: "0",
        tiers: &[("0", "0.252")],
        separately: false,
        publisher: ("", "", ""),
        daily: (12_000_000, 24_000_000),
        provider: "Compute/virtualMachines",
        service: "Compute",
    },
    MeterSpec {
        id: "vm-nc24",
        name: "NC24ads A100 v4",
        category: "Virtual Machines",
        sub: "NCads A100 v4 Series",
        unit: "1 Hour",
        part: "N9H-00477",
        included: "0",
        tiers: &[("0", "3.673")],
        separately: false,
        publisher: ("", "", ""),
        daily: (1_000_000, 8_000_000),
        provider: "Compute/virtualMachines",
        service: "Compute",
    },
    MeterSpec {
        id: "disk-p10",
        name: "P10 LRS Disk",
        category: "Storage",
        sub: "Premium SSD Managed Disks",
        unit: "1/Month",
        part: "N9H-00588",
        included: "0",
        tiers: &[("0", "19.71")],
        separately: false,
        publisher: ("", "", ""),
        daily: (33_333, 33_334),
        provider: "Compute/disks",
        service: "Storage",
    },
    MeterSpec {
        id: "blob-hot",
        name: "Hot LRS Data Stored",
        category: "Storage",
        sub: "Blob Storage",
        unit: "1 GB/Month",
        part: "N9H-00731",
        included: "5",
        tiers: &[("0", "0.0196"), ("51200", "0.0188"), ("512000", "0.018")],
        separately: false,
        publisher: ("", "", ""),
        daily: (20_000_000, 900_000_000),
        provider: "Storage/storageAccounts",
        service: "Storage",
    },
    MeterSpec {
        id: "egress",
        name: "Data Transfer Out",
        category: "Bandwidth",
        sub: "Inter-Region",
        unit: "1 GB",
        part: "N9H-00802",
        included: "100",
        tiers: &[("0", "0.087"), ("10240", "0.083"), ("51200", "0.07")],
        separately: false,
        publisher: ("", "", ""),
        daily: (1_000_000, 60_000_000),
        provider: "Network/frontDoors",
        service: "Network",
    },
    MeterSpec {
        id: "sql-gp2",
        name: "General Purpose 2 vCore",
        category: "SQL Database",
        sub: "General Purpose - Compute Gen5",
        unit: "1 Hour",
        part: "N9H-00911",
        included: "0",
        tiers: &[("0", "0.5044")],
        separately: false,
        publisher: ("", "", ""),
        daily: (24_000_000, 24_000_000),
        provider: "Sql/servers/databases",
        service: "SQL",
    },
    MeterSpec {
        id: "fn-exec",
        name: "Standard Execution Time",
        category: "Functions",
        sub: "Consumption",
        unit: "1 GB Second",
        part: "N9H-01020",
        included: "400000",
        tiers: &[("0", "0.000016")],
        separately: false,
        publisher: ("", "", ""),
        daily: (100_000_000, 9_000_000_000),
        provider: "Web/sites",
        service: "Functions",
    },
    MeterSpec {
        id: "log-ingest",
        name: "Pay-as-you-go Data Ingestion",
        category: "Log Analytics",
        sub: "Analytics Logs",
        unit: "1 GB",
        part: "N9H-01103",
        included: "5",
        tiers: &[("0", "2.76")],
        separately: false,
        publisher: ("", "", ""),
        daily: (100_000, 4_000_000),
        provider: "OperationalInsights/workspaces",
        service: "Monitoring",
    },
    MeterSpec {
        id: "support-pro",
        name: "Professional Direct Support",
        category: "Support",
        sub: "Professional Direct",
        unit: "1/Day",
        part: "N9H-01200",
        included: "0",
        tiers: &[("0", "32.88")],
        separately: true,
        publisher: ("", "", ""),
        daily: (1_000_000, 1_000_000),
        provider: "Support/plans",
        service: "Support",
    },
    MeterSpec {
        id: "mp-redis-e10",
        name: "Redis Enterprise E10",
        category: "Marketplace",
        sub: "Redis Enterprise",
        unit: "1 Hour",
        part: "MP-REDIS-E10",
        included: "0",
        tiers: &[("0", "0.411")],
        separately: false,
        publisher: ("Redis Ltd.", "Redis Enterprise Cloud", "E10"),
        daily: (24_000_000, 24_000_000),
        provider: "Cache/redisEnterprise",
        service: "Marketplace",
    },
    MeterSpec {
        id: "mp-dd-host",
        name: "Datadog Pro Host",
        category: "Marketplace",
        sub: "Datadog",
        unit: "1 Host Hour",
        part: "MP-DD-PRO",
        included: "0",
        tiers: &[("0", "0.0313")],
        separately: false,
        publisher: ("Datadog", "Datadog Pro", "per-host"),
        daily: (24_000_000, 24_000_000),
        provider: "Datadog.Monitor/monitors",
        service: "Marketplace",
    },
];

const REGIONS: &[&str] = &["westeurope", "northeurope", "eastus2", "global"];
const TAGS: &[&str] = &[
    r#"{"env":"prod","team":"data"}"#,
    r#"{"env":"dev"}"#,
    r#"{"env":"prod","app":"shop","owner":"web-team"}"#,
    r#"{"costcode":"4410","env":"test"}"#,
    "",
    r#"{"project":"genome-x","env":"prod"}"#,
];

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

pub fn run(settings: &Settings, a: &DemoArgs) -> Result<()> {
    let op = crate::commands::operator(settings)?;
    let n = crate::commands::enrollment_number(&a.enrollment)?;
    match op.enrollment(&n) {
        Ok(_) => {
            println!(
                "Demo enrollment {n} is already in {}; not seeding it again.",
                settings.db.display()
            );
        }
        Err(AppError::NotFound(_)) => seed(&op, &n, a.rows)?,
        Err(e) => return Err(e.into()),
    }
    print_next_steps(settings, &n);
    let users = demo_users(&op, &n)?;
    // An enterprise administrator's key for the API (regenerated on every run).
    let (key, _, _) = crate::commands::create_key(
        &op,
        &n,
        meterbook_core::access::Scope::Enrollment,
        meterbook_core::access::Slot::Primary,
        183,
        false,
    )?;
    drop(op);
    if a.no_serve {
        println!("\nEnterprise-admin API key (primary): {key}");
        println!("{}", second_key_hint(settings, &n));
        print_users(&users);
        return Ok(());
    }
    let n2 = n.clone();
    let hint = second_key_hint(settings, &n);
    let banner = move |base: &str| {
        let last = Day::today().period().prev();
        println!();
        println!("Reporting API at {base}  (Ctrl-C to stop)");
        println!("Enterprise-admin API key (primary): {key}");
        println!("{hint}");
        println!(
            "  curl -H 'Authorization: bearer {key}' {base}/v3/enrollments/{n2}/billingPeriods"
        );
        println!("  curl -H 'Authorization: bearer {key}' {base}/v3/enrollments/{n2}/billingPeriods/{last}/balancesummary");
        println!("  curl --compressed -H 'Authorization: bearer {key}' '{base}/v3/enrollments/{n2}/usagedetails/download?billingPeriod={last}' -o {}/usage-{last}.csv", std::env::temp_dir().display());
        println!("Advanced report: request, poll reportUrl until status 6 (ReadyToDownload), then fetch blobPath (no key needed):");
        println!("  curl -X POST -H 'Authorization: bearer {key}' -H 'Content-Type: application/json' -d '{{\"startDate\":\"{}\",\"endDate\":\"{}\",\"format\":\"focus-csv\"}}' {base}/v3/enrollments/{n2}/reports", last.first_day(), last.last_day());
        println!("API documentation: {base}/docs");
        println!();
        println!("Portal: {base}/portal");
        print_users(&users);
    };
    crate::commands::serve(settings, &a.serve, Some(&banner))
}

fn seed(op: &Operator, n: &EnrollmentNumber, rows: u64) -> Result<()> {
    let today = Day::today();
    let this = today.period();
    // A year of usage: the term began twelve months ago.
    let mut first = this;
    for _ in 0..12 {
        first = first.prev();
    }
    let start = first.first_day();
    let mut end_period = first;
    for _ in 0..36 {
        end_period = end_period.next();
    }
    let end = end_period.first_day().add_days(-1);
    let last_usage = today.add_days(-1);
    op.create_enrollment(&NewEnrollment {
        number: n.clone(),
        name: "Northwind Traders".into(),
        currency: Currency::parse("USD").map_err(anyhow::Error::msg)?,
        start,
        end,
        visibility: ChargeVisibility {
            department_admins_view_charges: true,
            account_owners_view_charges: false,
        },
    })?;
    let dir = tempfile::tempdir()?;
    println!("Generating about {rows} usage rows from {start} to {last_usage} ...");
    let g = generate(dir.path(), rows, start, last_usage, 8608480)?;
    load(op, n, &g)?;
    let t = std::time::Instant::now();
    let usage = g.usage.display().to_string();
    let sum = ingest_file(op, n, &usage, None, false, None)?;
    println!(
        "Ingested {} rows in {:.1} s ({:.0} rows/s).",
        sum.stored,
        t.elapsed().as_secs_f64(),
        sum.stored as f64 / t.elapsed().as_secs_f64()
    );
    // A year of usage with a story: the first purchase lasts until the sixth
    // month, which runs into overage; a top-up the month after keeps a healthy
    // balance through today (about a third of it left). A credit and a debit
    // on the way.
    let mut cents = Vec::new();
    let access = op.enrollment(n)?;
    let enterprise = access.enterprise()?;
    for p in first.through(this) {
        let c = enterprise.charges(p)?.commitment;
        cents.push((p, c.round_to_minor(2)?.0));
    }
    let (credit, debit) = (250_000, -40_000);
    let overage_at = 5.min(cents.len() - 1);
    let before: i64 = cents[..overage_at].iter().map(|c| c.1).sum();
    // Covers the months before and 40% of the sixth, in whole thousands.
    let commit =
        ((before - credit - debit + cents[overage_at].1 * 4 / 10) / 100_000 * 100_000).max(100_000);
    let after: i64 = cents[overage_at + 1..].iter().map(|c| c.1).sum();
    let top_up = (after * 3 / 2 / 1_000_000 + 1) * 1_000_000;
    let top_up_period = cents.get(overage_at + 1).map(|c| c.0);
    let entry = |date: Day, cents: i64, d: &str| CommitmentEntry {
        date,
        amount: Money(cents),
        description: d.into(),
    };
    op.add_entry(
        n,
        EntryKind::Purchase,
        &entry(start, commit, "Monetary commitment, year 1"),
    )?;
    if let Some(p) = top_up_period {
        op.add_entry(
            n,
            EntryKind::Purchase,
            &entry(p.first_day(), top_up, "Commitment top-up"),
        )?;
    }
    op.add_entry(
        n,
        EntryKind::Adjustment,
        &entry(
            first.next().first_day().add_days(14),
            credit,
            "Service credit: regional outage",
        ),
    )?;
    op.add_entry(
        n,
        EntryKind::Adjustment,
        &entry(
            first.next().next().next().first_day().add_days(2),
            debit,
            "Correction of a prior credit",
        ),
    )?;
    // Close every period but the last three, then feed late usage for a closed month.
    let close_through = this.prev().prev().prev();
    for p in first.through(close_through) {
        op.close_period(n, p)?;
    }
    let late = g.usage.with_file_name("late.csv");
    let mut w = BufWriter::new(std::fs::File::create(&late)?);
    writeln!(w, "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,ResourceGroup,ResourceLocation,ConsumedService,Tags")?;
    let late_day = close_through.first_day().add_days(9);
    for i in 0..20 {
        writeln!(w, "late-{i:03},{},{late_day},vm-e4s,{}.5,rg-app,westeurope,Compute,\"{{\"\"env\"\":\"\"prod\"\"}}\"", g.subscriptions[i % g.subscriptions.len()].0, 2 + i % 5)?;
    }
    // A meter that had no usage in the closed month is priced at C(q)/q of that month's sheet.
    writeln!(
        w,
        "late-gpu,{},{late_day},vm-nc24,3,rg-ml,westeurope,Compute,",
        g.subscriptions[2].0
    )?;
    w.flush()?;
    drop(w);
    ingest_file(op, n, &late.display().to_string(), None, false, None)?;
    op.set_watermark(n, last_usage)?;
    println!(
        "Created enrollment {n} (Northwind Traders, USD, {start} to {end}): {} departments, {} accounts, {} subscriptions, {} meters,",
        4,
        ORG.len(),
        g.subscriptions.len(),
        METERS.len()
    );
    println!(
        "commitment {} USD, a top-up of {} USD{}, periods {first} to {close_through} closed, 21 late corrections booked in {}.",
        Money(commit).format(2),
        Money(top_up).format(2),
        cents
            .get(overage_at)
            .map_or(String::new(), |c| format!(" after overage in {}", c.0)),
        close_through.next()
    );
    Ok(())
}

/// (e-mail, CLI role, title, department, account).
type DemoUser = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// The demo's portal sign-ins, one per role.
const DEMO_USERS: &[DemoUser] = &[
    (
        "admin@northwind.example",
        "enterprise-admin",
        "Enterprise administrator",
        None,
        None,
    ),
    (
        "auditor@northwind.example",
        "enterprise-reader",
        "Enterprise administrator (read-only)",
        None,
        None,
    ),
    (
        "dana@northwind.example",
        "department-admin",
        "Department administrator of Research",
        Some("Research"),
        None,
    ),
    (
        "erik@northwind.example",
        "account-owner",
        "Account owner of ops-web",
        None,
        Some("ops-web"),
    ),
];

/// The password of every demo user (demo data only; printed at start).
pub const DEMO_PASSWORD: &str = "meterbook-demo";

fn demo_users(op: &Operator, n: &EnrollmentNumber) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (email, role, title, dept, acct) in DEMO_USERS {
        let r = crate::commands::users::role(op, n, role, *dept, *acct)?;
        crate::commands::users::ensure_user(op, email, "", Some(DEMO_PASSWORD), &r)?;
        out.push((email.to_string(), title.to_string()));
    }
    Ok(out)
}

/// `keys create` without `--slot` would replace the demo's key: say how to add one.
fn second_key_hint(settings: &Settings, n: &EnrollmentNumber) -> String {
    format!(
        "  (made again at every demo start; a key of your own beside it: \
         meterbook --db {} keys create --enrollment {n} --slot secondary)",
        settings.db.display()
    )
}

fn print_users(users: &[(String, String)]) {
    println!("Portal sign-ins (password {DEMO_PASSWORD} for each):");
    for (email, title) in users {
        println!("  {email:<28} {title}");
    }
}

/// The running binary's directory, when no `meterbook` on the PATH is this binary.
fn not_on_path() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let dir = exe.parent()?.to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .filter_map(|d| d.join("meterbook").canonicalize().ok())
        .any(|p| p == exe);
    (!found).then_some(dir)
}

fn print_next_steps(settings: &Settings, n: &EnrollmentNumber) {
    let db = settings.db.display();
    let this = Day::today().period();
    // Suggested files go to the temp directory, not the working one (often a checkout).
    let out = std::env::temp_dir();
    let out = out.display();
    println!();
    if let Some(dir) = not_on_path() {
        // `cargo run -- demo` works without it; the commands below do not.
        println!("`meterbook` is not on your PATH; for the commands below, first:");
        println!("  export PATH=\"{}:$PATH\"", dir.display());
    }
    println!("Try:");
    println!("  meterbook --db {db} period list --enrollment {n}");
    println!(
        "  meterbook --db {db} report balance --enrollment {n} --period {} --format json",
        this.prev()
    );
    println!(
        "  meterbook --db {db} report usage --enrollment {n} --period {} -o {out}/usage-{}.csv",
        this.prev(),
        this.prev()
    );
    println!("  meterbook --db {db} report usage --enrollment {n} --from {} --to {} --department Research", this.prev().first_day(), this.prev().first_day().add_days(6));
    println!("  meterbook --db {db} report prices --enrollment {n} --period {this}");
    println!(
        "  meterbook --db {db} report marketplace --enrollment {n} --period {this} --format json"
    );
    println!("Advanced reports (prepared in the background, kept 30 days):");
    println!(
        "  id=$(meterbook --db {db} report request --enrollment {n} --from {} --to {} --department Research --format parquet)",
        this.prev().prev().first_day(),
        this.prev().last_day()
    );
    println!("  meterbook --db {db} report status $id && meterbook --db {db} report fetch $id -o {out}/research.parquet");
}
