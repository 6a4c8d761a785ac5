use super::column::*;
use super::writer::*;
use crate::report::table::{Cell, ColType, Column, TableSink};
use meterbook_core::Day;
use parquet::basic::ConvertedType;
use parquet::basic::{LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::data_type::FixedLenByteArray;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use std::io::{self, Write};

fn day(y: i32, m: u32, d: u32) -> Day {
    Day::from_ymd(y, m, d).unwrap()
}

fn reader(buf: Vec<u8>) -> SerializedFileReader<bytes::Bytes> {
    SerializedFileReader::new(bytes::Bytes::from(buf)).unwrap()
}

fn rows(r: &SerializedFileReader<bytes::Bytes>) -> Vec<Vec<Field>> {
    r.get_row_iter(None)
        .unwrap()
        .map(|row| {
            row.unwrap()
                .into_columns()
                .into_iter()
                .map(|(_, f)| f)
                .collect()
        })
        .collect()
}

fn dec(f: &Field) -> i128 {
    match f {
        Field::Decimal(d) => i128::from_be_bytes(d.data().try_into().unwrap()),
        other => panic!("not a decimal: {other:?}"),
    }
}

fn write(cols: &[Column], max_rows: usize, data: &[Vec<Cell<'_>>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut t =
        Box::new(ParquetTable::with_options(&mut out, cols, max_rows, usize::MAX, 2).unwrap());
    for r in data {
        t.row(r).unwrap();
    }
    t.finish().unwrap();
    out
}

const ALL_TYPES: [Column; 12] = [
    Column::new("Name", ColType::Text, false),
    Column::new("Tags", ColType::Text, true),
    Column::new("Cost", ColType::Decimal { scale: 18 }, false),
    Column::new("Qty", ColType::Decimal { scale: 6 }, true),
    Column::new("Id", ColType::Int, false),
    Column::new("Dept", ColType::Int, true),
    Column::new("Flag", ColType::Bool, false),
    Column::new("MaybeFlag", ColType::Bool, true),
    Column::new("Date", ColType::Date, false),
    Column::new("MaybeDate", ColType::Date, true),
    Column::new("Start", ColType::Timestamp, false),
    Column::new("MaybeStart", ColType::Timestamp, true),
];

#[test]
fn unix_epoch_day_matches_the_calendar() {
    assert_eq!(day(1970, 1, 1).raw(), UNIX_EPOCH_DAY_CE);
    assert_eq!(epoch_day(day(1970, 1, 1), "d").unwrap(), 0);
    assert_eq!(epoch_day(day(1969, 12, 31), "d").unwrap(), -1);
    assert_eq!(epoch_day(day(2000, 1, 1), "d").unwrap(), 10_957);
    assert_eq!(epoch_day(day(2026, 3, 1), "d").unwrap(), 20_513);
    let epoch = day(1970, 1, 1).naive();
    for d in [
        day(1, 1, 1),
        day(1900, 2, 28),
        day(2024, 2, 29),
        day(9999, 12, 31),
    ] {
        let want = d.naive().signed_duration_since(epoch).num_days();
        assert_eq!(i64::from(epoch_day(d, "d").unwrap()), want);
    }
}

#[test]
fn schema_has_the_logical_types_readers_check() {
    let buf = write(&ALL_TYPES, 10, &[]);
    let r = reader(buf);
    let meta = r.metadata();
    assert_eq!(meta.file_metadata().num_rows(), 0);
    let schema = meta.file_metadata().schema_descr();
    assert_eq!(schema.num_columns(), ALL_TYPES.len());
    for (i, col) in ALL_TYPES.iter().enumerate() {
        let c = schema.column(i);
        assert_eq!(c.name(), col.name);
        let rep = c.self_type().get_basic_info().repetition();
        let want_rep = if col.nullable {
            Repetition::OPTIONAL
        } else {
            Repetition::REQUIRED
        };
        assert_eq!(rep, want_rep, "{}", col.name);
        assert_eq!(c.max_def_level(), i16::from(col.nullable));
        let (phys, logical, converted) = match col.ty {
            ColType::Text => (
                PhysicalType::BYTE_ARRAY,
                Some(LogicalType::String),
                ConvertedType::UTF8,
            ),
            ColType::Decimal { scale } => {
                assert_eq!(c.type_length(), 16);
                assert_eq!(c.type_precision(), 38);
                assert_eq!(c.type_scale(), scale as i32);
                (
                    PhysicalType::FIXED_LEN_BYTE_ARRAY,
                    Some(LogicalType::decimal(scale as i32, 38)),
                    ConvertedType::DECIMAL,
                )
            }
            ColType::Int => (PhysicalType::INT64, None, ConvertedType::NONE),
            ColType::Bool => (PhysicalType::BOOLEAN, None, ConvertedType::NONE),
            ColType::Date => (
                PhysicalType::INT32,
                Some(LogicalType::Date),
                ConvertedType::DATE,
            ),
            ColType::Timestamp => (
                PhysicalType::INT64,
                Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
                ConvertedType::TIMESTAMP_MICROS,
            ),
        };
        assert_eq!(c.physical_type(), phys, "{}", col.name);
        assert_eq!(c.logical_type_ref(), logical.as_ref(), "{}", col.name);
        assert_eq!(c.converted_type(), converted, "{}", col.name);
    }
}

#[test]
fn every_type_round_trips_exactly_across_row_groups() {
    let big = 123_456_789_012_345_678_901_234_567_890i128; // beyond i64
    let max38 = MAX_DECIMAL_38 as i128;
    let decimals = [
        0,
        1,
        -1,
        -1_500_000_000_000_000_000, // -1.5 at scale 18
        i64::MAX as i128 + 1,
        i64::MIN as i128 - 1,
        big,
        -big,
        max38,
        -max38,
    ];
    let days = [
        day(2026, 3, 1),
        day(1970, 1, 1),
        day(1969, 12, 31),
        day(2024, 2, 29),
        day(9999, 12, 31),
    ];
    let texts = ["", "a,b", "é ü 日本", "Virtual Machines", "\"quoted\"\n"];
    let data: Vec<Vec<Cell<'_>>> = (0..decimals.len())
        .map(|i| {
            let d = days[i % days.len()];
            let null = i % 3 == 1;
            let opt = |c: Cell<'static>| if null { Cell::Null } else { c };
            vec![
                Cell::Text(texts[i % texts.len()]),
                if null {
                    Cell::Null
                } else {
                    Cell::Text(texts[(i + 1) % texts.len()])
                },
                Cell::Decimal(decimals[i]),
                opt(Cell::Decimal(-decimals[i])),
                Cell::Int(i as i64 * -1_000_000_007),
                opt(Cell::Int(i64::MAX - i as i64)),
                Cell::Bool(i % 2 == 0),
                opt(Cell::Bool(i % 2 == 1)),
                Cell::Date(d),
                opt(Cell::Date(d.add_days(1))),
                Cell::Timestamp(d),
                opt(Cell::Timestamp(d.add_days(-1))),
            ]
        })
        .collect();
    let r = reader(write(&ALL_TYPES, 3, &data));
    let meta = r.metadata();
    assert_eq!(meta.num_row_groups(), 4);
    let group_rows: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
    assert_eq!(group_rows, [3, 3, 3, 1]);
    let got = rows(&r);
    assert_eq!(got.len(), data.len());
    for (i, (row, want)) in got.iter().zip(&data).enumerate() {
        for (j, (f, cell)) in row.iter().zip(want).enumerate() {
            let name = ALL_TYPES[j].name;
            match *cell {
                Cell::Null => assert_eq!(*f, Field::Null, "row {i} {name}"),
                Cell::Text(s) => assert_eq!(*f, Field::Str(s.to_string()), "row {i} {name}"),
                Cell::Decimal(v) => assert_eq!(dec(f), v, "row {i} {name}"),
                Cell::Int(v) => assert_eq!(*f, Field::Long(v), "row {i} {name}"),
                Cell::Bool(v) => assert_eq!(*f, Field::Bool(v), "row {i} {name}"),
                Cell::Date(d) => {
                    let want = d.naive().signed_duration_since(day(1970, 1, 1).naive());
                    assert_eq!(*f, Field::Date(want.num_days() as i32), "row {i} {name}");
                }
                Cell::Timestamp(d) => {
                    let want = d.naive().signed_duration_since(day(1970, 1, 1).naive());
                    let micros = want.num_days() * 86_400 * 1_000_000;
                    assert_eq!(*f, Field::TimestampMicros(micros), "row {i} {name}");
                }
            }
        }
    }
    // Spot checks against literal values, independent of the helpers above.
    assert_eq!(got[0][8], Field::Date(20_513)); // 2026-03-01
    assert_eq!(got[0][10], Field::TimestampMicros(20_513 * 86_400_000_000));
    assert_eq!(got[2][8], Field::Date(-1)); // 1969-12-31
    assert_eq!(dec(&got[6][2]), big);
    assert_eq!(dec(&got[6][3]), -big);
    assert_eq!(dec(&got[7][2]), -big);
    assert_eq!(dec(&got[8][2]), max38);
    // Rows 6..9: the statistics order decimals numerically, negatives included.
    let stats = meta.row_group(2).column(2).statistics().unwrap();
    match stats {
        parquet::file::statistics::Statistics::FixedLenByteArray(s) => {
            let v = |b: &FixedLenByteArray| i128::from_be_bytes(b.data().try_into().unwrap());
            assert_eq!(v(s.min_opt().unwrap()), -big);
            assert_eq!(v(s.max_opt().unwrap()), max38);
        }
        other => panic!("unexpected statistics {other:?}"),
    }
}

#[test]
fn row_groups_are_also_cut_by_buffered_text() {
    let cols = [Column::new("T", ColType::Text, false)];
    let mut out = Vec::new();
    let mut t = Box::new(ParquetTable::with_options(&mut out, &cols, 1000, 10, 2).unwrap());
    for s in ["12345", "123456", "1", "2", "3"] {
        t.row(&[Cell::Text(s)]).unwrap();
    }
    t.finish().unwrap();
    let r = reader(out);
    let group_rows: Vec<i64> = r
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    assert_eq!(group_rows, [2, 3]);
}

#[test]
fn bad_cells_are_errors_naming_the_column_and_leave_the_table_usable() {
    let cols = [
        Column::new("Tags", ColType::Text, true),
        Column::new("Name", ColType::Text, false),
        Column::new("Cost", ColType::Decimal { scale: 2 }, false),
        Column::new("Dept", ColType::Int, true),
        Column::new("Day", ColType::Date, false),
    ];
    let mut out = Vec::new();
    let mut t = Box::new(ParquetTable::with_options(&mut out, &cols, 2, usize::MAX, 2).unwrap());
    let d = day(2026, 4, 1);
    let good = [
        Cell::Text("t"),
        Cell::Text("n"),
        Cell::Decimal(-12),
        Cell::Int(7),
        Cell::Date(d),
    ];
    t.row(&good).unwrap();

    let err = t
        .row(&[
            Cell::Text("x"),
            Cell::Text("y"),
            Cell::Decimal(1),
            Cell::Null,
            Cell::Null,
        ])
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("`Day`"), "{err}");
    assert!(err.to_string().contains("not nullable"), "{err}");

    let err = t
        .row(&[
            Cell::Null,
            Cell::Text("y"),
            Cell::Text("1.5"),
            Cell::Int(1),
            Cell::Date(d),
        ])
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("`Cost`"), "{err}");

    let err = t
        .row(&[
            Cell::Null,
            Cell::Text("y"),
            Cell::Decimal(1),
            Cell::Int(1),
            Cell::Timestamp(d),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("`Day`"), "{err}");

    let err = t
        .row(&[
            Cell::Null,
            Cell::Text("y"),
            Cell::Decimal(i128::MIN),
            Cell::Null,
            Cell::Date(d),
        ])
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("`Cost`"), "{err}");

    let err = t.row(&[Cell::Null, Cell::Text("y")]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

    // The rejected rows left nothing behind.
    let second = [
        Cell::Null,
        Cell::Text("m"),
        Cell::Decimal(5),
        Cell::Null,
        Cell::Date(d),
    ];
    t.row(&second).unwrap();
    t.row(&good).unwrap();
    t.finish().unwrap();
    let r = reader(out);
    assert_eq!(r.metadata().num_row_groups(), 2);
    let got = rows(&r);
    let days = epoch_day(d, "Day").unwrap();
    let s = |v: &str| Field::Str(v.to_string());
    let expect_row = |row: &Vec<Field>, tags: Field, name: &str, cost: i128, dept: Field| {
        assert_eq!(row[0], tags);
        assert_eq!(row[1], s(name));
        assert_eq!(dec(&row[2]), cost);
        assert_eq!(row[3], dept);
        assert_eq!(row[4], Field::Date(days));
    };
    assert_eq!(got.len(), 3);
    expect_row(&got[0], s("t"), "n", -12, Field::Long(7));
    expect_row(&got[1], Field::Null, "m", 5, Field::Null);
    expect_row(&got[2], s("t"), "n", -12, Field::Long(7));
}

#[test]
fn a_column_whose_dictionary_overflows_is_written_plain_from_then_on() {
    let cols = [
        Column::new("Id", ColType::Text, false),
        Column::new("Kind", ColType::Text, true),
    ];
    // 20,000 distinct 64-byte ids a row group: over the 1 MB dictionary limit.
    let ids: Vec<String> = (0..40_000).map(|i| format!("{i:064}")).collect();
    let kinds = [Cell::Text("a"), Cell::Null, Cell::Text("b")];
    let data: Vec<Vec<Cell<'_>>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| vec![Cell::Text(id), kinds[i % 3]])
        .collect();
    let r = reader(write(&cols, 20_000, &data));
    let meta = r.metadata();
    assert_eq!(meta.num_row_groups(), 2);
    let dict = |g: usize, c: usize| meta.row_group(g).column(c).dictionary_page_offset();
    assert!(dict(0, 0).is_some(), "tried a dictionary first");
    assert!(dict(1, 0).is_none(), "then plain");
    assert!(dict(0, 1).is_some() && dict(1, 1).is_some());
    let got = rows(&r);
    assert_eq!(got.len(), ids.len());
    for (i, row) in got.iter().enumerate() {
        assert_eq!(row[0], Field::Str(ids[i].clone()));
        let want = match kinds[i % 3] {
            Cell::Text(s) => Field::Str(s.to_string()),
            _ => Field::Null,
        };
        assert_eq!(row[1], want);
    }
}

#[test]
fn the_file_is_the_same_whatever_the_number_of_encoding_threads() {
    let d = day(2026, 5, 17);
    let data: Vec<Vec<Cell<'_>>> = (0..50i64)
        .map(|i| {
            let null = i % 4 == 0;
            let opt = |c: Cell<'static>| if null { Cell::Null } else { c };
            vec![
                Cell::Text(["x", "yy", "zzz"][i as usize % 3]),
                opt(Cell::Text("tag")),
                Cell::Decimal(i128::from(i) * 1_000_000_007),
                opt(Cell::Decimal(-i128::from(i))),
                Cell::Int(i),
                opt(Cell::Int(-i)),
                Cell::Bool(i % 2 == 0),
                opt(Cell::Bool(true)),
                Cell::Date(d.add_days(i as i32)),
                opt(Cell::Date(d)),
                Cell::Timestamp(d),
                opt(Cell::Timestamp(d.add_days(1))),
            ]
        })
        .collect();
    let files: Vec<Vec<u8>> = [1, 2, 4, 64]
        .into_iter()
        .map(|threads| {
            let mut out = Vec::new();
            let mut t = Box::new(
                ParquetTable::with_options(&mut out, &ALL_TYPES, 16, usize::MAX, threads).unwrap(),
            );
            for r in &data {
                t.row(r).unwrap();
            }
            t.finish().unwrap();
            out
        })
        .collect();
    assert!(files.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(rows(&reader(files[0].clone())).len(), data.len());
}

/// Accepts `left` bytes, then fails every write.
struct FailingWriter {
    left: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other("disk full"));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_output_is_an_error_and_stops_the_table() {
    for threads in [1, 2] {
        let cols = [Column::new("T", ColType::Text, false)];
        let out = FailingWriter { left: 20_000 };
        let mut t =
            Box::new(ParquetTable::with_options(out, &cols, 100, usize::MAX, threads).unwrap());
        let text = "x".repeat(100);
        let mut err = None;
        for i in 0..10_000 {
            // Distinct values, so that the output outgrows the writer's buffer.
            let cell = format!("{text}{i}");
            if let Err(e) = t.row(&[Cell::Text(&cell)]) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("a row fails once the output does");
        assert!(err.to_string().contains("disk full"), "{err}");
        let again = t.row(&[Cell::Text("y")]).unwrap_err();
        assert!(
            again.to_string().contains("failed to write earlier"),
            "{again}"
        );
        assert!(t.finish().is_err());
    }
}

#[test]
fn a_decimal_scale_beyond_38_is_refused() {
    let cols = [Column::new("X", ColType::Decimal { scale: 39 }, false)];
    let err = ParquetTable::new(Vec::new(), &cols).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("`X`"), "{err}");
}

/// Throughput on usage-details-like data (36 columns). Run in release:
/// `cargo test --release -p meterbook-io --lib parquet_throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn parquet_throughput_on_usage_details() {
    use crate::report::usage::detail_schema;
    use std::fmt::Write as _;
    let rows: usize = std::env::var("PARQUET_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let schema = detail_schema();
    let pool = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
    };
    let small = pool("Value", 12);
    let accounts = pool("account-name", 40);
    let emails = pool("owner@contoso.example", 40);
    let instances: Vec<String> = (0..3000)
        .map(|i| {
            format!(
                "/subscriptions/4b1c2d3e-0000-4000-8000-{i:012}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-{i}"
            )
        })
        .collect();
    let tags = [
        r#"{"env":"prod","team":"payments"}"#,
        r#"{"env":"dev"}"#,
        "",
    ];
    let info = r#"{"ImageType":"Canonical","VCPUs":4}"#;
    let mut record = String::new();
    let mut sink = CountingSink(0);
    let start = std::time::Instant::now();
    let mut t = Box::new(ParquetTable::new(&mut sink, &schema).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for r in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        record.clear();
        let _ = write!(record, "u-20260401-{r:09}");
        let res = r % instances.len();
        // As export.rs does: one cell vector per row.
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(schema.len());
        for (i, c) in schema.iter().enumerate() {
            cells.push(match (c.name, c.ty) {
                ("RecordId", _) => Cell::Text(&record),
                ("InstanceId", _) => Cell::Text(&instances[res]),
                ("AccountName", _) => Cell::Text(&accounts[res % 40]),
                ("AccountOwnerEmail", _) => Cell::Text(&emails[res % 40]),
                ("Tags", _) => match tags[res % 3] {
                    "" => Cell::Null,
                    s => Cell::Text(s),
                },
                ("AdditionalInfo", _) if res.is_multiple_of(4) => Cell::Text(info),
                ("AdditionalInfo", _) => Cell::Null,
                ("ServiceInfo1" | "ServiceInfo2", _) => Cell::Text(""),
                (_, ColType::Text) => Cell::Text(&small[(res + i) % small.len()]),
                (_, ColType::Int) => Cell::Int((res % 40) as i64),
                (_, ColType::Bool) => Cell::Bool(x.is_multiple_of(17)),
                (_, ColType::Date) => Cell::Date(day(2026, 4, 1).add_days((r / 3000) as i32)),
                (_, ColType::Timestamp) => Cell::Timestamp(day(2026, 4, 1)),
                (_, ColType::Decimal { .. }) => Cell::Decimal((x % 10_000_000_000_000) as i128),
            });
        }
        t.row(&cells).unwrap();
    }
    t.finish().unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{rows} rows in {secs:.2}s: {:.0} rows/s, {:.1} MB written ({:.1} MB/s)",
        rows as f64 / secs,
        sink.0 as f64 / 1e6,
        sink.0 as f64 / 1e6 / secs
    );
}

struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
