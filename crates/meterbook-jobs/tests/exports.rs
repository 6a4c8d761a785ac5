//! Scheduled exports end to end on the embedded store: manifests checked
//! against the files (SHA-256, bytes and rows recomputed), a re-run that
//! replaces rather than adds, missed runs caught up when the clock moves,
//! a failing destination retried with backoff and reported, then fixed; and
//! with the `s3` feature, the same run into a bucket (`MB_TEST_S3_URL`, as
//! `tests/report_files.rs` explains; skipped without it).
//!
//! ```sh
//! cargo test -p meterbook-jobs --test exports
//! ```

use meterbook_conformance::fixture::*;
use meterbook_core::clock::{Clock, ManualClock};
use meterbook_core::exports::{Cadence, ExportSchedule, ExportStore, RunStatus};
use meterbook_core::jobs::ExportFormat;
use meterbook_core::store::MetadataStore;
use meterbook_jobs::exports::{DirExportRoot, ExportRoot, ExportRunner, MANIFEST};
use meterbook_sqlite::SqliteStore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn millis(day_text: &str, hour: u32) -> i64 {
    day(day_text)
        .naive()
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Arc<SqliteStore>,
    clock: ManualClock,
    runner: ExportRunner,
}

/// An enrollment with usage on every day of February and March 2025 (two
/// rows a day, one with a comma and quotes in its tags), the clock at
/// 2025-03-01 06:00 UTC.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("m.db")).unwrap());
    let s = store.as_ref();
    enrollment(s, "USD");
    for p in ["202501", "202502", "202503"] {
        prices(s, p, &[meter("m", "0", &[("0", "0.5")])]);
    }
    let mut rows = Vec::new();
    for p in ["2025-02", "2025-03"] {
        let last = if p == "2025-02" { 28 } else { 31 };
        for d in 1..=last {
            let date = format!("{p}-{d:02}");
            rows.push(row(&format!("a{date}"), G1, &date, "m", "1.5"));
            let mut r = row(&format!("b{date}"), G3, &date, "m", "2");
            r.tags = "{\"team\":\"a, \\\"b\\\"\"}".into();
            rows.push(r);
        }
    }
    ingest_ok(s, &rows);
    s.set_watermark(&n(), day("2025-03-31")).unwrap();
    let clock = ManualClock::at_millis(millis("2025-03-01", 6));
    let root = dir.path().join("exports");
    let runner = ExportRunner {
        store: store.clone(),
        root: Arc::new(DirExportRoot(root.clone())),
        clock: Arc::new(clock.clone()),
        focus: Default::default(),
        lease: Duration::from_secs(600),
    };
    Setup {
        _dir: dir,
        root,
        store,
        clock,
        runner,
    }
}

