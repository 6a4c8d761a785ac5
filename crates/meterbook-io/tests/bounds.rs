//! Bounds on input: every reader holds at most one bounded record whatever it
//! is fed, refuses an over-long record naming file and line, and every error
//! that quotes input stays short. Its own test binary because it counts the
//! heap with a global allocator.

use meterbook_conformance::fixture::{enrollment, meter, n, prices, G1};
use meterbook_core::ingest::{ingest, IngestError, IngestOptions, UsageSource};
use meterbook_core::usage::{max_len, Catalog, Reject, USAGE_COLUMNS};
use meterbook_core::{Day, EnrollmentNumber, Period};
use meterbook_io::input::usage::{Format, UsageReader};
use meterbook_io::input::{hierarchy, prices as price_sheet, MAX_RECORD};
use meterbook_sqlite::SqliteStore;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards the caller's contract to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Tests run one at a time so a peak belongs to the test that measures it.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The heap `f` needed beyond what was live before it.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// A reader's working set with room to spare: its buffers and one record,
/// whose field bounds cost 8 bytes a field (a record of commas: 8 times its size).
const FLAT: usize = 16 << 20;

const USAGE_HEADER: &str = "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity\n";

fn commas(n: u64) -> impl Read {
    std::io::repeat(b',').take(n)
}

fn chain(a: &str, b: impl Read, c: &str) -> impl Read + Send {
    let mut v = Vec::new();
    v.extend_from_slice(a.as_bytes());
    b.chain(std::io::Cursor::new(c.as_bytes().to_vec()))
        .read_to_end(&mut v)
        .expect("in memory");
    std::io::Cursor::new(v)
}

/// Every reject a usage file gives, as `u.csv:line: reason`.
fn usage_errors(input: impl Read, format: Option<Format>) -> Vec<String> {
    let mut r = match UsageReader::open(input, format) {
        Ok(r) => r,
        Err(e) => return vec![format!("u.csv:{}: {}", e.line, e.reason)],
    };
    let mut out = Vec::new();
    loop {
        let rej = match r.next_record() {
            None => return out,
            Some(Ok(_)) => continue,
            Some(Err(rej)) => rej,
        };
        out.push(r.describe("u.csv", &rej).to_string());
    }
}

#[test]
fn a_line_of_commas_is_refused_with_flat_memory() {
    let _g = serial();
    let input = std::io::Cursor::new(USAGE_HEADER.as_bytes()).chain(commas(30_000_000));
    let (errors, peak) = peak_during(|| usage_errors(input, None));
    assert_eq!(errors, ["u.csv:2: record longer than 262144 bytes"]);
    assert!(peak < FLAT, "peak {peak} bytes");
}

#[test]
fn a_header_of_commas_and_a_huge_header_name_are_refused() {
    let _g = serial();
    let (errors, peak) = peak_during(|| usage_errors(commas(30_000_000), Some(Format::Csv)));
    assert_eq!(errors, ["u.csv:1: record longer than 262144 bytes"]);
    assert!(peak < FLAT, "peak {peak} bytes");
    // A 50 MB header name.
    let name = std::io::repeat(b'n').take(50 << 20);
    let input = std::io::Cursor::new(b"RecordId,".to_vec()).chain(name);
    let (errors, peak) = peak_during(|| usage_errors(input, None));
    assert_eq!(errors, ["u.csv:1: record longer than 262144 bytes"]);
    assert!(peak < FLAT, "peak {peak} bytes");
    let e = hierarchy::read("h.csv", std::io::repeat(b'n').take(50 << 20)).unwrap_err();
    assert_eq!(e.to_string(), "h.csv:1: record longer than 262144 bytes");
}

#[test]
fn a_quoted_field_over_millions_of_lines_is_refused_at_its_first_line() {
    let _g = serial();
    let input = chain(
        &format!("{USAGE_HEADER}r1,g,2026-11-01,m,1\nr2,\""),
        std::io::repeat(b'\n').take(5_000_000),
        "\",2026-11-01,m,1\n",
    );
    let (errors, peak) = peak_during(|| usage_errors(input, None));
    assert_eq!(errors, ["u.csv:3: record longer than 262144 bytes"]);
    assert!(peak < FLAT, "peak {peak} bytes");
}

