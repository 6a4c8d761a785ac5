//! Crash safety of `meterbook usage ingest`: SIGKILL at random points of an
//! ingest leaves none or all of the file's rows, and a re-run stores exactly
//! one copy.
//!
//! One database is prepared (enrollment, hierarchy, six price sheets) with the
//! CLI, and `meterbook bench` writes a usage file of the realistic shape
//! (random UUIDv4 RecordIds in no order, tags, about 3 resources per 100 rows).
//! A clean ingest gives the reference state and the duration of a full ingest.
//! Then, for each run, a copy of the prepared database is ingested into and
//! the process killed with SIGKILL after a delay drawn uniformly over that
//! duration, or, every other run, over its last third and a little beyond
//! (where blocks, key index and sums are written and the commit happens), so
//! parsing, writing and commit all get hit. The database must then
//! open (write-ahead log recovery), pass `PRAGMA quick_check`, hold no lock,
//! and hold either nothing of the file or exactly the reference state: the
//! usage-details report byte for byte, the statements and the usage rollup.
//! The ingest is re-run to completion (the reference state again, byte for
//! byte) and once more (every row a duplicate).
//!
//! The database is read through the use-case layer only, never with SQL on
//! the usage tables, so the test holds whatever their layout.
//!
//! `MB_CRASH_RUNS` sets the number of runs (default 50), `MB_CRASH_SEED` the
//! random seed (printed at the start and in every failure).

use meterbook_app::reads::Details;
use meterbook_app::{App, Span};
use meterbook_core::clock::{Clock, ManualClock};
use meterbook_core::statement::{ChargeTotals, Statement};
use meterbook_core::{Day, EnrollmentNumber};
use meterbook_io::report::ReportFormat;
use meterbook_sqlite::SqliteStore;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meterbook");
/// Runs unless `MB_CRASH_RUNS` says otherwise.
const RUNS: usize = 50;
/// Rows asked of the generator: a debug-build ingest of about half a second.
const ROWS: u64 = 20_000;
const ENROLLMENT: &str = "100001";

/// The generator's days (`bench_data`'s six months) and their periods.
fn first_day() -> Day {
    "2025-07-01".parse().expect("date")
}
fn last_day() -> Day {
    "2025-12-31".parse().expect("date")
}

/// Runs the CLI to completion; panics with its output unless it succeeds.
fn mb(db: &Path, args: &[&str]) -> String {
    mb_in("setup", db, args)
}

/// [`mb`], its failure naming `ctx` (the run, seed and delay).
fn mb_in(ctx: &str, db: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run meterbook");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{ctx}: meterbook {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What an ingest printed: (read, stored, duplicates, rejected).
fn summary(stdout: &str) -> (u64, u64, u64, u64) {
    let field = |name: &str| -> u64 {
        let at = stdout
            .find(&format!("{name} "))
            .unwrap_or_else(|| panic!("no {name:?} in {stdout:?}"));
        let rest = &stdout[at + name.len() + 1..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end]
            .parse()
            .unwrap_or_else(|_| panic!("no number after {name:?} in {stdout:?}"))
    };
    (
        field("read"),
        field("stored"),
        field("duplicates"),
        field("rejected"),
    )
}

/// A full ingest of `usage` into `db`: its summary and how long the process took.
fn ingest(ctx: &str, db: &Path, usage: &Path) -> ((u64, u64, u64, u64), Duration) {
    let t = Instant::now();
    let out = mb_in(
        ctx,
        db,
        &[
            "usage",
            "ingest",
            "--enrollment",
            ENROLLMENT,
            &usage.display().to_string(),
        ],
    );
    (summary(&out), t.elapsed())
}

/// What the database shows of the enrollment's usage, read as a front end
/// reads it.
#[derive(PartialEq, Eq)]
struct State {
    /// Rows of the usage-details report over the file's days.
    rows: u64,
    /// That report as CSV.
    details: Vec<u8>,
    /// Every statement of the term through the last period of the file.
    statements: Vec<(Statement, ChargeTotals)>,
    /// The usage rollup of the file's periods (summary rows and charges).
    rollup: String,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The report itself is too long to print; its size says enough.
        write!(
            f,
            "{} rows ({} bytes of report)",
            self.rows,
            self.details.len()
        )
    }
}

