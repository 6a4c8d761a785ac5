//! Ordered scans of stored usage: a day's blocks decoded and merged in
//! RecordId order, profiles decoded with a bounded cache.

use super::codec::{cmp_keys, format_uuid, merged_order, Block, KeyRef, RecordKey};
use super::profiles::ProfileDecoder;
use crate::backend;
use meterbook_core::store::{Flow, StoreError, StoreResult, UsageFact, UsageSelection};
use meterbook_core::{Day, Period, Price, Quantity};
use rusqlite::{params, Connection};
use std::cmp::Ordering;

/// Which rows of a day a phase of the scan yields.
#[derive(Clone, Copy)]
enum Rows {
    All,
    /// Rows booked in their own day's period (not corrections).
    Own,
    /// Corrections booked in this period.
    BookedIn(u32),
}

struct Phase {
    correction: bool,
    rows: Rows,
    from: i32,
    to: i32,
}

pub(super) fn scan_in_tx(
    conn: &Connection,
    eid: i64,
    sel: &UsageSelection,
    visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<Flow, StoreError>,
) -> StoreResult<()> {
    let from = sel.from.map_or(i32::MIN, |d| d.raw());
    let to = sel.to.map_or(i32::MAX, |d| d.raw());
    // A booked period reads its own days (rows not booked elsewhere), then the
    // corrections booked into it, from the days that hold some.
    let phases = match sel.booked {
        Some(p) => vec![
            Phase {
                correction: false,
                rows: Rows::Own,
                from: from.max(p.first_day().raw()),
                to: to.min(p.last_day().raw()),
            },
            Phase {
                correction: true,
                rows: Rows::BookedIn(p.id()),
                from,
                to,
            },
        ],
        None => vec![Phase {
            correction: false,
            rows: Rows::All,
            from,
            to,
        }],
    };
    let mut profiles = ProfileDecoder::new();
    let cursor = sel
        .after
        .as_ref()
        .map(|c| (c.correction_phase, c.day.raw(), KeyRef::of(&c.record_id)));
    for phase in phases {
        // A cursor resumes strictly after its row, in its phase.
        let mut after = None;
        let mut from = phase.from;
        if let Some((cphase, cday, ckey)) = &cursor {
            match (*cphase, phase.correction) {
                (true, false) => continue,
                (c, p) if c == p => {
                    from = from.max(*cday);
                    after = Some((*cday, ckey.clone()));
                }
                _ => {}
            }
        }
        if from > phase.to {
            continue;
        }
        let booked = match phase.rows {
            Rows::BookedIn(p) => p,
            _ => 0,
        };
        let mut st = blocks_query(conn, &phase)?;
        let mut days = Days {
            rows: st
                .query(params![eid, from, phase.to, booked])
                .map_err(backend)?,
            pending: None,
        };
        while let Some((day, blocks)) = days.next()? {
            let day = Day::from_raw(day);
            for (b, i) in merged_order(&blocks) {
                let blk = &blocks[b as usize];
                let i = i as usize;
                let correction = blk.correction(i);
                let keep = match phase.rows {
                    Rows::All => true,
                    Rows::Own => correction.is_none(),
                    Rows::BookedIn(p) => correction.is_some_and(|c| c.0 == p),
                };
                if !keep {
                    continue;
                }
                let key = blk.key(i);
                if let Some((cday, ckey)) = &after {
                    if day.raw() == *cday && cmp_keys(&key, ckey) != Ordering::Greater {
                        continue;
                    }
                }
                let mut buf = [0u8; 36];
                let record_id = match &key {
                    RecordKey::Uuid(u) => format_uuid(u, &mut buf),
                    RecordKey::Text(t) => t,
                };
                let profile_id = blk.profile[i];
                profiles.load(conn, profile_id)?;
                let p = profiles.get(profile_id);
                let booked = match correction {
                    Some((b, _)) => Period::from_id(b)
                        .ok_or_else(|| StoreError::Backend("corrupt period".into()))?,
                    None => day.period(),
                };
                let fact = UsageFact {
                    record_id,
                    subscription: blk.subscription[i],
                    day,
                    meter: blk.meter[i],
                    quantity: Quantity(blk.quantity[i]),
                    booked,
                    rate_period: day.period(),
                    correction_rate: correction.map(|c| Price(c.1)),
                    instance_id: p.field(0),
                    resource_group: p.field(1),
                    resource_location: p.field(2),
                    consumed_service: p.field(3),
                    tags: p.field(4),
                    additional_info: p.field(5),
                    service_info1: p.field(6),
                    service_info2: p.field(7),
                };
                if visit(&fact)? == Flow::Stop {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// The blocks of a phase's days, a day at a time.
struct Days<'c> {
    rows: rusqlite::Rows<'c>,
    pending: Option<(i32, Vec<u8>)>,
}

/// The query of a phase's blocks, in (day, block) order.
fn blocks_query<'c>(
    conn: &'c Connection,
    phase: &Phase,
) -> StoreResult<rusqlite::CachedStatement<'c>> {
    match phase.rows {
        Rows::BookedIn(_) => conn.prepare_cached(
            "SELECT b.day, b.data FROM usage_correction_day c \
             JOIN usage_block b ON b.enrollment_id = c.enrollment_id AND b.day = c.day \
             WHERE c.enrollment_id = ?1 AND c.booked = ?4 AND c.day BETWEEN ?2 AND ?3 \
             ORDER BY b.day, b.id",
        ),
        _ => conn.prepare_cached(
            "SELECT day, data FROM usage_block WHERE enrollment_id = ?1 \
             AND day BETWEEN ?2 AND ?3 AND ?4 IS NOT NULL ORDER BY day, id",
        ),
    }
    .map_err(backend)
}

impl<'c> Days<'c> {
    fn next(&mut self) -> StoreResult<Option<(i32, Vec<Block>)>> {
        let mut day = None;
        let mut blocks = Vec::new();
        if let Some((d, data)) = self.pending.take() {
            day = Some(d);
            blocks.push(Block::decode(data)?);
        }
        while let Some(r) = self.rows.next().map_err(backend)? {
            let d: i32 = r.get(0).map_err(backend)?;
            let data: Vec<u8> = r.get(1).map_err(backend)?;
            match day {
                Some(cur) if cur != d => {
                    self.pending = Some((d, data));
                    break;
                }
                _ => {
                    day = Some(d);
                    blocks.push(Block::decode(data)?);
                }
            }
        }
        Ok(day.map(|d| (d, blocks)))
    }
}
