//! Ordered scans of stored usage, profiles decoded with a bounded cache.

use crate::profile::Profile;
use crate::{backend, i128_from_sql};
use meterbook_core::store::{Flow, StoreError, StoreResult, UsageFact, UsageSelection};
use meterbook_core::{Day, Period, Price, Quantity};
use rusqlite::Connection;
use std::collections::HashMap;

use super::writer::*;

/// Decodes profile ids while scanning, with a bounded cache.
struct ProfileDecoder {
    cache: HashMap<i64, Profile, foldhash::fast::RandomState>,
    cached_bytes: usize,
    empty: Profile,
}

impl ProfileDecoder {
    fn load(&mut self, conn: &Connection, id: i64) -> StoreResult<()> {
        if id == 0 || self.cache.contains_key(&id) {
            return Ok(());
        }
        if self.cache.len() >= CACHE_LIMIT || self.cached_bytes >= CACHE_BYTES {
            self.cache.clear();
            self.cached_bytes = 0;
        }
        let v: String = conn
            .prepare_cached("SELECT value FROM usage_profile WHERE id = ?1")
            .map_err(backend)?
            .query_row([id], |r| r.get(0))
            .map_err(backend)?;
        self.cached_bytes += v.len();
        let p = Profile::decode(v)
            .ok_or_else(|| StoreError::Backend(format!("corrupt usage profile {id}")))?;
        self.cache.insert(id, p);
        Ok(())
    }
    fn get(&self, id: i64) -> &Profile {
        self.cache.get(&id).unwrap_or(&self.empty)
    }
}

const FACT_COLUMNS: &str =
    "record_id, subscription_id, day, meter_key, quantity, profile_id, booked, correction_rate";

pub(super) fn scan_in_tx(
    conn: &Connection,
    eid: i64,
    sel: &UsageSelection,
    visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<Flow, StoreError>,
) -> StoreResult<()> {
    let mut profiles = ProfileDecoder {
        cache: HashMap::default(),
        cached_bytes: 0,
        empty: Profile::empty(),
    };
    let from = sel.from.map_or(i32::MIN, |d| d.raw()) as i64;
    let to = sel.to.map_or(i32::MAX, |d| d.raw()) as i64;
    // A booked period reads its own days (rows not booked elsewhere), then the
    // corrections booked into it through the small partial index. A cursor
    // resumes strictly after its row: `(day, record_id) > (cursor)`.
    let after = sel.after.as_ref();
    let resume = |phase_is_correction: bool| -> Option<(bool, i64, String)> {
        match after {
            None => None,
            Some(c) if c.correction_phase == phase_is_correction => {
                Some((true, c.day.raw() as i64, c.record_id.clone()))
            }
            // Resuming in the corrections: the own-days phase is done.
            Some(c) if c.correction_phase => Some((false, 0, String::new())),
            Some(_) => None,
        }
    };
    let mut queries: Vec<(String, Vec<rusqlite::types::Value>)> = Vec::new();
    let cursor_sql = " AND (day, record_id) > (?8, ?9)";
    let mut push = |base: &str, mut args: Vec<rusqlite::types::Value>, phase: bool| {
        let sql = match resume(phase) {
            Some((false, _, _)) => return,
            Some((true, d, r)) => {
                // Start the day range at the cursor's day so the index seek skips
                // what earlier pages read (the row-value test alone would not).
                if let rusqlite::types::Value::Integer(from) = args[1] {
                    args[1] = from.max(d).into();
                }
                // The cursor binds as ?8 and ?9 whatever the query's own parameters.
                args.resize(7, rusqlite::types::Value::Null);
                args.push(d.into());
                args.push(r.into());
                format!("{base}{cursor_sql}")
            }
            None => base.to_string(),
        };
        queries.push((format!("{sql} ORDER BY day, record_id"), args));
    };
    match sel.booked {
        Some(p) => {
            push(
                &format!(
                    "SELECT {FACT_COLUMNS} FROM usage_fact WHERE enrollment_id = ?1 AND day BETWEEN ?2 AND ?3 \
                     AND booked IS NULL"
                ),
                vec![
                    eid.into(),
                    from.max(p.first_day().raw() as i64).into(),
                    to.min(p.last_day().raw() as i64).into(),
                ],
                false,
            );
            push(
                &format!(
                    "SELECT {FACT_COLUMNS} FROM usage_fact WHERE enrollment_id = ?1 AND booked = ?4 \
                     AND day BETWEEN ?2 AND ?3"
                ),
                vec![eid.into(), from.into(), to.into(), (p.id() as i64).into()],
                true,
            );
        }
        None => push(
            &format!(
                "SELECT {FACT_COLUMNS} FROM usage_fact WHERE enrollment_id = ?1 AND day BETWEEN ?2 AND ?3"
            ),
            vec![eid.into(), from.into(), to.into()],
            false,
        ),
    }
    for (sql, args) in queries {
        let mut st = conn.prepare(&sql).map_err(backend)?;
        let mut rows = st
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let profile_id: i64 = r.get(5).map_err(backend)?;
            profiles.load(conn, profile_id)?;
            let p = profiles.get(profile_id);
            let day = Day::from_raw(r.get(2).map_err(backend)?);
            let booked = match r.get::<_, Option<u32>>(6).map_err(backend)? {
                Some(b) => Period::from_id(b)
                    .ok_or_else(|| StoreError::Backend("corrupt period".into()))?,
                None => day.period(),
            };
            let correction_rate = match r.get_ref(7).map_err(backend)?.as_str_or_null() {
                Ok(Some(s)) => Some(Price(i128_from_sql(s)?)),
                Ok(None) => None,
                Err(e) => return Err(StoreError::Backend(e.to_string())),
            };
            let record_id = r
                .get_ref(0)
                .map_err(backend)?
                .as_str()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let fact = UsageFact {
                record_id,
                subscription: r.get(1).map_err(backend)?,
                day,
                meter: r.get(3).map_err(backend)?,
                quantity: Quantity(r.get(4).map_err(backend)?),
                booked,
                rate_period: day.period(),
                correction_rate,
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
    Ok(())
}
