//! Integration tests of the `meterbook` binary: every command driven through the
//! real CLI, each test with its own temporary directory and database.
//!
//! Commands are written as one string split on whitespace (temp paths hold no
//! spaces); arguments that contain spaces go through the `*_args` variants.
//! Decimals read back from reports are compared as exact scaled integers, never
//! as floating point.

use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meterbook");

// ---------------------------------------------------------------------------
// Fixtures (copies of the shared examples; tests never read them from disk).
// ---------------------------------------------------------------------------

const HIERARCHY: &str = "\
DepartmentName,DepartmentCostCenter,AccountName,AccountOwnerEmail,AccountCostCenter,SubscriptionGuid,SubscriptionName
Research,RD-400,lab-analytics,dana@northwind.example,RD-410,7f1c2a9e-0b3d-4c51-9a6e-2d8f4b1c0e11,analytics-prod
Research,RD-400,lab-analytics,dana@northwind.example,RD-410,3b9e5d20-6f4a-4e8c-b1d7-90a2c3e4f522,analytics-sandbox
Operations,OP-100,ops-web,erik@northwind.example,OP-120,c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e33,web-frontend
,,shared-it,fatima@northwind.example,IT-001,9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c44,identity-core
";

const PRICES: &str = "\
MeterId,MeterName,MeterCategory,MeterSubCategory,MeterRegion,UnitOfMeasure,PartNumber,UnitPrice,IncludedQuantity,TierMinimumUnits,ChargesBilledSeparately,PublisherName,OfferName,PlanName
vm-e4s,E4s v5,Virtual Machines,Esv5 Series,EU West,1 Hour,N9H-00412,0.252,0,0,false,,,
disk-p10,P10 LRS Disk,Storage,Premium SSD Managed Disks,EU West,1/Month,N9H-00588,19.71,0,0,false,,,
blob-hot,Hot LRS Data Stored,Storage,Blob Storage,EU West,1 GB/Month,N9H-00731,0.0196,5,0,false,,,
blob-hot,Hot LRS Data Stored,Storage,Blob Storage,EU West,1 GB/Month,N9H-00731,0.0188,5,51200,false,,,
egress,Data Transfer Out,Bandwidth,Internet Egress,Zone 1,1 GB,N9H-00901,0.087,100,0,false,,,
egress,Data Transfer Out,Bandwidth,Internet Egress,Zone 1,1 GB,N9H-00901,0.083,100,10240,false,,,
support-std,Standard Support,Support,,Global,1/Month,N9H-01002,100,0,0,true,,,
waf-pro,Gateway WAF Pro,Marketplace,,EU West,1 Hour,MKT-55210,0.45,0,0,false,Tailspin Security,Tailspin WAF,Pro
";

const USAGE_HEADER: &str = "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,InstanceId,ResourceGroup,ResourceLocation,ConsumedService,Tags,AdditionalInfo,ServiceInfo1,ServiceInfo2";

const USAGE_SAMPLE: &str = r#"RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,InstanceId,ResourceGroup,ResourceLocation,ConsumedService,Tags,AdditionalInfo,ServiceInfo1,ServiceInfo2
u-0001,7f1c2a9e-0b3d-4c51-9a6e-2d8f4b1c0e11,2026-11-01,vm-e4s,24,/subscriptions/7f1c2a9e-0b3d-4c51-9a6e-2d8f4b1c0e11/resourceGroups/etl/providers/Compute/virtualMachines/etl-01,etl,westeurope,Compute,"{""env"":""prod"",""team"":""data""}","{""VCPUs"":4}",,
u-0002,7f1c2a9e-0b3d-4c51-9a6e-2d8f4b1c0e11,2026-11-01,blob-hot,412.5,/subscriptions/7f1c2a9e-0b3d-4c51-9a6e-2d8f4b1c0e11/resourceGroups/etl/providers/Storage/storageAccounts/etlraw,etl,westeurope,Storage,"{""env"":""prod""}",,,
u-0003,3b9e5d20-6f4a-4e8c-b1d7-90a2c3e4f522,2026-11-02,vm-e4s,6.5,/subscriptions/3b9e5d20-6f4a-4e8c-b1d7-90a2c3e4f522/resourceGroups/scratch/providers/Compute/virtualMachines/nb-7,scratch,westeurope,Compute,{},,,
u-0004,c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e33,2026-11-02,egress,88.123456,/subscriptions/c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e33/resourceGroups/web/providers/Network/frontDoors/fd-main,web,global,Network,"{""env"":""prod"",""app"":""shop""}",,,
u-0005,c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e33,2026-11-02,waf-pro,24,/subscriptions/c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e33/resourceGroups/web/providers/Marketplace/waf-1,web,westeurope,Marketplace,{},,,
u-0006,9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c44,2026-11-01,support-std,1,,,global,Support,{},,,
u-0007,c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e33,2026-11-03,disk-p10,0.033333,/subscriptions/c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e33/resourceGroups/web/providers/Compute/disks/os-1,web,westeurope,Compute,{},,,
"#;

/// Two NDJSON records (with a blank line between them, which is skipped).
const NDJSON_ROWS: &str = r#"{"RecordId":"n-1","SubscriptionGuid":"7f1c2a9e-0b3d-4c51-9a6e-2d8f4b1c0e11","Date":"2026-11-03","MeterId":"vm-e4s","ConsumedQuantity":2.5,"Tags":{"env":"prod"},"AdditionalInfo":{"VCPUs":4,"x":[1,2]}}

{"RecordId":"n-2","SubscriptionGuid":"c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e33","Date":"2026-11-04","MeterId":"waf-pro","ConsumedQuantity":"1.000001","InstanceId":"waf-2","ServiceInfo1":null}
"#;

/// The enrollment most tests use.
const NW: &str = "8608480";
const SUB_PROD: &str = "7f1c2a9e-0b3d-4c51-9a6e-2d8f4b1c0e11";
const SUB_SANDBOX: &str = "3b9e5d20-6f4a-4e8c-b1d7-90a2c3e4f522";
const SUB_WEB: &str = "c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e33";
const SUB_IT: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c44";
const NO_SUB: &str = "00000000-0000-0000-0000-000000000000";

/// A usage CSV row: the five required columns, the eight optional ones empty.
fn row(id: &str, sub: &str, date: &str, meter: &str, qty: &str) -> String {
    format!("{id},{sub},{date},{meter},{qty},,,,,,,,")
}

/// A usage CSV file (full header) holding `rows`.
fn usage_csv(rows: &[String]) -> String {
    let mut s = format!("{USAGE_HEADER}\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

// ---------------------------------------------------------------------------
// Driving the binary.
// ---------------------------------------------------------------------------

/// One test's world: a temp dir holding the database and the input files.
struct Mb {
    dir: tempfile::TempDir,
    db: PathBuf,
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    cmdline: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "`{}` exited {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.status.code(),
            self.stdout,
            self.stderr
        )
    }
}

impl Mb {
    fn new() -> Mb {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("t.db");
        Mb { dir, db }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file into the temp dir and returns its path.
    fn file(&self, name: &str, content: impl AsRef<[u8]>) -> String {
        let p = self.path(name);
        std::fs::write(&p, content).expect("write fixture");
        p.to_str().expect("utf-8 temp path").to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--db")
            .arg(&self.db)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("MB_DB");
        c
    }

    /// Runs the binary; never accepts a panic, whatever the exit status.
    fn run_args(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut c = self.command(args);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn meterbook");
        if let Some(input) = stdin {
            let mut w = child.stdin.take().expect("stdin");
            w.write_all(input).expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait meterbook");
        let run = Run {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            cmdline: format!("meterbook {}", args.join(" ")),
        };
        assert!(
            !run.stderr.contains("panicked"),
            "the binary panicked:\n{}",
            run.describe()
        );
        run
    }

    fn run(&self, cmd: &str) -> Run {
        self.run_args(&words(cmd), None)
    }

    fn ok_args(&self, args: &[&str]) -> Run {
        let r = self.run_args(args, None);
        assert!(r.status.success(), "expected success:\n{}", r.describe());
        r
    }

    fn ok(&self, cmd: &str) -> Run {
        self.ok_args(&words(cmd))
    }

    fn ok_stdin(&self, cmd: &str, input: &[u8]) -> Run {
        let r = self.run_args(&words(cmd), Some(input));
        assert!(r.status.success(), "expected success:\n{}", r.describe());
        r
    }

    /// Asserts a clean failure: exit 1, an `error: ` line, no panic.
    fn fail_args(&self, args: &[&str]) -> Run {
        let r = self.run_args(args, None);
        assert_eq!(
            r.status.code(),
            Some(1),
            "expected failure:\n{}",
            r.describe()
        );
        assert!(r.stderr.contains("error: "), "{}", r.describe());
        r
    }

    fn fail(&self, cmd: &str) -> Run {
        self.fail_args(&words(cmd))
    }

    /// Asserts a clean failure whose stderr contains `expected`.
    fn refuses(&self, cmd: &str, expected: &str) -> Run {
        let r = self.fail(cmd);
        assert!(
            r.stderr.contains(expected),
            "expected `{expected}` in stderr:\n{}",
            r.describe()
        );
        r
    }

    /// `report <args>` as CSV, parsed.
    fn table(&self, args: &str) -> Table {
        Table::parse(&self.ok(&format!("report {args}")).stdout)
    }

    /// `report <args> --format json`, parsed.
    fn json(&self, args: &str) -> JsonReport {
        JsonReport::parse(&self.ok(&format!("report {args} --format json")).stdout)
    }

    fn ingest(&self, enrollment: &str, file: &str) -> Run {
        self.ok(&format!("usage ingest --enrollment {enrollment} {file}"))
    }

    /// Every usage row of Northwind, by date (corrections once, at their date).
    fn nw_rows(&self) -> Table {
        self.table(&format!(
            "usage --enrollment {NW} --from 2026-01-01 --to 2028-12-31"
        ))
    }

    fn create(&self, number: &str, currency: &str, start: &str, end: &str) {
        self.ok(&format!(
            "enrollment create --number {number} --name E-{number} --currency {currency} --start {start} --end {end}"
        ));
    }

    /// Hierarchy plus the price sheet for each of `periods`.
    fn seed(&self, enrollment: &str, periods: &[&str]) {
        let h = self.file("hierarchy.csv", HIERARCHY);
        self.ok(&format!("hierarchy import --enrollment {enrollment} {h}"));
        let p = self.file("prices.csv", PRICES);
        for period in periods {
            self.ok(&format!(
                "prices import --enrollment {enrollment} --period {period} {p}"
            ));
        }
    }

    fn entry(&self, kind: &str, enrollment: &str, date: &str, amount: &str, description: &str) {
        self.ok_args(&[
            kind,
            "add",
            "--enrollment",
            enrollment,
            "--date",
            date,
            "--amount",
            amount,
            "--description",
            description,
        ]);
    }
}

fn words(cmd: &str) -> Vec<&str> {
    cmd.split_whitespace().collect()
}

/// Enrollment 8608480 (USD, 2026-01-01 to 2028-12-31), its hierarchy and the 202611 sheet.
fn northwind() -> Mb {
    let mb = Mb::new();
    mb.create(NW, "USD", "2026-01-01", "2028-12-31");
    mb.seed(NW, &["202611"]);
    mb
}

// ---------------------------------------------------------------------------
// Reading reports: RFC 4180 CSV, JSON with exact number text, exact decimals.
// ---------------------------------------------------------------------------

/// A parsed CSV report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn parse(text: &str) -> Table {
        let mut records = parse_csv(text);
        assert!(!records.is_empty(), "a CSV report has a header row");
        let header = records.remove(0);
        for r in &records {
            assert_eq!(r.len(), header.len(), "ragged CSV row {r:?}");
        }
        Table {
            header,
            rows: records,
        }
    }

    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    fn get<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        &row[self.col(name)]
    }

    fn column(&self, name: &str) -> Vec<String> {
        let c = self.col(name);
        self.rows.iter().map(|r| r[c].clone()).collect()
    }

    /// The one row whose RecordId is `id`.
    fn record(&self, id: &str) -> &[String] {
        let c = self.col("RecordId");
        let found: Vec<_> = self.rows.iter().filter(|r| r[c] == id).collect();
        assert_eq!(found.len(), 1, "record {id} appears {} times", found.len());
        found[0]
    }

    /// A column of the row whose RecordId is `id`.
    fn at(&self, id: &str, name: &str) -> &str {
        self.get(self.record(id), name)
    }

    fn record_ids(&self) -> Vec<String> {
        let mut v = self.column("RecordId");
        v.sort();
        v
    }
}

/// RFC 4180: quoted fields may hold commas, doubled quotes and line breaks.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut pending = false;
    while let Some(c) = chars.next() {
        pending = true;
        if in_quotes {
            if c != '"' {
                field.push(c);
            } else if chars.peek() == Some(&'"') {
                chars.next();
                field.push('"');
            } else {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                pending = false;
            }
            _ => field.push(c),
        }
    }
    assert!(!in_quotes, "unterminated quoted field");
    if pending {
        record.push(field);
        records.push(record);
    }
    records
}

/// A plain-notation decimal as an exact integer count of 10^-scale.
fn fixed(s: &str, scale: u32) -> i128 {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    assert!(
        !int.is_empty() && plain(int) && plain(frac),
        "`{s}` is not a plain decimal"
    );
    assert!(
        frac.len() as u32 <= scale,
        "`{s}` has more than {scale} decimals"
    );
    let padded = format!("{int}{frac:0<width$}", width = scale as usize);
    let v: i128 = padded.parse().expect("decimal digits");
    if neg {
        -v
    } else {
        v
    }
}

/// Money printed with exactly `exp` decimals, in minor units.
fn money(s: &str, exp: u32) -> i128 {
    let decimals = s.split_once('.').map_or(0, |(_, f)| f.len() as u32);
    assert_eq!(decimals, exp, "`{s}` should have exactly {exp} decimals");
    fixed(s, exp)
}

/// `n / d` rounded half to even (`d` > 0).
fn div_half_even(n: i128, d: i128) -> i128 {
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    if r * 2 > d || (r * 2 == d && q % 2 != 0) {
        q + 1
    } else {
        q
    }
}

/// An exact amount (10^-18 units) rounded half-even to a currency's minor unit.
fn to_minor(amount: i128, exp: u32) -> i128 {
    div_half_even(amount, 10i128.pow(18 - exp))
}

type RawObject = HashMap<String, Box<RawValue>>;

/// A JSON report: top-level fields and data rows, each value as its exact JSON text.
struct JsonReport {
    top: RawObject,
    data: Vec<RawObject>,
}

impl JsonReport {
    fn parse(text: &str) -> JsonReport {
        let whole: serde_json::Value = serde_json::from_str(text).expect("one valid JSON document");
        assert!(whole.is_object(), "a JSON report is an object");
        let top: RawObject = serde_json::from_str(text).expect("report object");
        let data = serde_json::from_str(top.get("data").expect("data").get()).expect("data array");
        JsonReport { top, data }
    }

    fn field(&self, name: &str) -> &str {
        raw(&self.top, name)
    }

    fn record(&self, id: &str) -> &RawObject {
        let quoted = format!("\"{id}\"");
        self.data
            .iter()
            .find(|o| raw(o, "recordId") == quoted)
            .unwrap_or_else(|| panic!("no record {id}"))
    }
}

fn raw<'a>(o: &'a RawObject, name: &str) -> &'a str {
    o.get(name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .get()
}

/// The N of a report's stderr summary (`usage: N rows, ...`).
fn summary_rows(stderr: &str) -> u64 {
    stderr
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count in {stderr:?}"))
}

/// An ingest summary's (read, stored, duplicates, rejected).
fn counts(stdout: &str) -> (u64, u64, u64, u64) {
    let num = |key: &str| -> u64 {
        let i = stdout
            .find(key)
            .unwrap_or_else(|| panic!("no `{key}` in {stdout:?}"));
        stdout[i + key.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number after `{key}` in {stdout:?}"))
    };
    (
        num(": read "),
        num(", stored "),
        num(", duplicates "),
        num(", rejected "),
    )
}

/// A JSON report without `"generatedAt":"..."`, the one field that differs between runs.
fn without_generated_at(json: &str) -> String {
    let key = "\"generatedAt\":\"";
    let i = json.find(key).expect("generatedAt") + key.len();
    let end = i + json[i..].find('"').expect("closing quote") + 1;
    format!("{}{}", &json[..i - key.len()], &json[end..])
}

// ---------------------------------------------------------------------------
// 1. Every command works.
// ---------------------------------------------------------------------------

#[test]
fn migrate_and_enrollment_create_set_list() {
    let mb = Mb::new();
    let first = mb.ok("migrate").stdout;
    let version: u32 = first
        .strip_prefix("schema at version ")
        .and_then(|v| v.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("unexpected: {first:?}"));
    assert!(version >= 1, "{first}");
    assert!(mb.db.exists(), "the database file is created");
    assert_eq!(mb.ok("migrate").stdout, first, "migrations are idempotent");

    let r = mb.ok_args(&[
        "enrollment",
        "create",
        "--number",
        NW,
        "--name",
        "Northwind Traders",
        "--currency",
        "USD",
        "--start",
        "2026-01-01",
        "--end",
        "2028-12-31",
    ]);
    assert_eq!(
        r.stdout,
        "created enrollment 8608480 (Northwind Traders), USD 2026-01-01 to 2028-12-31\n"
    );
    // USD is the default currency.
    let r = mb.ok("enrollment create --number JP-1 --name Kaisha --currency JPY --start 2026-04-01 --end 2027-03-31");
    assert!(
        r.stdout.contains("JPY 2026-04-01 to 2027-03-31"),
        "{}",
        r.stdout
    );
    let r = mb.ok("enrollment create --number E_2 --name Dflt --start 2026-01-01 --end 2026-12-31");
    assert!(r.stdout.contains("(Dflt), USD"), "{}", r.stdout);

    let r = mb.ok(&format!(
        "enrollment set {NW} --department-admins-view-charges true"
    ));
    assert_eq!(
        r.stdout,
        "enrollment 8608480: DepartmentAdminsViewCharges=true AccountOwnersViewCharges=false\n"
    );
    // A flag left out keeps its value.
    let r = mb.ok(&format!(
        "enrollment set {NW} --account-owners-view-charges true"
    ));
    assert_eq!(
        r.stdout,
        "enrollment 8608480: DepartmentAdminsViewCharges=true AccountOwnersViewCharges=true\n"
    );
    let r = mb.ok(&format!(
        "enrollment set {NW} --department-admins-view-charges false"
    ));
    assert_eq!(
        r.stdout,
        "enrollment 8608480: DepartmentAdminsViewCharges=false AccountOwnersViewCharges=true\n"
    );

    let r = mb.ok("enrollment list");
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        vec![
            "number\tname\tcurrency\tstart\tend\tusage complete through",
            "8608480\tNorthwind Traders\tUSD\t2026-01-01\t2028-12-31\t-",
            "E_2\tDflt\tUSD\t2026-01-01\t2026-12-31\t-",
            "JP-1\tKaisha\tJPY\t2026-04-01\t2027-03-31\t-",
        ]
    );

    mb.refuses(
        &format!(
            "enrollment create --number {NW} --name Again --start 2026-01-01 --end 2026-12-31"
        ),
        "enrollment 8608480 already exists",
    );
    mb.refuses(
        "enrollment create --number X1 --name X --start 2026-12-01 --end 2026-01-01",
        "term end 2026-01-01 is before term start 2026-12-01",
    );
    mb.refuses(
        "enrollment create --number X2 --name X --currency usd --start 2026-01-01 --end 2026-12-31",
        "`usd` is not an ISO 4217 currency code",
    );
    mb.refuses(
        "enrollment create --number X3 --name X --start 2026-02-30 --end 2026-12-31",
        "--start: `2026-02-30` is not a calendar date",
    );
    mb.refuses(
        "enrollment create --number X/4 --name X --start 2026-01-01 --end 2026-12-31",
        "is not an enrollment number",
    );
    assert_eq!(mb.ok("enrollment list").stdout.lines().count(), 4);
}

