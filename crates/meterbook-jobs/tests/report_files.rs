//! One set of checks for every `ReportFiles`: the directory store always, and
//! with the `s3` feature the S3 store against the bucket `MB_TEST_S3_URL` names
//! (`scripts/s3.sh start` runs one; `scripts/test.sh` does it for the suites):
//!
//! ```sh
//! source "$(scripts/s3.sh start | tail -n1)"
//! cargo test -p meterbook-jobs --features s3 --test report_files
//! scripts/s3.sh stop
//! ```
//!
//! Without the URL the S3 half is skipped with a note, unless
//! `MB_REQUIRE_CLUSTER=1` (as scripts/test.sh sets), which makes it fail.

use std::io::{Read, Seek, SeekFrom, Write};

use meterbook_jobs::{DirReportFiles, ReportFiles};

/// Bytes that differ at every offset (a counter would repeat every 256).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn read_all(files: &dyn ReportFiles, name: &str) -> Vec<u8> {
    let mut f = files.open(name).unwrap().expect("the file is there");
    let mut out = Vec::new();
    f.reader.read_to_end(&mut out).unwrap();
    assert_eq!(
        out.len() as u64,
        f.len,
        "{name}: len agrees with the bytes read"
    );
    out
}

/// Writes in uneven pieces, as the report writers do (a gzip or CSV encoder).
fn write_in_pieces(w: &mut dyn Write, data: &[u8]) {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut at = 0;
    while at < data.len() {
        let n = rng.usize(1..=300_000).min(data.len() - at);
        w.write_all(&data[at..at + n]).unwrap();
        at += n;
    }
    w.flush().unwrap();
}

/// `big` must span several of the store's write parts and read chunks.
fn check_store(files: &dyn ReportFiles, big: usize) {
    // A small file: invisible until committed, then whole.
    let small = b"id,amount\n1,2.50\n".to_vec();
    let mut p = files.create("small.csv").unwrap();
    p.write_all(&small).unwrap();
    assert!(
        files.open("small.csv").unwrap().is_none(),
        "pending is invisible"
    );
    p.commit().unwrap();
    assert_eq!(read_all(files, "small.csv"), small);

    // An empty file is a file.
    let p = files.create("empty.csv").unwrap();
    p.commit().unwrap();
    let f = files.open("empty.csv").unwrap().expect("empty file");
    assert_eq!(f.len, 0);
    assert!(read_all(files, "empty.csv").is_empty());

    // A big one: still invisible after several parts went out.
    let data = content(big, 1);
    let mut p = files.create("big.csv.gz").unwrap();
    write_in_pieces(&mut p, &data[..big - 1000]);
    assert!(
        files.open("big.csv.gz").unwrap().is_none(),
        "big pending is invisible"
    );
    p.write_all(&data[big - 1000..]).unwrap();
    p.commit().unwrap();
    assert_eq!(read_all(files, "big.csv.gz"), data);

    // Ranges, as the download route serves them: seek, then read.
    let mut f = files.open("big.csv.gz").unwrap().unwrap();
    assert_eq!(f.len, big as u64);
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..20 {
        let start = rng.usize(..big);
        let len = rng.usize(1..=(big - start).min(5 << 20));
        assert_eq!(
            f.reader.seek(SeekFrom::Start(start as u64)).unwrap(),
            start as u64
        );
        let mut got = vec![0u8; len];
        f.reader.read_exact(&mut got).unwrap();
        assert!(got == data[start..start + len], "range {start}+{len}");
    }
    assert_eq!(f.reader.seek(SeekFrom::End(-5)).unwrap(), big as u64 - 5);
    let mut tail = Vec::new();
    f.reader.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, data[big - 5..]);
    assert_eq!(
        f.reader.seek(SeekFrom::Current(-10)).unwrap(),
        big as u64 - 10
    );
    let mut ten = [0u8; 10];
    f.reader.read_exact(&mut ten).unwrap();
    assert_eq!(ten, data[big - 10..]);
    assert!(f.reader.seek(SeekFrom::Current(-(big as i64) - 1)).is_err());
    f.reader.seek(SeekFrom::Start(big as u64 + 10)).unwrap();
    assert_eq!(
        f.reader.read(&mut ten).unwrap(),
        0,
        "past the end reads nothing"
    );

    // Dropped uncommitted, small or big: nothing under the name, nothing to sweep.
    for len in [10, big] {
        let mut p = files.create("dropped.csv").unwrap();
        write_in_pieces(&mut p, &content(len, 2));
        drop(p);
        assert!(
            files.open("dropped.csv").unwrap().is_none(),
            "dropped {len}"
        );
    }
    assert_eq!(
        files.sweep_partial().unwrap(),
        0,
        "drop left nothing behind"
    );

    // An interrupted write (the process died: no drop runs) is swept.
    let mut p = files.create("crashed.csv").unwrap();
    write_in_pieces(&mut p, &content(big, 4));
    std::mem::forget(p);
    assert!(files.open("crashed.csv").unwrap().is_none());
    assert_eq!(
        files.sweep_partial().unwrap(),
        1,
        "the interrupted write is swept"
    );
    assert_eq!(files.sweep_partial().unwrap(), 0, "and only once");
    assert!(files.open("crashed.csv").unwrap().is_none());
    // Finished files are untouched by the sweep.
    assert_eq!(read_all(files, "small.csv"), small);

    // Remove: gone, and removing again is fine.
    files.remove("big.csv.gz").unwrap();
    assert!(files.open("big.csv.gz").unwrap().is_none());
    files.remove("big.csv.gz").unwrap();
    files.remove("never-was.csv").unwrap();

    // Names that could leave the store's folder or clash with its own files.
    for bad in [
        "../x",
        "/etc/passwd",
        ".partial-x",
        ".partial",
        "",
        "a/b",
        "a b",
    ] {
        assert!(files.create(bad).is_err(), "create {bad:?}");
        assert!(files.open(bad).is_err(), "open {bad:?}");
        assert!(files.remove(bad).is_err(), "remove {bad:?}");
    }
}

