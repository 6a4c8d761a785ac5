//! The CLI on the scale-out deployment (PostgreSQL + the two-shard
//! ClickHouse cluster that scripts/cluster.sh starts), each test on fresh
//! databases of its own:
//! - the demo's reports, held to the cent, are byte-identical to the
//!   embedded store's;
//! - faults leave nothing lost and nothing doubled: SIGKILL mid-ingest, a
//!   ClickHouse shard stopped mid-ingest, PostgreSQL restarted mid-ingest;
//!   each time a re-run stores every record once;
//! - `serve` on the cluster stops cleanly on SIGTERM.
//!
//! Skipped without the cluster unless `MB_REQUIRE_CLUSTER=1`. The fault
//! tests stop servers of the shared cluster, so they take a lock: no two
//! run at once.

use meterbook_testkit::cluster::{fresh, ClusterUrls};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meterbook");
const ENROLLMENT: &str = "100001";
/// A second after a kill, the next ingest may take the slot over.
const LEASE: &str = "2";

/// One test at a time: the fault tests stop and start the shared servers.
static FAULTS: Mutex<()> = Mutex::new(());

/// Where a command runs: the embedded file or the cluster's databases.
#[derive(Clone)]
enum At {
    Embedded(PathBuf),
    Cluster(ClusterUrls),
}

fn command(at: &At, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("MB_STORE")
        .env_remove("MB_USAGE_STORE")
        .env("MB_INGEST_LEASE_SECONDS", LEASE);
    match at {
        At::Embedded(db) => {
            c.arg("--db").arg(db);
        }
        At::Cluster(u) => {
            c.env("MB_STORE", &u.store)
                .env("MB_USAGE_STORE", &u.usage_store);
        }
    }
    c.args(args);
    c
}

fn run(at: &At, args: &[&str]) -> Output {
    command(at, args).output().expect("run meterbook")
}

fn ok(at: &At, args: &[&str]) -> String {
    let out = run(at, args);
    assert!(
        out.status.success(),
        "meterbook {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn periods(at: &At, n: &str) -> Vec<String> {
    ok(at, &["period", "list", "--enrollment", n])
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Every monthly report of every period, as the CLI prints them.
fn reports(at: &At, n: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in periods(at, n) {
        for kind in ["usage", "balance", "prices", "marketplace"] {
            let text = ok(at, &["report", kind, "--enrollment", n, "--period", &p]);
            out.push((format!("{kind} {p}"), text));
        }
    }
    out
}

#[test]
fn demo_reports_are_identical_on_both_deployments() {
    let _one = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(cluster) = fresh("demo") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let embedded = At::Embedded(dir.path().join("demo.db"));
    let cluster = At::Cluster(cluster);
    for at in [&embedded, &cluster] {
        ok(at, &["demo", "--no-serve", "--rows", "20000"]);
    }
    let n = "8608480";
    let (a, b) = (reports(&embedded, n), reports(&cluster, n));
    assert!(a.len() > 40, "{} reports", a.len());
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs between the deployments");
    }
}

/// A usage file of the realistic shape (random UUIDv4 RecordIds in no
/// order, tags, many resources), with its hierarchy and price sheets, made
/// by `meterbook bench`.
fn bench_data(dir: &Path, rows: u64) -> PathBuf {
    let data = dir.join("data");
    ok(
        &At::Embedded(data.join("bench.db")),
        &[
            "bench",
            "--rows",
            &rows.to_string(),
            "--dir",
            &data.display().to_string(),
        ],
    );
    data
}

/// An enrollment with the bench data's hierarchy and prices, no usage.
fn prepare(at: &At, data: &Path) {
    ok(
        at,
        &[
            "enrollment",
            "create",
            "--number",
            ENROLLMENT,
            "--name",
            "Faults",
            "--start",
            "2025-01-01",
            "--end",
            "2027-12-31",
        ],
    );
    let hierarchy = data.join("hierarchy.csv").display().to_string();
    ok(
        at,
        &[
            "hierarchy",
            "import",
            "--enrollment",
            ENROLLMENT,
            &hierarchy,
        ],
    );
    for m in 7..=12 {
        let p = format!("2025{m:02}");
        let sheet = data.join(format!("prices-{p}.csv")).display().to_string();
        ok(
            at,
            &[
                "prices",
                "import",
                "--enrollment",
                ENROLLMENT,
                "--period",
                &p,
                &sheet,
            ],
        );
    }
}

/// An ingest of `usage` running in the background.
fn spawn_ingest(at: &At, usage: &Path, stdout: Stdio, stderr: Stdio) -> std::process::Child {
    let usage = usage.display().to_string();
    command(at, &["usage", "ingest", "--enrollment", ENROLLMENT, &usage])
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn")
}

fn ingest(at: &At, usage: &Path) -> Output {
    run(
        at,
        &[
            "usage",
            "ingest",
            "--enrollment",
            ENROLLMENT,
            &usage.display().to_string(),
        ],
    )
}

/// (stored, duplicates) of a finished ingest.
fn counts(out: &Output) -> (u64, u64) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ingest failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> u64 {
        let at = text
            .find(&format!("{name} "))
            .unwrap_or_else(|| panic!("{text}"));
        text[at + name.len() + 1..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("{text}"))
    };
    (field("stored"), field("duplicates"))
}