#[test]
fn blank_lines_and_a_record_at_the_bound_are_fine() {
    let _g = serial();
    // Blank lines belong to no record.
    let input = chain(
        USAGE_HEADER,
        std::io::repeat(b'\n').take(2 * MAX_RECORD as u64),
        "r1,g,2026-11-01,m,1\n",
    );
    let mut r = UsageReader::open(input, None).unwrap();
    let rec = r.next_record().unwrap().unwrap();
    assert_eq!((rec.record_id, rec.line), ("r1", 2 * MAX_RECORD as u64 + 2));
    // The largest record the field limits allow, every quote doubled, fits.
    let fields: Vec<String> = USAGE_COLUMNS
        .iter()
        .map(|c| match *c {
            "Tags" | "AdditionalInfo" => {
                let pairs = (max_len(c) - 2) / 6;
                format!("{{{}}}", vec![r#""":"""#; pairs].join(","))
            }
            "Date" => "2026-11-01".to_string(),
            "ConsumedQuantity" => "1".to_string(),
            c => "\"".repeat(max_len(c)),
        })
        .collect();
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
        .collect();
    let record = format!("{}\n{}\n", USAGE_COLUMNS.join(","), quoted.join(","));
    assert!(record.len() > 120_000, "{}", record.len());
    let mut r = UsageReader::open(record.as_bytes(), None).unwrap();
    let rec = r.next_record().unwrap().unwrap();
    for ((c, got), want) in USAGE_COLUMNS.iter().zip(rec.fields()).zip(&fields) {
        assert!(got == want && got.len() <= max_len(c), "{c}");
    }
    // A record of exactly the bound (with its newline), then another.
    let fill = MAX_RECORD - "r1,g,2026-11-01,m,\n".len();
    let input = format!(
        "{USAGE_HEADER}r1,g,2026-11-01,m,{}\nr2,g,2026-11-01,m,1",
        "1".repeat(fill)
    );
    let mut r = UsageReader::open(input.as_bytes(), None).unwrap();
    assert_eq!(
        r.next_record().unwrap().unwrap().consumed_quantity.len(),
        fill
    );
    assert_eq!(r.next_record().unwrap().unwrap().record_id, "r2");
    let input = format!("{USAGE_HEADER}r1,g,2026-11-01,m,{}\n", "1".repeat(fill + 1));
    assert_eq!(
        usage_errors(input.as_bytes(), None),
        ["u.csv:2: record longer than 262144 bytes"]
    );
}

#[test]
fn price_sheets_and_hierarchies_bound_their_records() {
    let _g = serial();
    let header = "MeterId,MeterName,UnitPrice\nm,n,1\n";
    let input = std::io::Cursor::new(header.as_bytes()).chain(commas(30_000_000));
    let (e, peak) = peak_during(|| price_sheet::read("p.csv", input).unwrap_err());
    assert_eq!(e.to_string(), "p.csv:3: record longer than 262144 bytes");
    assert!(peak < FLAT, "peak {peak} bytes");
    let header = "AccountName,AccountOwnerEmail,SubscriptionGuid\n";
    let input = std::io::Cursor::new(header.as_bytes()).chain(commas(30_000_000));
    let (e, peak) = peak_during(|| hierarchy::read("h.csv", input).unwrap_err());
    assert_eq!(e.to_string(), "h.csv:2: record longer than 262144 bytes");
    assert!(peak < FLAT, "peak {peak} bytes");
}

#[test]
fn a_sheet_of_too_many_rows_is_refused() {
    let _g = serial();
    let rows = "a,a@b.example,g\n".repeat(meterbook_io::input::MAX_SHEET_ROWS + 1);
    let input = format!("AccountName,AccountOwnerEmail,SubscriptionGuid\n{rows}");
    let e = hierarchy::read("h.csv", input.as_bytes())
        .map(|rows| rows.len())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "h.csv:100002: file longer than 100000 records or 33554432 bytes"
    );
}

#[test]
fn an_over_long_ndjson_line_is_skipped_with_flat_memory() {
    let _g = serial();
    let good = r#"{"RecordId":"r2","SubscriptionGuid":"g","Date":"2026-11-01","MeterId":"m","ConsumedQuantity":1}"#;
    let input = chain(
        "{\"RecordId\":\"",
        std::io::repeat(b'x').take(30_000_000),
        &format!("\"}}\n{good}\n"),
    );
    let (ids, peak) = peak_during(|| {
        let mut r = UsageReader::open(input, None).unwrap();
        let e = r.next_record().unwrap().unwrap_err();
        assert_eq!(e.reason, "line longer than 262144 bytes");
        let id = r.next_record().unwrap().unwrap().record_id.to_string();
        assert!(r.next_record().is_none());
        id
    });
    assert_eq!(ids, "r2");
    assert!(peak < FLAT, "peak {peak} bytes");
}

#[test]
fn ndjson_with_a_byte_order_mark_is_ndjson_and_csv_with_one_still_csv() {
    let _g = serial();
    let line = r#"{"RecordId":"r1","SubscriptionGuid":"g","Date":"2026-11-01","MeterId":"m","ConsumedQuantity":1.5}"#;
    let input = format!("\u{feff}{line}\n{line}\n");
    let mut r = UsageReader::open(input.as_bytes(), None).unwrap();
    assert!(matches!(r, UsageReader::Ndjson(_)));
    for _ in 0..2 {
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!((rec.record_id, rec.consumed_quantity), ("r1", "1.5"));
    }
    // Also when the format is given.
    let mut r = UsageReader::open(input.as_bytes(), Some(Format::Ndjson)).unwrap();
    assert_eq!(r.next_record().unwrap().unwrap().record_id, "r1");
    let csv = format!("\u{feff}{USAGE_HEADER}r1,g,2026-11-01,m,1\n");
    let mut r = UsageReader::open(csv.as_bytes(), None).unwrap();
    assert!(matches!(r, UsageReader::Csv(_)));
    assert_eq!(r.next_record().unwrap().unwrap().record_id, "r1");
}

/// Errors quote at most a short escaped prefix of a value, whatever its size.
#[test]
fn errors_quote_a_short_escaped_prefix() {
    let _g = serial();
    let short = |e: &str| {
        assert!(e.len() < 1024, "{} bytes: {}…", e.len(), &e[..200]);
        assert!(!e.contains('\n'), "{e}");
    };
    // Values as large as a record allows, with a newline to forge a log line.
    let big = format!("x\n{}", "v".repeat(200_000));
    for e in usage_errors(format!("RecordId,\"{big}\"\n").as_bytes(), None) {
        short(&e);
        assert!(e.contains("unknown column `x\\nvvv"), "{e}");
        assert!(e.ends_with("… (200002 bytes)` (expected some of: RecordId, SubscriptionGuid, Date, MeterId, ConsumedQuantity, InstanceId, ResourceGroup, ResourceLocation, ConsumedService, Tags, AdditionalInfo, ServiceInfo1, ServiceInfo2)"), "{e}");
    }
    let e = hierarchy::read("h.csv", format!("AccountName,\"{big}\"\n").as_bytes()).unwrap_err();
    short(&e.to_string());
    assert!(
        e.to_string()
            .starts_with("h.csv:1: column 2: unknown column `x\\nv"),
        "{e}"
    );
    let e = hierarchy::read(
        "h.csv",
        format!("AccountName,AccountName,\"{big}\"\n").as_bytes(),
    )
    .unwrap_err();
    short(&e.to_string());
    let sheet = |row: &str| {
        let input = format!("MeterId,MeterName,UnitPrice,ChargesBilledSeparately\n{row}\n");
        price_sheet::read("p.csv", input.as_bytes())
            .unwrap_err()
            .to_string()
    };
    for e in [
        sheet(&format!("m,n,\"{big}\",false")),
        sheet(&format!("m,n,1,\"{big}\"")),
    ] {
        short(&e);
        assert!(
            e.contains("`x\\nvvv") && e.contains("… (200002 bytes)`"),
            "{e}"
        );
    }
    let ndjson = |line: String| usage_errors(format!("{line}\n").as_bytes(), Some(Format::Ndjson));
    for e in ndjson(format!("{{\"{}\":1}}", big.replace('\n', "\\n")))
        .into_iter()
        .chain(ndjson(format!("\"{}\"", big.replace('\n', "\\n"))))
        .chain(ndjson(format!(
            "{{\"RecordId\":[\"{}\"]}}",
            big.replace('\n', "\\n")
        )))
    {
        short(&e);
    }
    // Core parsing and validation, with a 1 MB value.
    let huge = format!("2026-11-01\n{}", "9".repeat(1 << 20));
    short(&huge.parse::<Day>().unwrap_err().0);
    short(&huge.parse::<Period>().unwrap_err().0);
    short(&EnrollmentNumber::parse(&huge).unwrap_err());
    short(&meterbook_core::Currency::parse(&huge).unwrap_err());
    short(
        &meterbook_core::usage::check_tags(&format!("\"{huge}\"").replace('\n', "")).unwrap_err(),
    );
    short(&meterbook_core::usage::check_object(&format!("{{\"a\":1 {huge}}}")).unwrap_err());
    let raw = meterbook_core::usage::RawUsage {
        line: 2,
        record_id: &huge,
        subscription_guid: &huge,
        date: &huge,
        meter_id: &huge,
        consumed_quantity: &huge,
        ..Default::default()
    };
    short(&Catalog::default().classify(&raw).unwrap_err().reason);
    let raw = meterbook_core::usage::RawUsage {
        line: 2,
        record_id: "r1",
        subscription_guid: "g",
        date: "2026-11-01\n2026-11-01 INFO forged",
        meter_id: "m",
        consumed_quantity: "1",
        ..Default::default()
    };
    let e = Catalog::default().classify(&raw).unwrap_err().reason;
    short(&e);
    assert!(e.starts_with("`2026-11-01\\n2026"), "{e}");
}

/// An over-long record cannot be skipped reliably (where the next record
/// starts is unknown): even with skip-invalid the whole file is refused.
#[test]
fn skip_invalid_refuses_a_file_with_an_over_long_record() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("b.db")).unwrap();
    enrollment(&s, "USD");
    prices(&s, "202501", &[meter("c", "0", &[("0", "1")])]);
    let ok = |id: &str| format!("{id},{G1},2025-01-02,c,1\n");
    let input = chain(
        &format!("{USAGE_HEADER}{}", ok("r1")),
        commas(10_000_000),
        &format!("\n{}", ok("r2")),
    );
    let run = |input: Box<dyn Read + Send>, skip_invalid: bool| {
        let mut src = UsageReader::open(input, None).unwrap();
        let n: EnrollmentNumber = n();
        ingest(
            &s,
            &n,
            &mut src,
            IngestOptions {
                skip_invalid,
                ..Default::default()
            },
            &mut |_, _| {},
        )
    };
    match run(Box::new(input), true) {
        Err(IngestError::Rejected { rejects, .. }) => {
            assert_eq!(rejects.len(), 1);
            assert_eq!(
                (rejects[0].line, rejects[0].reason.as_str()),
                (3, "record longer than 262144 bytes")
            );
        }
        other => panic!("{other:?}"),
    }
    // Nothing was stored: r1 is new.
    let again = format!("{USAGE_HEADER}{}", ok("r1"));
    let sum = run(Box::new(std::io::Cursor::new(again.into_bytes())), false).unwrap();
    assert_eq!((sum.stored, sum.duplicates), (1, 0));
}