fn schedule(
    t: &Setup,
    id: &str,
    folder: &str,
    cadence: Cadence,
    format: ExportFormat,
) -> ExportSchedule {
    let s = ExportSchedule {
        id: id.into(),
        enrollment: n(),
        name: folder.into(),
        folder: folder.into(),
        cadence,
        format,
        created_at: t.clock.now_millis(),
        created_by: "admin@example.com".into(),
    };
    t.store.create_export(&s).unwrap();
    s
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Data rows of a CSV (or gzipped CSV) file, parsed (quoted commas and
/// newlines are one field).
fn csv_rows(bytes: &[u8], gz: bool) -> u64 {
    let text = if gz {
        let mut s = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut s)
            .unwrap();
        s
    } else {
        bytes.to_vec()
    };
    let mut r = csv::ReaderBuilder::new().from_reader(&text[..]);
    let mut rows = 0;
    for rec in r.records() {
        rec.unwrap();
        rows += 1;
    }
    rows
}

/// Checks a run folder against its manifest; the manifest.
fn check_folder(dir: &Path) -> Value {
    let m: Value = serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut listed: Vec<String> = files
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .chain([MANIFEST.to_string()])
        .collect();
    listed.sort();
    assert_eq!(
        names, listed,
        "the folder holds what the manifest lists, nothing more"
    );
    for f in files {
        let bytes = std::fs::read(dir.join(f["name"].as_str().unwrap())).unwrap();
        assert_eq!(f["bytes"].as_u64().unwrap(), bytes.len() as u64);
        assert_eq!(f["sha256"].as_str().unwrap(), hex(&Sha256::digest(&bytes)));
        let gz = m["format"] == "csv.gz";
        assert_eq!(f["rows"].as_u64().unwrap(), csv_rows(&bytes, gz));
    }
    assert_eq!(m["rows"], files[0]["rows"]);
    m
}

#[test]
fn manifests_match_the_files() {
    let t = setup();
    let csv = schedule(
        &t,
        "s-csv",
        "daily_csv",
        Cadence::DailyMonthToDate,
        ExportFormat::Csv,
    );
    let gz = schedule(
        &t,
        "s-gz",
        "daily-gz",
        Cadence::DailyMonthToDate,
        ExportFormat::CsvGzip,
    );
    let ran = t.runner.run_due(None).unwrap();
    assert_eq!(ran.len(), 2);
    for r in &ran {
        assert_eq!(
            (r.run.status, r.run.run_key.as_str()),
            (RunStatus::Succeeded, "2025-03-01"),
            "{r:?}"
        );
    }
    for (s, folder) in [(&csv, "daily_csv"), (&gz, "daily-gz")] {
        let dir = t.root.join(n().as_str()).join(folder).join("2025-03-01");
        let m = check_folder(&dir);
        // On the 1st, the month to date of the ended days is all of February.
        assert_eq!(m["range"]["startDate"], "2025-02-01");
        assert_eq!(m["range"]["endDate"], "2025-02-28");
        assert_eq!(m["rows"], 56);
        assert_eq!(m["schedule"], "daily");
        assert_eq!(m["runKey"], "2025-03-01");
        assert_eq!(m["scheduleId"], s.id.as_str());
        assert_eq!(m["format"], s.format.name());
        assert_eq!(m["dataWatermark"], "2025-03-31");
        assert_eq!(m["generatedAt"], "2025-03-01T06:00:00Z");
        // The store keeps the manifest the folder holds.
        let runs = t.store.export_runs(&s.id).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(runs[0].manifest.as_deref().unwrap()).unwrap(),
            m
        );
    }
    // Nothing more is due today.
    assert!(t.runner.run_due(None).unwrap().is_empty());
}

#[test]
fn a_rerun_replaces_the_files_and_never_adds() {
    let t = setup();
    let s = schedule(
        &t,
        "s1",
        "q1",
        Cadence::Once {
            from: day("2025-02-10"),
            to: day("2025-03-05"),
        },
        ExportFormat::Csv,
    );
    let first = t.runner.run_now(&s).unwrap().unwrap();
    assert_eq!(first.run.status, RunStatus::Succeeded);
    let dir = t.root.join(n().as_str()).join("q1").join("once");
    let m1 = check_folder(&dir);
    assert_eq!(m1["rows"], 2 * 24);
    let file =
        |m: &Value| std::fs::read(dir.join(m["files"][0]["name"].as_str().unwrap())).unwrap();
    let bytes1 = file(&m1);
    t.clock.advance(Duration::from_secs(3600));
    let second = t.runner.run_now(&s).unwrap().unwrap();
    assert_eq!(second.run.status, RunStatus::Succeeded);
    assert_ne!(first.run.run_id, second.run.run_id);
    let m2 = check_folder(&dir);
    assert_eq!(file(&m2), bytes1, "same key, same data: same file");
    // The same manifest but for the attempt and the time it was made.
    let strip = |m: &Value| {
        let mut m = m.clone();
        for k in ["generatedAt", "attemptId", "attempt"] {
            m.as_object_mut().unwrap().remove(k);
        }
        m
    };
    assert_eq!(strip(&m1), strip(&m2));
    assert_eq!(m1["runId"], m2["runId"]);
    assert_eq!(m2["generatedAt"], "2025-03-01T07:00:00Z");
    // One run recorded, the folder's only run folder; a once export is not due again.
    assert_eq!(t.store.export_runs("s1").unwrap().len(), 1);
    assert_eq!(
        std::fs::read_dir(t.root.join(n().as_str()).join("q1"))
            .unwrap()
            .count(),
        1
    );
    assert!(t.runner.run_due(None).unwrap().is_empty());
}