/// What the enrollment shows: its usage details over the file's days and
/// its balance of each of the file's periods.
fn state(at: &At) -> String {
    let mut s = ok(
        at,
        &[
            "report",
            "usage",
            "--enrollment",
            ENROLLMENT,
            "--from",
            "2025-07-01",
            "--to",
            "2025-12-31",
        ],
    );
    for m in 7..=12 {
        s += &ok(
            at,
            &[
                "report",
                "balance",
                "--enrollment",
                ENROLLMENT,
                "--period",
                &format!("2025{m:02}"),
            ],
        );
    }
    s
}

fn rows_in(state: &str) -> usize {
    state.lines().filter(|l| l.contains(",2025-")).count()
}

struct Faults {
    _dir: tempfile::TempDir,
    usage: PathBuf,
    data: PathBuf,
    empty: String,
    full: String,
    rows: u64,
    /// How long a clean ingest on the cluster takes.
    takes: Duration,
}

/// The data and the reference states (none and all of the file).
fn faults(rows: u64) -> Option<Faults> {
    let clean = At::Cluster(fresh("clean")?);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = bench_data(dir.path(), rows);
    let usage = data.join("usage.csv");
    prepare(&clean, &data);
    let empty = state(&clean);
    let started = Instant::now();
    let (stored, _) = counts(&ingest(&clean, &usage));
    let takes = started.elapsed();
    let full = state(&clean);
    assert!(rows_in(&full) as u64 == stored && stored > rows / 2);
    Some(Faults {
        _dir: dir,
        usage,
        data,
        empty,
        full,
        rows: stored,
        takes,
    })
}

/// After a fault: the enrollment shows none or all of the file; a re-run
/// shows all of it, byte for byte, and one more run finds only duplicates.
fn recovers(f: &Faults, at: &At, what: &str) {
    let after = state(at);
    assert!(
        after == f.empty || after == f.full,
        "{what}: a partial ingest is visible ({} rows of {})",
        rows_in(&after),
        f.rows
    );
    let (stored, dups) = counts(&ingest(at, &f.usage));
    assert_eq!(stored + dups, f.rows, "{what}");
    assert_eq!(state(at), f.full, "{what}: the re-run's state");
    assert_eq!(
        counts(&ingest(at, &f.usage)),
        (0, f.rows),
        "{what}: a third run"
    );
}