/// Opens the database as the store opens it (recovering the write-ahead log),
/// checks it is whole and unlocked, and reads the enrollment's usage state.
fn state(db: &Path, clock: &Arc<dyn Clock>, files: &Path) -> Result<State, String> {
    let store = SqliteStore::open(db).map_err(|e| format!("the database does not open: {e}"))?;
    // Layout-independent checks of the file itself (no usage table is named).
    {
        let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| format!("quick_check: {e}"))?;
        if check != "ok" {
            return Err(format!("quick_check says {check}"));
        }
        // No busy wait: a lock left behind by the killed process fails at once.
        conn.busy_timeout(Duration::ZERO)
            .map_err(|e| e.to_string())?;
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(|e| format!("the write lock cannot be taken: {e}"))?;
    }
    let app = App::new(
        Arc::new(store),
        Arc::new(meterbook_jobs::DirReportFiles::new(files).map_err(|e| e.to_string())?),
        meterbook_jobs::JobSettings::default(),
        clock.clone(),
    );
    let n = EnrollmentNumber::parse(ENROLLMENT).expect("number");
    let access = app
        .local_operator()
        .enrollment(&n)
        .map_err(|e| e.to_string())?;
    let mut details = Vec::new();
    let totals = access
        .usage_details(Span::Range(first_day(), last_day()), &Details::default())
        .and_then(|r| r.write(ReportFormat::Csv, &mut details))
        .map_err(|e| format!("usage details: {e}"))?;
    let statements = access
        .enterprise()
        .and_then(|e| e.statements(last_day().period()))
        .map_err(|e| format!("statements: {e}"))?;
    let view = access
        .usage_view(first_day().period(), last_day().period())
        .map_err(|e| format!("usage rollup: {e}"))?;
    Ok(State {
        rows: totals.rows,
        details,
        statements,
        rollup: format!("{:?} {:?}", view.rows, view.totals),
    })
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

fn remove_db(db: &Path) {
    for ext in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
}

