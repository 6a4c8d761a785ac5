//! Migration 8's conversion: `usage_fact` rows into fact blocks and the key
//! index, `usage_daily` into a day's sums, profiles given their hash. Runs
//! inside the migration's transaction, after its script made the tables.

use super::codec::{encode_day, DaySum, FactRow, OwnedKey};
use super::keys::{hash_id, seed, stored_key, write_run};
use super::writer::{write_block, BLOCK_ROWS};
use crate::{backend, i128_from_sql};
use meterbook_core::store::StoreResult;
use meterbook_core::Day;
use rusqlite::{params, Connection};

pub(crate) fn to_blocks(conn: &Connection) -> StoreResult<()> {
    let seed = seed(conn)?;
    profiles(conn, seed)?;
    facts(conn, seed)?;
    daily(conn)?;
    conn.execute_batch(
        "DROP TABLE usage_fact; DROP TABLE usage_daily; DROP TABLE usage_profile_old;",
    )
    .map_err(backend)
}

fn profiles(conn: &Connection, seed: i64) -> StoreResult<()> {
    let mut read = conn
        .prepare("SELECT id, value FROM usage_profile_old ORDER BY id")
        .map_err(backend)?;
    let mut insert = conn
        .prepare("INSERT INTO usage_profile (id, hash, value) VALUES (?1, ?2, ?3)")
        .map_err(backend)?;
    let mut rows = read.query([]).map_err(backend)?;
    while let Some(r) = rows.next().map_err(backend)? {
        let id: i64 = r.get(0).map_err(backend)?;
        let value: String = r.get(1).map_err(backend)?;
        insert
            .execute(params![id, hash_id(seed, &value) as i64, value])
            .map_err(backend)?;
    }
    Ok(())
}

/// Reads the facts in (enrollment, day, RecordId) order: each day's rows
/// become blocks as they come, each enrollment's keys one sorted run.
fn facts(conn: &Connection, seed: i64) -> StoreResult<()> {
    let mut st = conn
        .prepare(
            "SELECT enrollment_id, day, record_id, subscription_id, meter_key, quantity, \
             profile_id, booked, correction_rate FROM usage_fact \
             ORDER BY enrollment_id, day, record_id",
        )
        .map_err(backend)?;
    let mut rows = st.query([]).map_err(backend)?;
    let mut cur: Option<(i64, i32)> = None;
    let mut day_rows: Vec<FactRow> = Vec::new();
    let mut keys: Vec<u64> = Vec::new();
    let mut buf = Vec::new();
    let flush_keys = |eid: i64, keys: &mut Vec<u64>| -> StoreResult<()> {
        keys.sort_unstable();
        write_run(conn, eid, 0, keys.drain(..))
    };
    while let Some(r) = rows.next().map_err(backend)? {
        let eid: i64 = r.get(0).map_err(backend)?;
        let day: i32 = r.get(1).map_err(backend)?;
        if let Some((ceid, cday)) = cur {
            if ceid != eid || cday != day || day_rows.len() == BLOCK_ROWS {
                write_block(conn, ceid, cday, &day_rows, &mut buf)?;
                day_rows.clear();
            }
            if ceid != eid {
                flush_keys(ceid, &mut keys)?;
            }
        }
        cur = Some((eid, day));
        let id: String = r.get(2).map_err(backend)?;
        keys.push(stored_key(hash_id(seed, &id), Day::from_raw(day)));
        let rate: Option<String> = r.get(8).map_err(backend)?;
        let booked: Option<u32> = r.get(7).map_err(backend)?;
        let correction = match (booked, rate) {
            (Some(b), Some(rate)) => Some((b, i128_from_sql(&rate)?)),
            _ => None,
        };
        day_rows.push(FactRow {
            key: OwnedKey::of(&id),
            subscription: r.get(3).map_err(backend)?,
            meter: r.get(4).map_err(backend)?,
            quantity: r.get(5).map_err(backend)?,
            profile: r.get(6).map_err(backend)?,
            correction,
        });
    }
    if let Some((eid, day)) = cur {
        write_block(conn, eid, day, &day_rows, &mut buf)?;
        flush_keys(eid, &mut keys)?;
    }
    Ok(())
}

fn daily(conn: &Connection) -> StoreResult<()> {
    // The old key's order is the sums' order: rows come already sorted.
    let mut st = conn
        .prepare(
            "SELECT enrollment_id, day, subscription_id, meter_key, booked, correction_rate, \
             quantity, rows FROM usage_daily ORDER BY enrollment_id, day, subscription_id, \
             meter_key, booked, correction_rate",
        )
        .map_err(backend)?;
    let mut rows = st.query([]).map_err(backend)?;
    let mut cur: Option<(i64, i32)> = None;
    let mut sums: Vec<DaySum> = Vec::new();
    let mut buf = Vec::new();
    let mut write = |key: (i64, i32), sums: &mut Vec<DaySum>| -> StoreResult<()> {
        encode_day(sums, &mut buf);
        sums.clear();
        conn.execute(
            "INSERT INTO usage_day (enrollment_id, day, data) VALUES (?1, ?2, ?3)",
            params![key.0, key.1, buf],
        )
        .map_err(backend)?;
        Ok(())
    };
    while let Some(r) = rows.next().map_err(backend)? {
        let key: (i64, i32) = (r.get(0).map_err(backend)?, r.get(1).map_err(backend)?);
        if let Some(c) = cur {
            if c != key {
                write(c, &mut sums)?;
            }
        }
        cur = Some(key);
        let rate: String = r.get(5).map_err(backend)?;
        sums.push(DaySum {
            subscription: r.get(2).map_err(backend)?,
            meter: r.get(3).map_err(backend)?,
            booked: r.get(4).map_err(backend)?,
            rate: if rate.is_empty() {
                None
            } else {
                Some(i128_from_sql(&rate)?)
            },
            quantity: r.get(6).map_err(backend)?,
            rows: r.get(7).map_err(backend)?,
        });
    }
    if let Some(c) = cur {
        write(c, &mut sums)?;
    }
    Ok(())
}
