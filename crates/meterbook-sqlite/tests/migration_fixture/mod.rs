//! The data of the schema-7 fixture (see `tests/migration.rs`): two
//! enrollments, their hierarchies, price sheets and the usage files ingested
//! into them, and the generator that made the committed database.
//!
//! Only the generator ([`make`]) writes; the test reads the files it left.
//! The generator refuses to run against any schema but 7: the fixture is the
//! old layout's own output and must never be remade by newer code.

use meterbook_app::App;
use meterbook_core::access::Scope;
use meterbook_core::clock::ManualClock;
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::ingest::{IngestOptions, IngestSummary};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, Store};
use meterbook_core::{Currency, Day, EnrollmentNumber, Money, Period};
use meterbook_io::input::usage::UsageReader;
use meterbook_sqlite::SqliteStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the fixture lives.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema7")
}

/// The committed database, as the old layout left it.
pub fn database() -> PathBuf {
    dir().join("schema7.db")
}

/// The schema version the fixture was made with.
pub const FIXTURE_SCHEMA: usize = 7;

/// "Now" for the generator and the test alike: reports state when they were
/// made, and the current period follows the clock.
pub fn now_millis() -> i64 {
    day("2025-05-10")
        .naive()
        .and_hms_opt(12, 0, 0)
        .expect("noon")
        .and_utc()
        .timestamp_millis()
}

pub fn day(s: &str) -> Day {
    s.parse().expect("fixture date")
}

pub fn period(s: &str) -> Period {
    s.parse().expect("fixture period")
}

/// The use-case layer over `store`, at the fixture's clock.
pub fn app(store: Arc<dyn Store>, files: &Path) -> App {
    App::new(
        store,
        Arc::new(meterbook_jobs::DirReportFiles::new(files).expect("report files")),
        meterbook_jobs::JobSettings::default(),
        Arc::new(ManualClock::at_millis(now_millis())),
    )
}

/// One enrollment of the fixture.
pub struct Spec {
    pub number: &'static str,
    pub currency: &'static str,
    pub start: &'static str,
    pub end: &'static str,
    /// Subscriptions: GUID, department, account.
    pub subs: [&'static str; 5],
    /// Whether department administrators and account owners see charges.
    pub costs_shown: bool,
    /// The department and the account whose reports are kept.
    pub department: &'static str,
    pub account: &'static str,
}

pub const E1: Spec = Spec {
    number: "E7000001",
    currency: "USD",
    start: "2025-01-01",
    end: "2025-12-31",
    subs: [
        "3f2b8c1e-9a4d-4e7b-8c21-5d6e7f809a1b",
        "a0c4e2f6-1b3d-4f5a-9e7c-2d4b6a8c0e1f",
        "7e9d1c3b-5a4f-4b2e-8d6c-0f1e2d3c4b5a",
        "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
        "0badcafe-0000-4000-a000-00000000beef",
    ],
    costs_shown: true,
    department: "Engineering",
    account: "b1",
};

pub const E2: Spec = Spec {
    number: "E7000002",
    currency: "EUR",
    start: "2025-02-01",
    end: "2026-01-31",
    subs: [
        "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e",
        "e1f2a3b4-c5d6-4e7f-9a0b-1c2d3e4f5a6b",
        "9c8b7a6f-5e4d-4c3b-a2a1-0f9e8d7c6b5a",
        "2468ace0-1357-4bdf-8024-68ace013579b",
        "fedcba98-7654-4321-8fed-cba987654321",
    ],
    costs_shown: false,
    department: "Engineering",
    account: "b1",
};

impl Spec {
    pub fn n(&self) -> EnrollmentNumber {
        EnrollmentNumber::parse(self.number).expect("number")
    }

