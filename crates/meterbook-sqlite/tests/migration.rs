//! A database made by an older schema, opened by this code (which migrates
//! it in place), makes the same reports, byte for byte, as the older code
//! made from it.
//!
//! `tests/fixtures/schema7/` holds:
//!
//! - `schema7.db`: a database of schema version 7 (usage in one row per
//!   record), made through the public layer by the generator below, vacuumed;
//! - `usage/*.csv`: the usage files it was fed, in the order they were
//!   ingested (with the periods through February closed between the
//!   enrollments' third and fourth, resp. second and third, files);
//! - `expected.txt`: per report, its rows, bytes and SHA-256, as the
//!   schema-7 code made them from a fresh open of `schema7.db`;
//! - `E7000001-account-202503-usage.csv`: one report in full (account b1,
//!   which holds a moved subscription, in the period holding the
//!   corrections), so a failure can show where it differs.
//!
//! **The fixture was made by the schema-7 layout (`usage_fact`) and must
//! never be regenerated with newer code**: it is the proof that a migrated
//! database reports what the old code reported. The generator refuses to run
//! unless the schema version is 7 and the fixture is absent; to remake it
//! (for more coverage, say), check out the commit that made it, delete the
//! directory and run
//!
//! ```text
//! MIGRATION_FIXTURE_WRITE=1 cargo test -p meterbook-sqlite --test migration -- --ignored make_schema7_fixture
//! ```
//!
//! The fixture's enrollments cover what a new layout must get right: record
//! ids that are random lower-case UUIDs in no order, upper- and mixed-case
//! UUIDs, the same UUID in two cases (two records), braced, hyphen-less and
//! URN forms, non-UUID ids, unicode ids and ids of 127 and 128 bytes (the
//! limit), the same ids in both enrollments; one day's records arriving in
//! several files; duplicates re-sent (within a file, across files, after
//! their period closed, with whitespace around the Tags); records with only
//! the required fields and records with JSON Tags and AdditionalInfo;
//! corrections (usage of closed periods booked in the next open one at the
//! locked rate); a subscription moved between accounts and departments; a
//! tiered meter with an included quantity, a marketplace meter and an
//! overage billed separately; charges shown to, and hidden from, department
//! and account scopes.

mod migration_fixture;

use meterbook_app::monthly::{MonthlyKind, Stated, Within};
use meterbook_app::reads::Details;
use meterbook_app::{Access, App, Span};
use meterbook_core::access::Slot;
use meterbook_core::ingest::{IngestError, IngestOptions};
use meterbook_core::Period;
use meterbook_io::report::export::ExportFormat;
use meterbook_io::report::focus::FocusSettings;
use meterbook_io::report::ReportFormat;
use meterbook_sqlite::SqliteStore;
use migration_fixture::{Spec, E1, E2};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// One report as made: its name, row count and bytes.
struct Output {
    name: String,
    rows: u64,
    bytes: Vec<u8>,
}