#[test]
fn missed_runs_are_caught_up() {
    let t = setup();
    schedule(
        &t,
        "d",
        "daily",
        Cadence::DailyMonthToDate,
        ExportFormat::Csv,
    );
    schedule(
        &t,
        "m",
        "monthly",
        Cadence::MonthlyClosed,
        ExportFormat::CsvGzip,
    );
    // Today's daily key; no period is closed, so no monthly key.
    let ran = t.runner.run_due(None).unwrap();
    assert_eq!(
        ran.iter()
            .map(|r| r.run.run_key.as_str())
            .collect::<Vec<_>>(),
        ["2025-03-01"]
    );
    // Down for three days: each missed day runs once, oldest first.
    t.clock.advance(3 * DAY);
    let ran = t.runner.run_due(None).unwrap();
    let keys: Vec<&str> = ran.iter().map(|r| r.run.run_key.as_str()).collect();
    assert_eq!(keys, ["2025-03-02", "2025-03-03", "2025-03-04"]);
    assert!(ran.iter().all(|r| r.run.status == RunStatus::Succeeded));
    let m = check_folder(&t.root.join(n().as_str()).join("daily").join("2025-03-04"));
    assert_eq!(
        (
            m["range"]["startDate"].as_str(),
            m["range"]["endDate"].as_str()
        ),
        (Some("2025-03-01"), Some("2025-03-03"))
    );
    assert_eq!(m["rows"], 6);
    assert!(t.runner.run_due(None).unwrap().is_empty());
    // January, then February close: the monthly schedule exports February
    // (the period before it was made), once.
    meterbook_core::ledger::close_period(
        t.store.as_ref(),
        &n(),
        period("202501"),
        day("2025-03-04"),
    )
    .unwrap();
    meterbook_core::ledger::close_period(
        t.store.as_ref(),
        &n(),
        period("202502"),
        day("2025-03-04"),
    )
    .unwrap();
    let ran = t.runner.run_due(None).unwrap();
    assert_eq!(ran.len(), 1);
    assert_eq!(
        (ran[0].schedule.id.as_str(), ran[0].run.run_key.as_str()),
        ("m", "202502")
    );
    let m = check_folder(&t.root.join(n().as_str()).join("monthly").join("202502"));
    assert_eq!(m["range"]["kind"], "billingPeriod");
    assert_eq!(m["rows"], 56);
    assert!(t.runner.run_due(None).unwrap().is_empty());
    // Down for two months: at most 31 daily keys are caught up.
    t.clock.advance(60 * DAY);
    let ran = t.runner.run_due(Some(&n())).unwrap();
    assert_eq!(ran.len(), 31);
    assert_eq!(ran.last().unwrap().run.run_key, "2025-05-03");
}

#[test]
fn a_failing_destination_is_retried_and_reported() {
    let t = setup();
    let s = schedule(
        &t,
        "d",
        "daily",
        Cadence::DailyMonthToDate,
        ExportFormat::Csv,
    );
    // A file where the enrollment's folder should be.
    std::fs::create_dir_all(&t.root).unwrap();
    std::fs::write(t.root.join(n().as_str()), b"in the way").unwrap();
    let ran = t.runner.run_due(None).unwrap();
    assert_eq!(ran.len(), 1);
    let r = &ran[0].run;
    assert_eq!((r.status, r.attempts), (RunStatus::Retrying, 1));
    let error = r.error.clone().unwrap();
    assert!(
        error.starts_with("cannot create the export folder"),
        "{error}"
    );
    assert!(!error.contains('/'), "no path is shown: {error}");
    assert_eq!(r.retry_at, Some(t.clock.now_millis() + 60_000));
    // Not due again before its retry time.
    t.clock.advance(Duration::from_secs(30));
    assert!(t.runner.run_due(None).unwrap().is_empty());
    t.clock.advance(Duration::from_secs(30));
    let r = &t.runner.run_due(None).unwrap()[0].run;
    assert_eq!((r.status, r.attempts), (RunStatus::Retrying, 2));
    // The back-off doubles.
    assert_eq!(r.retry_at, Some(t.clock.now_millis() + 120_000));
    // Fixed: the next retry succeeds, and the error is cleared.
    std::fs::remove_file(t.root.join(n().as_str())).unwrap();
    t.clock.advance(Duration::from_secs(120));
    let r = &t.runner.run_due(None).unwrap()[0].run;
    assert_eq!(
        (r.status, r.attempts, r.error.as_deref()),
        (RunStatus::Succeeded, 3, None)
    );
    check_folder(&t.root.join(n().as_str()).join("daily").join("2025-03-01"));
    assert_eq!(
        t.store.export_runs(&s.id).unwrap()[0].status,
        RunStatus::Succeeded
    );
}