/// Records at their field limits, made on the fly.
struct LargeRecords {
    left: u32,
    id: String,
    tags: String,
}

impl UsageSource for LargeRecords {
    fn next_record(&mut self) -> Option<Result<meterbook_core::usage::RawUsage<'_>, Reject>> {
        self.left = self.left.checked_sub(1)?;
        self.id = format!("big-{}", self.left);
        Some(Ok(meterbook_core::usage::RawUsage {
            line: u64::from(self.left) + 2,
            record_id: &self.id,
            subscription_guid: G1,
            date: "2025-01-02",
            meter_id: "c",
            consumed_quantity: "1",
            tags: &self.tags,
            additional_info: &self.tags,
            ..Default::default()
        }))
    }
}

/// Batches handed to the writer are bounded in bytes, not only in records:
/// 2,048 records of 64 KiB each would be 128 MiB a batch.
#[test]
fn an_ingest_of_large_records_keeps_its_batches_small() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("l.db")).unwrap();
    enrollment(&s, "USD");
    prices(&s, "202501", &[meter("c", "0", &[("0", "1")])]);
    let mut src = LargeRecords {
        left: 3000,
        id: String::new(),
        tags: format!("{{\"k\":\"{}\"}}", "t".repeat(max_len("Tags") - 8)),
    };
    let (sum, peak) = peak_during(|| {
        ingest(&s, &n(), &mut src, IngestOptions::default(), &mut |_, _| {}).unwrap()
    });
    assert_eq!(sum.stored, 3000);
    // Six batches of at most 4 MiB, and the cache of record profiles (32 MiB).
    assert!(peak < 64 << 20, "peak {} MiB", peak >> 20);
}