#[test]
fn hierarchy_import_and_reimport_is_an_upsert() {
    let mb = Mb::new();
    mb.create(NW, "USD", "2026-01-01", "2028-12-31");
    let h = mb.file("hierarchy.csv", HIERARCHY);
    let r = mb.ok(&format!("hierarchy import --enrollment {NW} {h}"));
    assert_eq!(
        r.stdout,
        format!("{h}: 4 rows; 2 departments, 3 accounts, 4 subscriptions created, 0 updated\n")
    );
    let r = mb.ok(&format!("hierarchy import --enrollment {NW} {h}"));
    assert_eq!(
        r.stdout,
        format!("{h}: 4 rows; 2 departments, 3 accounts, 0 subscriptions created, 4 updated\n")
    );

    // Again with a renamed subscription, a new cost center and a new subscription
    // (its GUID in capitals: GUIDs compare case-insensitively).
    let changed = HIERARCHY
        .replace("analytics-sandbox", "analytics-scratch")
        .replace("OP-120", "OP-130")
        + "Research,RD-400,lab-ml,gus@northwind.example,RD-420,0D0D0D0D-1111-2222-3333-444444444444,ml-training\n";
    let h2 = mb.file("hierarchy2.csv", changed);
    let r = mb.ok(&format!("hierarchy import --enrollment {NW} {h2}"));
    assert_eq!(
        r.stdout,
        format!("{h2}: 5 rows; 2 departments, 4 accounts, 1 subscriptions created, 4 updated\n")
    );

    // The reports show the upserted values.
    let p = mb.file("p.csv", PRICES);
    mb.ok(&format!(
        "prices import --enrollment {NW} --period 202611 {p}"
    ));
    let u = mb.file(
        "u.csv",
        usage_csv(&[
            row("h1", SUB_SANDBOX, "2026-11-02", "vm-e4s", "1"),
            row("h2", SUB_WEB, "2026-11-02", "vm-e4s", "1"),
            row(
                "h3",
                "0d0d0d0d-1111-2222-3333-444444444444",
                "2026-11-02",
                "vm-e4s",
                "1",
            ),
            row("h4", SUB_IT, "2026-11-02", "vm-e4s", "1"),
        ]),
    );
    mb.ingest(NW, &u);
    let t = mb.nw_rows();
    assert_eq!(t.at("h1", "SubscriptionName"), "analytics-scratch");
    assert_eq!(t.at("h2", "CostCenter"), "OP-130");
    assert_eq!(t.at("h3", "AccountName"), "lab-ml");
    assert_eq!(t.at("h3", "AccountOwnerEmail"), "gus@northwind.example");
    assert_eq!(t.at("h3", "DepartmentName"), "Research");
    assert_eq!(t.at("h3", "SubscriptionName"), "ml-training");
    assert_eq!(
        t.at("h3", "SubscriptionGuid"),
        "0d0d0d0d-1111-2222-3333-444444444444"
    );
    // An account without a department.
    assert_eq!(t.at("h4", "AccountName"), "shared-it");
    assert_eq!(t.at("h4", "DepartmentName"), "");
    assert_eq!(t.at("h4", "DepartmentId"), "");

    // A bad row refuses the whole file, naming file, line and column.
    let bad = mb.file(
        "bad.csv",
        "AccountName,AccountOwnerEmail,SubscriptionGuid\nnew-acct,x@y.example,g-1\nacc,not-an-email,g-2\n",
    );
    mb.refuses(
        &format!("hierarchy import --enrollment {NW} {bad}"),
        &format!("{bad}:3: column 2 (AccountOwnerEmail): not an email address"),
    );
    let r = mb.ok(&format!("hierarchy import --enrollment {NW} {h2}"));
    assert!(
        r.stdout
            .contains("4 accounts, 0 subscriptions created, 5 updated"),
        "{}",
        r.stdout
    );
}

#[test]
fn subscription_move_attributes_usage_by_date() {
    let mb = northwind();
    let before = mb.file(
        "before.csv",
        usage_csv(&[
            row("m-1", SUB_PROD, "2026-11-01", "vm-e4s", "1"),
            row("m-2", SUB_PROD, "2026-11-09", "vm-e4s", "2"),
        ]),
    );
    mb.ingest(NW, &before);
    let r = mb.ok(&format!(
        "subscription move --enrollment {NW} --subscription {SUB_PROD} --account ops-web --effective 2026-11-10"
    ));
    assert_eq!(
        r.stdout,
        format!("subscription {SUB_PROD} belongs to account ops-web from 2026-11-10\n")
    );
    // Usage arriving after the move, dated on both sides of the effective date.
    let after = mb.file(
        "after.csv",
        usage_csv(&[
            row("m-3", SUB_PROD, "2026-11-10", "vm-e4s", "3"),
            row("m-4", SUB_PROD, "2026-11-20", "vm-e4s", "4"),
            row("m-5", SUB_PROD, "2026-11-05", "vm-e4s", "5"),
        ]),
    );
    mb.ingest(NW, &after);

    let t = mb.table(&format!("usage --enrollment {NW} --period 202611"));
    for (id, account, dept, cc) in [
        ("m-1", "lab-analytics", "Research", "RD-410"),
        ("m-2", "lab-analytics", "Research", "RD-410"),
        ("m-5", "lab-analytics", "Research", "RD-410"),
        ("m-3", "ops-web", "Operations", "OP-120"),
        ("m-4", "ops-web", "Operations", "OP-120"),
    ] {
        assert_eq!(t.at(id, "AccountName"), account, "{id}");
        assert_eq!(t.at(id, "DepartmentName"), dept, "{id}");
        assert_eq!(t.at(id, "CostCenter"), cc, "{id}");
        assert_eq!(t.at(id, "SubscriptionName"), "analytics-prod", "{id}");
    }
    let by = |filter: &str| {
        mb.table(&format!("usage --enrollment {NW} --period 202611 {filter}"))
            .record_ids()
    };
    assert_eq!(by("--account ops-web"), vec!["m-3", "m-4"]);
    assert_eq!(by("--account lab-analytics"), vec!["m-1", "m-2", "m-5"]);
    assert_eq!(by("--department Operations"), vec!["m-3", "m-4"]);

    mb.refuses(
        &format!("subscription move --enrollment {NW} --subscription {SUB_PROD} --account nobody --effective 2026-11-12"),
        "no account nobody",
    );
    mb.refuses(
        &format!("subscription move --enrollment {NW} --subscription {NO_SUB} --account ops-web --effective 2026-11-12"),
        "no subscription",
    );
    mb.refuses(
        &format!("subscription move --enrollment {NW} --subscription {SUB_PROD} --account ops-web --effective 2025-11-12"),
        "effective date 2025-11-12 is outside the enrollment's term",
    );
    // Re-importing the original hierarchy would silently undo the move: refused.
    let h = mb.file("h.csv", HIERARCHY);
    mb.refuses(
        &format!("hierarchy import --enrollment {NW} {h}"),
        "belongs to another account",
    );
}

#[test]
fn prices_import_and_price_list_report() {
    let mb = Mb::new();
    mb.create(NW, "USD", "2026-01-01", "2028-12-31");
    let p = mb.file("prices.csv", PRICES);
    let r = mb.ok(&format!(
        "prices import --enrollment {NW} --period 202611 {p}"
    ));
    assert_eq!(
        r.stdout,
        format!("{p}: price sheet 202611: 6 meters, 8 rows\n")
    );

    let t = mb.table(&format!("prices --enrollment {NW} --period 202611"));
    assert_eq!(
        t.header,
        words("MeterId MeterName MeterCategory MeterSubCategory MeterRegion UnitOfMeasure PartNumber UnitPrice IncludedQuantity TierMinimumUnits CurrencyCode")
    );
    assert_eq!(t.rows.len(), 8);
    let tiers = |meter: &str| -> Vec<(String, String, String)> {
        t.rows
            .iter()
            .filter(|r| r[0] == meter)
            .map(|r| {
                (
                    t.get(r, "UnitPrice").to_string(),
                    t.get(r, "IncludedQuantity").to_string(),
                    t.get(r, "TierMinimumUnits").to_string(),
                )
            })
            .collect()
    };
    let s = |v: &str| v.to_string();
    assert_eq!(
        tiers("blob-hot"),
        vec![
            (s("0.0196"), s("5"), s("0")),
            (s("0.0188"), s("5"), s("51200"))
        ]
    );
    assert_eq!(tiers("support-std"), vec![(s("100"), s("0"), s("0"))]);
    assert!(t.column("CurrencyCode").iter().all(|c| c == "USD"));
    let waf = t.rows.iter().find(|r| r[0] == "waf-pro").unwrap();
    assert_eq!(t.get(waf, "MeterName"), "Gateway WAF Pro");
    assert_eq!(t.get(waf, "PartNumber"), "MKT-55210");

    let r = mb.ok(&format!(
        "report prices --enrollment {NW} --period 202611 --format json"
    ));
    assert!(
        r.stderr.contains("prices: 6 meters in 202611"),
        "{}",
        r.stderr
    );
    let j = JsonReport::parse(&r.stdout);
    assert_eq!(j.field("billingPeriodId"), "\"202611\"");
    assert_eq!(j.field("currencyCode"), "\"USD\"");
    assert_eq!(j.data.len(), 8);
    let egress: Vec<(&str, &str)> = j
        .data
        .iter()
        .filter(|o| raw(o, "meterId") == "\"egress\"")
        .map(|o| (raw(o, "unitPrice"), raw(o, "tierMinimumUnits")))
        .collect();
    assert_eq!(egress, vec![("0.087", "0"), ("0.083", "10240")]);

    // A period without a sheet lists nothing; the price list is per period only.
    assert!(mb
        .table(&format!("prices --enrollment {NW} --period 202612"))
        .rows
        .is_empty());
    mb.refuses(
        &format!("report prices --enrollment {NW} --from 2026-11-01 --to 2026-11-30"),
        "the price list is per billing period: use --period",
    );

    // Re-importing an open period replaces its sheet.
    let p2 = mb.file("prices2.csv", PRICES.replace("0.252", "0.2"));
    mb.ok(&format!(
        "prices import --enrollment {NW} --period 202611 {p2}"
    ));
    let t = mb.table(&format!("prices --enrollment {NW} --period 202611"));
    let vm = t.rows.iter().find(|r| r[0] == "vm-e4s").unwrap();
    assert_eq!(t.get(vm, "UnitPrice"), "0.2");

    let r = mb.ok(&format!("period list --enrollment {NW}"));
    assert!(
        r.stdout.contains("\n202611\topen\tmoving\tyes\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\n202612\topen\tmoving\tno\n"),
        "{}",
        r.stdout
    );

    // Bad sheets name file, line and column; outside the term is refused.
    let bad = mb.file("bad.csv", "MeterId,MeterName,UnitPrice\nm1,M,1\nm2,M,abc\n");
    mb.refuses(
        &format!("prices import --enrollment {NW} --period 202612 {bad}"),
        &format!("{bad}:3: column 3 (UnitPrice): `abc`: not a decimal number in plain notation"),
    );
    let bad = mb.file(
        "bad2.csv",
        "MeterId,MeterName,UnitPrice,TierMinimumUnits\nm1,M,1,10\n",
    );
    mb.refuses(
        &format!("prices import --enrollment {NW} --period 202612 {bad}"),
        &format!("{bad}:2: meter m1 has no tier starting at TierMinimumUnits 0"),
    );
    mb.refuses(
        &format!("prices import --enrollment {NW} --period 202901 {p}"),
        "period 202901 is outside the enrollment's term",
    );
    mb.refuses(
        &format!("prices import --enrollment {NW} --period 2026-11 {p}"),
        "--period: `2026-11` is not a billing period (expected YYYYMM)",
    );
    assert!(mb
        .table(&format!("prices --enrollment {NW} --period 202612"))
        .rows
        .is_empty());
}