#[test]
fn a_read_only_root_is_reported_then_fixed() {
    use std::os::unix::fs::PermissionsExt;
    let t = setup();
    schedule(
        &t,
        "d",
        "daily",
        Cadence::DailyMonthToDate,
        ExportFormat::Csv,
    );
    std::fs::create_dir_all(&t.root).unwrap();
    std::fs::set_permissions(&t.root, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permissions: then there is nothing to check here.
    if std::fs::write(t.root.join("probe"), b"x").is_ok() {
        eprintln!("skipped: running as root, a read-only directory is writable");
        return;
    }
    let r = &t.runner.run_due(None).unwrap()[0].run;
    assert_eq!(r.status, RunStatus::Retrying);
    assert_eq!(
        r.error.as_deref(),
        Some("cannot create the export folder: permission denied")
    );
    std::fs::set_permissions(&t.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.clock.advance(Duration::from_secs(60));
    assert_eq!(
        t.runner.run_due(None).unwrap()[0].run.status,
        RunStatus::Succeeded
    );
}

/// Folders are checked again where files are written: a folder that could
/// leave the root is refused even if a store held one.
#[test]
fn folders_cannot_leave_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = DirExportRoot(dir.path().join("r"));
    for (e, f, k) in [
        ("..", "x", "k"),
        ("1", "../x", "k"),
        ("1", "x", "a/b"),
        ("1", ".x", "k"),
    ] {
        assert!(root.run_folder(e, f, k).is_err(), "{e} {f} {k}");
    }
}

#[cfg(feature = "s3")]
#[test]
fn runs_into_an_s3_bucket() {
    let Ok(url) = std::env::var("MB_TEST_S3_URL") else {
        if std::env::var("MB_REQUIRE_CLUSTER").is_ok_and(|v| v == "1") {
            panic!("MB_TEST_S3_URL is not set and MB_REQUIRE_CLUSTER=1");
        }
        eprintln!("runs_into_an_s3_bucket: skipped (set MB_TEST_S3_URL to run it)");
        return;
    };
    let mut t = setup();
    // A prefix of this test's own.
    let mut u = url::Url::parse(&url).unwrap();
    let prefix = format!(
        "{}/exports-{}",
        u.path().trim_matches('/'),
        meterbook_jobs::new_job_id()
    );
    u.set_path(&prefix);
    let root = meterbook_jobs::exports::export_root(u.as_str()).unwrap();
    t.runner.root = root.clone();
    let s = schedule(
        &t,
        "d",
        "daily",
        Cadence::DailyMonthToDate,
        ExportFormat::CsvGzip,
    );
    let r = &t.runner.run_due(None).unwrap()[0].run;
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
    let files = root
        .run_folder(n().as_str(), "daily", "2025-03-01")
        .unwrap();
    let read = |name: &str| {
        let mut f = files.open(name).unwrap().expect("stored");
        let mut b = Vec::new();
        f.reader.read_to_end(&mut b).unwrap();
        b
    };
    let m: Value = serde_json::from_slice(&read(MANIFEST)).unwrap();
    let f = &m["files"][0];
    let bytes = read(f["name"].as_str().unwrap());
    assert_eq!(f["bytes"].as_u64().unwrap(), bytes.len() as u64);
    assert_eq!(f["sha256"].as_str().unwrap(), hex(&Sha256::digest(&bytes)));
    assert_eq!(f["rows"].as_u64().unwrap(), csv_rows(&bytes, true));
    assert_eq!(m["rows"], 56);
    // Again: replaced in place.
    t.clock.advance(Duration::from_secs(60));
    assert_eq!(
        t.runner.run_now(&s).unwrap().unwrap().run.status,
        RunStatus::Succeeded
    );
    assert_eq!(read(f["name"].as_str().unwrap()), bytes);
}

/// A run renews its lease while it writes (here at every progress report):
/// the holder's renewals are accepted and the run completes.
#[test]
fn a_run_renews_its_lease_as_it_writes() {
    let mut t = setup();
    t.runner.lease = Duration::ZERO;
    schedule(
        &t,
        "d",
        "daily",
        Cadence::DailyMonthToDate,
        ExportFormat::Csv,
    );
    let ran = t.runner.run_due(None).unwrap();
    assert_eq!(
        ran[0].run.status,
        RunStatus::Succeeded,
        "{:?}",
        ran[0].run.error
    );
    check_folder(&t.root.join(n().as_str()).join("daily").join("2025-03-01"));
}
