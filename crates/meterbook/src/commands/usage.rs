//! usage ingest and usage complete-through.

use super::{day, enrollment_number, now_rfc3339};
use crate::cli::{InputFormat, UsageCmd};
use anyhow::{bail, Context, Result};
use meterbook_app::Operator;
use meterbook_core::ingest::{IngestError, IngestOptions, IngestSummary};
use meterbook_core::usage::{RawUsage, Reject, USAGE_COLUMNS};
use meterbook_core::EnrollmentNumber;
use meterbook_io::input::usage::{Format, UsageReader};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

pub fn usage(op: &Operator, c: UsageCmd) -> Result<()> {
    match c {
        UsageCmd::Ingest {
            enrollment,
            file,
            format,
            skip_invalid,
            rejects,
        } => {
            let n = enrollment_number(&enrollment)?;
            let format = format.map(|f| match f {
                InputFormat::Csv => Format::Csv,
                InputFormat::Ndjson => Format::Ndjson,
            });
            let started = Instant::now();
            let sum = ingest_file(op, &n, &file, format, skip_invalid, rejects.as_deref())?;
            let secs = started.elapsed().as_secs_f64();
            let a = op.enrollment(&n)?;
            let e = a.enrollment();
            let name = if file == "-" {
                "<stdin>"
            } else {
                file.as_str()
            };
            println!(
                "{name}: read {}, stored {}, duplicates {}, rejected {} in {:.2} s ({:.0} rows/s); usage complete through {}; generated {}",
                sum.read,
                sum.stored,
                sum.duplicates,
                sum.rejected,
                secs,
                sum.read as f64 / secs.max(1e-9),
                e.watermark.map_or("(not set)".to_string(), |d| d.to_string()),
                now_rfc3339(),
            );
            Ok(())
        }
        UsageCmd::CompleteThrough { enrollment, date } => {
            let n = enrollment_number(&enrollment)?;
            let d = day(&date, "date")?;
            op.set_watermark(&n, d)?;
            println!("enrollment {n}: usage complete through {d}");
            Ok(())
        }
    }
}

/// Ingests one file (or `-` for stdin). All-or-nothing unless `skip_invalid`.
pub fn ingest_file(
    op: &Operator,
    n: &EnrollmentNumber,
    file: &str,
    format: Option<Format>,
    skip_invalid: bool,
    rejects_path: Option<&Path>,
) -> Result<IngestSummary> {
    let input: Box<dyn Read + Send> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("cannot read {file}"))?)
    };
    let name = if file == "-" { "<stdin>" } else { file };
    let mut reader = UsageReader::open(input, format).map_err(|r| {
        let place = match r.column {
            Some(c) => format!("{name}:{}: {c}", r.line),
            None => format!("{name}:{}", r.line),
        };
        anyhow::anyhow!("{place}: {}", r.reason)
    })?;
    let mut reject_out = match rejects_path {
        Some(p) => {
            let f = std::fs::File::create(p)
                .with_context(|| format!("cannot create reject file {}", p.display()))?;
            let mut w = BufWriter::new(f);
            let mut header = vec!["Line", "Column", "Reason"];
            header.extend(USAGE_COLUMNS);
            writeln!(w, "{}", header.join(","))?;
            Some(w)
        }
        None => None,
    };
    let mut reject_lines: Vec<Reject> = Vec::new();
    let mut write_err: Option<std::io::Error> = None;
    let result = {
        let mut on_reject = |r: &Reject, raw: Option<&RawUsage<'_>>| {
            if let Some(w) = reject_out.as_mut() {
                if let Err(e) = write_reject(w, r, raw) {
                    write_err.get_or_insert(e);
                }
            } else if reject_lines.len() < 100 {
                reject_lines.push(r.clone());
            }
        };
        op.ingest(
            n,
            &mut reader,
            IngestOptions {
                skip_invalid,
                ..Default::default()
            },
            &mut on_reject,
        )
    };
    if let Some(mut w) = reject_out {
        w.flush()?;
    }
    if let Some(e) = write_err {
        return Err(e).context("writing the reject file");
    }
    match result {
        Ok(sum) => {
            if skip_invalid && rejects_path.is_none() {
                for r in &reject_lines {
                    eprintln!("skipped {}", reader.describe(name, r));
                }
            }
            Ok(sum)
        }
        Err(IngestError::Rejected { rejects, read }) => {
            for r in &rejects {
                eprintln!("{}", reader.describe(name, r));
            }
            let more = if rejects.len() >= 100 {
                " (stopped at the first 100 errors)"
            } else {
                ""
            };
            if skip_invalid {
                // What refuses a file even then (a record past the size bound,
                // a total past the supported range) cannot be skipped: the
                // reject file would only mislead.
                if let Some(p) = rejects_path {
                    let _ = std::fs::remove_file(p);
                }
                bail!(
                    "{name}: {} record(s) in {read} read refuse the whole file, even with --skip-invalid; nothing was stored (fix the records named above)",
                    rejects.len()
                )
            }
            bail!(
                "{name}: {} invalid record(s) in {read} read{more}; nothing was stored (fix the file, or use --skip-invalid --rejects FILE)",
                rejects.len()
            )
        }
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}

fn write_reject(w: &mut dyn Write, r: &Reject, raw: Option<&RawUsage<'_>>) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut push = |s: &str, first: bool| {
        if !first {
            line.push(b',');
        }
        if s.bytes().any(|c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
            line.push(b'"');
            line.extend_from_slice(s.replace('"', "\"\"").as_bytes());
            line.push(b'"');
        } else {
            line.extend_from_slice(s.as_bytes());
        }
    };
    push(&r.line.to_string(), true);
    push(r.column.unwrap_or(""), false);
    push(&r.reason, false);
    let fields = raw.map(|u| {
        [
            u.record_id,
            u.subscription_guid,
            u.date,
            u.meter_id,
            u.consumed_quantity,
            u.instance_id,
            u.resource_group,
            u.resource_location,
            u.consumed_service,
            u.tags,
            u.additional_info,
            u.service_info1,
            u.service_info2,
        ]
    });
    for i in 0..USAGE_COLUMNS.len() {
        push(fields.map_or("", |f| f[i]), false);
    }
    line.push(b'\n');
    w.write_all(&line)
}