#[test]
fn sigkill_during_ingest_leaves_none_or_all_and_a_rerun_stores_one_copy() {
    let started = Instant::now();
    let runs: usize = env_or("MB_CRASH_RUNS", RUNS);
    let seed: u64 = env_or(
        "MB_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64,
    );
    println!("crash test: {runs} runs, seed {seed} (MB_CRASH_SEED={seed} repeats them)");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let data = dir.join("data");
    let files = dir.join("reports");

    // The usage file (and hierarchy and price sheets) of `meterbook bench`.
    mb(
        &data.join("bench.db"),
        &[
            "bench",
            "--rows",
            &ROWS.to_string(),
            "--dir",
            &data.display().to_string(),
        ],
    );
    let usage = data.join("usage.csv");
    remove_db(&data.join("bench.db"));

    // The prepared database: enrollment, hierarchy and prices, no usage.
    let prepared = dir.join("prepared.db");
    mb(
        &prepared,
        &[
            "enrollment",
            "create",
            "--number",
            ENROLLMENT,
            "--name",
            "Crash",
            "--start",
            "2025-01-01",
            "--end",
            "2027-12-31",
        ],
    );
    mb(
        &prepared,
        &[
            "hierarchy",
            "import",
            "--enrollment",
            ENROLLMENT,
            &data.join("hierarchy.csv").display().to_string(),
        ],
    );
    for p in first_day().period().through(last_day().period()) {
        let sheet = data.join(format!("prices-{p}.csv"));
        mb(
            &prepared,
            &[
                "prices",
                "import",
                "--enrollment",
                ENROLLMENT,
                "--period",
                &p.to_string(),
                &sheet.display().to_string(),
            ],
        );
    }
    // Everything in the main file, so a copy of it is the whole database.
    SqliteStore::open(&prepared)
        .and_then(|s| s.checkpoint())
        .expect("checkpoint the prepared database");

    // Reports carry the time they were generated: one fixed time for all.
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::now());
    let read = |db: &Path| state(db, &clock, &files);
    let empty = read(&prepared).expect("the prepared database");
    assert_eq!(empty.rows, 0, "the prepared database holds no usage");

    // The reference: a clean ingest, and how long a whole one takes.
    let clean = dir.join("clean.db");
    std::fs::copy(&prepared, &clean).expect("copy");
    let ((file_rows, stored, dups, rejected), full) = ingest("the clean ingest", &clean, &usage);
    assert!(file_rows > ROWS / 2, "the file holds {file_rows} rows");
    assert_eq!(
        (stored, dups, rejected),
        (file_rows, 0, 0),
        "a clean ingest stores every row"
    );
    let all = read(&clean).expect("the cleanly ingested database");
    assert_eq!(
        all.rows, file_rows,
        "the clean ingest's report holds every row"
    );
    assert_ne!(
        all.statements, empty.statements,
        "the usage is charged in the statements"
    );
    remove_db(&clean);
    println!(
        "{file_rows} rows ({:.1} MB), a full ingest takes {full:.2?}; setup {:.1?}",
        std::fs::metadata(&usage).expect("usage file").len() as f64 / 1e6,
        started.elapsed()
    );

    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut none, mut whole, mut finished) = (0, 0, 0);
    for run in 0..runs {
        // Every other run is killed in the last third, where the blocks,
        // the key index and the sums are written and the commit happens.
        let at = if run % 2 == 0 {
            rng.f64()
        } else {
            0.7 + 0.35 * rng.f64()
        };
        let delay = full.mul_f64(at);
        let ctx = format!(
            "run {run} of {runs} (seed {seed}; killed {delay:.3?} after start, a full ingest takes {full:.3?})"
        );
        let db = dir.join(format!("run-{run}.db"));
        remove_db(&db);
        std::fs::copy(&prepared, &db).expect("copy");

        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(["usage", "ingest", "--enrollment", ENROLLMENT])
            .arg(&usage)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start meterbook");
        std::thread::sleep(delay);
        let done_before = child.try_wait().expect("wait");
        if done_before.is_none() {
            // `Child::kill` is SIGKILL on Unix.
            child.kill().expect("SIGKILL");
        }
        let status = child.wait().expect("wait");
        if let Some(s) = done_before {
            assert!(s.success(), "{ctx}: the ingest failed on its own: {s}");
        }
        // The ingest may end between the look and the kill: then the kill
        // found a finished process and its exit status is success.
        let done_before = done_before.or(status.success().then_some(status));

        let after = read(&db).unwrap_or_else(|e| panic!("{ctx}: after the kill, {e}"));
        let held_all = if after.rows == 0 {
            assert!(
                after == empty,
                "{ctx}: no usage rows, but the statements or the rollup changed"
            );
            none += 1;
            false
        } else {
            assert!(
                after.rows == file_rows,
                "{ctx}: {} of the file's {file_rows} rows are stored",
                after.rows
            );
            assert!(
                after.details == all.details,
                "{ctx}: every row is there, but the report differs from a clean ingest's"
            );
            assert!(
                after == all,
                "{ctx}: the statements or the rollup differ from a clean ingest's"
            );
            if done_before.is_some() {
                finished += 1;
            } else {
                whole += 1;
            }
            true
        };

        // The re-run completes the file (or finds it all there), exactly once.
        let (sum, _) = ingest(&ctx, &db, &usage);
        let expect = if held_all {
            (file_rows, 0, file_rows, 0)
        } else {
            (file_rows, file_rows, 0, 0)
        };
        assert_eq!(
            sum, expect,
            "{ctx}: the re-run's (read, stored, duplicates, rejected)"
        );
        let again = read(&db).unwrap_or_else(|e| panic!("{ctx}: after the re-run, {e}"));
        assert!(
            again.details == all.details,
            "{ctx}: after the re-run the report ({} rows) differs from a clean ingest's ({file_rows} rows)",
            again.rows
        );
        assert!(
            again == all,
            "{ctx}: after the re-run the statements or the rollup differ from a clean ingest's"
        );
        // A third run finds every row there, and stores nothing.
        let (sum, _) = ingest(&ctx, &db, &usage);
        assert_eq!(
            sum,
            (file_rows, 0, file_rows, 0),
            "{ctx}: a third run finds every row a duplicate"
        );
        remove_db(&db);
    }
    println!(
        "{runs} runs in {:.1?}: killed with nothing stored {none}, killed with the file stored {whole}, finished before the kill {finished}",
        started.elapsed()
    );
}

#[test]
fn summary_reads_the_ingest_line() {
    assert_eq!(
        summary("u.csv: read 12, stored 10, duplicates 2, rejected 0 in 0.10 s (120 rows/s); usage complete through (not set); generated x"),
        (12, 10, 2, 0)
    );
}