#[test]
fn directory_store() {
    let dir = tempfile::tempdir().unwrap();
    let files = DirReportFiles::new(dir.path().join("reports")).unwrap();
    check_store(&files, 3 << 20);
}

#[cfg(feature = "s3")]
#[test]
fn s3_store() {
    use meterbook_jobs::s3_files::{PART_SIZE, READ_CHUNK};
    use meterbook_jobs::S3ReportFiles;

    let Some(url) = std::env::var("MB_TEST_S3_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        if std::env::var("MB_REQUIRE_CLUSTER").as_deref() == Ok("1") {
            panic!(
                "MB_REQUIRE_CLUSTER=1 but MB_TEST_S3_URL is unset (scripts/s3.sh start writes it)"
            );
        }
        eprintln!("note: S3 report files not tested: MB_TEST_S3_URL is unset (see scripts/s3.sh)");
        return;
    };
    // A prefix of this run's own, so runs sharing a bucket do not meet (the
    // sweep below, with no grace, would abort another run's uploads).
    let run = meterbook_jobs::new_job_id();
    let url = match url.split_once('?') {
        Some((base, query)) => format!("{}/{run}?{query}", base.trim_end_matches('/')),
        None => format!("{}/{run}", url.trim_end_matches('/')),
    };
    let files = S3ReportFiles::from_url(&url)
        .unwrap()
        .with_partial_grace(std::time::Duration::ZERO);
    let big = 2 * PART_SIZE + 12_345;
    assert!(big as u64 > 2 * READ_CHUNK);
    check_store(&files, big);

    // With the default grace, a fresh interrupted upload is left to its writer
    // (another node may be writing it); it is swept once old enough.
    let patient = S3ReportFiles::from_url(&url).unwrap();
    let mut p = patient.create("in-flight.csv").unwrap();
    p.write_all(&content(PART_SIZE + 1, 5)).unwrap();
    std::mem::forget(p);
    assert_eq!(
        patient.sweep_partial().unwrap(),
        0,
        "a young upload is not swept"
    );
    assert_eq!(files.sweep_partial().unwrap(), 1);

    // Opening pins the version read: a file replaced meanwhile fails the
    // next read instead of mixing two versions.
    let mut p = files.create("pinned.csv").unwrap();
    p.write_all(&content(3 * READ_CHUNK as usize, 6)).unwrap();
    p.commit().unwrap();
    let mut f = files.open("pinned.csv").unwrap().unwrap();
    let mut first = [0u8; 16];
    f.reader.read_exact(&mut first).unwrap();
    let mut p = files.create("pinned.csv").unwrap();
    p.write_all(&content(3 * READ_CHUNK as usize, 8)).unwrap();
    p.commit().unwrap();
    f.reader.seek(SeekFrom::Start(2 * READ_CHUNK)).unwrap();
    assert!(
        f.reader.read(&mut first).is_err(),
        "a replaced file is an error"
    );

    for name in ["small.csv", "empty.csv", "pinned.csv"] {
        files.remove(name).unwrap();
    }
}

#[cfg(not(feature = "s3"))]
#[test]
fn s3_store_needs_the_feature() {
    if std::env::var_os("MB_TEST_S3_URL").is_some() {
        eprintln!(
            "note: MB_TEST_S3_URL is set, but the S3 store is tested only with \
             `cargo test -p meterbook-jobs --features s3 --test report_files`"
        );
    }
}
