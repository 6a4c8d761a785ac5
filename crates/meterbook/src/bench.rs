//! `meterbook bench`: generates a data set (realistic by default, see
//! `bench_data`; `--shape ordered` for the demo's ordered one), then measures
//! the real paths — CSV ingest, re-ingest of the same file, usage-details CSV
//! export, statement latency — and reports bytes on disk per row and peak
//! memory. `scripts/bench-duckdb.py` runs DuckDB on the same CSV for comparison.

use crate::bench_data;
use crate::cli::{BenchArgs, BenchShape};
use crate::commands::ingest_file;
use crate::demo::{generate, load};
use anyhow::{Context, Result};
use meterbook_app::reads::Details;
use meterbook_app::Span;
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::{Currency, Day, EnrollmentNumber};
use meterbook_io::report::ReportFormat;
use meterbook_sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Instant;

/// The generator's seed: every run draws the same data, so runs compare.
const SEED: u64 = 42;

pub(crate) fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn run(a: &BenchArgs) -> Result<()> {
    let dir = &a.dir;
    std::fs::create_dir_all(dir)?;
    let (first, last) = match a.shape {
        BenchShape::Realistic => (bench_data::first_day(), bench_data::last_day()),
        BenchShape::Ordered => (
            "2025-01-01".parse().expect("date"),
            "2025-12-31".parse().expect("date"),
        ),
    };
    let marker = dir.join("rows.txt");
    let usage = dir.join("usage.csv");
    let stamp = format!("{} {:?} seed {SEED}", a.rows, a.shape);
    let t = Instant::now();
    // Same size and shape as last time: the generator is deterministic, reuse the files.
    let reuse =
        std::fs::read_to_string(&marker).ok().as_deref() == Some(stamp.as_str()) && usage.exists();
    let g = match a.shape {
        BenchShape::Realistic => bench_data::plan(a.rows, SEED).write(dir, !reuse)?,
        BenchShape::Ordered if reuse => generate_meta_only(dir, first, last)?,
        BenchShape::Ordered => generate(dir, a.rows, first, last, SEED)?,
    };
    if !reuse {
        std::fs::write(&marker, &stamp)?;
    }
    let gen_secs = t.elapsed().as_secs_f64();
    let csv_bytes = std::fs::metadata(&usage)?.len();
    let db_path = dir.join("bench.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db_path.display()));
    }
    let store = Arc::new(SqliteStore::open(&db_path)?);
    // The operator's path, as `meterbook` commands take it.
    let op = crate::commands::operator_over(store.clone());
    let n = EnrollmentNumber::parse("100001").map_err(anyhow::Error::msg)?;
    op.create_enrollment(&NewEnrollment {
        number: n.clone(),
        name: "Bench".into(),
        currency: Currency::parse("USD").map_err(anyhow::Error::msg)?,
        // The year's start whatever the shape: `bench-reports` asks for all of 2025.
        start: "2025-01-01".parse().expect("date"),
        end: "2027-12-31".parse().expect("date"),
        visibility: ChargeVisibility::default(),
    })?;
    load(&op, &n, &g)?;

    let t = Instant::now();
    let sum = ingest_file(&op, &n, &usage.display().to_string(), None, false, None)?;
    let ingest_secs = t.elapsed().as_secs_f64();
    let rows = sum.stored;
    anyhow::ensure!(
        sum.rejected == 0 && sum.duplicates == 0,
        "the generated file should ingest whole: {sum:?}"
    );

    // The same file again: every record a duplicate, nothing stored.
    let t = Instant::now();
    let again = ingest_file(&op, &n, &usage.display().to_string(), None, false, None)?;
    let reingest_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        again.stored == 0 && again.duplicates == rows,
        "re-ingest should find only duplicates: {again:?}"
    );

    let export = dir.join("export.csv");
    let t = Instant::now();
    let access = op.enrollment(&n)?;
    let report = access.usage_details(Span::Range(first, last), &Details::default())?;
    let mut f = std::fs::File::create(&export)?;
    let totals = report.write(ReportFormat::Csv, &mut f)?;
    drop(f);
    let export_secs = t.elapsed().as_secs_f64();
    let export_bytes = std::fs::metadata(&export)?.len();
    // The same report into a sink: what encoding costs without the file system.
    let t = Instant::now();
    let sink_totals = report.write(ReportFormat::Csv, &mut std::io::sink())?;
    let sink_secs = t.elapsed().as_secs_f64();
    assert_eq!(sink_totals, totals);

    let p = last.period();
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        // Computed each time (not the layer's cache): what a first request costs.
        let st = access
            .enterprise()?
            .statements(p)?
            .pop()
            .context("no statement")?;
        std::hint::black_box(st);
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    store.checkpoint()?;
    let db_bytes = std::fs::metadata(&db_path)?.len();
    let peak = peak_rss_mb().unwrap_or(f64::NAN);

    println!(
        "meterbook bench: {rows} usage rows, {:?} shape, {first} to {last} ({:.1} MB CSV), generated in {gen_secs:.1} s",
        a.shape,
        csv_bytes as f64 / 1e6
    );
    println!(
        "ingest            {ingest_secs:>8.2} s   {:>10.0} rows/s",
        rows as f64 / ingest_secs
    );
    println!(
        "re-ingest (dups)  {reingest_secs:>8.2} s   {:>10.0} rows/s   ({:.2}× the first ingest)",
        rows as f64 / reingest_secs,
        ingest_secs / reingest_secs
    );
    println!(
        "export usage CSV  {export_secs:>8.2} s   {:>10.0} rows/s   {:.1} MB/s   ({} rows, {:.1} MB)",
        totals.rows as f64 / export_secs,
        export_bytes as f64 / 1e6 / export_secs,
        totals.rows,
        export_bytes as f64 / 1e6
    );
    println!(
        "  (to a sink)     {sink_secs:>8.2} s   {:>10.0} rows/s   {:.1} MB/s",
        totals.rows as f64 / sink_secs,
        export_bytes as f64 / 1e6 / sink_secs
    );
    println!(
        "statement {p}     median {:.3} ms   p99 {:.3} ms   (200 runs)",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    println!(
        "bytes on disk     {:.1} per row   ({:.1} MB database)",
        db_bytes as f64 / rows as f64,
        db_bytes as f64 / 1e6
    );
    println!("peak memory       {peak:.0} MB (VmHWM of this process, generation included)");
    println!("files in {}: usage.csv (input), export.csv (output); compare: python3 scripts/bench-duckdb.py {}", dir.display(), dir.display());
    Ok(())
}

/// Rebuilds the file list of an earlier generation without rewriting usage.csv.
fn generate_meta_only(
    dir: &std::path::Path,
    first: Day,
    last: Day,
) -> Result<crate::demo::Generated> {
    let tmp = dir.join("meta");
    let mut g =
        generate(&tmp, 0, first, first, SEED).context("regenerating hierarchy and prices")?;
    // Price sheets cover every period of the usage.
    let full = generate(&tmp, 0, first, last, SEED)?;
    g.prices = full.prices;
    g.usage = dir.join("usage.csv");
    Ok(g)
}
