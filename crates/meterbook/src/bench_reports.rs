//! `bench-reports`: advanced report jobs on a database made by `bench`,
//! through the real path (submit, claim, export, hash, fsync, rename,
//! manifest), one format per run so each run's peak memory is its own; and
//! with `--api`, balancesummary latency over HTTP while four reports run.

use crate::cli::BenchReportsArgs;
use anyhow::{bail, Context, Result};
use meterbook_app::jobs::ReportRequest;
use meterbook_app::{App, Span};
use meterbook_core::access::{Scope, Slot};
use meterbook_core::{Day, EnrollmentNumber};
use meterbook_jobs::{DirReportFiles, JobSettings};
use meterbook_sqlite::SqliteStore;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(settings: &crate::settings::Settings, a: &BenchReportsArgs) -> Result<()> {
    let db = a.dir.join("bench.db");
    if !db.exists() {
        bail!(
            "no {}: run `meterbook bench --rows N --dir {}` first",
            db.display(),
            a.dir.display()
        );
    }
    let store = Arc::new(SqliteStore::open(&db)?);
    let n = EnrollmentNumber::parse("100001").map_err(anyhow::Error::msg)?;
    let (from, to): (Day, Day) = (
        "2025-01-01".parse().expect("date"),
        "2025-12-31".parse().expect("date"),
    );
    if a.api {
        return api_under_load(settings, store, &n, from, to, a);
    }
    let dir = a.dir.join("reports");
    let _ = std::fs::remove_dir_all(&dir);
    let files = Arc::new(DirReportFiles::new(&dir)?);
    let app = App::new(
        store,
        files,
        JobSettings {
            workers: 1,
            focus: settings.focus.clone(),
            // Each run's job stays on record after its file is removed: runs
            // of one format after another must not count against a quota.
            max_bytes_per_requester: u64::MAX,
            ..Default::default()
        },
        meterbook_core::clock::system(),
    );
    let op = app.local_operator();
    let (job, _) = op.enrollment(&n)?.submit_report(ReportRequest {
        span: Span::Range(from, to),
        accounts: vec![],
        departments: vec![],
        format: meterbook_core::jobs::ExportFormat::requested(&a.format)
            .map_err(anyhow::Error::msg)?,
    })?;
    let t = Instant::now();
    app.runner().run_next(Some(&job.id))?;
    let secs = t.elapsed().as_secs_f64();
    let j = op.report_job(&job.id)?;
    if !j.status.has_file() {
        bail!("the job ended {}: {:?}", j.status.name(), j.error);
    }
    println!(
        "report job {:<14} {:>8.2} s   {:>10.0} rows/s   {:>7.1} MB/s   ({} rows, {:.1} MB)   peak memory {:.0} MB",
        a.format,
        secs,
        j.rows_done as f64 / secs,
        j.bytes as f64 / 1e6 / secs,
        j.rows_done,
        j.bytes as f64 / 1e6,
        crate::bench::peak_rss_mb().unwrap_or(f64::NAN)
    );
    if !a.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// One keep-alive HTTP/1.1 connection that GETs a path and reads the body.
struct Client {
    r: BufReader<std::net::TcpStream>,
    w: std::net::TcpStream,
    key: String,
}

impl Client {
    fn new(addr: std::net::SocketAddr, key: &str) -> Result<Client> {
        let s = std::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(Client {
            r: BufReader::new(s.try_clone()?),
            w: s,
            key: key.to_string(),
        })
    }

    fn request(&mut self, method: &str, path: &str, body: &str) -> Result<(u16, Vec<u8>)> {
        write!(
            self.w,
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.key,
            body.len()
        )?;
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("status line")?;
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse()?;
                }
            }
        }
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body)?;
        Ok((status, body))
    }
}

fn percentiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "no requests".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "{} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        v.len(),
        v[v.len() / 2],
        v[v.len() * 99 / 100],
        v[v.len() - 1]
    )
}