#[test]
fn usage_ingest_csv_and_ndjson_from_files_and_stdin() {
    let mb = northwind();
    let ingest = format!("usage ingest --enrollment {NW}");

    // CSV from a file (auto-detected).
    let sample = mb.file("sample.csv", USAGE_SAMPLE);
    let r = mb.ingest(NW, &sample);
    assert!(
        r.stdout.starts_with(&format!(
            "{sample}: read 7, stored 7, duplicates 0, rejected 0 in "
        )),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains(" rows/s); usage complete through (not set); generated "));

    // NDJSON from a file: auto-detected, then with --format.
    let nd = mb.file("u.ndjson", NDJSON_ROWS);
    assert_eq!(counts(&mb.ingest(NW, &nd).stdout), (2, 2, 0, 0));
    let nd2 = mb.file("u2.json", NDJSON_ROWS.replace("n-", "f-"));
    let r = mb.ok(&format!("{ingest} --format ndjson {nd2}"));
    assert_eq!(counts(&r.stdout), (2, 2, 0, 0));

    // CSV from stdin: auto-detected, then with --format.
    let csv_in = usage_csv(&[row("s-1", SUB_IT, "2026-11-05", "support-std", "1")]);
    let r = mb.ok_stdin(&format!("{ingest} -"), csv_in.as_bytes());
    assert_eq!(counts(&r.stdout), (1, 1, 0, 0));
    let csv_in = usage_csv(&[row("s-2", SUB_IT, "2026-11-06", "support-std", "1")]);
    let r = mb.ok_stdin(&format!("{ingest} --format csv -"), csv_in.as_bytes());
    assert_eq!(counts(&r.stdout), (1, 1, 0, 0));

    // NDJSON from stdin: auto-detected, then with --format.
    let r = mb.ok_stdin(
        &format!("{ingest} -"),
        NDJSON_ROWS.replace("n-", "i-").as_bytes(),
    );
    assert_eq!(counts(&r.stdout), (2, 2, 0, 0));
    let r = mb.ok_stdin(
        &format!("{ingest} --format ndjson -"),
        NDJSON_ROWS.replace("n-", "j-").as_bytes(),
    );
    assert_eq!(counts(&r.stdout), (2, 2, 0, 0));

    // The wrong format, forced, fails cleanly and stores nothing.
    let r = mb.run_args(
        &words(&format!("{ingest} --format csv -")),
        Some(NDJSON_ROWS.replace("n-", "w-").as_bytes()),
    );
    assert_eq!(r.status.code(), Some(1), "{}", r.describe());
    assert!(
        r.stderr
            .contains("error: <stdin>:1: column 1: unknown column"),
        "{}",
        r.stderr
    );

    let t = mb.nw_rows();
    let mut expected: Vec<String> = (1..=7).map(|i| format!("u-000{i}")).collect();
    for p in ["n", "f", "i", "j"] {
        expected.push(format!("{p}-1"));
        expected.push(format!("{p}-2"));
    }
    expected.extend(["s-1".to_string(), "s-2".to_string()]);
    expected.sort();
    assert_eq!(t.record_ids(), expected);

    // NDJSON values are kept exactly: numbers as written, objects as JSON text.
    for p in ["n", "f", "i", "j"] {
        let id = format!("{p}-1");
        assert_eq!(t.at(&id, "ConsumedQuantity"), "2.5");
        assert_eq!(t.at(&id, "Tags"), r#"{"env":"prod"}"#);
        assert_eq!(t.at(&id, "AdditionalInfo"), r#"{"VCPUs":4,"x":[1,2]}"#);
        assert_eq!(t.at(&id, "Cost"), "0.63");
        let id = format!("{p}-2");
        assert_eq!(t.at(&id, "ConsumedQuantity"), "1.000001");
        assert_eq!(t.at(&id, "InstanceId"), "waf-2");
        assert_eq!(t.at(&id, "ServiceInfo1"), "");
        assert_eq!(t.at(&id, "Cost"), "0.45000045");
    }
    // So are CSV values (the sample's quoted JSON).
    assert_eq!(t.at("u-0001", "Tags"), r#"{"env":"prod","team":"data"}"#);
    assert_eq!(t.at("u-0001", "AdditionalInfo"), r#"{"VCPUs":4}"#);
    assert_eq!(t.at("u-0001", "ResourceGroup"), "etl");
    assert_eq!(t.at("u-0001", "ConsumedService"), "Compute");
    assert_eq!(t.at("u-0001", "ResourceLocation"), "westeurope");
    assert_eq!(
        t.at("u-0001", "InstanceId"),
        "/subscriptions/7f1c2a9e-0b3d-4c51-9a6e-2d8f4b1c0e11/resourceGroups/etl/providers/Compute/virtualMachines/etl-01"
    );
    assert_eq!(t.at("u-0001", "Cost"), "6.048");
    assert_eq!(t.at("u-0001", "ResourceRate"), "0.252");
    assert_eq!(t.at("u-0001", "IsCorrection"), "false");
    // A tiered meter with included units: (412.5 - 5) x 0.0196 / 412.5, 12 decimals.
    assert_eq!(t.at("u-0002", "ResourceRate"), "0.019362424242");
    assert_eq!(t.at("u-0002", "Cost"), "7.986999999825");
    // Within the included quantity: free.
    assert_eq!(t.at("u-0004", "Cost"), "0");
}

#[test]
fn complete_through_watermark_shows_in_reports_and_summaries() {
    let mb = northwind();
    let sample = mb.file("sample.csv", USAGE_SAMPLE);
    mb.ingest(NW, &sample);

    let r = mb.ok(&format!(
        "report usage --enrollment {NW} --period 202611 --format json"
    ));
    assert_eq!(
        JsonReport::parse(&r.stdout).field("usageCompleteThrough"),
        "null"
    );
    assert!(
        r.stderr.contains("usage complete through (not set)"),
        "{}",
        r.stderr
    );

    let r = mb.ok(&format!(
        "usage complete-through --enrollment {NW} 2026-11-25"
    ));
    assert_eq!(
        r.stdout,
        "enrollment 8608480: usage complete through 2026-11-25\n"
    );

    for kind in ["usage", "balance", "prices", "marketplace"] {
        let r = mb.ok(&format!(
            "report {kind} --enrollment {NW} --period 202611 --format json"
        ));
        let j = JsonReport::parse(&r.stdout);
        assert_eq!(j.field("usageCompleteThrough"), "\"2026-11-25\"", "{kind}");
        assert_eq!(j.field("enrollmentNumber"), "\"8608480\"", "{kind}");
        assert_eq!(j.field("billingPeriodId"), "\"202611\"", "{kind}");
        assert!(j.field("generatedAt").ends_with("Z\""), "{kind}");
        let summary = r.stderr.trim_end();
        assert!(
            summary.starts_with(&format!("{kind}: "))
                && summary
                    .contains("; period 202611; usage complete through 2026-11-25; generated 20"),
            "{kind}: {summary}"
        );
        // CSV reports have no preamble: the watermark is in the stderr summary.
        let r = mb.ok(&format!("report {kind} --enrollment {NW} --period 202611"));
        assert!(
            r.stderr.contains("usage complete through 2026-11-25"),
            "{}",
            r.stderr
        );
        assert!(!r.stdout.contains("2026-11-25"), "{kind}: no preamble");
    }
    let r = mb.ok(&format!(
        "report usage --enrollment {NW} --from 2026-11-01 --to 2026-11-15 --format json"
    ));
    let j = JsonReport::parse(&r.stdout);
    assert_eq!(j.field("usageCompleteThrough"), "\"2026-11-25\"");
    assert_eq!(j.field("startDate"), "\"2026-11-01\"");
    assert_eq!(j.field("endDate"), "\"2026-11-15\"");
    assert!(
        r.stderr
            .contains("; 2026-11-01 to 2026-11-15; usage complete through 2026-11-25; "),
        "{}",
        r.stderr
    );

    // The ingest summary and the enrollment list state it too.
    let more = mb.file(
        "more.csv",
        usage_csv(&[row("w-1", SUB_IT, "2026-11-20", "support-std", "1")]),
    );
    let r = mb.ingest(NW, &more);
    assert!(
        r.stdout.contains("; usage complete through 2026-11-25; "),
        "{}",
        r.stdout
    );
    let r = mb.ok("enrollment list");
    assert!(
        r.stdout.contains("\t2028-12-31\t2026-11-25\n"),
        "{}",
        r.stdout
    );
    // It can move on, and back.
    mb.ok(&format!(
        "usage complete-through --enrollment {NW} 2026-11-26"
    ));
    let j = mb.json(&format!("balance --enrollment {NW} --period 202611"));
    assert_eq!(j.field("usageCompleteThrough"), "\"2026-11-26\"");
    mb.refuses(
        &format!("usage complete-through --enrollment {NW} 2026-13-01"),
        "is not a calendar date",
    );
}

#[test]
fn purchases_and_adjustments_feed_the_balance() {
    let mb = northwind();
    let sample = mb.file("sample.csv", USAGE_SAMPLE);
    mb.ingest(NW, &sample);
    let r = mb.ok_args(&[
        "purchase",
        "add",
        "--enrollment",
        NW,
        "--date",
        "2026-10-15",
        "--amount",
        "10",
        "--description",
        "Commitment year 1",
    ]);
    assert_eq!(
        r.stdout,
        "purchase of 10.00 USD on 2026-10-15 recorded: Commitment year 1\n"
    );
    mb.entry("purchase", NW, "2026-11-01", "4.5", "Top-up");
    let r = mb.ok_args(&[
        "adjustment",
        "add",
        "--enrollment",
        NW,
        "--date",
        "2026-11-15",
        "--amount",
        "-1.25",
        "--description",
        "Debit \"late fee\", 1",
    ]);
    assert_eq!(
        r.stdout,
        "adjustment of -1.25 USD on 2026-11-15 recorded: Debit \"late fee\", 1\n"
    );
    mb.entry("adjustment", NW, "2026-11-16", "0.75", "Credit");

    let t = mb.table(&format!(
        "balance --enrollment {NW} --from 2026-10-01 --to 2026-11-30"
    ));
    assert_eq!(
        t.header,
        words("BillingPeriodId CurrencyCode BeginningBalance NewPurchases Adjustments Utilized EndingBalance ServiceOverage ChargesBilledSeparately TotalOverage TotalUsage AzureMarketplaceServiceCharges")
    );
    assert_eq!(
        t.rows,
        vec![
            words("202610 USD 0.00 10.00 0.00 0.00 10.00 0.00 0.00 0.00 0.00 0.00"),
            // Available 10 + 4.5 - 1.25 + 0.75 = 14.00; commitment charges 16.329993429825 -> 16.33.
            words("202611 USD 10.00 4.50 -0.50 14.00 0.00 2.33 100.00 102.33 116.33 10.80"),
        ]
    );

    let r = mb.ok(&format!(
        "report balance --enrollment {NW} --period 202611 --format json"
    ));
    assert!(
        r.stderr.starts_with(
            "balance: 1 period(s); ending balance 0.00 USD, total usage 116.33; period 202611;"
        ),
        "{}",
        r.stderr
    );
    let j = JsonReport::parse(&r.stdout);
    assert_eq!(j.data.len(), 1);
    let s = &j.data[0];
    let id = raw(s, "id").to_ascii_lowercase();
    assert!(
        id.contains("8608480/billingperiods/202611/balancesummaries"),
        "{id}"
    );
    for (k, v) in [
        ("billingPeriodId", "202611"),
        ("currencyCode", "\"USD\""),
        ("beginningBalance", "10.00"),
        ("newPurchases", "4.50"),
        ("adjustments", "-0.50"),
        ("utilized", "14.00"),
        ("endingBalance", "0.00"),
        ("serviceOverage", "2.33"),
        ("chargesBilledSeparately", "100.00"),
        ("totalOverage", "102.33"),
        ("totalUsage", "116.33"),
        ("azureMarketplaceServiceCharges", "10.80"),
    ] {
        assert_eq!(raw(s, k), v, "{k}");
    }
    let details = |key: &str| -> Vec<(String, String, String)> {
        let items: Vec<RawObject> = serde_json::from_str(raw(s, key)).expect("details");
        items
            .iter()
            .map(|o| {
                let name: String = serde_json::from_str(raw(o, "name")).unwrap();
                (
                    name,
                    raw(o, "value").to_string(),
                    raw(o, "date").to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        details("adjustmentDetails"),
        vec![
            (
                "Debit \"late fee\", 1".into(),
                "-1.25".into(),
                "\"2026-11-15\"".into()
            ),
            ("Credit".into(), "0.75".into(), "\"2026-11-16\"".into()),
        ]
    );
    assert_eq!(
        details("newPurchasesDetails"),
        vec![("Top-up".into(), "4.50".into(), "\"2026-11-01\"".into())]
    );

    mb.refuses(
        &format!("purchase add --enrollment {NW} --date 2026-11-01 --amount -5 --description x"),
        "a purchase amount must be positive",
    );
    mb.refuses(
        &format!("purchase add --enrollment {NW} --date 2026-11-01 --amount 0 --description x"),
        "a purchase amount must be positive",
    );
    mb.refuses(
        &format!("adjustment add --enrollment {NW} --date 2025-12-31 --amount -5 --description x"),
        "date 2025-12-31 is outside the enrollment's term",
    );
    // Nothing of the refused entries was recorded.
    let t2 = mb.table(&format!(
        "balance --enrollment {NW} --from 2026-10-01 --to 2026-11-30"
    ));
    assert_eq!(t2, t);
}

#[test]
fn period_close_and_list() {
    let mb = Mb::new();
    mb.create("P1", "USD", "2025-01-01", "2026-12-31");
    mb.seed("P1", &["202501", "202502"]);
    let r = mb.ok("period close --enrollment P1 --period 202501");
    assert_eq!(r.stdout, "period 202501 closed; its rates are locked\n");
    mb.ok("period close --enrollment P1 --period 202502");
    let r = mb.ok("period list --enrollment P1");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1 + 24,
        "a header and one line per period of the term"
    );
    assert_eq!(lines[0], "period\tstatus\trates\tprice sheet");
    assert_eq!(lines[1], "202501\tclosed\tlocked\tyes");
    assert_eq!(lines[2], "202502\tclosed\tlocked\tyes");
    assert_eq!(lines[3], "202503\topen\tmoving\tno");
    assert_eq!(lines[24], "202612\topen\tmoving\tno");

    mb.refuses(
        "period close --enrollment P1 --period 202502",
        "period 202502 is already closed",
    );
    mb.refuses(
        "period close --enrollment P1 --period 202501",
        "period 202501 is already closed",
    );
    mb.refuses(
        "period close --enrollment P1 --period 202412",
        "period 202412 is outside the enrollment's term",
    );
    mb.refuses(
        "period close --enrollment P1 --period 20250",
        "is not a billing period",
    );
    assert_eq!(mb.ok("period list --enrollment P1").stdout, r.stdout);
}

#[test]
fn reports_with_period_range_filters_formats_and_output_file() {
    let mb = northwind();
    mb.seed(NW, &["202610"]);
    let sample = mb.file("sample.csv", USAGE_SAMPLE);
    mb.ingest(NW, &sample);
    let oct = mb.file(
        "oct.csv",
        usage_csv(&[
            row("o-1", SUB_PROD, "2026-10-30", "vm-e4s", "10"),
            row("o-2", SUB_WEB, "2026-10-31", "waf-pro", "2"),
            row("o-3", SUB_IT, "2026-10-15", "support-std", "1"),
        ]),
    );
    mb.ingest(NW, &oct);
    let usage = |args: &str| mb.table(&format!("usage --enrollment {NW} {args}"));

    // --period.
    let t = usage("--period 202611");
    assert_eq!(
        t.header,
        words(
            "AccountId AccountName AccountOwnerEmail AdditionalInfo ChargesBilledSeparately \
             ConsumedQuantity ConsumedService Cost CostCenter Date DepartmentId DepartmentName \
             InstanceId Location MeterCategory MeterId MeterName MeterRegion MeterSubCategory \
             OfferId PartNumber Product ResourceGroup ResourceGuid ResourceLocation ResourceRate \
             ServiceInfo1 ServiceInfo2 ServiceName ServiceTier SubscriptionGuid SubscriptionName \
             Tags UnitOfMeasure RecordId IsCorrection"
        )
    );
    assert_eq!(t.rows.len(), 7);
    // Rows come in (Date, RecordId) order, whatever the order of arrival.
    let keys: Vec<(String, String)> = t
        .rows
        .iter()
        .map(|r| {
            (
                t.get(r, "Date").to_string(),
                t.get(r, "RecordId").to_string(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(
        usage("--period 202610").record_ids(),
        vec!["o-1", "o-2", "o-3"]
    );
    assert!(usage("--period 202612").rows.is_empty());

    // --from/--to spans both periods, by date.
    assert_eq!(
        usage("--from 2026-10-30 --to 2026-11-01").record_ids(),
        vec!["o-1", "o-2", "u-0001", "u-0002", "u-0006"]
    );
    // A range starting before the term is clipped to it.
    assert_eq!(
        usage("--from 2025-12-01 --to 2026-10-30").record_ids(),
        vec!["o-1", "o-3"]
    );

    // --account, --department, repeated, and both (a row is kept if either matches).
    assert_eq!(
        usage("--period 202611 --account ops-web").record_ids(),
        vec!["u-0004", "u-0005", "u-0007"]
    );
    let t = usage("--period 202611 --department Research");
    assert_eq!(t.record_ids(), vec!["u-0001", "u-0002", "u-0003"]);
    assert!(t.column("DepartmentName").iter().all(|d| d == "Research"));
    assert_eq!(
        usage("--from 2026-10-01 --to 2026-11-30 --department Research --account shared-it")
            .record_ids(),
        vec!["o-1", "o-3", "u-0001", "u-0002", "u-0003", "u-0006"]
    );
    assert_eq!(
        usage("--period 202611 --account lab-analytics --account shared-it").record_ids(),
        vec!["u-0001", "u-0002", "u-0003", "u-0006"]
    );
    assert_eq!(
        usage("--period 202611 --department Research --department Operations")
            .rows
            .len(),
        6
    );
    mb.refuses(
        &format!("report usage --enrollment {NW} --period 202611 --account nobody"),
        "no account nobody",
    );
    mb.refuses(
        &format!("report usage --enrollment {NW} --period 202611 --department Nowhere"),
        "no department Nowhere",
    );

    // Marketplace: by period and by range, CSV and JSON, filtered.
    let m = mb.table(&format!("marketplace --enrollment {NW} --period 202611"));
    assert_eq!(
        m.header,
        words(
            "AccountId AccountName AccountOwnerEmail CostCenter DepartmentName SubscriptionGuid \
             SubscriptionName Date MeterId MeterName PublisherName OfferName PlanName \
             ConsumedQuantity UnitOfMeasure ResourceRate Cost InstanceId ResourceGroup Tags \
             RecordId IsCorrection"
        )
    );
    assert_eq!(m.record_ids(), vec!["u-0005"]);
    assert_eq!(m.at("u-0005", "PublisherName"), "Tailspin Security");
    assert_eq!(m.at("u-0005", "OfferName"), "Tailspin WAF");
    assert_eq!(m.at("u-0005", "PlanName"), "Pro");
    assert_eq!(m.at("u-0005", "Cost"), "10.8");
    let m = mb.table(&format!(
        "marketplace --enrollment {NW} --from 2026-10-01 --to 2026-11-30"
    ));
    assert_eq!(m.record_ids(), vec!["o-2", "u-0005"]);
    let j = mb.json(&format!(
        "marketplace --enrollment {NW} --from 2026-10-01 --to 2026-11-30 --account ops-web"
    ));
    assert_eq!(j.data.len(), 2);
    assert_eq!(
        raw(j.record("o-2"), "publisherName"),
        "\"Tailspin Security\""
    );
    assert_eq!(raw(j.record("o-2"), "cost"), "0.9");
    assert_eq!(raw(j.record("u-0005"), "cost"), "10.8");
    let j = mb.json(&format!(
        "marketplace --enrollment {NW} --period 202611 --account shared-it"
    ));
    assert!(j.data.is_empty());

    // Balance by period and by range; it takes no filters.
    let b = mb.table(&format!("balance --enrollment {NW} --period 202611"));
    assert_eq!(b.column("BillingPeriodId"), vec!["202611"]);
    let b = mb.table(&format!(
        "balance --enrollment {NW} --from 2026-10-15 --to 2026-11-02"
    ));
    assert_eq!(b.column("BillingPeriodId"), vec!["202610", "202611"]);
    assert_eq!(b.get(&b.rows[0], "ServiceOverage"), "2.52");
    assert_eq!(b.get(&b.rows[0], "ChargesBilledSeparately"), "100.00");
    assert_eq!(b.get(&b.rows[0], "AzureMarketplaceServiceCharges"), "0.90");
    let j = mb.json(&format!(
        "balance --enrollment {NW} --from 2026-10-15 --to 2026-11-02"
    ));
    assert_eq!(j.field("startDate"), "\"2026-10-15\"");
    assert_eq!(j.data.len(), 2);
    assert_eq!(raw(&j.data[0], "serviceOverage"), "2.52");
    mb.refuses(
        &format!("report balance --enrollment {NW} --period 202611 --account ops-web"),
        "--account and --department do not apply",
    );

    // JSON usage: the same rows, in the same order, with the same exact numbers.
    let csv = usage("--period 202611");
    let j = mb.json(&format!("usage --enrollment {NW} --period 202611"));
    assert_eq!(j.field("billingPeriodId"), "\"202611\"");
    assert_eq!(j.field("currencyCode"), "\"USD\"");
    assert_eq!(j.data.len(), csv.rows.len());
    for (o, row) in j.data.iter().zip(&csv.rows) {
        assert_eq!(o.len(), csv.header.len(), "one JSON field per CSV column");
        assert_eq!(
            raw(o, "recordId"),
            format!("\"{}\"", csv.get(row, "RecordId"))
        );
        assert_eq!(raw(o, "date"), format!("\"{}\"", csv.get(row, "Date")));
        assert_eq!(raw(o, "cost"), csv.get(row, "Cost"));
        assert_eq!(raw(o, "resourceRate"), csv.get(row, "ResourceRate"));
        assert_eq!(raw(o, "consumedQuantity"), csv.get(row, "ConsumedQuantity"));
        assert_eq!(raw(o, "isCorrection"), "false");
    }
    let u1 = j.record("u-0001");
    assert_eq!(raw(u1, "tags"), r#"{"env":"prod","team":"data"}"#);
    assert_eq!(raw(u1, "additionalInfo"), r#"{"VCPUs":4}"#);
    assert_eq!(raw(u1, "accountName"), "\"lab-analytics\"");
    let u6 = j.record("u-0006");
    assert_eq!(raw(u6, "departmentId"), "null");
    assert_eq!(raw(u6, "departmentName"), "\"\"");
    assert_eq!(raw(u6, "chargesBilledSeparately"), "true");
    let j = mb.json(&format!("usage --enrollment {NW} --period 202612"));
    assert!(j.data.is_empty());

    // -o FILE: nothing on stdout; the file holds what stdout would.
    for kind in ["usage", "balance", "prices", "marketplace"] {
        for format in ["csv", "json"] {
            let args = format!("report {kind} --enrollment {NW} --period 202611 --format {format}");
            let out = mb.path(&format!("{kind}.{format}"));
            let r = mb.ok(&format!("{args} -o {}", out.display()));
            assert_eq!(r.stdout, "", "{kind} {format}: -o writes nothing to stdout");
            assert!(r.stderr.starts_with(&format!("{kind}: ")), "{}", r.stderr);
            let written = std::fs::read_to_string(&out).expect("report file");
            let to_stdout = mb.ok(&args).stdout;
            if format == "json" {
                assert_eq!(
                    without_generated_at(&written),
                    without_generated_at(&to_stdout)
                );
            } else {
                assert_eq!(written, to_stdout, "{kind}");
            }
        }
    }
    // --output, the long form, relative to the working directory; it replaces the file.
    std::fs::write(mb.path("rel.csv"), "old").unwrap();
    mb.ok(&format!(
        "report usage --enrollment {NW} --period 202610 --output rel.csv"
    ));
    let t = Table::parse(&std::fs::read_to_string(mb.path("rel.csv")).unwrap());
    assert_eq!(t.record_ids(), vec!["o-1", "o-2", "o-3"]);
    let missing_dir = mb.path("no/such/dir/out.csv");
    mb.refuses(
        &format!(
            "report usage --enrollment {NW} --period 202610 -o {}",
            missing_dir.display()
        ),
        "cannot write in",
    );
    // A report that fails leaves the existing file alone, and no temp file behind.
    mb.refuses(
        &format!("report usage --enrollment {NW} --period 202610 -o rel.csv --account nobody"),
        "no account nobody",
    );
    let t = Table::parse(&std::fs::read_to_string(mb.path("rel.csv")).unwrap());
    assert_eq!(t.record_ids(), vec!["o-1", "o-2", "o-3"]);
    let leftovers: Vec<_> = std::fs::read_dir(mb.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Spans outside the term, inverted ranges, malformed periods and dates.
    mb.refuses(
        &format!("report usage --enrollment {NW} --period 202512"),
        "outside the enrollment's term 2026-01-01 to 2028-12-31",
    );
    mb.refuses(
        &format!("report usage --enrollment {NW} --from 2026-11-30 --to 2026-11-01"),
        "--to 2026-11-01 is before --from 2026-11-30",
    );
    mb.refuses(
        &format!("report balance --enrollment {NW} --period 2026-11"),
        "is not a billing period",
    );
    mb.refuses(
        &format!("report usage --enrollment {NW} --from 2026-11-1 --to 2026-11-30"),
        "--from: `2026-11-1` is not a date (expected YYYY-MM-DD)",
    );
    // Either a period or a range.
    let r = mb.run(&format!("report usage --enrollment {NW}"));
    assert!(!r.status.success());
    assert!(
        r.stderr.contains("give --period YYYYMM or --from"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------
// 2. Rejections of usage ingest: file, line, column and reason; nothing stored.
// ---------------------------------------------------------------------------

/// Ingests `content` as `name` into a fresh Northwind (holding one row already)
/// and asserts it is refused as a whole with `expected` (`{file}` = its path) in
/// stderr. Returns the world and the file's path.
fn assert_rejected(name: &str, content: &[u8], expected: &str) -> (Mb, String) {
    let mb = northwind();
    let seed = mb.file(
        "seed.csv",
        usage_csv(&[row("seed-1", SUB_PROD, "2026-11-01", "vm-e4s", "1")]),
    );
    mb.ingest(NW, &seed);
    let path = mb.file(name, content);
    let r = mb.fail(&format!("usage ingest --enrollment {NW} {path}"));
    let expected = expected.replace("{file}", &path);
    assert!(
        r.stderr.contains(&expected),
        "expected `{expected}` in stderr:\n{}",
        r.describe()
    );
    // Nothing of the file was stored; the row stored before is still there.
    assert_eq!(mb.nw_rows().record_ids(), vec!["seed-1"]);
    let b = mb.table(&format!("balance --enrollment {NW} --period 202611"));
    assert_eq!(b.get(&b.rows[0], "TotalUsage"), "0.25", "rollups untouched");
    (mb, path)
}

/// Good rows (lines 2 and 4) around one bad row (line 3): the file stores nothing.
fn assert_bad_row(bad: &str, expected: &str) {
    let content = usage_csv(&[
        row("good-1", SUB_PROD, "2026-11-02", "vm-e4s", "1"),
        bad.to_string(),
        row("good-2", SUB_WEB, "2026-11-03", "egress", "5"),
    ]);
    let (mb, path) = assert_rejected("bad.csv", content.as_bytes(), expected);
    mb.refuses(
        &format!("usage ingest --enrollment {NW} {path}"),
        &format!(
            "error: {path}: 1 invalid record(s) in 3 read; nothing was stored \
             (fix the file, or use --skip-invalid --rejects FILE)"
        ),
    );
}

#[test]
fn reject_malformed_csv_wrong_field_count() {
    assert_bad_row(
        &format!("bad-1,{SUB_PROD},2026-11-02,vm-e4s,1,,,,,,,"),
        "{file}:3: malformed CSV: expected 13 fields, found 12",
    );
}

#[test]
fn reject_invalid_utf8() {
    let mut content = format!(
        "{USAGE_HEADER}\n{}\nbad-1,{SUB_PROD},2026-11-02,vm-e4s,1,,rg-",
        row("good-1", SUB_PROD, "2026-11-02", "vm-e4s", "1")
    )
    .into_bytes();
    content.extend_from_slice(b"\xff\xfe,,,,,,\n");
    content.extend_from_slice(row("good-2", SUB_WEB, "2026-11-03", "egress", "5").as_bytes());
    content.push(b'\n');
    assert_rejected(
        "bad.csv",
        &content,
        "{file}:3: column 7 (ResourceGroup): invalid UTF-8 (the file must be UTF-8)",
    );
}

#[test]
fn reject_unknown_subscription() {
    assert_bad_row(
        &row("bad-1", NO_SUB, "2026-11-02", "vm-e4s", "1"),
        &format!("{{file}}:3: column 2 (SubscriptionGuid): unknown subscription {NO_SUB}"),
    );
}

#[test]
fn reject_meter_without_price_in_the_rows_period() {
    // vm-e4s is priced in 202611 only.
    assert_bad_row(
        &row("bad-1", SUB_PROD, "2026-10-31", "vm-e4s", "1"),
        "{file}:3: column 4 (MeterId): meter vm-e4s has no price in period 202610",
    );
}

#[test]
fn reject_unknown_meter() {
    assert_bad_row(
        &row("bad-1", SUB_PROD, "2026-11-02", "gpu-h100", "1"),
        "{file}:3: column 4 (MeterId): meter gpu-h100 has no price in period 202611",
    );
}

#[test]
fn reject_date_outside_the_term() {
    assert_bad_row(
        &row("bad-1", SUB_PROD, "2025-12-31", "vm-e4s", "1"),
        "{file}:3: column 3 (Date): 2025-12-31 is outside the enrollment's term 2026-01-01 to 2028-12-31",
    );
}

#[test]
fn reject_malformed_date() {
    assert_bad_row(
        &row("bad-1", SUB_PROD, "2026-11-31", "vm-e4s", "1"),
        "{file}:3: column 3 (Date): `2026-11-31` is not a calendar date",
    );
}

#[test]
fn reject_negative_quantity() {
    assert_bad_row(
        &row("bad-1", SUB_PROD, "2026-11-02", "vm-e4s", "-1"),
        "{file}:3: column 5 (ConsumedQuantity): `-1`: must not be negative",
    );
}

#[test]
fn reject_quantity_with_seven_decimals() {
    assert_bad_row(
        &row("bad-1", SUB_PROD, "2026-11-02", "vm-e4s", "1.1234567"),
        "{file}:3: column 5 (ConsumedQuantity): `1.1234567`: more than 6 decimal places",
    );
}

#[test]
fn reject_tags_that_are_not_an_object_of_strings() {
    assert_bad_row(
        &format!(r#"bad-1,{SUB_PROD},2026-11-02,vm-e4s,1,,,,,"{{""a"":1}}",,,"#),
        "{file}:3: column 10 (Tags): must be a JSON object of string values",
    );
}

#[test]
fn reject_additional_info_that_is_not_an_object() {
    assert_bad_row(
        &format!("bad-1,{SUB_PROD},2026-11-02,vm-e4s,1,,,,,,[1],,"),
        "{file}:3: column 11 (AdditionalInfo): must be a JSON object",
    );
}

#[test]
fn reject_oversized_record_id() {
    assert_bad_row(
        &row(&"r".repeat(200), SUB_PROD, "2026-11-02", "vm-e4s", "1"),
        "{file}:3: column 1 (RecordId): value is 200 bytes, more than the 128 allowed",
    );
}

#[test]
fn reject_empty_required_value() {
    assert_bad_row(
        &row("bad-1", SUB_PROD, "2026-11-02", "", "1"),
        "{file}:3: column 4 (MeterId): required value is empty",
    );
}

#[test]
fn reject_missing_required_column_in_header() {
    let content =
        format!("RecordId,SubscriptionGuid,Date,MeterId\ngood-1,{SUB_PROD},2026-11-02,vm-e4s\n");
    assert_rejected(
        "bad.csv",
        content.as_bytes(),
        "error: {file}:1: required column `ConsumedQuantity` is missing from the header \
         (required: RecordId, SubscriptionGuid, Date, MeterId, ConsumedQuantity)",
    );
    // Several missing: all named at once.
    let content = "RecordId,Date\nr1,2026-11-01\n";
    assert_rejected(
        "bad.csv",
        content.as_bytes(),
        "error: {file}:1: required columns `SubscriptionGuid`, `MeterId`, `ConsumedQuantity` \
         are missing from the header (required: RecordId, SubscriptionGuid, Date, MeterId, ConsumedQuantity)",
    );
}

#[test]
fn reject_unknown_or_repeated_column_in_header() {
    let content = format!(
        "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,tags\ngood-1,{SUB_PROD},2026-11-02,vm-e4s,1,\n"
    );
    assert_rejected(
        "bad.csv",
        content.as_bytes(),
        "error: {file}:1: column 6: unknown column `tags` (expected some of: RecordId, SubscriptionGuid,",
    );
    let content = format!(
        "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,Date\ngood-1,{SUB_PROD},2026-11-02,vm-e4s,1,2026-11-02\n"
    );
    assert_rejected("bad.csv", content.as_bytes(), "column `Date` appears twice");
}

#[test]
fn reject_ndjson_errors_name_line_and_field() {
    let rec = |id: &str, sub: &str, meter: &str, extra: &str| {
        format!(
            r#"{{"RecordId":"{id}","SubscriptionGuid":"{sub}","Date":"2026-11-02","MeterId":"{meter}","ConsumedQuantity":1{extra}}}"#
        )
    };
    let content = [
        rec("good-1", SUB_PROD, "vm-e4s", ""),
        rec("bad-1", SUB_PROD, "vm-e4s", r#","Tags":{"a":1}"#),
        rec("bad-2", SUB_PROD, "vm-e4s", "")
            .replace("\"ConsumedQuantity\":1", "\"ConsumedQuantity\":1e3"),
        r#"{"RecordId":"bad-3","Bogus":1}"#.to_string(),
        "not json".to_string(),
        rec("bad-4", NO_SUB, "vm-e4s", ""),
        rec("good-2", SUB_WEB, "egress", ""),
    ]
    .join("\n");
    let (mb, f) = assert_rejected(
        "bad.ndjson",
        content.as_bytes(),
        "{file}:2: field Tags: must be a JSON object of string values",
    );
    let r = mb.fail(&format!("usage ingest --enrollment {NW} {f}"));
    for expected in [
        format!("{f}:3: field ConsumedQuantity: `1e3`: not a decimal number in plain notation"),
        format!("{f}:4: unknown field `Bogus`"),
        format!("{f}:5: not a JSON object of usage fields"),
        format!("{f}:6: field SubscriptionGuid: unknown subscription {NO_SUB}"),
        format!("error: {f}: 5 invalid record(s) in 7 read; nothing was stored"),
    ] {
        assert!(
            r.stderr.contains(&expected),
            "expected `{expected}`:\n{}",
            r.stderr
        );
    }
}

#[test]
fn reject_invalid_utf8_in_ndjson() {
    let mut content = format!(
        r#"{{"RecordId":"good-1","SubscriptionGuid":"{SUB_PROD}","Date":"2026-11-02","MeterId":"vm-e4s","ConsumedQuantity":1}}"#
    )
    .into_bytes();
    content.extend_from_slice(b"\n{\"RecordId\":\"bad-\xff\"}\n");
    assert_rejected(
        "bad.ndjson",
        &content,
        "{file}:2: invalid UTF-8 (the file must be UTF-8)",
    );
}

#[test]
fn reject_line_numbers_count_physical_lines() {
    // A quoted field may span lines: the next record starts on line 4.
    let content = format!(
        "{USAGE_HEADER}\n\
         good-1,{SUB_PROD},2026-11-02,vm-e4s,1,\"multi\nline\",,,,,,,\n\
         bad-1,{SUB_PROD},2026-11-02,vm-e4s,-1,,,,,,,,\n"
    );
    assert_rejected(
        "bad.csv",
        content.as_bytes(),
        "{file}:4: column 5 (ConsumedQuantity): `-1`: must not be negative",
    );
}

#[test]
fn reject_line_numbers_with_crlf_line_endings() {
    let rows = [
        row("good-1", SUB_PROD, "2026-11-02", "vm-e4s", "1"),
        row("bad-1", SUB_PROD, "2026-11-02", "vm-e4s", "-1"),
    ];
    let content = format!("{USAGE_HEADER}\r\n{}\r\n{}\r\n", rows[0], rows[1]);
    let (mb, _) = assert_rejected(
        "crlf.csv",
        content.as_bytes(),
        "{file}:3: column 5 (ConsumedQuantity): `-1`: must not be negative",
    );
    let h = mb.file(
        "h.csv",
        "AccountName,AccountOwnerEmail,SubscriptionGuid\r\nacc,a@b.example,g-1\r\nacc2,bad,g-2\r\n",
    );
    mb.refuses(
        &format!("hierarchy import --enrollment {NW} {h}"),
        &format!("{h}:3: column 2 (AccountOwnerEmail): not an email address"),
    );
}

#[test]
fn reject_from_stdin_names_stdin() {
    let mb = northwind();
    let content = usage_csv(&[
        row("good-1", SUB_PROD, "2026-11-02", "vm-e4s", "1"),
        row("bad-1", SUB_PROD, "2026-11-02", "vm-e4s", "x"),
    ]);
    let r = mb.run_args(
        &words(&format!("usage ingest --enrollment {NW} -")),
        Some(content.as_bytes()),
    );
    assert_eq!(r.status.code(), Some(1), "{}", r.describe());
    assert!(
        r.stderr.contains(
            "<stdin>:3: column 5 (ConsumedQuantity): `x`: not a decimal number in plain notation"
        ),
        "{}",
        r.stderr
    );
    assert!(r
        .stderr
        .contains("error: <stdin>: 1 invalid record(s) in 2 read; nothing was stored"));
    assert!(mb.nw_rows().rows.is_empty());
}

#[test]
fn every_error_of_a_file_is_listed() {
    let content = usage_csv(&[
        row("good-1", SUB_PROD, "2026-11-02", "vm-e4s", "1"),
        row("bad-1", SUB_PROD, "2026-11-02", "vm-e4s", "-1"),
        row("good-2", SUB_PROD, "2026-11-02", "vm-e4s", "1"),
        row("bad-2", SUB_PROD, "2024-01-01", "vm-e4s", "1"),
    ]);
    let (mb, path) = assert_rejected("bad.csv", content.as_bytes(), "{file}:3: column 5");
    let r = mb.fail(&format!("usage ingest --enrollment {NW} {path}"));
    assert!(
        r.stderr.contains(&format!("{path}:5: column 3 (Date)")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("2 invalid record(s) in 4 read"),
        "{}",
        r.stderr
    );
}

#[test]
fn conflicting_duplicate_is_rejected_exact_duplicate_is_counted() {
    let mb = northwind();
    let first = mb.file(
        "first.csv",
        usage_csv(&[
            row("d-1", SUB_PROD, "2026-11-02", "vm-e4s", "1.5"),
            row("d-2", SUB_WEB, "2026-11-02", "egress", "7"),
        ]),
    );
    assert_eq!(counts(&mb.ingest(NW, &first).stdout), (2, 2, 0, 0));

    // Same RecordId, different quantity, in a second file: the whole file is refused.
    let conflict = mb.file(
        "conflict.csv",
        usage_csv(&[
            row("d-3", SUB_PROD, "2026-11-03", "vm-e4s", "1"),
            row("d-1", SUB_PROD, "2026-11-02", "vm-e4s", "2.5"),
        ]),
    );
    let r = mb.refuses(
        &format!("usage ingest --enrollment {NW} {conflict}"),
        &format!("{conflict}:3: column 1 (RecordId): record d-1 is already stored with different content"),
    );
    assert!(r.stderr.contains("nothing was stored"), "{}", r.stderr);
    // Same RecordId on another day: a conflict too.
    let conflict2 = mb.file(
        "conflict2.csv",
        usage_csv(&[row("d-2", SUB_WEB, "2026-11-04", "egress", "7")]),
    );
    mb.refuses(
        &format!("usage ingest --enrollment {NW} {conflict2}"),
        &format!("{conflict2}:2: column 1 (RecordId): record d-2 is already stored with different content"),
    );
    // And with another tag.
    let conflict3 = mb.file(
        "conflict3.csv",
        format!("{USAGE_HEADER}\nd-2,{SUB_WEB},2026-11-02,egress,7,,,,,\"{{\"\"a\"\":\"\"b\"\"}}\",,,\n"),
    );
    mb.refuses(
        &format!("usage ingest --enrollment {NW} {conflict3}"),
        "record d-2 is already stored with different content",
    );
    let t = mb.nw_rows();
    assert_eq!(t.record_ids(), vec!["d-1", "d-2"]);
    assert_eq!(t.at("d-1", "ConsumedQuantity"), "1.5");

    // An exact duplicate (even with the number written differently) is counted, exit 0.
    let dup = mb.file(
        "dup.csv",
        usage_csv(&[
            row("d-1", SUB_PROD, "2026-11-02", "vm-e4s", "1.500"),
            row("d-4", SUB_PROD, "2026-11-05", "vm-e4s", "3"),
            row("d-4", SUB_PROD, "2026-11-05", "vm-e4s", "3"),
        ]),
    );
    let r = mb.ingest(NW, &dup);
    assert_eq!(counts(&r.stdout), (3, 1, 2, 0), "{}", r.stdout);
    let t = mb.nw_rows();
    assert_eq!(t.record_ids(), vec!["d-1", "d-2", "d-4"]);
    // The same record as NDJSON is a duplicate too.
    let nd = format!(
        r#"{{"RecordId":"d-1","SubscriptionGuid":"{SUB_PROD}","Date":"2026-11-02","MeterId":"vm-e4s","ConsumedQuantity":1.5}}"#
    );
    let r = mb.ok_stdin(&format!("usage ingest --enrollment {NW} -"), nd.as_bytes());
    assert_eq!(counts(&r.stdout), (1, 0, 1, 0), "{}", r.stdout);
    // Duplicates are not charged twice: (1.5 + 3) x 0.252 + egress within its included 100.
    let b = mb.table(&format!("balance --enrollment {NW} --period 202611"));
    assert_eq!(b.get(&b.rows[0], "TotalUsage"), "1.13");
    assert_eq!(mb.nw_rows().rows.len(), 3);
}

#[test]
fn skip_invalid_stores_valid_rows_and_writes_rejects() {
    let mb = northwind();
    let content = usage_csv(&[
        row("k-1", SUB_PROD, "2026-11-02", "vm-e4s", "1"),
        format!(
            r#"k-2,{SUB_PROD},2026-11-02,vm-e4s,-1,vm-9,"rg,with ""comma""",westeurope,Compute,"{{""env"":""dev""}}",,si1,si2"#
        ),
        row("k-3", NO_SUB, "2026-11-02", "vm-e4s", "1"),
        row("k-4", SUB_WEB, "2026-11-04", "egress", "2"),
    ]);
    let path = mb.file("mixed.csv", &content);
    let rejects = mb.path("rejects.csv");
    let r = mb.ok(&format!(
        "usage ingest --enrollment {NW} {path} --skip-invalid --rejects {}",
        rejects.display()
    ));
    assert_eq!(counts(&r.stdout), (4, 2, 0, 2), "{}", r.stdout);
    assert_eq!(mb.nw_rows().record_ids(), vec!["k-1", "k-4"]);

    let rej = Table::parse(&std::fs::read_to_string(&rejects).expect("reject file"));
    let mut header = vec!["Line", "Column", "Reason"];
    header.extend(USAGE_HEADER.split(','));
    assert_eq!(rej.header, header);
    assert_eq!(rej.rows.len(), 2);
    assert_eq!(
        rej.rows[0],
        vec![
            "3",
            "ConsumedQuantity",
            "`-1`: must not be negative",
            "k-2",
            SUB_PROD,
            "2026-11-02",
            "vm-e4s",
            "-1",
            "vm-9",
            "rg,with \"comma\"",
            "westeurope",
            "Compute",
            r#"{"env":"dev"}"#,
            "",
            "si1",
            "si2"
        ]
    );
    let reason = format!("unknown subscription {NO_SUB}");
    let mut k3 = vec![
        "4",
        "SubscriptionGuid",
        &reason,
        "k-3",
        NO_SUB,
        "2026-11-02",
        "vm-e4s",
        "1",
    ];
    k3.extend([""; 8]);
    assert_eq!(rej.rows[1], k3);

    // The rejected rows, fixed, go in; the good ones are now duplicates.
    let fixed_rows = content.replace(",-1,", ",1,").replace(NO_SUB, SUB_IT);
    let fixed_path = mb.file("fixed.csv", fixed_rows);
    assert_eq!(counts(&mb.ingest(NW, &fixed_path).stdout), (4, 2, 2, 0));
    assert_eq!(mb.nw_rows().record_ids(), vec!["k-1", "k-2", "k-3", "k-4"]);

    // Without --rejects, the skipped rows are named on stderr.
    let again = mb.file(
        "again.csv",
        usage_csv(&[
            row("k-5", SUB_PROD, "2026-11-02", "vm-e4s", "1"),
            row("k-6", SUB_PROD, "2026-11-02", "vm-e4s", "1.0000001"),
        ]),
    );
    let r = mb.ok(&format!(
        "usage ingest --enrollment {NW} {again} --skip-invalid"
    ));
    assert_eq!(counts(&r.stdout), (2, 1, 0, 1), "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "skipped {again}:3: column 5 (ConsumedQuantity): `1.0000001`: more than 6 decimal places"
        )),
        "{}",
        r.stderr
    );
    // --rejects needs --skip-invalid.
    let r = mb.run(&format!(
        "usage ingest --enrollment {NW} {again} --rejects r.csv"
    ));
    assert!(!r.status.success(), "{}", r.describe());
    // NDJSON rejects keep their raw fields too.
    let nd = format!(
        "{}\n{}\n",
        format_args!(
            r#"{{"RecordId":"k-7","SubscriptionGuid":"{SUB_PROD}","Date":"2026-11-02","MeterId":"vm-e4s","ConsumedQuantity":1}}"#
        ),
        format_args!(
            r#"{{"RecordId":"k-8","SubscriptionGuid":"{SUB_PROD}","Date":"2026-11-02","MeterId":"vm-e4s","ConsumedQuantity":1,"Tags":{{"n":2}}}}"#
        ),
    );
    let nd_path = mb.file("mixed.ndjson", nd);
    let r = mb.ok(&format!(
        "usage ingest --enrollment {NW} {nd_path} --skip-invalid --rejects {}",
        rejects.display()
    ));
    assert_eq!(counts(&r.stdout), (2, 1, 0, 1), "{}", r.stdout);
    let rej = Table::parse(&std::fs::read_to_string(&rejects).unwrap());
    assert_eq!(rej.rows.len(), 1);
    assert_eq!(rej.get(&rej.rows[0], "Line"), "2");
    assert_eq!(rej.get(&rej.rows[0], "Column"), "Tags");
    assert_eq!(rej.get(&rej.rows[0], "RecordId"), "k-8");
    assert_eq!(rej.get(&rej.rows[0], "Tags"), r#"{"n":2}"#);
}

#[test]
fn skip_invalid_reject_file_keeps_the_content_of_malformed_rows() {
    let mb = northwind();
    let content = usage_csv(&[
        row("k-1", SUB_PROD, "2026-11-02", "vm-e4s", "1"),
        format!("k-2,{SUB_PROD},2026-11-02,vm-e4s,1,,,,,,,"),
        row("k-3", SUB_WEB, "2026-11-04", "egress", "2"),
    ]);
    let path = mb.file("mixed.csv", &content);
    let rejects = mb.path("rejects.csv");
    let r = mb.ok(&format!(
        "usage ingest --enrollment {NW} {path} --skip-invalid --rejects {}",
        rejects.display()
    ));
    assert_eq!(counts(&r.stdout), (3, 2, 0, 1), "{}", r.stdout);
    let rej = Table::parse(&std::fs::read_to_string(&rejects).expect("reject file"));
    assert_eq!(rej.rows.len(), 1);
    let bad = &rej.rows[0];
    assert_eq!(rej.get(bad, "Line"), "3");
    assert!(rej
        .get(bad, "Reason")
        .contains("expected 13 fields, found 12"));
    // To fix and resend the row, its fields must be in the reject file.
    assert_eq!(rej.get(bad, "RecordId"), "k-2", "reject row: {bad:?}");
    assert_eq!(
        rej.get(bad, "SubscriptionGuid"),
        SUB_PROD,
        "reject row: {bad:?}"
    );
}

// ---------------------------------------------------------------------------
// 3. Other rejections.
// ---------------------------------------------------------------------------

#[test]
fn amounts_with_too_many_decimals_for_the_currency_are_refused() {
    let mb = northwind();
    mb.create("JP1", "JPY", "2026-01-01", "2026-12-31");
    for (kind, enrollment, amount, currency, decimals) in [
        ("purchase", NW, "1.234", "USD", 2),
        ("adjustment", NW, "-1.234", "USD", 2),
        ("purchase", "JP1", "1.5", "JPY", 0),
        ("adjustment", "JP1", "-0.5", "JPY", 0),
    ] {
        mb.refuses(
            &format!("{kind} add --enrollment {enrollment} --date 2026-11-01 --amount {amount} --description x"),
            &format!("--amount `{amount}`: more than {decimals} decimal places for {currency}"),
        );
    }
    for bad in ["1e3", "1,5", "abc", "--", "0x10"] {
        let r = mb.run_args(
            &[
                "purchase",
                "add",
                "--enrollment",
                NW,
                "--date",
                "2026-11-01",
                "--amount",
                bad,
                "--description",
                "x",
            ],
            None,
        );
        assert!(!r.status.success(), "{}", r.describe());
    }
    // Nothing was recorded.
    for n in [NW, "JP1"] {
        let b = mb.table(&format!("balance --enrollment {n} --period 202611"));
        assert!(b
            .get(&b.rows[0], "NewPurchases")
            .trim_start_matches(['0', '.'])
            .is_empty());
        assert!(b
            .get(&b.rows[0], "Adjustments")
            .trim_start_matches(['0', '.'])
            .is_empty());
    }
    // Whole yen are fine, and so are zeros past the minor unit.
    let r =
        mb.ok("purchase add --enrollment JP1 --date 2026-11-01 --amount 1500.0 --description x");
    assert_eq!(r.stdout, "purchase of 1500 JPY on 2026-11-01 recorded: x\n");
    let r = mb.ok(&format!(
        "purchase add --enrollment {NW} --date 2026-11-01 --amount 1.230 --description x"
    ));
    assert_eq!(r.stdout, "purchase of 1.23 USD on 2026-11-01 recorded: x\n");
}

#[test]
fn period_close_rejections_and_closed_period_protections() {
    let mb = Mb::new();
    mb.create("P1", "USD", "2025-03-01", "2026-12-31");
    mb.refuses(
        "period close --enrollment P1 --period 202504",
        "period 202503 is still open; periods close in order \
         (`period close --enrollment P1 --through 202504` closes every open period up to 202504)",
    );
    mb.ok("period close --enrollment P1 --period 202503");
    let p = mb.file("p.csv", PRICES);
    mb.refuses(
        &format!("prices import --enrollment P1 --period 202503 {p}"),
        "period 202503 is closed; its price sheet never changes",
    );
    let r = mb.ok("period list --enrollment P1");
    assert!(
        r.stdout.contains("\n202503\tclosed\tlocked\tno\n"),
        "{}",
        r.stdout
    );
    mb.refuses(
        "adjustment add --enrollment P1 --date 2025-03-31 --amount 5 --description x",
        "date 2025-03-31 falls in closed period 202503; closed periods never change",
    );
    mb.refuses(
        "purchase add --enrollment P1 --date 2025-03-01 --amount 5 --description x",
        "falls in closed period 202503",
    );
    let h = mb.file("h.csv", HIERARCHY);
    mb.ok(&format!("hierarchy import --enrollment P1 {h}"));
    mb.refuses(
        &format!("subscription move --enrollment P1 --subscription {SUB_PROD} --account ops-web --effective 2025-03-15"),
        "effective date 2025-03-15 falls in closed period 202503",
    );
    // Usage of a closed period with no open period left in the term is refused.
    mb.create("P2", "USD", "2025-05-01", "2025-05-31");
    mb.seed("P2", &["202505"]);
    mb.ok("period close --enrollment P2 --period 202505");
    let u = mb.file(
        "u.csv",
        usage_csv(&[row("x-1", SUB_PROD, "2025-05-02", "vm-e4s", "1")]),
    );
    mb.refuses(
        &format!("usage ingest --enrollment P2 {u}"),
        &format!("{u}:2: column 3 (Date): 2025-05-02 is in closed period 202505 and no period of the term is open"),
    );

    // A period that has not ended yet (far in the future, whatever today is).
    mb.create("F1", "USD", "2030-01-01", "2030-12-31");
    mb.refuses(
        "period close --enrollment F1 --period 203001",
        "period 203001 has not ended yet (it ends 2030-01-31)",
    );
    let r = mb.ok("period list --enrollment F1");
    assert!(
        r.stdout.contains("\n203001\topen\tmoving\tno\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn the_current_period_cannot_be_closed() {
    // Today is 2026-11-26 per the brief; computed from the clock so the test does not age.
    let today = today_period();
    let mb = Mb::new();
    mb.create("C1", "USD", "2026-11-01", "2099-12-31");
    let mut p = 202611u32;
    while p < today {
        mb.ok(&format!("period close --enrollment C1 --period {p}"));
        p = if p % 100 == 12 { p + 89 } else { p + 1 };
    }
    mb.refuses(
        &format!("period close --enrollment C1 --period {today}"),
        &format!("period {today} has not ended yet"),
    );
}

/// This month as YYYYMM (UTC), from the system clock.
fn today_period() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    // Civil from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y * 100 + m) as u32
}

#[test]
fn unknown_enrollment_is_refused_by_every_command() {
    let mb = northwind();
    let u = mb.file("u.csv", USAGE_SAMPLE);
    let h = mb.file("h.csv", HIERARCHY);
    let p = mb.file("p.csv", PRICES);
    for cmd in [
        "enrollment set 999 --account-owners-view-charges true".to_string(),
        format!("hierarchy import --enrollment 999 {h}"),
        format!("subscription move --enrollment 999 --subscription {SUB_PROD} --account ops-web --effective 2026-11-10"),
        format!("prices import --enrollment 999 --period 202611 {p}"),
        format!("usage ingest --enrollment 999 {u}"),
        format!("usage ingest --enrollment 999 {u} --skip-invalid"),
        "usage complete-through --enrollment 999 2026-11-25".to_string(),
        "purchase add --enrollment 999 --date 2026-11-01 --amount 1 --description x".to_string(),
        "adjustment add --enrollment 999 --date 2026-11-01 --amount -1 --description x".to_string(),
        "period close --enrollment 999 --period 202611".to_string(),
        "period list --enrollment 999".to_string(),
        "report balance --enrollment 999 --period 202611".to_string(),
        "report usage --enrollment 999 --period 202611".to_string(),
        "report prices --enrollment 999 --period 202611".to_string(),
        "report marketplace --enrollment 999 --from 2026-11-01 --to 2026-11-30".to_string(),
    ] {
        mb.refuses(&cmd, "no enrollment 999");
    }
    mb.refuses(
        &format!("usage ingest --enrollment 9/9 {u}"),
        "`9/9` is not an enrollment number",
    );
    // Nothing reached the real enrollment.
    assert!(mb.nw_rows().rows.is_empty());
    let missing = mb.path("missing.csv");
    mb.refuses(
        &format!("usage ingest --enrollment {NW} {}", missing.display()),
        &format!("cannot read {}", missing.display()),
    );
    mb.refuses(
        &format!("hierarchy import --enrollment {NW} {}", missing.display()),
        "cannot read",
    );
}

#[test]
fn a_sheet_must_keep_prices_for_meters_with_usage() {
    let mb = northwind();
    let u = mb.file("u.csv", USAGE_SAMPLE);
    mb.ingest(NW, &u);
    let fewer: String = PRICES
        .lines()
        .filter(|l| !l.starts_with("vm-e4s"))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = mb.file("p3.csv", fewer);
    mb.refuses(
        &format!("prices import --enrollment {NW} --period 202611 {p}"),
        "meter vm-e4s has usage in 202611 but no price in the new sheet",
    );
    let t = mb.table(&format!("prices --enrollment {NW} --period 202611"));
    assert_eq!(t.rows.len(), 8, "the old sheet stays");
}

#[test]
fn whitespace_only_json_columns_keep_json_reports_valid() {
    let mb = northwind();
    let u = mb.file(
        "ws.csv",
        format!(
            "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,Tags,AdditionalInfo\n\
             ws-1,{SUB_PROD},2026-11-01,vm-e4s,1, , \n\
             ws-2,{SUB_WEB},2026-11-01,waf-pro,1, ,\n"
        ),
    );
    assert_eq!(counts(&mb.ingest(NW, &u).stdout), (2, 2, 0, 0));
    for kind in ["usage", "marketplace"] {
        let r = mb.ok(&format!(
            "report {kind} --enrollment {NW} --period 202611 --format json"
        ));
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(&r.stdout);
        assert!(
            parsed.is_ok(),
            "{kind}: invalid JSON ({parsed:?}):\n{}",
            r.stdout
        );
    }
}

#[test]
fn quantities_summing_past_the_supported_range_are_refused_cleanly() {
    let mb = northwind();
    let u = mb.file(
        "big-qty.csv",
        usage_csv(&[
            row("q-1", SUB_PROD, "2026-11-01", "vm-e4s", "5000000000000"),
            row("q-2", SUB_PROD, "2026-11-02", "vm-e4s", "5000000000000"),
        ]),
    );
    let r = mb.run(&format!("usage ingest --enrollment {NW} {u}"));
    if r.status.success() {
        // Stored: then the figures must be right (1e13 x 0.252).
        let b = mb.table(&format!("balance --enrollment {NW} --period 202611"));
        assert_eq!(b.get(&b.rows[0], "TotalUsage"), "2520000000000.00");
        check_identities(&mb, NW, "202611", 2);
    } else {
        assert!(
            r.stderr.contains("exceeds the supported range"),
            "{}",
            r.describe()
        );
        assert!(mb.nw_rows().rows.is_empty());
    }
}

#[test]
fn usage_report_of_large_quantities_does_not_overflow() {
    let mb = northwind();
    let u = mb.file(
        "big-qty.csv",
        usage_csv(&[
            row("q-1", SUB_PROD, "2026-11-01", "vm-e4s", "1000000000000"),
            row("q-2", SUB_PROD, "2026-11-01", "disk-p10", "1000000000000"),
        ]),
    );
    mb.ingest(NW, &u);
    let t = mb.table(&format!("usage --enrollment {NW} --period 202611"));
    assert_eq!(t.record_ids(), vec!["q-1", "q-2"]);
    check_identities(&mb, NW, "202611", 2);
}

/// A price sheet of the one meter `vm-e4s` at `price`.
fn vm_prices(price: &str) -> String {
    let header = PRICES.lines().next().expect("header");
    format!(
        "{header}\nvm-e4s,E4s v5,Virtual Machines,Esv5 Series,EU West,1 Hour,N9H-00412,{price},0,0,false,,,\n"
    )
}

/// The balance report of Northwind's 202611, as printed.
fn nw_balance(mb: &Mb) -> String {
    mb.ok(&format!("report balance --enrollment {NW} --period 202611"))
        .stdout
}

/// The reproduced defect: 9e12 units at 1e7 used to be stored, and the balance
/// showed Utilized -20111079702611886.08; a price of 1e14 wrapped the rate.
#[test]
fn charges_past_the_supported_range_are_refused_not_wrapped() {
    let mb = Mb::new();
    mb.create(NW, "USD", "2026-01-01", "2028-12-31");
    let h = mb.file("hierarchy.csv", HIERARCHY);
    mb.ok(&format!("hierarchy import --enrollment {NW} {h}"));
    let p = mb.file("prices.csv", vm_prices("10000000"));
    mb.ok(&format!(
        "prices import --enrollment {NW} --period 202611 {p}"
    ));
    mb.entry("purchase", NW, "2026-11-01", "1000", "Commitment");
    let ok = mb.file(
        "ok.csv",
        usage_csv(&[row("ok-1", SUB_PROD, "2026-11-01", "vm-e4s", "1")]),
    );
    mb.ingest(NW, &ok);
    let before = nw_balance(&mb);

    let u = mb.file(
        "usage.csv",
        usage_csv(&[row(
            "big-1",
            SUB_PROD,
            "2026-11-01",
            "vm-e4s",
            "9000000000000",
        )]),
    );
    let r = mb.fail(&format!("usage ingest --enrollment {NW} {u}"));
    for expected in [
        format!("{u}:2: "),
        "meter vm-e4s".to_string(),
        "exceeds the supported range".to_string(),
        "nothing was stored".to_string(),
    ] {
        assert!(
            r.stderr.contains(&expected),
            "`{expected}`:\n{}",
            r.describe()
        );
    }
    assert_eq!(nw_balance(&mb), before, "the balance is unchanged");

    // Within the quantity ranges (1e12 in all), but at 1e7 past the charges' range.
    let u = mb.file(
        "usage2.csv",
        usage_csv(&[
            row("fine-1", SUB_PROD, "2026-11-02", "vm-e4s", "1"),
            row("big-2", SUB_PROD, "2026-11-02", "vm-e4s", "999999999998"),
        ]),
    );
    mb.refuses(
        &format!("usage ingest --enrollment {NW} {u}"),
        &format!("{u}:3: meter vm-e4s: the enrollment's charges exceed the supported range"),
    );
    assert_eq!(nw_balance(&mb), before);
    assert_eq!(mb.nw_rows().record_ids(), vec!["ok-1"]);

    // A price past the range is refused at import, naming its line.
    let p = mb.file("prices-big.csv", vm_prices("100000000000000"));
    mb.refuses(
        &format!("prices import --enrollment {NW} --period 202611 {p}"),
        &format!("{p}:2: meter vm-e4s: UnitPrice 100000000000000 exceeds the supported range"),
    );
    assert_eq!(nw_balance(&mb), before);
    check_identities(&mb, NW, "202611", 2);
}

#[test]
fn a_meters_period_quantity_past_the_range_across_two_files_names_the_row() {
    let mb = northwind();
    let a = mb.file(
        "a.csv",
        usage_csv(&[row("a-1", SUB_PROD, "2026-11-01", "vm-e4s", "600000000000")]),
    );
    mb.ingest(NW, &a);
    let before = nw_balance(&mb);
    let b = mb.file(
        "b.csv",
        usage_csv(&[
            row("b-1", SUB_WEB, "2026-11-02", "egress", "5"),
            row("b-2", SUB_PROD, "2026-11-02", "vm-e4s", "400000000000"),
            row("b-3", SUB_PROD, "2026-11-03", "vm-e4s", "0.000001"),
        ]),
    );
    mb.refuses(
        &format!("usage ingest --enrollment {NW} {b}"),
        &format!(
            "{b}:4: column 5 (ConsumedQuantity): meter vm-e4s: the period's quantity exceeds \
             the supported range (at most 1000000000000 units per meter and period)"
        ),
    );
    // Not even --skip-invalid stores part of it: which rows to drop would be arbitrary.
    // It says so, and leaves no reject file that would suggest otherwise.
    let rejects = mb.path("rejects.csv");
    let r = mb.fail(&format!(
        "usage ingest --enrollment {NW} --skip-invalid --rejects {} {b}",
        rejects.display()
    ));
    assert!(
        r.stderr
            .contains("refuse the whole file, even with --skip-invalid")
            && !r.stderr.contains("use --skip-invalid"),
        "{}",
        r.describe()
    );
    assert!(!rejects.exists());
    assert_eq!(nw_balance(&mb), before);
    assert_eq!(mb.nw_rows().record_ids(), vec!["a-1"]);
    // Exactly at the range is accepted.
    let c = mb.file(
        "c.csv",
        usage_csv(&[row("c-1", SUB_PROD, "2026-11-02", "vm-e4s", "400000000000")]),
    );
    mb.ingest(NW, &c);
    check_identities(&mb, NW, "202611", 2);
}

#[test]
fn prices_and_purchases_that_take_the_enrollment_past_the_range_are_refused() {
    let mb = northwind();
    let u = mb.file(
        "u.csv",
        usage_csv(&[row(
            "u-1",
            SUB_PROD,
            "2026-11-01",
            "vm-e4s",
            "1000000000000",
        )]),
    );
    mb.ingest(NW, &u);
    let before = nw_balance(&mb);
    // 1e12 units at 1000 is 1e15: past the enrollment's charges range.
    let p = mb.file("prices2.csv", vm_prices("1000"));
    mb.refuses(
        &format!("prices import --enrollment {NW} --period 202611 {p}"),
        &format!("{p}:2: meter vm-e4s: the enrollment's charges exceed the supported range"),
    );
    assert_eq!(nw_balance(&mb), before, "the old prices stay");
    // At 100 it is 1e14, the range's end: accepted.
    let p = mb.file("prices3.csv", vm_prices("100"));
    mb.ok(&format!(
        "prices import --enrollment {NW} --period 202611 {p}"
    ));
    check_identities(&mb, NW, "202611", 2);

    mb.entry("purchase", NW, "2026-11-01", "100000000000000", "All of it");
    mb.refuses(
        &format!(
            "purchase add --enrollment {NW} --date 2026-11-02 --amount 0.01 --description more"
        ),
        "the enrollment's purchases exceed the supported range",
    );
    mb.entry("adjustment", NW, "2026-11-01", "-100000000000000", "Debit");
    mb.refuses(
        &format!(
            "adjustment add --enrollment {NW} --date 2026-11-02 --amount 0.01 --description credit"
        ),
        "the enrollment's adjustments exceed the supported range",
    );
    check_identities(&mb, NW, "202611", 2);
}

#[test]
fn year_zero_dates_are_refused_cleanly() {
    let mb = northwind();
    for cmd in [
        format!("report usage --enrollment {NW} --from 0000-01-01 --to 2026-11-30"),
        format!("report marketplace --enrollment {NW} --from 0000-01-01 --to 2026-11-30"),
        format!("report balance --enrollment {NW} --from 0000-12-01 --to 2026-01-31"),
    ] {
        let r = mb.run(&cmd);
        assert!(!r.stderr.contains("panicked"), "{}", r.describe());
    }
    let created =
        mb.run("enrollment create --number Z0 --name Zero --start 0000-01-01 --end 2026-12-31");
    if created.status.success() {
        let r = mb.run("report balance --enrollment Z0 --period 202601");
        assert!(!r.stderr.contains("panicked"), "{}", r.describe());
    }
}

// ---------------------------------------------------------------------------
// 4. Report identities.
// ---------------------------------------------------------------------------

/// Meters whose price-sheet rows have a PublisherName.
fn publisher_meters() -> HashSet<String> {
    let t = Table::parse(PRICES);
    t.rows
        .iter()
        .filter(|r| !t.get(r, "PublisherName").is_empty())
        .map(|r| t.get(r, "MeterId").to_string())
        .collect()
}

/// What [`check_identities`] found, for the caller's own checks.
struct Identity {
    rows: usize,
    /// Utilized + ServiceOverage + ChargesBilledSeparately + AzureMarketplaceServiceCharges.
    statement: i128,
    /// The usage report's Cost column, summed exactly, rounded half-even once.
    cost_column: i128,
}

/// For one period of `enrollment` (currency of `exp` decimals): every row's Cost is
/// exactly ConsumedQuantity x ResourceRate; each charge kind summed exactly over the
/// usage rows and rounded half-even is the statement's figure; the statement's own
/// identities hold; the marketplace rows are the usage rows of publisher meters.
fn check_identities(mb: &Mb, enrollment: &str, period: &str, exp: u32) -> Identity {
    let args = format!("--enrollment {enrollment} --period {period}");
    let usage = mb.table(&format!("usage {args}"));
    let balance = mb.table(&format!("balance {args}"));
    let market = mb.table(&format!("marketplace {args}"));
    let publishers = publisher_meters();

    let (mut commitment, mut separately, mut marketplace, mut total) = (0, 0, 0, 0);
    for r in &usage.rows {
        let cost = fixed(usage.get(r, "Cost"), 18);
        let q = fixed(usage.get(r, "ConsumedQuantity"), 6);
        let rate = fixed(usage.get(r, "ResourceRate"), 12);
        assert_eq!(
            cost,
            q * rate,
            "Cost = ConsumedQuantity x ResourceRate: {r:?}"
        );
        total += cost;
        if publishers.contains(usage.get(r, "MeterId")) {
            marketplace += cost;
        } else if usage.get(r, "ChargesBilledSeparately") == "true" {
            separately += cost;
        } else {
            commitment += cost;
        }
    }
    assert_eq!(balance.rows.len(), 1);
    let b = &balance.rows[0];
    let m = |name: &str| money(balance.get(b, name), exp);
    assert_eq!(
        m("Utilized") + m("ServiceOverage"),
        to_minor(commitment, exp),
        "{period}"
    );
    assert_eq!(
        m("ChargesBilledSeparately"),
        to_minor(separately, exp),
        "{period}"
    );
    assert_eq!(
        m("AzureMarketplaceServiceCharges"),
        to_minor(marketplace, exp),
        "{period}"
    );
    assert_eq!(
        m("EndingBalance"),
        m("BeginningBalance") + m("NewPurchases") + m("Adjustments") - m("Utilized")
    );
    assert_eq!(
        m("TotalOverage"),
        m("ServiceOverage") + m("ChargesBilledSeparately")
    );
    assert_eq!(m("TotalUsage"), m("Utilized") + m("TotalOverage"));
    assert!(m("Utilized") >= 0);
    assert!(m("EndingBalance") >= 0 || m("Utilized") == 0);

    // Marketplace rows = usage rows of publisher meters, in order, field by field.
    let expected: Vec<&Vec<String>> = usage
        .rows
        .iter()
        .filter(|r| publishers.contains(usage.get(r, "MeterId")))
        .collect();
    assert_eq!(market.rows.len(), expected.len());
    for (mr, ur) in market.rows.iter().zip(expected) {
        for col in &market.header {
            let want = match col.as_str() {
                "PublisherName" => "Tailspin Security",
                "OfferName" => "Tailspin WAF",
                "PlanName" => "Pro",
                _ => usage.get(ur, col),
            };
            assert_eq!(market.get(mr, col), want, "marketplace column {col}");
        }
    }
    Identity {
        rows: usage.rows.len(),
        statement: m("Utilized")
            + m("ServiceOverage")
            + m("ChargesBilledSeparately")
            + m("AzureMarketplaceServiceCharges"),
        cost_column: to_minor(total, exp),
    }
}

/// The sample plus rows that cross tiers and included quantities and leave long
/// exact decimals.
fn identity_usage() -> String {
    let mut s = String::from(USAGE_SAMPLE);
    for r in [
        row("x-01", SUB_PROD, "2026-11-04", "blob-hot", "60000"),
        row("x-02", SUB_WEB, "2026-11-05", "egress", "20000.5"),
        row("x-03", SUB_SANDBOX, "2026-11-06", "vm-e4s", "0.000001"),
        row("x-04", SUB_WEB, "2026-11-07", "disk-p10", "0.333333"),
        row("x-05", SUB_IT, "2026-11-08", "support-std", "1"),
        row("x-06", SUB_WEB, "2026-11-09", "waf-pro", "7.777777"),
        row("x-07", SUB_PROD, "2026-11-10", "waf-pro", "0.000003"),
        row("x-08", SUB_WEB, "2026-11-11", "egress", "0.000007"),
        row("x-09", SUB_SANDBOX, "2026-11-12", "blob-hot", "3.141592"),
    ] {
        s.push_str(&r);
        s.push('\n');
    }
    s
}

#[test]
fn usage_costs_add_up_to_the_balance_usd() {
    let mb = northwind();
    let u = mb.file("u.csv", identity_usage());
    mb.ingest(NW, &u);
    mb.entry("purchase", NW, "2026-11-01", "2000", "Commitment");
    mb.entry("adjustment", NW, "2026-11-05", "-12.34", "Debit");
    let id = check_identities(&mb, NW, "202611", 2);
    assert_eq!(id.rows, 16);
    // The whole Cost column, rounded half-even to cents, is the statement's sum.
    assert_eq!(id.cost_column, id.statement);
    assert_eq!(id.statement, 310_550, "3105.50 USD");
    // The commitment runs out: there is both utilized and overage.
    let b = mb.table(&format!("balance --enrollment {NW} --period 202611"));
    assert_eq!(b.get(&b.rows[0], "Utilized"), "1987.66");
    assert_eq!(b.get(&b.rows[0], "EndingBalance"), "0.00");
    // Commitment charges 2891.204797... -> 2891.20, less 1987.66 utilized.
    assert_eq!(b.get(&b.rows[0], "ServiceOverage"), "903.54");

    // One blended rate per meter and period: C(Q)/Q rounded half-even to 12 decimals.
    let t = mb.table(&format!("usage --enrollment {NW} --period 202611"));
    let rates = |meter: &str| -> HashSet<String> {
        t.rows
            .iter()
            .filter(|r| t.get(r, "MeterId") == meter)
            .map(|r| t.get(r, "ResourceRate").to_string())
            .collect()
    };
    // Q = 412.5 + 60000 + 3.141592; C = (51200 - 5) x 0.0196 + (Q - 51200) x 0.0188.
    let q = fixed("60415.641592", 6);
    let c = (fixed("51200", 6) - fixed("5", 6)) * fixed("0.0196", 12)
        + (q - fixed("51200", 6)) * fixed("0.0188", 12);
    let blob = rates("blob-hot");
    assert_eq!(blob.len(), 1);
    assert_eq!(fixed(blob.iter().next().unwrap(), 12), div_half_even(c, q));
    assert_eq!(rates("egress").len(), 1);

    // The stderr summary states the same exact total.
    let r = mb.ok(&format!("report usage --enrollment {NW} --period 202611"));
    assert!(
        r.stderr
            .starts_with("usage: 16 rows, cost 3105.50 USD (exact "),
        "{}",
        r.stderr
    );
    let exact = r
        .stderr
        .split("(exact ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let sum: i128 = t.column("Cost").iter().map(|c| fixed(c, 18)).sum();
    assert_eq!(fixed(exact, 18), sum);
}

#[test]
fn usage_costs_add_up_to_the_balance_jpy_per_charge_kind() {
    let mb = Mb::new();
    mb.create("JP1", "JPY", "2026-01-01", "2026-12-31");
    mb.seed("JP1", &["202611"]);
    let u = mb.file("u.csv", identity_usage());
    mb.ingest("JP1", &u);
    mb.entry("purchase", "JP1", "2026-11-01", "1000", "Commitment");
    let id = check_identities(&mb, "JP1", "202611", 0);
    assert_eq!(id.rows, 16);
    let b = mb.table("balance --enrollment JP1 --period 202611");
    assert_eq!(b.get(&b.rows[0], "CurrencyCode"), "JPY");
    assert_eq!(b.get(&b.rows[0], "Utilized"), "1000");
    assert_eq!(b.get(&b.rows[0], "ServiceOverage"), "1891");
    // Design §3.5 rounds each of the three charge sums on its own, so the four
    // figures add up to the Cost column rounded once only to within a minor unit
    // per kind: here 2891.20 + 200 + 14.30 -> 2891 + 200 + 14 = 3105 yen, while the
    // column sums to 3105.504797466975804134 -> 3106.
    assert_eq!((id.statement, id.cost_column), (3105, 3106));
}

// ---------------------------------------------------------------------------
// 5. Closing a period, then late usage.
// ---------------------------------------------------------------------------

/// Every report of a period in both formats (JSON without its generation time).
fn period_reports(mb: &Mb, enrollment: &str, period: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kind in ["balance", "usage", "marketplace", "prices"] {
        for format in ["csv", "json"] {
            let r = mb.ok(&format!(
                "report {kind} --enrollment {enrollment} --period {period} --format {format}"
            ));
            out.push(if format == "json" {
                without_generated_at(&r.stdout)
            } else {
                r.stdout
            });
        }
    }
    out
}

/// `report request --billing-period P` is P's Usage details report: a late
/// row dated in the closed September is in October's job (booked there), not
/// September's, exactly as `report usage --period` has it; a request needs a
/// range or a period, not both, inside the term.
#[test]
fn a_billing_period_report_job_is_the_periods_usage_details() {
    let mb = Mb::new();
    let n = "L2";
    mb.create(n, "USD", "2025-09-01", "2026-12-31");
    mb.seed(n, &["202509", "202510"]);
    let sept: String = USAGE_SAMPLE
        .lines()
        .map(|l| format!("{}\n", l.replace("2026-11-", "2025-09-")))
        .collect();
    let u09 = mb.file("u09.csv", &sept);
    mb.ingest(n, &u09);
    let u10 = mb.file(
        "u10.csv",
        usage_csv(&[row("oct-1", SUB_PROD, "2025-10-02", "blob-hot", "10")]),
    );
    mb.ingest(n, &u10);
    mb.ok(&format!("period close --enrollment {n} --period 202509"));
    let late = mb.file(
        "late.csv",
        usage_csv(&[row("late-1", SUB_PROD, "2025-09-20", "blob-hot", "100")]),
    );
    mb.ingest(n, &late);

    for (p, has_late) in [("202509", false), ("202510", true)] {
        let id = mb
            .ok_args(&[
                "report",
                "request",
                "--enrollment",
                n,
                "--billing-period",
                p,
            ])
            .stdout
            .trim()
            .to_string();
        let status = job_status(&mb, &id);
        assert_eq!(status["statusName"], "ReadyToDownload", "{status}");
        assert_eq!(status["kind"], "billingPeriod", "{status}");
        assert_eq!(status["billingPeriod"], p, "{status}");
        let out = mb.path(&format!("job-{p}.csv"));
        mb.ok_args(&["report", "fetch", &id, "-o", out.to_str().unwrap()]);
        let file = std::fs::read_to_string(&out).unwrap();
        let sync = mb.ok(&format!("report usage --enrollment {n} --period {p}"));
        assert_eq!(file, sync.stdout, "{p}: the job's rows are the period's");
        let ids = Table::parse(&file).record_ids();
        assert!(!ids.is_empty(), "{p}");
        assert_eq!(
            ids.contains(&"late-1".to_string()),
            has_late,
            "{p}: {ids:?}"
        );
        let jobs = mb.ok(&format!("report jobs --enrollment {n}")).stdout;
        assert!(jobs.contains(&format!("billing period {p}")), "{jobs}");
    }

    mb.refuses(
        &format!("report request --enrollment {n} --billing-period 202508"),
        "term",
    );
    mb.refuses(
        &format!("report request --enrollment {n} --billing-period 2025-10"),
        "--billing-period",
    );
    for args in [
        format!("report request --enrollment {n} --billing-period 202510 --from 2025-10-01 --to 2025-10-31"),
        format!("report request --enrollment {n}"),
        format!("report request --enrollment {n} --from 2025-10-01"),
    ] {
        let r = mb.run_args(&words(&args), None);
        assert_eq!(r.status.code(), Some(2), "a usage error: {}", r.describe());
    }
}

#[test]
fn late_usage_after_close_is_a_correction_in_the_oldest_open_period() {
    let mb = Mb::new();
    let n = "L1";
    mb.create(n, "USD", "2025-09-01", "2026-12-31");
    mb.seed(n, &["202509"]);
    // October prices differ, so the test can tell which sheet priced a row.
    let p10 = mb.file(
        "p10.csv",
        PRICES.replace("0.0196", "0.03").replace("0.087", "0.5"),
    );
    mb.ok(&format!(
        "prices import --enrollment {n} --period 202510 {p10}"
    ));
    // September: the sample without its egress row.
    let sept: String = USAGE_SAMPLE
        .lines()
        .filter(|l| !l.starts_with("u-0004"))
        .map(|l| format!("{}\n", l.replace("2026-11-", "2025-09-")))
        .collect();
    let u09 = mb.file("u09.csv", &sept);
    mb.ingest(n, &u09);
    let u10 = mb.file(
        "u10.csv",
        usage_csv(&[row("oct-1", SUB_PROD, "2025-10-02", "blob-hot", "10")]),
    );
    mb.ingest(n, &u10);
    mb.entry("purchase", n, "2025-09-01", "100", "Commitment");
    mb.entry("adjustment", n, "2025-09-15", "-1.50", "Debit");

    let before = period_reports(&mb, n, "202509");
    let sept_usage = Table::parse(&before[2]);
    assert_eq!(sept_usage.rows.len(), 6);
    let blob_rate = sept_usage.at("u-0002", "ResourceRate").to_string();
    assert_eq!(blob_rate, "0.019362424242");

    mb.ok(&format!("period close --enrollment {n} --period 202509"));
    let r = mb.ok(&format!("period list --enrollment {n}"));
    assert!(
        r.stdout.contains("\n202509\tclosed\tlocked\tyes\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\n202510\topen\tmoving\tyes\n"),
        "{}",
        r.stdout
    );
    assert_eq!(
        period_reports(&mb, n, "202509"),
        before,
        "closing changes no figure"
    );

    // Late usage dated in the closed period.
    let late = mb.file(
        "late.csv",
        usage_csv(&[
            // A meter the closed period used: its locked rate, though its moving
            // rate would now be C(512.5)/512.5.
            row("late-1", SUB_PROD, "2025-09-20", "blob-hot", "100"),
            // One it did not use: C(q)/q of the closed sheet = (150 - 100) x 0.087 / 150.
            row("late-2", SUB_WEB, "2025-09-21", "egress", "150"),
        ]),
    );
    assert_eq!(counts(&mb.ingest(n, &late).stdout), (2, 2, 0, 0));
    // Re-sending a row stored in the closed period is a duplicate, not a correction.
    let resent = USAGE_SAMPLE
        .lines()
        .find(|l| l.starts_with("u-0003"))
        .unwrap()
        .replace("2026-11-", "2025-09-");
    let resend = mb.file("resend.csv", usage_csv(&[resent]));
    assert_eq!(counts(&mb.ingest(n, &resend).stdout), (1, 0, 1, 0));

    // The closed period's reports are byte-identical (but for generatedAt).
    let after = period_reports(&mb, n, "202509");
    for (i, (a, b)) in before.iter().zip(&after).enumerate() {
        assert_eq!(a, b, "report #{i} of the closed period changed");
    }

    // The corrections are booked in the oldest open period, with their own date.
    let oct = mb.table(&format!("usage --enrollment {n} --period 202510"));
    assert_eq!(oct.record_ids(), vec!["late-1", "late-2", "oct-1"]);
    for (id, date, rate, cost) in [
        ("late-1", "2025-09-20", blob_rate.as_str(), "1.9362424242"),
        ("late-2", "2025-09-21", "0.029", "4.35"),
    ] {
        assert_eq!(oct.at(id, "IsCorrection"), "true", "{id}");
        assert_eq!(oct.at(id, "Date"), date, "{id}");
        assert_eq!(oct.at(id, "ResourceRate"), rate, "{id}");
        assert_eq!(oct.at(id, "Cost"), cost, "{id}");
    }
    assert_eq!(oct.at("oct-1", "IsCorrection"), "false");
    // October's own rate from October's sheet: (10 - 5) x 0.03 / 10.
    assert_eq!(oct.at("oct-1", "ResourceRate"), "0.015");
    let j = mb.json(&format!("usage --enrollment {n} --period 202510"));
    assert_eq!(raw(j.record("late-1"), "isCorrection"), "true");
    assert_eq!(raw(j.record("late-1"), "date"), "\"2025-09-20\"");
    // October's statement carries the corrections, and adds up.
    let id = check_identities(&mb, n, "202510", 2);
    assert_eq!(id.cost_column, id.statement);
    let b = mb.table(&format!("balance --enrollment {n} --period 202510"));
    // September: 100 - 1.50 - 16.33 = 82.17. October: 1.9362424242 + 4.35 + 0.15 -> 6.44.
    assert_eq!(b.get(&b.rows[0], "BeginningBalance"), "82.17");
    assert_eq!(b.get(&b.rows[0], "Utilized"), "6.44");
    assert_eq!(b.get(&b.rows[0], "EndingBalance"), "75.73");
    // A date range lists corrections at their date.
    let range = mb.table(&format!(
        "usage --enrollment {n} --from 2025-09-01 --to 2025-09-30"
    ));
    assert_eq!(range.rows.len(), 8);
    let corrections: Vec<String> = range
        .rows
        .iter()
        .filter(|r| range.get(r, "IsCorrection") == "true")
        .map(|r| range.get(r, "RecordId").to_string())
        .collect();
    assert_eq!(corrections, vec!["late-1", "late-2"]);

    // Closing October locks it with its corrections; its reports do not move.
    let oct_before = period_reports(&mb, n, "202510");
    mb.ok(&format!("period close --enrollment {n} --period 202510"));
    assert_eq!(period_reports(&mb, n, "202510"), oct_before);
    // Late September usage now goes to November, still at September's locked rate
    // (November needs no sheet of its own for it).
    let later = mb.file(
        "later.csv",
        usage_csv(&[row("late-3", SUB_PROD, "2025-09-25", "blob-hot", "1")]),
    );
    mb.ingest(n, &later);
    let nov = mb.table(&format!("usage --enrollment {n} --period 202511"));
    assert_eq!(nov.record_ids(), vec!["late-3"]);
    assert_eq!(nov.at("late-3", "ResourceRate"), blob_rate);
    assert_eq!(nov.at("late-3", "IsCorrection"), "true");
    assert_eq!(period_reports(&mb, n, "202509"), before);
    assert_eq!(period_reports(&mb, n, "202510"), oct_before);
}

// ---------------------------------------------------------------------------
// 6. A crash during ingest.
// ---------------------------------------------------------------------------

const CRASH_ROWS: u64 = 400_000;

/// `rows` usage rows: one subscription, one meter, quantity 1, dated 2026-11-01..28,
/// RecordIds padded to 100 bytes so the open transaction outgrows SQLite's page
/// cache and spills into the WAL before it commits.
fn write_big_csv(path: &Path, rows: u64) {
    let f = std::fs::File::create(path).expect("create big csv");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    writeln!(w, "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity").unwrap();
    let pad = "x".repeat(86);
    for i in 0..rows {
        let day = i % 28 + 1;
        writeln!(w, "crash-{i:07}-{pad},{SUB_PROD},2026-11-{day:02},vm-e4s,1").unwrap();
    }
    w.flush().unwrap();
}

fn wal_len(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// The row count of `report usage --period 202611`, written to `out`.
fn usage_count(mb: &Mb, out: &Path) -> u64 {
    let r = mb.ok(&format!(
        "report usage --enrollment {NW} --period 202611 -o {}",
        out.display()
    ));
    summary_rows(&r.stderr)
}

/// ServiceOverage of 202611 in cents (every row here is vm-e4s at 0.252, no commitment).
fn overage_cents(mb: &Mb) -> i128 {
    let b = mb.table(&format!("balance --enrollment {NW} --period 202611"));
    money(b.get(&b.rows[0], "ServiceOverage"), 2)
}

/// 1,000 rows dated the 29th (the big file uses the 1st to the 28th), ingested.
fn ingest_first_file(mb: &Mb) -> Run {
    let first: Vec<String> = (0..1000)
        .map(|i| {
            row(
                &format!("first-{i:04}"),
                SUB_WEB,
                "2026-11-29",
                "vm-e4s",
                "1",
            )
        })
        .collect();
    mb.ingest(NW, &mb.file("first.csv", usage_csv(&first)))
}

/// Starts `ingest` and returns once its open transaction has put 4 MB in the WAL.
fn spawn_ingest_mid_transaction(mb: &Mb, ingest: &str) -> std::process::Child {
    let mut child = mb
        .command(&words(ingest))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ingest");
    let started = Instant::now();
    while wal_len(&mb.db) <= 4 << 20 {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the ingest ended ({status}) before its WAL grew past 4 MB");
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the WAL did not grow past 4 MB within 120 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

#[test]
fn crash_during_ingest_stores_all_of_a_file_or_nothing() {
    let mb = northwind();
    // A first file, fully ingested.
    assert_eq!(counts(&ingest_first_file(&mb).stdout), (1000, 1000, 0, 0));

    let big = mb.path("big.csv");
    write_big_csv(&big, CRASH_ROWS);
    let ingest_big = format!("usage ingest --enrollment {NW} {}", big.display());

    // Start the ingest; SIGKILL it once its open transaction has put 4 MB in the WAL.
    let mut child = spawn_ingest_mid_transaction(&mb, &ingest_big);
    child.kill().expect("SIGKILL the ingest");
    let status = child.wait().expect("reap the ingest");
    assert!(!status.success(), "the ingest was killed: {status}");

    // All of the big file or none of it, and the first file intact.
    let out = mb.path("report.csv");
    let after_crash = usage_count(&mb, &out);
    assert!(
        after_crash == 1000 || after_crash == 1000 + CRASH_ROWS,
        "a partial file is visible after the crash: {after_crash} rows"
    );
    let firsts = mb.table(&format!(
        "usage --enrollment {NW} --from 2026-11-29 --to 2026-11-29"
    ));
    let expected: Vec<String> = (0..1000).map(|i| format!("first-{i:04}")).collect();
    assert_eq!(firsts.record_ids(), expected);
    // The rollups agree with the facts: 0.252 a row.
    assert_eq!(overage_cents(&mb), i128::from(after_crash) * 252 / 10);

    // Again, to completion.
    let r = mb.ok(&ingest_big);
    let (read, stored, dups, rejected) = counts(&r.stdout);
    assert_eq!((read, rejected), (CRASH_ROWS, 0), "{}", r.stdout);
    if after_crash == 1000 {
        assert_eq!((stored, dups), (CRASH_ROWS, 0), "{}", r.stdout);
    } else {
        assert_eq!((stored, dups), (0, CRASH_ROWS), "{}", r.stdout);
    }
    assert_eq!(overage_cents(&mb), 10_105_200, "401000 x 0.252");

    // Once more: every row is a duplicate.
    let r = mb.ok(&ingest_big);
    assert_eq!(
        counts(&r.stdout),
        (CRASH_ROWS, 0, CRASH_ROWS, 0),
        "{}",
        r.stdout
    );
    assert_eq!(overage_cents(&mb), 10_105_200);

    // Exactly one copy of each RecordId in the usage report.
    let total = usage_count(&mb, &out);
    assert_eq!(total, 1000 + CRASH_ROWS);
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&out).unwrap());
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).unwrap();
    assert!(line.ends_with(b",RecordId,IsCorrection\n"), "header");
    let mut ids: HashSet<Vec<u8>> = HashSet::with_capacity(total as usize);
    let mut lines = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        lines += 1;
        // RecordId is the last column but one, and holds no comma.
        let body = line.strip_suffix(b"\n").expect("complete line");
        let last = body.iter().rposition(|&b| b == b',').unwrap();
        let prev = body[..last].iter().rposition(|&b| b == b',').unwrap();
        let id = &body[prev + 1..last];
        assert!(
            ids.insert(id.to_vec()),
            "RecordId {} twice",
            String::from_utf8_lossy(id)
        );
    }
    assert_eq!(lines, total);
    assert_eq!(ids.len() as u64, total);
    let last_id = format!("crash-{:07}-{}", CRASH_ROWS - 1, "x".repeat(86));
    assert!(ids.contains(last_id.as_bytes()));
    assert!(ids.contains(b"first-0999".as_slice()));
}

/// The status of a report job, from `report status` (JSON).
fn job_status(mb: &Mb, id: &str) -> serde_json::Value {
    let r = mb.ok_args(&["report", "status", id]);
    serde_json::from_str(&r.stdout).expect("status is JSON")
}

/// A server killed while it prepares a report: on restart the job is taken up
/// again (its lease ran out) and completes with a file byte-identical to an
/// uninterrupted run's.
#[test]
fn a_report_job_survives_a_killed_server() {
    let mb = Mb::new();
    mb.ok("demo --no-serve --rows 400000");
    let range = [
        "--enrollment",
        "8608480",
        "--from",
        "2026-04-01",
        "--to",
        "2026-11-30",
        "--format",
        "csv.gz",
    ];
    // The uninterrupted run, in the CLI.
    let mut args = vec!["report", "request"];
    args.extend(range);
    let reference = mb.ok_args(&args).stdout.trim().to_string();
    let ref_file = mb.path("reference.csv.gz");
    mb.ok_args(&[
        "report",
        "fetch",
        &reference,
        "-o",
        ref_file.to_str().unwrap(),
    ]);

    // The same request, queued for a server.
    args.push("--detach");
    let id = mb.ok_args(&args).stdout.trim().to_string();
    assert_ne!(id, reference, "a finished job is not shared");
    assert_eq!(job_status(&mb, &id)["statusName"], "Queued");

    let serve = |mb: &Mb| {
        mb.command(&[
            "serve",
            "--report-lease-seconds",
            "2",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve")
    };
    let mut server = serve(&mb);
    // Wait until the job has written some rows, then SIGKILL the server.
    let started = Instant::now();
    loop {
        let s = job_status(&mb, &id);
        assert_ne!(
            s["statusName"], "ReadyToDownload",
            "the job finished before the server could be killed; make it bigger"
        );
        if s["statusName"] == "InProgress" && s["progress"]["rowsDone"].as_u64() > Some(0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the job did not start: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill().expect("SIGKILL the server");
    server.wait().expect("reap the server");
    let s = job_status(&mb, &id);
    assert_eq!(s["statusName"], "InProgress", "{s}");
    assert_eq!(s["attempts"], 1);
    // Only the partial file is left, and it is not the report.
    assert!(!mb
        .path("t.db.reports")
        .join(format!("{id}.csv.gz"))
        .exists());

    let mut server = serve(&mb);
    let started = Instant::now();
    let s = loop {
        let s = job_status(&mb, &id);
        if s["statusName"] != "InProgress" && s["statusName"] != "Queued" {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the job did not finish: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(s["statusName"], "ReadyToDownload", "{s}");
    assert_eq!(s["attempts"], 2, "restarted once: {s}");
    let out = mb.path("restarted.csv.gz");
    mb.ok_args(&["report", "fetch", &id, "-o", out.to_str().unwrap()]);
    let (a, b) = (
        std::fs::read(&ref_file).unwrap(),
        std::fs::read(&out).unwrap(),
    );
    assert!(a.len() > 1 << 20, "a report big enough to be interrupted");
    assert!(
        a == b,
        "the restarted job's file differs from the uninterrupted one"
    );
    // The interrupted attempt's partial file was swept at the restart.
    let left: Vec<_> = std::fs::read_dir(mb.path("t.db.reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "partial files left: {left:?}");
}

#[test]
fn report_requests_are_limited_to_36_months() {
    let mb = Mb::new();
    mb.ok("enrollment create --number 5 --name Long --start 2025-01-01 --end 2030-12-31");
    let r = mb.fail("report request --enrollment 5 --from 2025-01-01 --to 2028-01-01 --detach");
    assert!(
        r.stderr.contains("longer than 36 months"),
        "{}",
        r.describe()
    );
    let r = mb.ok("report request --enrollment 5 --from 2025-01-01 --to 2027-12-31 --detach");
    let id = r.stdout.trim();
    assert_eq!(job_status(&mb, id)["statusName"], "Queued");
    let r =
        mb.fail("report request --enrollment 5 --from 2025-01-01 --to 2025-01-31 --format xlsx");
    assert!(r.stderr.contains("unknown format"), "{}", r.describe());
    let r = mb.fail(&format!("report fetch {id} -o x.csv"));
    assert!(
        r.stderr.contains("has no file: it is Queued"),
        "{}",
        r.describe()
    );
    mb.ok(&format!("report cancel {id}"));
    assert_eq!(job_status(&mb, id)["statusName"], "Cancelled");
    let r = mb.ok("report jobs --enrollment 5");
    assert!(
        r.stdout.contains(id) && r.stdout.contains("Cancelled"),
        "{}",
        r.stdout
    );
    let r = mb.fail("report status nope");
    assert!(r.stderr.contains("no report job nope"), "{}", r.describe());
}

/// The figures a restore must give back: the statement, the period states and
/// every usage row (CSV reports carry no generation time, so equal data gives
/// equal bytes).
fn ledger_snapshot(mb: &Mb) -> (String, String, String) {
    (
        mb.ok(&format!("report balance --enrollment {NW} --period 202611"))
            .stdout,
        mb.ok(&format!("period list --enrollment {NW}")).stdout,
        mb.ok(&format!("report usage --enrollment {NW} --period 202611"))
            .stdout,
    )
}

#[test]
fn backup_taken_mid_ingest_restores_every_statement() {
    let mb = northwind();
    ingest_first_file(&mb);
    mb.entry("purchase", NW, "2026-11-02", "100", "Commitment");
    let before = ledger_snapshot(&mb);

    // A big ingest holds its transaction open while the backup is taken.
    let big = mb.path("big.csv");
    write_big_csv(&big, CRASH_ROWS);
    let ingest_big = format!("usage ingest --enrollment {NW} {}", big.display());
    let mut child = spawn_ingest_mid_transaction(&mb, &ingest_big);
    let backup = mb.path("backup.db");
    let r = mb.ok(&format!("backup --to {}", backup.display()));
    assert!(r.stdout.contains("1 enrollment(s)"), "{}", r.describe());
    let mid_ingest = child.try_wait().expect("try_wait").is_none();
    eprintln!("backup finished while the ingest ran: {mid_ingest}");
    assert!(child.wait().expect("reap").success(), "the big ingest");
    let after = ledger_snapshot(&mb);
    assert_ne!(before, after);

    // Restored into a new file: the state of one commit, whole.
    let restored = Mb {
        dir: tempfile::tempdir().expect("temp dir"),
        db: mb.path("restored.db"),
    };
    restored.ok(&format!("restore --from {}", backup.display()));
    let got = ledger_snapshot(&restored);
    if mid_ingest {
        assert_eq!(
            got, before,
            "a backup taken mid-ingest holds the last commit"
        );
    } else {
        assert!(got == before || got == after, "a mix of two states");
    }

    // Restored over the live database, then the big file again: as before.
    mb.ok(&format!("restore --from {}", backup.display()));
    assert_eq!(ledger_snapshot(&mb), got);
    mb.ok(&ingest_big);
    assert_eq!(ledger_snapshot(&mb), after);

    // Refusals: an existing destination, a file that is not a database.
    mb.refuses(
        &format!("backup --to {}", backup.display()),
        "already exists",
    );
    let junk = mb.file("junk.db", "not a database at all, just text");
    mb.refuses(
        &format!("restore --from {junk}"),
        "not a usable Meterbook database",
    );
    assert_eq!(
        ledger_snapshot(&mb),
        after,
        "a refused restore changes nothing"
    );

    // Not under a running server (it would carry on with the replaced state's jobs).
    let mut server = mb
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut banner = String::new();
    BufReader::new(server.stderr.take().expect("stderr"))
        .read_line(&mut banner)
        .expect("the server's first line");
    assert!(banner.contains("http://"), "{banner}");
    mb.refuses(
        &format!("restore --from {}", backup.display()),
        "stop it before restoring",
    );
    server.kill().expect("stop the server");
    server.wait().expect("reap the server");
    assert_eq!(
        ledger_snapshot(&mb),
        after,
        "the refused restore changed nothing"
    );
    mb.ok(&format!("restore --from {}", backup.display()));
    assert_eq!(ledger_snapshot(&mb), got);

    // A mistyped --db is not backed up as an empty database.
    let typo = Mb::new();
    let to = typo.path("typo-backup.db");
    typo.refuses(&format!("backup --to {}", to.display()), "no database at");
    assert!(!typo.db.exists() && !to.exists());
}

/// `--through` closes every open period up to the one named, in order, and
/// nothing when that period has not ended.
#[test]
fn period_close_through_closes_every_open_period_in_order() {
    let mb = Mb::new();
    mb.create("P2", "USD", "2025-01-01", "2035-12-31");
    mb.ok("period close --enrollment P2 --period 202501");
    let r = mb.ok("period close --enrollment P2 --through 202504");
    assert_eq!(
        r.stdout,
        "period 202502 closed; its rates are locked\n\
         period 202503 closed; its rates are locked\n\
         period 202504 closed; its rates are locked\n"
    );
    let r = mb.ok("period close --enrollment P2 --through 202503");
    assert_eq!(r.stdout, "every period through 202503 was already closed\n");
    // A period not yet ended: refused, and nothing before it is closed.
    mb.refuses(
        "period close --enrollment P2 --through 203512",
        "period 203512 has not ended yet",
    );
    let list = mb.ok("period list --enrollment P2").stdout;
    assert!(list.contains("202505\topen"), "{list}");
    mb.refuses(
        "period close --enrollment P2 --through 2025-06",
        "--through: ",
    );
    // One of the two is needed (a usage error, as clap reports them).
    let r = mb.run("period close --enrollment P2");
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(r.stderr.contains("--period"), "{}", r.describe());
}

/// Regenerating a slot's key says that the old key stopped working and how to
/// add one beside it; the first key of a slot says nothing of the kind.
#[test]
fn keys_create_says_when_it_replaces_a_key() {
    let mb = northwind();
    let first = mb.ok(&format!("keys create --enrollment {NW}"));
    assert!(first.stdout.starts_with("mbk_"));
    assert!(!first.stderr.contains("replaced"), "{}", first.stderr);
    let second = mb.ok(&format!("keys create --enrollment {NW} --slot secondary"));
    assert!(!second.stderr.contains("replaced"), "{}", second.stderr);
    let again = mb.ok(&format!("keys create --enrollment {NW}"));
    assert!(
        again
            .stderr
            .contains("replaced the enrollment key in the primary slot")
            && again.stderr.contains("no longer works")
            && again.stderr.contains("--slot secondary"),
        "{}",
        again.stderr
    );
    assert_eq!(again.stdout.lines().count(), 1, "stdout holds only the key");
}

/// Files written by `-o` and `report fetch` get the umask's mode (0644 under
/// umask 022), as a shell redirection's would; not the temp file's 0600.
#[test]
fn report_files_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mb = northwind();
    let usage = mb.file("u.csv", USAGE_SAMPLE);
    mb.ingest(NW, &usage);
    let id = mb
        .ok(&format!(
            "report request --enrollment {NW} --from 2026-11-01 --to 2026-11-30"
        ))
        .stdout
        .trim()
        .to_string();
    let script = format!(
        "umask 022 && \"$0\" --db {db} report usage --enrollment {NW} --period 202611 -o out.csv \
         && \"$0\" --db {db} report fetch {id} -o fetched.csv",
        db = mb.db.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script, BIN])
        .current_dir(mb.dir.path())
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["out.csv", "fetched.csv"] {
        let mode = std::fs::metadata(mb.path(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{f}: {mode:o}");
    }
}

/// Server logs: JSON lines with `--log-format json`; text without ANSI
/// colours when stderr is not a terminal (a file, a pipe).
#[test]
fn server_logs_are_json_lines_or_plain_text() {
    let mb = Mb::new();
    for format in ["json", "text"] {
        let log = mb.path(&format!("serve-{format}.log"));
        let mut server = mb
            .command(&[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                format,
                "--log",
                "debug",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn serve");
        // The banner names the address; a request there leaves a request log.
        let started = Instant::now();
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(i) = text.find("http://127.0.0.1:") {
                let rest = &text[i + "http://".len()..];
                break rest[..rest.find([' ', '\n', '"']).unwrap()].to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no banner: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut resp = String::new();
        std::io::Read::read_to_string(&mut s, &mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        std::thread::sleep(Duration::from_millis(300));
        server.kill().unwrap();
        server.wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            !text.contains('\u{1b}'),
            "ANSI escapes in a log file:\n{text}"
        );
        // Every line, the banner included, is in the chosen format.
        let events: Vec<&str> = text.lines().collect();
        assert!(!events.is_empty(), "no log lines:\n{text}");
        if format == "json" {
            for line in &events {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(
                    v["level"].is_string() && v["timestamp"].is_string(),
                    "{line}"
                );
            }
            assert!(text.contains("/healthz"), "the request's span: {text}");
        }
        // An access line for the request: its status and latency.
        assert!(
            events
                .iter()
                .any(|l| l.contains("/healthz") && l.contains("200") && l.contains("latency")),
            "no access log line:\n{text}"
        );
    }
}

#[test]
fn operator_tokens_are_listed_disabled_and_enabled() {
    let mb = Mb::new();
    let token = mb
        .ok("operator-token create --name billing-feed")
        .stdout
        .trim()
        .to_string();
    let id = token
        .strip_prefix("mbo_")
        .and_then(|t| t.split('_').next())
        .expect("mbo_<id>_<secret>")
        .to_string();
    let list = mb.ok("operator-token list").stdout;
    let line = list.lines().nth(1).expect("one token");
    assert!(
        line.starts_with(&format!("{id}\t")) && line.ends_with("\tenabled\tbilling-feed"),
        "{list}"
    );
    assert!(!list.contains(&token), "never the secret: {list}");
    assert_eq!(
        mb.ok(&format!("operator-token disable {id}")).stdout,
        format!("operator token {id} disabled\n")
    );
    assert!(mb.ok("operator-token list").stdout.contains("\tdisabled\t"));
    mb.ok(&format!("operator-token enable {id}"));
    assert!(mb.ok("operator-token list").stdout.contains("\tenabled\t"));
    mb.refuses(
        "operator-token disable 0123456789abcdef",
        "no operator token 0123456789abcdef",
    );
}

/// A whole period's usage report states the statement's figure (each charge
/// kind rounded on its own, then added), not its exact total rounded once.
#[test]
fn a_period_reports_cost_is_the_statements_figure() {
    let mb = northwind();
    let f = mb.file(
        "tiny.csv",
        usage_csv(&[
            row("t-1", SUB_PROD, "2026-11-02", "vm-e4s", "0.015873"),
            row("t-2", SUB_WEB, "2026-11-02", "waf-pro", "0.008"),
        ]),
    );
    mb.ingest(NW, &f);
    // 0.003999996 + 0.0036: each rounds to 0.00, their sum would round to 0.01.
    let r = mb.ok(&format!("report usage --enrollment {NW} --period 202611"));
    assert!(
        r.stderr.contains("cost 0.00 USD (exact 0.007599996)"),
        "{}",
        r.describe()
    );
    let b = mb.table(&format!("balance --enrollment {NW} --period 202611"));
    assert_eq!(b.get(&b.rows[0], "TotalUsage"), "0.00");
    // A filtered report has no statement of its own: its exact total, rounded once.
    let r = mb.ok(&format!(
        "report usage --enrollment {NW} --period 202611 --account ops-web"
    ));
    assert!(
        r.stderr.contains("cost 0.00 USD (exact 0.0036)"),
        "{}",
        r.describe()
    );
}

/// The demo's suggested commands call `meterbook` by name: when the running
/// binary is not what the PATH finds, it says how to put it there.
#[test]
fn demo_says_how_to_put_meterbook_on_the_path() {
    let bin_dir = Path::new(BIN).parent().unwrap().canonicalize().unwrap();
    for (path, hint) in [
        (std::ffi::OsString::from("/usr/bin:/bin"), true),
        (
            std::env::join_paths([bin_dir.as_path(), Path::new("/usr/bin"), Path::new("/bin")])
                .unwrap(),
            false,
        ),
    ] {
        let mb = Mb::new();
        let out = mb
            .command(&["demo", "--rows", "500", "--no-serve"])
            .env("PATH", &path)
            .output()
            .expect("run demo");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let export = format!("export PATH=\"{}:$PATH\"", bin_dir.display());
        assert_eq!(text.contains(&export), hint, "PATH {path:?}:\n{text}");
    }
}

// ---------------------------------------------------------------------------
// The CLI and the portal make the same monthly reports.
// ---------------------------------------------------------------------------

/// A `meterbook serve` child, stopped when dropped (also when a test fails).
struct Served {
    child: std::process::Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start(mb: &Mb) -> Served {
        let mut child = mb
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        // Its log is read to the end (a closed pipe would fail its writes).
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let banner = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server's first line");
        let at = banner.find("http://").expect("an address in the banner") + "http://".len();
        let rest = &banner[at..];
        let addr = rest[..rest
            .find(|c: char| c.is_whitespace() || c == '"' || c == '/')
            .unwrap_or(rest.len())]
            .to_string();
        Served { child, addr }
    }

    /// One HTTP/1.1 request on its own connection: the head and the body
    /// (de-chunked).
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[String],
        body: &str,
    ) -> (String, Vec<u8>) {
        let mut s = std::net::TcpStream::connect(&self.addr).expect("connect");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
            self.addr
        );
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if !body.is_empty() {
            req.push_str("content-type: application/x-www-form-urlencoded\r\n");
            req.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).expect("send");
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut all).expect("read");
        let split = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| {
                panic!(
                    "{method} {path}: no answer head in {:?}",
                    String::from_utf8_lossy(&all)
                )
            });
        let head = String::from_utf8_lossy(&all[..split]).into_owned();
        let mut body = all[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        (head, body)
    }
}

/// A chunked body's bytes.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size_text = String::from_utf8_lossy(&b[..eol]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("a chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// The value of cookie `name` set in a response head.
fn set_cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

/// A portal download of Balance and charges, Usage details, Price list or
/// Marketplace charges is what `meterbook report <kind>` writes for the same
/// period, byte for byte but for `generatedAt`: both are made by one
/// use-case function, so a figure cannot differ between them.
#[test]
fn portal_monthly_downloads_are_the_clis_reports() {
    let mb = northwind();
    let u = mb.file("usage.csv", USAGE_SAMPLE);
    mb.ingest(NW, &u);
    mb.entry("purchase", NW, "2026-01-01", "1000.00", "Prepayment");
    mb.ok_stdin(
        &format!(
            "user create --enrollment {NW} --email cfo@example.com --role enterprise-admin --password-stdin"
        ),
        b"a long enough passphrase\n",
    );
    let server = Served::start(&mb);

    // Sign in as a browser does: the form's cookie and token, then the form.
    let (head, page) = server.request("GET", "/portal/sign-in", &[], "");
    let form_cookie = set_cookie(&head, "mb_signin").expect("a sign-in cookie");
    let page = String::from_utf8_lossy(&page).into_owned();
    let marker = r#"name="csrf" value=""#;
    let at = page.find(marker).expect("a csrf field") + marker.len();
    let csrf = &page[at..at + page[at..].find('"').expect("end of the token")];
    let (head, _) = server.request(
        "POST",
        "/portal/sign-in",
        &[format!("cookie: {form_cookie}")],
        &format!("email=cfo%40example.com&password=a+long+enough+passphrase&csrf={csrf}"),
    );
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let session = set_cookie(&head, "mb_session").expect("a session cookie");

    for kind in ["balance", "usage", "prices", "marketplace"] {
        for format in ["csv", "json"] {
            let (head, body) = server.request(
                "GET",
                &format!("/portal/e/{NW}/download/{kind}?period=202611&format={format}"),
                &[format!("cookie: {session}")],
                "",
            );
            assert!(head.starts_with("HTTP/1.1 200"), "{kind} {format}: {head}");
            let portal = String::from_utf8(body).expect("utf-8");
            let cli = mb
                .ok(&format!(
                    "report {kind} --enrollment {NW} --period 202611 --format {format}"
                ))
                .stdout;
            assert!(portal.len() > 50, "{kind} {format}: {portal}");
            if format == "json" {
                assert_eq!(
                    without_generated_at(&portal),
                    without_generated_at(&cli),
                    "{kind} {format}"
                );
            } else {
                assert_eq!(portal, cli, "{kind} {format}");
            }
        }
    }
}

#[test]
fn budgets_add_list_remove_and_evaluate() {
    let mb = northwind();
    let id = mb
        .ok(&format!(
            "budgets add --enrollment {NW} --name Company --amount 1000.00 --threshold actual:80 --threshold balance:10"
        ))
        .stdout
        .trim()
        .to_string();
    assert!(id.parse::<i64>().is_ok(), "{id}");
    let list = mb.ok(&format!("budgets list --enrollment {NW}")).stdout;
    assert!(
        list.contains("Company") && list.contains("of 1000.00 USD"),
        "{list}"
    );
    assert!(
        list.contains("actual:80") && list.contains("balance:10"),
        "{list}"
    );
    mb.refuses(
        &format!("budgets add --enrollment {NW} --name X --amount 5 --threshold actual"),
        "BASIS:PERCENT",
    );
    mb.refuses(
        &format!("budgets add --enrollment {NW} --name X --amount 0 --threshold actual:5"),
        "more than 0",
    );
    mb.refuses(
        &format!("budgets add --enrollment {NW} --name X --department Nowhere --amount 5 --threshold actual:5"),
        "no department",
    );
    // No usage, no purchase: nothing crossed, nothing recorded, twice.
    for _ in 0..2 {
        let r = mb.ok(&format!("notifications evaluate --enrollment {NW}"));
        assert!(r.stdout.is_empty(), "{}", r.describe());
        assert!(r.stderr.contains("0 new event(s)"), "{}", r.describe());
    }
    mb.ok(&format!("budgets remove --enrollment {NW} --id {id}"));
    mb.refuses(
        &format!("budgets remove --enrollment {NW} --id {id}"),
        "no budget",
    );
    assert!(mb
        .ok(&format!("budgets list --enrollment {NW}"))
        .stdout
        .contains("no budgets"));
}

/// `meterbook forecast`: on usage of the last 40 days up to today (the
/// binary reads the system clock), 100 hours a day of vm-e4s at 0.252 =
/// 25.20 a day, every day of the 30-day window. So the burn and its range
/// are 25.20; the period's charges so far are 25.20 × today's day of the
/// month, and expected at its end 25.20 × its days. The commitment: 10000.00
/// bought, 40 × 25.20 = 1008.00 used, 8992.00 left: ⌈8992.00 / 25.20⌉ =
/// ⌈356.8⌉ = 357 days after today.
#[test]
fn forecast_period_and_term_as_json_and_text() {
    use chrono::{Datelike, Duration as Days, Months};
    let today = chrono::Utc::now().date_naive();
    let start = (today.with_day(1).unwrap() - Months::new(13)).to_string();
    let end = (today.with_day(1).unwrap() + Months::new(24) - Days::days(1)).to_string();
    let mb = Mb::new();
    mb.create("FC1", "USD", &start, &end);
    let h = mb.file("hierarchy.csv", HIERARCHY);
    mb.ok(&format!("hierarchy import --enrollment FC1 {h}"));
    let p = mb.file("prices.csv", PRICES);
    let first = today - Days::days(39);
    let mut month = first.with_day(1).unwrap();
    while month <= today {
        let period = format!("{:04}{:02}", month.year(), month.month());
        mb.ok(&format!(
            "prices import --enrollment FC1 --period {period} {p}"
        ));
        month = month + Months::new(1);
    }
    let rows: Vec<String> = (0..40)
        .map(|i| {
            let d = first + Days::days(i);
            row(&format!("f-{i}"), SUB_PROD, &d.to_string(), "vm-e4s", "100")
        })
        .collect();
    let u = mb.file("usage.csv", usage_csv(&rows));
    mb.ingest("FC1", &u);
    mb.entry("purchase", "FC1", &start, "10000", "Commitment");

    let out = mb.ok("forecast --enrollment FC1 --json").stdout;
    let o: RawObject = serde_json::from_str(out.trim()).expect("forecast JSON");
    let get = |k: &str| o.get(k).unwrap_or_else(|| panic!("{k} in {out}")).get();
    let dom = i128::from(today.day());
    let next = today.with_day(1).unwrap() + Months::new(1);
    let dim = i128::from((next - Days::days(1)).day());
    let cents = |c: i128| format!("{}.{:02}", c / 100, c % 100);
    assert_eq!(get("horizon"), "\"period\"");
    assert_eq!(get("scope"), "\"enrollment\"");
    assert_eq!(get("asOf"), format!("\"{today}\""));
    assert_eq!(get("daysLeft"), (dim - dom).to_string());
    assert_eq!(get("basisDays"), "30");
    assert_eq!(get("actual"), cents(2520 * dom));
    for k in ["projected", "projectedLow", "projectedHigh"] {
        assert_eq!(get(k), cents(2520 * dim), "{k}");
    }
    for k in ["dailyBurn", "dailyLow", "dailyHigh"] {
        assert_eq!(get(k), "25.20", "{k}");
    }
    let c: RawObject = serde_json::from_str(get("commitment")).expect("commitment");
    let runout = format!("\"{}\"", today + Days::days(357));
    assert_eq!(c["balance"].get(), "8992.00");
    assert_eq!(c["total"].get(), "10000.00");
    assert_eq!(c["runsOutOn"].get(), runout);
    assert_eq!(
        (c["earliest"].get(), c["latest"].get()),
        (runout.as_str(), runout.as_str())
    );
    assert_eq!(c["alreadyUsed"].get(), "false");

    // The term: 1008.00 so far, every day to the term's end at 25.20.
    let out = mb
        .ok("forecast --enrollment FC1 --horizon term --json")
        .stdout;
    let o: RawObject = serde_json::from_str(out.trim()).expect("forecast JSON");
    let end_day: chrono::NaiveDate = end.parse().unwrap();
    let left = i128::from((end_day - today).num_days() as i32);
    assert_eq!(o["actual"].get(), "1008.00");
    assert_eq!(o["daysLeft"].get(), left.to_string());
    assert_eq!(o["projected"].get(), cents(100_800 + 2520 * left));

    // Text: the same figures, for people.
    let text = mb.ok("forecast --enrollment FC1").stdout;
    assert!(
        text.contains(&format!("charges so far:  {} USD", cents(2520 * dom))),
        "{text}"
    );
    assert!(
        text.contains(&format!("expected:        {} USD", cents(2520 * dim))),
        "{text}"
    );
    assert!(
        text.contains("8992.00 USD left of 10000.00 USD; runs out around"),
        "{text}"
    );
    assert!(text.contains("method: "), "{text}");
    // Clean refusals.
    mb.refuses("forecast --enrollment NOPE", "NOPE");
    // A usage error, as clap reports them (exit status 2).
    let r = mb.run("forecast --enrollment FC1 --horizon month");
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(r.stderr.contains("period, term"), "{}", r.describe());
}

/// `exports add|list|runs|run-due|remove`: a once export runs at the first
/// `run-due` and never again; its folder holds the file and a manifest
/// whose hash matches; bad folders are refused; a destination that cannot be
/// written makes `run-due` exit 1 with the run reported as retrying.
#[test]
fn exports_from_the_command_line() {
    let mb = Mb::new();
    mb.create("X1", "USD", "2025-01-01", "2025-12-31");
    mb.seed("X1", &["202501"]);
    let usage = mb.file(
        "u.csv",
        usage_csv(&[
            row("r1", SUB_PROD, "2025-01-03", "vm-e4s", "2"),
            row("r2", SUB_WEB, "2025-01-04", "vm-e4s", "3"),
            row("r3", SUB_WEB, "2025-01-20", "vm-e4s", "3"),
        ]),
    );
    mb.ok(&format!("usage ingest --enrollment X1 {usage}"));
    mb.refuses(
        "exports add --enrollment X1 --name Bad --folder ../up --schedule daily",
        "folder: use 1 to 64 letters",
    );
    mb.refuses(
        "exports add --enrollment X1 --name Bad --folder ok --schedule once --from 2025-01-01",
        "give both --from and --to",
    );
    let id = mb
        .ok("exports add --enrollment X1 --name Early --folder early --schedule once --from 2025-01-01 --to 2025-01-10 --format csv")
        .stdout
        .trim()
        .to_string();
    assert_eq!(id.len(), 32);
    let r = mb.ok("exports run-due");
    assert!(
        r.stdout.contains("once       succeeded attempt 1"),
        "{}",
        r.describe()
    );
    assert_eq!(mb.ok("exports run-due").stdout, "", "nothing is due twice");
    let dir = mb
        .path("t.db.exports")
        .join("X1")
        .join("early")
        .join("once");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["rows"], 2);
    let file = std::fs::read(dir.join(m["files"][0]["name"].as_str().unwrap())).unwrap();
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(m["files"][0]["sha256"].as_str(), Some(sha.as_str()));
    let list = mb.ok("exports list --enrollment X1").stdout;
    assert!(
        list.contains(&id) && list.contains("once 2025-01-01..2025-01-10"),
        "{list}"
    );
    let runs = mb.ok(&format!("exports runs --enrollment X1 {id}")).stdout;
    assert!(runs.starts_with("once       succeeded"), "{runs}");

    // An export root that is a file: the run fails, is reported, exit 1.
    mb.ok("exports add --enrollment X1 --name Daily --folder daily --schedule daily");
    let blocked = mb.file("blocked", "not a directory");
    let r = mb.fail(&format!(
        "--export-root {blocked} exports run-due --enrollment X1"
    ));
    assert!(r.stdout.contains("retrying"), "{}", r.describe());
    assert!(
        r.stderr.contains("1 of 1 export runs failed"),
        "{}",
        r.describe()
    );
    assert!(!r.stdout.contains(&blocked), "no path in the run's error");
    mb.ok(&format!("exports remove --enrollment X1 {id}"));
    mb.refuses(&format!("exports remove --enrollment X1 {id}"), "no export");
}

/// The demo's finance story from the command line: its two budgets, its
/// e-mail channel, and the alerts it fired waiting in the delivery log (no
/// `serve` has sent them: pending, not yet attempted).
#[test]
fn the_demos_budgets_channel_and_queued_alerts() {
    let mb = Mb::new();
    let seeded = mb.ok("demo --no-serve --rows 20000").stdout;
    assert!(seeded.contains("alert(s) fired"), "{seeded}");
    let budgets = mb.ok("budgets list --enrollment 8608480").stdout;
    assert!(
        budgets.contains("Northwind cloud spend, whole term")
            && budgets.contains("Northwind monthly"),
        "{budgets}"
    );
    let channels = mb.ok("notifications channels --enrollment 8608480").stdout;
    assert!(
        channels.contains("email    finance@northwind.example  [alert, period-closed, watermark]"),
        "{channels}"
    );
    let log = mb
        .ok("notifications deliveries --enrollment 8608480")
        .stdout;
    assert!(log.contains("e-mail finance@northwind.example"), "{log}");
    assert!(log.contains("e-mail admin@northwind.example"), "{log}");
    assert!(
        log.lines()
            .all(|l| l.contains("pending") && l.contains("attempts 0")),
        "{log}"
    );
    // Recorded once: evaluating again records nothing.
    let again = mb.ok("notifications evaluate --enrollment 8608480");
    assert!(
        again.stderr.contains("0 new event(s)"),
        "{}",
        again.describe()
    );
    mb.refuses("notifications deliveries --enrollment NOPE", "NOPE");
}