fn cluster_script(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .expect("run scripts/cluster.sh");
    assert!(
        out.status.success(),
        "scripts/cluster.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigkill_mid_ingest_then_a_rerun_stores_once() {
    let _one = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(f) = faults(20_000) else {
        return;
    };
    let runs: u32 = std::env::var("MB_CLUSTER_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    for run in 0..runs {
        let at = At::Cluster(fresh("kill").expect("cluster"));
        prepare(&at, &f.data);
        let mut child = spawn_ingest(&at, &f.usage, Stdio::null(), Stdio::null());
        // Spread over the whole ingest, the commit included.
        let delay = f
            .takes
            .mul_f64(0.1 + 0.9 * (run as f64 + 0.5) / runs as f64);
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        recovers(&f, &at, &format!("run {run}, killed after {delay:?}"));
    }
}

#[test]
fn a_clickhouse_shard_stopped_mid_ingest() {
    let _one = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(f) = faults(100_000) else {
        return;
    };
    let urls = fresh("shard").expect("cluster");
    let n = meterbook_core::EnrollmentNumber::parse(ENROLLMENT).expect("number");
    // The shard that holds this enrollment's facts (1-based for the script).
    let shard = meterbook_clickhouse::shard_of(&n, 2) + 1;
    let at = At::Cluster(urls);
    prepare(&at, &f.data);
    let child = spawn_ingest(&at, &f.usage, Stdio::piped(), Stdio::piped());
    let mut child = child;
    std::thread::sleep(f.takes / 4);
    assert!(
        child.try_wait().expect("child").is_none(),
        "the ingest ended before the shard was stopped: the test needs a larger file here"
    );
    cluster_script(&["kill-shard", &shard.to_string()]);
    let out = child.wait_with_output().expect("wait");
    cluster_script(&["start-shard", &shard.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the ingest went through a stopped shard"
    );
    assert!(
        err.contains("ClickHouse") || err.contains("127.0.0.1"),
        "the error does not say what failed: {err}"
    );
    assert!(
        !err.contains("SELECT") && !err.contains("INSERT"),
        "SQL in the error: {err}"
    );
    recovers(&f, &at, "shard stopped");
}

#[test]
fn postgresql_restarted_mid_ingest() {
    let _one = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(f) = faults(60_000) else {
        return;
    };
    let at = At::Cluster(fresh("pgrestart").expect("cluster"));
    prepare(&at, &f.data);
    let child = spawn_ingest(&at, &f.usage, Stdio::piped(), Stdio::piped());
    std::thread::sleep(f.takes / 2);
    cluster_script(&["restart-pg"]);
    // It may fail (its connection went away) or finish (it was between
    // statements); either way nothing may be lost or doubled.
    let out = child.wait_with_output().expect("wait");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
    recovers(&f, &at, "PostgreSQL restarted");
}

#[test]
fn doctor_says_what_is_wrong_in_one_line_each() {
    let _one = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(urls) = fresh("doctor") else {
        return;
    };
    let at = At::Cluster(urls.clone());
    // A database nothing has opened yet: no Meterbook schema.
    let out = run(&at, &["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("FAIL PostgreSQL") && text.contains("no Meterbook schema"),
        "{text}"
    );
    ok(&at, &["migrate"]);
    let text = ok(&at, &["doctor"]);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        2,
        "{text}"
    );
    // A ClickHouse shard that does not answer, a password that is refused.
    let wrong = ClusterUrls {
        store: urls.store.replacen("meterbook@", "meterbook:secret@", 1),
        usage_store: urls.usage_store.replacen(":58", ":1", 1),
    };
    let out = run(&At::Cluster(wrong), &["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.iter().any(|l| l.contains("ClickHouse")), "{text}");
    assert!(!text.contains("secret"), "a password in the output: {text}");
    for l in &fails {
        assert!(!l.contains("SELECT") && !l.contains('\n'), "{l}");
    }
}

/// SIGTERM ends `serve` on the cluster with exit status 0. The PostgreSQL
/// client closes its connections by blocking on a runtime of its own, so the
/// store must be dropped outside the server's runtime: it was not, and every
/// stop aborted ("Cannot start a runtime from within a runtime").
#[test]
fn serve_on_the_cluster_stops_cleanly_on_sigterm() {
    let _one = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(urls) = fresh("sigterm") else {
        return;
    };
    let reports = tempfile::tempdir().expect("temp dir");
    let at = At::Cluster(urls);
    let mut server = command(
        &at,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--report-dir",
            &reports.path().display().to_string(),
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn serve");
    let mut stderr = BufReader::new(server.stderr.take().expect("stderr"));
    let mut banner = String::new();
    stderr
        .read_line(&mut banner)
        .expect("the server's first line");
    assert!(banner.contains("http://"), "{banner}");
    // One answered request: the server is in its accept loop, where SIGTERM
    // is handled (before that, the signal's default action ends it).
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("an address in the banner");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    std::io::Write::write_all(
        &mut conn,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("send");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("run kill");
    assert!(term.success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("the server's log");
    let status = server.wait().expect("reap the server");
    assert!(
        status.success(),
        "serve exited with {status} after SIGTERM:\n{rest}"
    );
}