/// Latency of `path` from `threads` connections until `done` is set.
fn load(
    addr: std::net::SocketAddr,
    key: &str,
    path: &str,
    threads: usize,
    done: &AtomicBool,
) -> Result<Vec<f64>> {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<Vec<f64>> {
                    let mut c = Client::new(addr, key)?;
                    let mut lat = Vec::new();
                    while !done.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let (status, _) = c.request("GET", path, "")?;
                        if status != 200 {
                            bail!("{path}: HTTP {status}");
                        }
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in hs {
            all.extend(h.join().expect("client thread")?);
        }
        Ok(all)
    })
}

fn api_under_load(
    settings: &crate::settings::Settings,
    store: Arc<SqliteStore>,
    n: &EnrollmentNumber,
    from: Day,
    to: Day,
    a: &BenchReportsArgs,
) -> Result<()> {
    let op = crate::commands::operator_over(store.clone());
    let (key, _, _) =
        crate::commands::create_key(&op, n, Scope::Enrollment, Slot::Secondary, 30, false)?;
    let report_dir = a.dir.join("reports-api");
    let _ = std::fs::remove_dir_all(&report_dir);
    let mut jobs = settings.jobs.clone();
    jobs.workers = 4;
    let state = meterbook_server::AppState::new(
        store,
        meterbook_server::ServerSettings {
            rate_limit_per_sec: 1e9,
            rate_limit_burst: 1e9,
            jobs,
            report_dir: Some(report_dir.clone()),
            ..Default::default()
        },
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(meterbook_server::serve(listener, state, async {
        let _ = stop_rx.await;
    }));
    let path = format!(
        "/v3/enrollments/{n}/billingPeriods/{}/balancesummary",
        to.period()
    );
    // Idle baseline: 3 s of requests with no report running.
    let done = AtomicBool::new(false);
    let baseline = std::thread::scope(|s| {
        let h = s.spawn(|| load(addr, &key, &path, 2, &done));
        std::thread::sleep(Duration::from_secs(3));
        done.store(true, Ordering::Relaxed);
        h.join().expect("load")
    })?;
    // Four reports (four formats, so none is shared), then the same load until all end.
    let mut c = Client::new(addr, &key)?;
    let mut ids = Vec::new();
    for f in ["csv", "parquet", "csv.gz", "focus-parquet"] {
        let body = format!(r#"{{"startDate":"{from}","endDate":"{to}","format":"{f}"}}"#);
        let (status, b) = c.request("POST", &format!("/v3/enrollments/{n}/reports"), &body)?;
        if status != 202 {
            bail!("submit {f}: HTTP {status}: {}", String::from_utf8_lossy(&b));
        }
        let v: serde_json::Value = serde_json::from_slice(&b)?;
        ids.push(v["id"].as_str().context("id")?.to_string());
    }
    let t = Instant::now();
    let done = AtomicBool::new(false);
    let loaded = std::thread::scope(|s| {
        let h = s.spawn(|| load(addr, &key, &path, 2, &done));
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let finished = ids.iter().all(|id| {
                op.report_job(id).ok().is_some_and(|j| {
                    j.status != meterbook_core::jobs::JobStatus::Queued
                        && j.status != meterbook_core::jobs::JobStatus::InProgress
                })
            });
            if finished {
                break;
            }
        }
        done.store(true, Ordering::Relaxed);
        h.join().expect("load")
    })?;
    let secs = t.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    let _ = rt.block_on(server);
    println!(
        "balancesummary, idle:                 {}",
        percentiles(baseline)
    );
    println!(
        "balancesummary, while 4 reports run:  {}",
        percentiles(loaded)
    );
    for id in &ids {
        let j = op.report_job(id)?;
        println!(
            "  report {:<14} {:<15} {} rows, {:.1} MB",
            j.spec.format,
            j.status.name(),
            j.rows_done,
            j.bytes as f64 / 1e6
        );
    }
    println!(
        "all four done in {secs:.1} s; peak memory {:.0} MB",
        crate::bench::peak_rss_mb().unwrap_or(f64::NAN)
    );
    let _ = std::fs::remove_dir_all(&report_dir);
    Ok(())
}