    /// The usage files, in the order they were ingested.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir().join("usage"))
            .expect("usage files")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with(self.number))
            })
            .collect();
        v.sort();
        v
    }

    fn hierarchy_csv(&self) -> String {
        let s = &self.subs;
        format!(
            "DepartmentName,DepartmentCostCenter,AccountName,AccountOwnerEmail,AccountCostCenter,SubscriptionGuid,SubscriptionName\n\
             Engineering,CC-100,a1,a1@example.com,CC-101,{},Build agents\n\
             Engineering,CC-100,a2,a2@example.com,CC-102,{},Web front end\n\
             \"Finance, Ops & Ünïcode\",CC-200,b1,b1@example.com,CC-201,{},Ledger — prod\n\
             ,,c1,c1@example.com,,{},Sandbox without department\n\
             Engineering,CC-100,a1,a1@example.com,CC-101,{},\"Data lake, \"\"raw\"\"\"\n",
            s[0], s[1], s[2], s[3], s[4]
        )
    }

    /// The price sheet of period `p`: compute, a tiered meter with an
    /// included quantity, egress with an included quantity, a marketplace
    /// meter and an overage billed separately. Prices change from March, so
    /// corrections of January and February show their locked rates.
    fn prices_csv(&self, p: Period) -> String {
        let later = p >= period("202503");
        let vm = if later { "0.1040" } else { "0.0960" };
        let (t0, t1, t2) = if later {
            ("0.0500", "0.0410", "0.0290")
        } else {
            ("0.0480", "0.0400", "0.0300")
        };
        let h = "MeterId,MeterName,MeterCategory,MeterSubCategory,MeterRegion,UnitOfMeasure,PartNumber,UnitPrice,IncludedQuantity,TierMinimumUnits,ChargesBilledSeparately,PublisherName,OfferName,PlanName\n";
        format!(
            "{h}\
             vm-d2s,D2s v3,Virtual Machines,Dv3 Series,EU West,1 Hour,P-VM-1,{vm},0,0,false,,,\n\
             blob-hot,Hot LRS Data Stored,Storage,Blob Storage,EU West,1 GB/Month,P-ST-1,{t0},10,0,false,,,\n\
             blob-hot,Hot LRS Data Stored,Storage,Blob Storage,EU West,1 GB/Month,P-ST-1,{t1},10,100,false,,,\n\
             blob-hot,Hot LRS Data Stored,Storage,Blob Storage,EU West,1 GB/Month,P-ST-1,{t2},10,1000,false,,,\n\
             egress,Data Transfer Out,Bandwidth,Inter-Region,Zone 1,1 GB,P-BW-1,0.0870,5,0,false,,,\n\
             mkt-fw,Firewall appliance,Virtual Machine Licenses,Appliance,EU West,1 Hour,P-MK-1,0.2500,0,0,false,Contoso Ltd,\"Contoso, NGFW\",Standard\n\
             sql-over,SQL overage,SQL Database,Overage,EU West,10 DTUs,P-SQ-1,1.5000,0,0,true,,,\n"
        )
    }

    fn periods(&self) -> Vec<Period> {
        let first = day(self.start).period();
        first.through(period("202504")).collect()
    }
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn uuid(&mut self, version: u8) -> String {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_le_bytes());
        b[8..].copy_from_slice(&self.next().to_le_bytes());
        b[6] = (b[6] & 0x0f) | (version << 4);
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// One usage record, every column of design §2.
#[derive(Clone, Debug)]
pub struct Row(pub [String; 13]);

