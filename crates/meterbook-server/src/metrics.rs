//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Written by hand rather than with a metrics crate: half of the figures are
//! read from the store at scrape time (job queue, watermark ages), which a
//! registry of pre-declared metrics models awkwardly, and the format for
//! counters, gauges and histograms is a few lines; this keeps the build free
//! of another proc-macro crate. Label values are escaped as the format asks.
//!
//! What is counted in this process: HTTP requests by route template (never
//! the raw path: a route is one series whatever its ids) and status, their
//! latency, and rows stored and rejected by operator uploads. Read at scrape
//! time: report jobs by status, the durations of jobs that finished since
//! this process started, and each enrollment's watermark age.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Request latency buckets, in seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Report job duration buckets, in seconds.
const JOB_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0];

#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
        }
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0;
        for (i, b) in bounds.iter().enumerate() {
            cum += self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// The figures counted in this process.
pub struct Metrics {
    /// Unix ms: jobs that finished earlier are not this process's to count.
    started_ms: i64,
    /// (route, method, status) -> requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    ingest_stored: AtomicU64,
    ingest_rejected: AtomicU64,
    /// Jobs whose duration is already in the histogram.
    jobs: Mutex<(HashSet<String>, Histogram)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            started_ms: meterbook_jobs::now_ms(),
            requests: Default::default(),
            latency: Default::default(),
            ingest_stored: Default::default(),
            ingest_rejected: Default::default(),
            jobs: Default::default(),
        }
    }

    /// Rows an operator upload stored and rejected.
    pub fn ingested(&self, stored: u64, rejected: u64) {
        self.ingest_stored.fetch_add(stored, Ordering::Relaxed);
        self.ingest_rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    fn request(&self, route: String, method: String, status: u16, secs: f64) {
        let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *r.entry((route.clone(), method, status)).or_default() += 1;
        drop(r);
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        l.entry(route).or_default().observe(HTTP_BUCKETS, secs);
    }
}

/// Counts every request by its route template and status, and times it (to
/// its response's headers: a download's streaming is not included).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    state.metrics().request(
        route,
        method,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the exposition reads from the store (through the use-case layer).
pub use meterbook_app::operator::Monitoring as Snapshot;

/// The whole exposition.
pub fn render(m: &Metrics, snap: Snapshot) -> String {
    let mut out = String::new();
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };

    head(
        &mut out,
        "meterbook_http_requests_total",
        "counter",
        "HTTP requests answered, by route template, method and status.",
    );
    for ((route, method, status), n) in m.requests.lock().unwrap_or_else(|p| p.into_inner()).iter()
    {
        let _ = writeln!(
            out,
            "meterbook_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
            escape(route),
            escape(method)
        );
    }
    head(
        &mut out,
        "meterbook_http_request_duration_seconds",
        "histogram",
        "Time to the response's headers, by route template.",
    );
    for (route, h) in m.latency.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        h.write(
            &mut out,
            "meterbook_http_request_duration_seconds",
            &format!("route=\"{}\"", escape(route)),
            HTTP_BUCKETS,
        );
    }

    head(
        &mut out,
        "meterbook_ingest_rows_total",
        "counter",
        "Usage rows of operator uploads to this process, by outcome.",
    );
    let _ = writeln!(
        out,
        "meterbook_ingest_rows_total{{outcome=\"stored\"}} {}",
        m.ingest_stored.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "meterbook_ingest_rows_total{{outcome=\"rejected\"}} {}",
        m.ingest_rejected.load(Ordering::Relaxed)
    );

    head(
        &mut out,
        "meterbook_report_jobs",
        "gauge",
        "Report jobs in the store, by status.",
    );
    for (status, n) in &snap.jobs_by_status {
        let _ = writeln!(out, "meterbook_report_jobs{{status=\"{status}\"}} {n}");
    }

    head(
        &mut out,
        "meterbook_report_job_duration_seconds",
        "histogram",
        "Run time of report jobs that finished since this process started.",
    );
    {
        let mut g = m.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, h) = &mut *g;
        let live: HashSet<&str> = snap.finished.iter().map(|(id, ..)| id.as_str()).collect();
        for (id, at, secs) in &snap.finished {
            if *at >= m.started_ms && seen.insert(id.clone()) {
                h.observe(JOB_BUCKETS, *secs);
            }
        }
        // Jobs removed by retention can never come back: forget their ids.
        seen.retain(|id| live.contains(id.as_str()));
        h.write(
            &mut out,
            "meterbook_report_job_duration_seconds",
            "",
            JOB_BUCKETS,
        );
    }

    head(
        &mut out,
        "meterbook_watermark_age_seconds",
        "gauge",
        "Seconds since the end of each enrollment's usage-complete-through day.",
    );
    for (n, age) in &snap.watermark_age {
        let _ = writeln!(
            out,
            "meterbook_watermark_age_seconds{{enrollment=\"{}\"}} {age}",
            escape(n)
        );
    }
    out
}
