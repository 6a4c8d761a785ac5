//! Ingest with hashes cut to a few bits: every id and profile shares its hash
//! with many others, and only the comparison of full texts tells them apart.

use super::keys::HASH_BITS;
use crate::SqliteStore;
use meterbook_conformance::fixture::{self, row, Row, G1, G2};

const BITS: u32 = 3;

fn store(dir: &tempfile::TempDir, name: &str) -> SqliteStore {
    let s = SqliteStore::open(dir.path().join(name)).unwrap();
    fixture::enrollment(&s, "USD");
    for p in ["202501", "202502"] {
        fixture::prices(&s, p, &[fixture::meter("m1", "0", &[("0", "2.5")])]);
    }
    s
}

fn rows() -> Vec<Row> {
    // Ids that differ by a character, by case, UUIDs and text, on 3 days.
    (0..300)
        .map(|i| {
            let id = match i % 3 {
                0 => format!("{i:08x}-0000-4000-8000-000000000000"),
                1 => format!("{i:08X}-0000-4000-8000-000000000000"),
                _ => format!("r-{i}"),
            };
            let date = format!("2025-01-{:02}", 10 + i % 3);
            let sub = if i % 2 == 0 { G1 } else { G2 };
            row(&id, sub, &date, "m1", &format!("{}", i + 1))
        })
        .collect()
}

#[test]
fn colliding_ids_are_told_apart_by_their_full_text() {
    let dir = tempfile::tempdir().unwrap();
    // The reference: full hashes.
    let plain = store(&dir, "plain.db");
    fixture::ingest_ok(&plain, &rows());
    let (want, totals) = fixture::usage_csv(&plain, "202501", &[], &[]);
    assert_eq!(totals.rows, 300);

    HASH_BITS.with(|b| b.set(BITS));
    let s = store(&dir, "collide.db");
    let all = rows();
    // In three files: later files see the earlier ones' ids (stored and
    // colliding), each file its own (buffered and colliding).
    for part in all.chunks(100) {
        let sum = fixture::ingest_ok(&s, part);
        assert_eq!((sum.stored, sum.duplicates), (100, 0));
    }
    let sum = fixture::ingest_ok(&s, &all);
    assert_eq!((sum.stored, sum.duplicates), (0, 300));
    // A file repeating its own rows: the second copies are duplicates.
    let twice: Vec<Row> = all[..10].iter().chain(&all[..10]).cloned().collect();
    assert_eq!(fixture::ingest_ok(&s, &twice).duplicates, 20);
    // Same id, other content: a conflict, whichever id shares its hash.
    let mut changed = all[7].clone();
    changed.quantity = "999".into();
    assert!(fixture::try_ingest(&s, &[changed], false).is_err());
    let (got, _) = fixture::usage_csv(&s, "202501", &[], &[]);
    HASH_BITS.with(|b| b.set(64));
    assert_eq!(got, want);
}