/// The usage file's header.
pub const HEADER: &str = "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,InstanceId,ResourceGroup,ResourceLocation,ConsumedService,Tags,AdditionalInfo,ServiceInfo1,ServiceInfo2";

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `rows` as a usage CSV file.
pub fn csv(rows: &[Row]) -> String {
    let mut out = format!("{HEADER}\n");
    for r in rows {
        let line: Vec<String> = r.0.iter().map(|f| field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Reads a usage file back into rows.
pub fn read(path: &Path) -> Vec<Row> {
    let f = std::fs::File::open(path).expect("usage file");
    let mut r = UsageReader::open(f, None).expect("usage header");
    let mut out = Vec::new();
    while let Some(rec) = meterbook_core::ingest::UsageSource::next_record(&mut r) {
        let rec = rec.expect("usage record");
        out.push(Row(rec.fields().map(str::to_string)));
    }
    out
}

/// Record ids the new layout must keep exactly: not UUIDs, near the length
/// limit (128 bytes), unicode, and UUIDs in forms other than canonical
/// lower case.
const SPECIAL_IDS: [&str; 10] = [
    "00000000-0000-0000-0000-000000000000",
    "{6F9619FF-8B86-D011-B42D-00C04FC964FF}",
    "6F9619FF8B86D011B42D00C04FC964FF",
    "urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff",
    "rec with spaces",
    "id,with,commas",
    "id \"quoted\"",
    "UPPER-NON-UUID-ABC",
    "ümlaut-ǅ-🦀",
    "u-20250101-000000",
];

struct Gen {
    rng: Rng,
    count: u64,
    subs: [&'static str; 5],
}

impl Gen {
    fn id(&mut self, d: Day) -> String {
        self.count += 1;
        let i = self.count;
        match i % 10 {
            0..=3 => self.rng.uuid(4),
            4 => self.rng.uuid(4).to_uppercase(),
            5 => self
                .rng
                .uuid(4)
                .chars()
                .map(|c| {
                    if self.rng.below(2) == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect(),
            6 => format!("u-{}-{i:06}", d.to_string().replace('-', "")),
            7 => format!("résumé-{i}-Ωμέγα-€"),
            8 => format!("{{{}}}", self.rng.uuid(4).to_uppercase()),
            _ => self.rng.uuid(7),
        }
    }

    /// A record on `d` with a fresh id.
    fn row(&mut self, d: Day) -> Row {
        let id = self.id(d);
        self.row_with(id, d)
    }

    fn row_with(&mut self, id: String, d: Day) -> Row {
        let k = self.rng.below(5) as usize;
        let mut sub = self.subs[k].to_string();
        if self.rng.below(6) == 0 {
            // The GUID as some exports write it: the same subscription.
            sub = sub.to_uppercase();
        }
        let meters = ["vm-d2s", "blob-hot", "egress", "mkt-fw", "sql-over"];
        let meter = meters[match self.rng.below(10) {
            0..=3 => 0,
            4..=6 => 1,
            7 => 2,
            8 => 3,
            _ => 4,
        }];
        let whole = self.rng.below(40);
        let frac = self.rng.below(1_000_000);
        let quantity = match self.rng.below(8) {
            0 => "0".to_string(),
            1 => format!("{whole}"),
            2 => format!("{}.5", whole * 37),
            _ => format!("{whole}.{frac:06}"),
        };
        let mut f: [String; 13] = Default::default();
        f[0] = id;
        f[1] = sub;
        f[2] = d.to_string();
        f[3] = meter.into();
        f[4] = quantity;
        match self.rng.below(4) {
            // Only the required fields.
            0 => {}
            n => {
                let vm = self.rng.below(7);
                f[5] = format!(
                    "/subscriptions/{}/resourceGroups/rg-{vm}/providers/Microsoft.Compute/virtualMachines/vm-{vm}",
                    self.subs[k]
                );
                f[6] = format!("rg-{vm}");
                f[7] = if vm.is_multiple_of(2) {
                    "westeurope"
                } else {
                    "northeurope"
                }
                .into();
                f[8] = "Microsoft.Compute".into();
                if n >= 2 {
                    f[9] = format!(r#"{{"env":"prod","team":"α-{vm}","cost-center":"CC, {vm}"}}"#);
                }
                if n == 3 {
                    f[10] = format!(
                        r#"{{"ImageType":"Canonical","ServiceType":"Standard_D2s_v3","VCPUs":2,"Note":"line\nbreak {vm}"}}"#
                    );
                    f[11] = "Info one".into();
                    f[12] = if vm.is_multiple_of(3) { "" } else { "Info two" }.into();
                }
            }
        }
        Row(f)
    }

    /// `per_day` new records on each day of `from..=to`, days in order,
    /// records of one day in no order of id.
    fn days(&mut self, from: &str, to: &str, per_day: u64) -> Vec<Row> {
        let (mut d, to) = (day(from), day(to));
        let mut out = Vec::new();
        while d <= to {
            for _ in 0..per_day + self.rng.below(3) {
                out.push(self.row(d));
            }
            d = d.succ();
        }
        out
    }

    /// Records with the special ids (and the same UUID in two cases, which
    /// are two records), and ids of 127 and 128 bytes, on `d`.
    fn specials(&mut self, d: &str, tag: &str) -> Vec<Row> {
        let d = day(d);
        let mut ids: Vec<String> = SPECIAL_IDS.iter().map(|s| format!("{s}{tag}")).collect();
        let u = self.rng.uuid(4);
        ids.push(u.to_uppercase());
        ids.push(u);
        ids.push(format!("long-{tag}-{}", "x".repeat(122 - tag.len())));
        ids.push(format!("{}{tag}", "ü".repeat((128 - tag.len()) / 2)));
        ids.push(format!("{}1{tag}", "€".repeat(42 - tag.len().div_ceil(3))));
        ids.into_iter().map(|id| self.row_with(id, d)).collect()
    }
}

/// Every `k`-th row of `rows`, re-sent as an exporter re-sends (Tags with
/// whitespace around, which is not part of the record).
fn resend(rows: &[Row], k: usize) -> Vec<Row> {
    rows.iter()
        .step_by(k)
        .map(|r| {
            let mut r = r.clone();
            if !r.0[9].is_empty() {
                r.0[9] = format!("  {}  ", r.0[9]);
            }
            r
        })
        .collect()
}

fn shuffle(rng: &mut Rng, rows: &mut [Row]) {
    for i in (1..rows.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        rows.swap(i, j);
    }
}

/// What one enrollment's files hold, ingested in order; an `Err` closes
/// the periods through the one it names.
fn plan(spec: &Spec, seed: u64) -> Vec<(String, Result<Vec<Row>, Period>)> {
    let mut g = Gen {
        rng: Rng(seed),
        count: 0,
        subs: spec.subs,
    };
    let mut out = Vec::new();
    let file = |name: &str, rows: Vec<Row>| (format!("{}-{name}.csv", spec.number), Ok(rows));
    if spec.start == "2025-01-01" {
        // January in two files whose days overlap; a re-send of the first.
        let mut f1 = g.days("2025-01-01", "2025-01-20", 5);
        f1.extend(g.specials("2025-01-03", ""));
        let mut f2 = g.days("2025-01-15", "2025-02-10", 4);
        f2.extend(resend(&f1, 9));
        shuffle(&mut g.rng, &mut f2);
        let mut f3 = g.days("2025-02-05", "2025-03-04", 4);
        // The same record twice in one file.
        f3.push(f3[3].clone());
        f3.extend(resend(&f2, 13));
        // Corrections: January and February after both closed, booked in
        // March at their locked rates; and re-sent records of closed periods.
        let mut f4 = g.days("2025-01-10", "2025-01-31", 1);
        f4.extend(g.days("2025-02-20", "2025-02-28", 2));
        f4.extend(g.specials("2025-01-25", "-late"));
        f4.extend(g.days("2025-03-05", "2025-03-31", 4));
        f4.extend(resend(&f1, 11));
        shuffle(&mut g.rng, &mut f4);
        let mut f5 = g.days("2025-04-01", "2025-04-30", 3);
        f5.extend(g.specials("2025-04-09", "-apr"));
        f5.extend(g.days("2025-02-03", "2025-02-04", 2));
        out.push(file("1", f1));
        out.push(file("2", f2));
        out.push(file("3", f3));
        out.push((String::new(), Err(period("202502"))));
        out.push(file("4", f4));
        out.push(file("5", f5));
    } else {
        let mut f1 = g.days("2025-02-01", "2025-02-25", 3);
        f1.extend(g.specials("2025-02-02", ""));
        let mut f2 = g.days("2025-02-20", "2025-03-20", 3);
        f2.extend(resend(&f1, 7));
        shuffle(&mut g.rng, &mut f2);
        let mut f3 = g.days("2025-02-10", "2025-02-28", 1);
        f3.extend(g.days("2025-03-21", "2025-04-30", 3));
        f3.extend(g.specials("2025-04-02", "-apr"));
        out.push(file("1", f1));
        out.push(file("2", f2));
        out.push((String::new(), Err(period("202502"))));
        out.push(file("3", f3));
    }
    out
}

/// Ingests a usage file through the layer, all or nothing.
pub fn ingest(app: &App, spec: &Spec, path: &Path) -> IngestSummary {
    let f = std::fs::File::open(path).expect("usage file");
    let mut src = UsageReader::open(f, None).expect("usage header");
    app.local_operator()
        .ingest(
            &spec.n(),
            &mut src,
            IngestOptions::default(),
            &mut |r, _| panic!("{}: rejected {r:?}", path.display()),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn build(app: &App, spec: &Spec, seed: u64, usage_dir: &Path) {
    let op = app.local_operator();
    let n = spec.n();
    op.create_enrollment(&NewEnrollment {
        number: n.clone(),
        name: format!("Fixture {}", spec.number),
        currency: Currency::parse(spec.currency).expect("currency"),
        start: day(spec.start),
        end: day(spec.end),
        visibility: ChargeVisibility::default(),
    })
    .expect("enrollment");
    if spec.costs_shown {
        op.set_visibility(&n, Some(true), Some(true))
            .expect("visibility");
    }
    let h = meterbook_io::input::hierarchy::read("hierarchy.csv", spec.hierarchy_csv().as_bytes())
        .expect("hierarchy file");
    op.import_hierarchy(&n, &h).expect("hierarchy");
    // Web front end moves from a2 (Engineering) to b1 (Finance) mid-February.
    op.move_subscription(&n, spec.subs[1], "b1", day("2025-02-15"))
        .expect("move");
    for p in spec.periods() {
        let text = spec.prices_csv(p);
        let rows =
            meterbook_io::input::prices::read("prices.csv", text.as_bytes()).expect("prices");
        op.import_prices(&n, p, "prices.csv", &rows)
            .expect("import prices");
    }
    let money = |units: i64| Money(units * 100);
    op.add_entry(
        &n,
        EntryKind::Purchase,
        &CommitmentEntry {
            date: day(spec.start),
            amount: money(2_500),
            description: "Monetary commitment".into(),
        },
    )
    .expect("purchase");
    op.add_entry(
        &n,
        EntryKind::Adjustment,
        &CommitmentEntry {
            date: day("2025-03-15"),
            amount: Money(-12_345),
            description: "Service credit, ticket #42".into(),
        },
    )
    .expect("adjustment");
    for (name, step) in plan(spec, seed) {
        match step {
            Ok(rows) => {
                let path = usage_dir.join(&name);
                std::fs::write(&path, csv(&rows)).expect("write usage file");
                let s = ingest(app, spec, &path);
                eprintln!("{name}: {s:?}");
            }
            Err(through) => {
                op.close_periods_through(&n, through).expect("close");
            }
        }
    }
    op.set_watermark(&n, day("2025-04-30")).expect("watermark");
}

/// The department and account whose reports are kept.
pub fn scopes(app: &App, spec: &Spec) -> [(String, Scope); 2] {
    let h = app
        .local_operator()
        .enrollment(&spec.n())
        .expect("enrollment")
        .hierarchy()
        .expect("hierarchy");
    let d = h.department_by_name(spec.department).expect("department");
    let a = h.account_by_name(spec.account).expect("account");
    [
        ("department".into(), Scope::Department(d.id)),
        ("account".into(), Scope::Account(a.id)),
    ]
}

/// Makes the fixture: the database (vacuumed), the usage files it was fed,
/// and, from a fresh open of a copy of that database, the expected outputs.
pub fn make(write_expected: impl FnOnce(&Path)) {
    assert_eq!(
        meterbook_sqlite::SCHEMA_VERSION,
        FIXTURE_SCHEMA,
        "the fixture is the schema-{FIXTURE_SCHEMA} layout's own output: it must never be \
         remade by newer code (check out the commit that made it instead)"
    );
    let out = dir();
    assert!(
        !out.exists(),
        "{} exists: the fixture is never remade over itself",
        out.display()
    );
    let usage = out.join("usage");
    std::fs::create_dir_all(&usage).expect("fixture dir");
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(tmp.path().join("build.db")).expect("open"));
    let app = app(store.clone(), &tmp.path().join("files"));
    build(&app, &E1, 0x5eed_0001, &usage);
    build(&app, &E2, 0x5eed_0002, &usage);
    store.backup_to(&database()).expect("vacuumed copy");
    write_expected(&out);
}
