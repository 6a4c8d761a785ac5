//! Ordered scans of stored usage: a day's blocks decoded and merged in
//! RecordId order on one thread, facts built and visited on the caller's.

use super::codec::{cmp_keys, format_uuid, merged_order, Block, KeyRef, RecordKey};
use super::profiles::ProfileDecoder;
use crate::profile::Profile;
use crate::{backend, Reader};
use meterbook_core::store::{FactBatch, Flow, StoreError, StoreResult, UsageFact, UsageSelection};
use meterbook_core::{Day, Period, Price, Quantity};
use rusqlite::{params, Connection};
use std::cmp::Ordering;
use std::sync::{mpsc, Arc};

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

/// Rows of one day a scan yields (all or a part of them), decoded, in
/// order, with their profiles; readable on any thread.
struct DayPiece {
    day: Day,
    blocks: Arc<Vec<Block>>,
    rows: Vec<(u32, u32, Arc<Profile>)>,
}

/// Rows a piece holds at most, so a huge day is encoded in parts.
const PIECE_ROWS: usize = 4096;

impl FactBatch for DayPiece {
    fn for_each(
        &self,
        visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<Flow, StoreError>,
    ) -> Result<Flow, StoreError> {
        let day = self.day;
        for (b, i, p) in &self.rows {
            let blk = &self.blocks[*b as usize];
            let i = *i as usize;
            let correction = blk.correction(i);
            let mut buf = [0u8; 36];
            let key = blk.key(i);
            let record_id = match &key {
                RecordKey::Uuid(u) => format_uuid(u, &mut buf),
                RecordKey::Text(t) => t,
            };
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
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }
}

/// Scans on two threads over one snapshot: a reading thread reads and
/// decodes blocks (in a read transaction on `conn`) and sends them in
/// pieces; this thread hands each piece to `each`. Stopping or an error
/// ends both (dropping the receiver stops the reader at its next send).
pub(super) fn scan_pieces(
    conn: Reader<'_>,
    profiles: &ProfileDecoder,
    eid: i64,
    sel: &UsageSelection,
    each: &mut dyn FnMut(Box<dyn FactBatch>) -> Result<Flow, StoreError>,
) -> StoreResult<()> {
    let (tx, rx) = mpsc::sync_channel::<StoreResult<DayPiece>>(4);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let produced = conn.execute_batch("BEGIN").map_err(backend).and_then(|()| {
                let r = produce(&conn, profiles, eid, sel, &tx);
                let _ = conn.execute_batch("COMMIT");
                r
            });
            if let Err(e) = produced {
                let _ = tx.send(Err(e));
            }
        });
        for piece in rx {
            if each(Box::new(piece?))? == Flow::Stop {
                return Ok(());
            }
        }
        Ok(())
    })
}

/// Reads the selection's days in order and sends each as a batch; stops
/// when the receiver is gone.
fn produce(
    conn: &Connection,
    profiles: &ProfileDecoder,
    eid: i64,
    sel: &UsageSelection,
    tx: &mpsc::SyncSender<StoreResult<DayPiece>>,
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
            let mut kept = Vec::new();
            for (b, i) in merged_order(&blocks) {
                let blk = &blocks[b as usize];
                let correction = blk.correction(i as usize);
                let keep = match phase.rows {
                    Rows::All => true,
                    Rows::Own => correction.is_none(),
                    Rows::BookedIn(p) => correction.is_some_and(|c| c.0 == p),
                };
                if !keep {
                    continue;
                }
                if let Some((cday, ckey)) = &after {
                    if day == *cday && cmp_keys(&blk.key(i as usize), ckey) != Ordering::Greater {
                        continue;
                    }
                }
                kept.push((b, i));
            }
            let blocks = Arc::new(blocks);
            // Profiles are resolved a piece at a time, as it is sent: a page
            // that stops early resolves little more than it shows.
            for part in kept.chunks(PIECE_ROWS) {
                let rows =
                    profiles.resolve(conn, part, |b, i| blocks[b as usize].profile[i as usize])?;
                let piece = DayPiece {
                    day: Day::from_raw(day),
                    blocks: blocks.clone(),
                    rows,
                };
                if tx.send(Ok(piece)).is_err() {
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