impl Output {
    fn line(&self) -> String {
        let hash: String = Sha256::digest(&self.bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{}\t{}\t{}\t{hash}", self.name, self.rows, self.bytes.len())
    }
}

const PAGE: usize = 7;

/// The full report kept beside the hashes.
const SAMPLE: &str = "E7000001/account/202503/usage.csv";
const SAMPLE_FILE: &str = "E7000001-account-202503-usage.csv";

fn usage(a: &Access, span: Span, d: &Details, format: ReportFormat) -> (u64, Vec<u8>) {
    let r = a.usage_details(span, d).expect("usage details");
    let mut out = Vec::new();
    let t = r.write(format, &mut out).expect("write usage");
    (t.rows, out)
}

/// The JSON pages of `span`, walked by cursor, with the cursors between.
fn pages(a: &Access, span: Span) -> (u64, Vec<u8>) {
    let mut out = Vec::new();
    let mut rows = 0;
    let mut after = None;
    loop {
        let d = Details {
            after: after.take(),
            ..Default::default()
        };
        let mut page = Vec::new();
        let (n, next) = a
            .usage_details(span, &d)
            .expect("usage page")
            .write_page(PAGE, &mut page)
            .expect("write page");
        rows += n;
        out.extend_from_slice(&page);
        match next {
            Some(c) => {
                out.extend_from_slice(
                    format!(
                        "\n-- next: {} {} {}\n",
                        c.correction_phase, c.day, c.record_id
                    )
                    .as_bytes(),
                );
                after = Some(c);
            }
            None => break,
        }
    }
    (rows, out)
}

fn stated(s: &Stated) -> String {
    match s {
        Stated::Usage { rows, cost, exact } => {
            format!(
                "\n-- stated: {rows} rows, {} minor, {} exact",
                cost.0, exact.0
            )
        }
        Stated::Balance {
            periods,
            ending_balance,
            total_usage,
        } => format!(
            "\n-- stated: {periods} periods, ending {}, usage {}",
            ending_balance.0, total_usage.0
        ),
        Stated::Prices { period, meters } => format!("\n-- stated: {period}, {meters} meters"),
    }
}

fn monthly(a: &Access, kind: MonthlyKind, span: Span, format: ReportFormat) -> (u64, Vec<u8>) {
    let r = a
        .monthly_report(kind, span, &Within::default())
        .expect("monthly report");
    let mut out = Vec::new();
    let s = r.write(format, &mut out).expect("write monthly");
    out.extend_from_slice(stated(&s).as_bytes());
    let rows = match s {
        Stated::Usage { rows, .. } => rows,
        Stated::Balance { periods, .. } => periods as u64,
        Stated::Prices { meters, .. } => meters as u64,
    };
    (rows, out)
}

fn export(a: &Access, span: Span, format: ExportFormat) -> (u64, Vec<u8>) {
    let r = a
        .monthly_report(MonthlyKind::Usage, span, &Within::default())
        .expect("usage report");
    let mut out = Vec::new();
    let s = r
        .export(format, &FocusSettings::default(), &mut out)
        .expect("export");
    let Stated::Usage { rows, .. } = s else {
        unreachable!("a usage export states usage")
    };
    (rows, out)
}

/// The usage summary (what the portal's pages and charts are made of).
fn summary(a: &Access, first: Period, last: Period) -> (u64, Vec<u8>) {
    let v = a.usage_view(first, last).expect("usage view");
    let mut s = String::new();
    for r in &v.rows {
        writeln!(
            s,
            "{}|{:?}|{:?}|{}|{}|{}|{}|{}|{}|{}",
            r.period,
            r.department,
            r.account,
            r.subscription,
            r.service,
            r.meter_id,
            r.unit,
            r.quantity_micro,
            r.cost.0,
            r.rows
        )
        .ok();
    }
    for t in &v.totals {
        writeln!(s, "total {}", t.0).ok();
    }
    (v.rows.len() as u64, s.into_bytes())
}

/// Every report of the fixture kept: for each enrollment, as the enterprise,
/// one department and one account.
fn outputs(app: &App) -> Vec<Output> {
    let mut out = Vec::new();
    for spec in [&E1, &E2] {
        outputs_of(app, spec, &mut out);
    }
    out
}

fn outputs_of(app: &App, spec: &Spec, out: &mut Vec<Output>) {
    let op = app.local_operator();
    let n = spec.n();
    let ent = op.enrollment(&n).expect("enrollment");
    let mut accesses = vec![("enterprise".to_string(), ent.clone())];
    for (name, scope) in migration_fixture::scopes(app, spec) {
        let (key, _) = op
            .scope_key(&n, scope, Slot::Primary, 30, true)
            .expect("scope key");
        accesses.push((name, app.key(&key.token).expect("key access")));
    }
    let e = ent.enrollment();
    let mut periods: Vec<Period> = ent
        .billing_periods()
        .expect("periods")
        .into_iter()
        .map(|p| p.info.period)
        .collect();
    periods.sort();
    let (first, last) = (periods[0], *periods.last().expect("a period"));
    let mut spans = vec![("term".to_string(), Span::Range(e.start, e.end))];
    spans.push((
        "range-0110-0220".into(),
        Span::Range(
            migration_fixture::day("2025-01-10").max(e.start),
            migration_fixture::day("2025-02-20"),
        ),
    ));
    spans.extend(periods.iter().map(|p| (p.to_string(), Span::Period(*p))));
    let mut push = |name: String, (rows, bytes): (u64, Vec<u8>)| {
        out.push(Output { name, rows, bytes });
    };
    for (who, a) in &accesses {
        for (span_name, span) in &spans {
            let at = |what: &str| format!("{}/{who}/{span_name}/{what}", spec.number);
            let whole = Details::default();
            push(at("usage.csv"), usage(a, *span, &whole, ReportFormat::Csv));
            push(
                at("usage.json"),
                usage(a, *span, &whole, ReportFormat::Json),
            );
            let legacy = Details {
                legacy: true,
                ..Default::default()
            };
            push(
                at("legacy.csv"),
                usage(a, *span, &legacy, ReportFormat::Csv),
            );
            let mkt = Details {
                marketplace: true,
                ..Default::default()
            };
            push(
                at("marketplace.csv"),
                usage(a, *span, &mkt, ReportFormat::Csv),
            );
            push(at("pages.json"), pages(a, *span));
            push(
                at("monthly-usage.csv"),
                monthly(a, MonthlyKind::Usage, *span, ReportFormat::Csv),
            );
            if who == "enterprise" {
                let within = Details {
                    accounts: vec!["c1".into()],
                    departments: vec!["Engineering".into()],
                    ..Default::default()
                };
                push(
                    at("within-c1-engineering.csv"),
                    usage(a, *span, &within, ReportFormat::Csv),
                );
            }
        }
        push(
            format!("{}/{who}/summary", spec.number),
            summary(a, first, last),
        );
        let focus = [
            ("focus.csv", ExportFormat::FocusCsv),
            ("focus.parquet", ExportFormat::FocusParquet),
            ("usage.parquet", ExportFormat::Parquet),
        ];
        for (what, format) in focus {
            push(
                format!("{}/{who}/term/{what}", spec.number),
                export(a, spans[0].1, format),
            );
        }
    }
    for p in &periods {
        let at = |what: &str| format!("{}/enterprise/{p}/{what}", spec.number);
        let span = Span::Period(*p);
        push(
            at("balance.csv"),
            monthly(&ent, MonthlyKind::Balance, span, ReportFormat::Csv),
        );
        push(
            at("balance.json"),
            monthly(&ent, MonthlyKind::Balance, span, ReportFormat::Json),
        );
        push(
            at("marketplace-monthly.csv"),
            monthly(&ent, MonthlyKind::Marketplace, span, ReportFormat::Csv),
        );
        push(
            at("usage.parquet"),
            export(&ent, span, ExportFormat::Parquet),
        );
        if *p <= periods[periods.len() - 2] {
            push(
                at("prices.csv"),
                monthly(&ent, MonthlyKind::Prices, span, ReportFormat::Csv),
            );
        }
    }
}

fn expected_path() -> std::path::PathBuf {
    migration_fixture::dir().join("expected.txt")
}

/// Writes what the fixture's reports are, from a fresh open of a copy of
/// the committed database.
fn write_expected(dir: &Path) {
    let (_tmp, app, _) = open_copy();
    let outs = outputs(&app);
    let mut text = String::from(
        "# Reports of schema7.db as the schema-7 code made them: name, rows, bytes, SHA-256.\n\
         # Never regenerate with newer code (see tests/migration.rs).\n",
    );
    for o in &outs {
        text.push_str(&o.line());
        text.push('\n');
    }
    std::fs::write(dir.join("expected.txt"), text).expect("write expected");
    let sample = outs.iter().find(|o| o.name == SAMPLE).expect("sample");
    std::fs::write(dir.join(SAMPLE_FILE), &sample.bytes).expect("write sample");
}

/// A copy of the fixture in a temporary directory, opened (and so
/// migrated) by this code.
fn open_copy() -> (tempfile::TempDir, App, Arc<SqliteStore>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("migrated.db");
    std::fs::copy(migration_fixture::database(), &db).expect("copy the fixture");
    let store = Arc::new(SqliteStore::open(&db).expect("open (and migrate) the fixture"));
    let app = migration_fixture::app(store.clone(), &tmp.path().join("files"));
    (tmp, app, store)
}

/// `PRAGMA user_version` as the file's header holds it (bytes 60..64).
fn header_version(path: &Path) -> u32 {
    let bytes = std::fs::read(path).expect("read the fixture");
    assert_eq!(&bytes[..16], b"SQLite format 3\0", "not an SQLite file");
    u32::from_be_bytes(bytes[60..64].try_into().expect("4 bytes"))
}

/// Every output that differs from what the schema-7 code made, named.
fn compare(outs: &[Output], when: &str) {
    let expected = std::fs::read_to_string(expected_path()).expect("expected.txt");
    let want: Vec<&str> = expected.lines().filter(|l| !l.starts_with('#')).collect();
    let got: Vec<String> = outs.iter().map(Output::line).collect();
    let name = |l: &str| l.split('\t').next().unwrap_or_default().to_string();
    let mut problems = Vec::new();
    sample_diff(outs, &mut problems);
    for w in &want {
        match got.iter().find(|g| name(g) == name(w)) {
            None => problems.push(format!("{}: not made any more", name(w))),
            Some(g) if g != w => {
                let (w, g): (Vec<&str>, Vec<&str>) =
                    (w.split('\t').collect(), g.split('\t').collect());
                problems.push(format!(
                    "{}: rows {} -> {}, bytes {} -> {}{}",
                    w[0],
                    w[1],
                    g[1],
                    w[2],
                    g[2],
                    if w[1..3] == g[1..3] {
                        ", other content"
                    } else {
                        ""
                    }
                ))
            }
            Some(_) => {}
        }
    }
    for g in &got {
        if !want.iter().any(|w| name(w) == name(g)) {
            problems.push(format!("{}: made, but not in expected.txt", name(g)));
        }
    }
    const SHOWN: usize = 40;
    let more = problems.len().saturating_sub(SHOWN);
    assert!(
        problems.is_empty(),
        "{when}, {} of {} reports differ from what the schema-7 code made:\n{}{}",
        problems.len(),
        want.len(),
        problems[..problems.len().min(SHOWN)].join("\n"),
        if more > 0 {
            format!("\n... and {more} more")
        } else {
            String::new()
        }
    );
}

/// Where the full report kept differs from what was made, if it does.
fn sample_diff(outs: &[Output], problems: &mut Vec<String>) {
    if let Some(o) = outs.iter().find(|o| o.name == SAMPLE) {
        let full = std::fs::read(migration_fixture::dir().join(SAMPLE_FILE)).expect("sample");
        if full != o.bytes {
            let (w, g) = (
                String::from_utf8_lossy(&full),
                String::from_utf8_lossy(&o.bytes),
            );
            let at = w.lines().zip(g.lines()).position(|(a, b)| a != b);
            let line = at.unwrap_or(w.lines().count().min(g.lines().count()));
            problems.push(format!(
                "{SAMPLE}: first difference at line {}:\n  expected {:?}\n  made     {:?}",
                line + 1,
                w.lines().nth(line),
                g.lines().nth(line)
            ));
        }
    }
}

#[test]
fn migrated_reports_are_byte_identical() {
    let db = migration_fixture::database();
    assert_eq!(
        header_version(&db) as usize,
        migration_fixture::FIXTURE_SCHEMA,
        "the committed fixture must stay the schema-7 database"
    );
    let (tmp, app, store) = open_copy();
    assert_eq!(
        store.schema_version().expect("schema version"),
        meterbook_sqlite::SCHEMA_VERSION,
        "opening migrates to the latest schema"
    );
    app.check_ready().expect("ready after migration");
    let outs = outputs(&app);
    assert!(outs.len() > 300, "only {} reports", outs.len());
    compare(&outs, "after migration");

    // The same files again: every record a duplicate, nothing stored.
    for spec in [&E1, &E2] {
        let files = spec.files();
        assert!(files.len() >= 3, "{}: usage files missing", spec.number);
        for f in &files {
            let s = migration_fixture::ingest(&app, spec, f);
            assert_eq!(
                (s.stored, s.duplicates, s.rejected),
                (0, s.read, 0),
                "{}: re-sent after migration: {s:?}",
                f.display()
            );
        }
    }
    // A re-send with other content is still a conflict, whatever the id's form.
    conflicts(&app, &E1);
    conflicts(&app, &E2);
    // And neither changed any report.
    compare(&outputs(&app), "after re-sending the files");
    drop(tmp);
}

/// Records of the first file re-sent with another quantity: each refused
/// as a conflicting RecordId, and nothing stored.
fn conflicts(app: &App, spec: &Spec) {
    let files = spec.files();
    let rows = migration_fixture::read(&files[0]);
    let picks = [
        |id: &str| id.len() == 36 && id == id.to_lowercase() && !id.starts_with("0000"),
        |id: &str| id.len() == 36 && id == id.to_uppercase() && id.contains('-'),
        |id: &str| id.starts_with('{'),
        |id: &str| id.starts_with("u-"),
        |id: &str| id.len() == 128 && !id.is_ascii(),
        |id: &str| id.starts_with("long-"),
        |id: &str| id.starts_with("résumé"),
    ];
    let mut bad = Vec::new();
    for pick in picks {
        let r = rows
            .iter()
            .find(|r| pick(&r.0[0]))
            .unwrap_or_else(|| panic!("{}: no record of a kind", spec.number));
        let mut r = r.clone();
        r.0[4] = "987654.321".into();
        bad.push(r);
    }
    let text = migration_fixture::csv(&bad);
    let mut src = meterbook_io::input::usage::UsageReader::open(text.as_bytes(), None)
        .expect("conflict file");
    let got = app.local_operator().ingest(
        &spec.n(),
        &mut src,
        IngestOptions::default(),
        &mut |_, _| {},
    );
    match got {
        Err(IngestError::Rejected { rejects, .. }) => {
            let lines: Vec<u64> = rejects.iter().map(|r| r.line).collect();
            assert_eq!(lines, (2..2 + bad.len() as u64).collect::<Vec<_>>());
            for r in &rejects {
                assert_eq!(r.column, Some("RecordId"), "{}: {r:?}", spec.number);
            }
        }
        other => panic!(
            "{}: a conflicting re-send was not refused: {other:?}",
            spec.number
        ),
    }
}

/// Makes the fixture (see the header). Not run by default; refuses unless
/// asked, the schema is 7 and the fixture is absent.
#[test]
#[ignore = "makes the committed fixture; only with the schema-7 code"]
fn make_schema7_fixture() {
    if std::env::var("MIGRATION_FIXTURE_WRITE").as_deref() != Ok("1") {
        panic!("set MIGRATION_FIXTURE_WRITE=1 to write the fixture");
    }
    migration_fixture::make(write_expected);
}
