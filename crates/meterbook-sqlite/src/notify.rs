//! [`NotifyStore`] on SQLite: the one writer connection serializes every
//! write, and the unique (enrollment, key) constraint makes a second record
//! of an event insert nothing.

use crate::{backend, SqliteStore};
use meterbook_core::jobs::{parse_scope_text, scope_text};
use meterbook_core::notify::{
    kinds_text, parse_kinds, parse_thresholds, target_from_parts, target_parts, thresholds_text,
    Budget, Cadence, Channel, ChannelTarget, Delivery, DeliveryOutcome, DeliveryStatus, Event,
    EventKind, NewBudget, NewChannel, NewDelivery, NewEvent, NotifyStore,
};
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::{EnrollmentNumber, Money};
use rusqlite::{params, Connection, OptionalExtension, Row};

fn bad(m: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, m.to_string().into())
}

fn number(r: &Row<'_>, i: usize) -> rusqlite::Result<EnrollmentNumber> {
    EnrollmentNumber::parse(&r.get::<_, String>(i)?).map_err(|_| bad("enrollment number"))
}

const BUDGET_COLUMNS: &str = "b.id, e.number, b.name, b.scope, b.cadence, b.amount, b.thresholds, \
     b.created_at, b.created_by";

fn budget_from_row(r: &Row<'_>) -> rusqlite::Result<Budget> {
    Ok(Budget {
        id: r.get(0)?,
        enrollment: number(r, 1)?,
        name: r.get(2)?,
        scope: parse_scope_text(&r.get::<_, String>(3)?).ok_or_else(|| bad("budget scope"))?,
        cadence: Cadence::parse(&r.get::<_, String>(4)?).ok_or_else(|| bad("budget cadence"))?,
        amount: Money(r.get(5)?),
        thresholds: parse_thresholds(&r.get::<_, String>(6)?)
            .ok_or_else(|| bad("budget thresholds"))?,
        created_at: r.get(7)?,
        created_by: r.get(8)?,
    })
}

const CHANNEL_COLUMNS: &str =
    "c.id, e.number, c.kind, c.address, c.events, c.salt, c.created_at, c.created_by";

fn channel_from_row(r: &Row<'_>) -> rusqlite::Result<Channel> {
    Ok(Channel {
        id: r.get(0)?,
        enrollment: number(r, 1)?,
        target: ChannelTarget::from_parts(&r.get::<_, String>(2)?, r.get(3)?)
            .ok_or_else(|| bad("channel kind"))?,
        events: parse_kinds(&r.get::<_, String>(4)?).ok_or_else(|| bad("channel events"))?,
        salt: r.get(5)?,
        created_at: r.get(6)?,
        created_by: r.get(7)?,
    })
}

const EVENT_COLUMNS: &str =
    "v.id, e.number, v.kind, v.dedupe_key, v.budget_id, v.fired_at, v.payload";

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        id: r.get(0)?,
        enrollment: number(r, 1)?,
        kind: EventKind::parse(&r.get::<_, String>(2)?).ok_or_else(|| bad("event kind"))?,
        key: r.get(3)?,
        budget: r.get(4)?,
        fired_at: r.get(5)?,
        payload: r.get(6)?,
    })
}

const DELIVERY_COLUMNS: &str = "d.id, e.number, d.event_id, v.kind, v.dedupe_key, d.target_kind, \
     d.address, d.channel_id, d.subject, d.body, v.payload, d.status, d.attempts, \
     d.next_attempt_at, d.lease_until, d.last_error, d.created_at, d.delivered_at";

const DELIVERY_FROM: &str = "notify_delivery d JOIN enrollment e ON e.id = d.enrollment_id \
     JOIN notify_event v ON v.id = d.event_id";

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        enrollment: number(r, 1)?,
        event_id: r.get(2)?,
        event_kind: EventKind::parse(&r.get::<_, String>(3)?).ok_or_else(|| bad("event kind"))?,
        event_key: r.get(4)?,
        target: target_from_parts(&r.get::<_, String>(5)?, r.get(6)?, r.get(7)?)
            .ok_or_else(|| bad("delivery target"))?,
        subject: r.get(8)?,
        text: r.get(9)?,
        payload: r.get(10)?,
        status: DeliveryStatus::parse(&r.get::<_, String>(11)?)
            .ok_or_else(|| bad("delivery status"))?,
        attempts: r.get::<_, i64>(12)? as u32,
        next_attempt_at: r.get(13)?,
        lease_until: r.get(14)?,
        last_error: r.get(15)?,
        created_at: r.get(16)?,
        delivered_at: r.get(17)?,
    })
}

fn get_budget(c: &Connection, eid: i64, id: i64) -> StoreResult<Option<Budget>> {
    c.query_row(
        &format!(
            "SELECT {BUDGET_COLUMNS} FROM budget b JOIN enrollment e ON e.id = b.enrollment_id \
             WHERE b.enrollment_id = ?1 AND b.id = ?2"
        ),
        params![eid, id],
        budget_from_row,
    )
    .optional()
    .map_err(backend)
}

fn get_channel(c: &Connection, eid: i64, id: i64) -> StoreResult<Option<Channel>> {
    c.query_row(
        &format!(
            "SELECT {CHANNEL_COLUMNS} FROM notify_channel c JOIN enrollment e ON e.id = c.enrollment_id \
             WHERE c.enrollment_id = ?1 AND c.id = ?2"
        ),
        params![eid, id],
        channel_from_row,
    )
    .optional()
    .map_err(backend)
}

fn get_delivery(c: &Connection, id: i64) -> StoreResult<Option<Delivery>> {
    c.query_row(
        &format!("SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE d.id = ?1"),
        [id],
        delivery_from_row,
    )
    .optional()
    .map_err(backend)
}

/// SQLite's LIMIT takes an i64; "all" is -1.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(-1)
}

impl NotifyStore for SqliteStore {
    fn create_budget(
        &self,
        n: &EnrollmentNumber,
        b: &NewBudget,
        created_by: &str,
        now: i64,
    ) -> StoreResult<Budget> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        conn.execute(
            "INSERT INTO budget (enrollment_id, name, scope, cadence, amount, thresholds, created_at, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                eid,
                b.name,
                scope_text(b.scope),
                b.cadence.name(),
                b.amount.0,
                thresholds_text(&b.thresholds),
                now,
                created_by
            ],
        )
        .map_err(backend)?;
        let id = conn.last_insert_rowid();
        get_budget(&conn, eid, id)?.ok_or_else(|| StoreError::NotFound(format!("no budget {id}")))
    }

    fn budgets(&self, n: &EnrollmentNumber) -> StoreResult<Vec<Budget>> {
        let c = self.read_conn()?;
        let eid = Self::enrollment_id(&c, n)?;
        let mut st = c
            .prepare(&format!(
                "SELECT {BUDGET_COLUMNS} FROM budget b JOIN enrollment e ON e.id = b.enrollment_id \
                 WHERE b.enrollment_id = ?1 ORDER BY b.id"
            ))
            .map_err(backend)?;
        let rows = st.query_map([eid], budget_from_row).map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }

    fn budget(&self, n: &EnrollmentNumber, id: i64) -> StoreResult<Option<Budget>> {
        let c = self.read_conn()?;
        let eid = Self::enrollment_id(&c, n)?;
        get_budget(&c, eid, id)
    }

    fn delete_budget(&self, n: &EnrollmentNumber, id: i64) -> StoreResult<bool> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let k = conn
            .execute(
                "DELETE FROM budget WHERE enrollment_id = ?1 AND id = ?2",
                params![eid, id],
            )
            .map_err(backend)?;
        Ok(k == 1)
    }

    fn add_channel(
        &self,
        n: &EnrollmentNumber,
        c: &NewChannel,
        created_by: &str,
        now: i64,
    ) -> StoreResult<Channel> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        conn.execute(
            "INSERT INTO notify_channel (enrollment_id, kind, address, events, salt, created_at, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                eid,
                c.target.kind(),
                c.target.address(),
                kinds_text(&c.events),
                c.salt,
                now,
                created_by
            ],
        )
        .map_err(backend)?;
        let id = conn.last_insert_rowid();
        get_channel(&conn, eid, id)?.ok_or_else(|| StoreError::NotFound(format!("no channel {id}")))
    }

    fn channels(&self, n: &EnrollmentNumber) -> StoreResult<Vec<Channel>> {
        let c = self.read_conn()?;
        let eid = Self::enrollment_id(&c, n)?;
        let mut st = c
            .prepare(&format!(
                "SELECT {CHANNEL_COLUMNS} FROM notify_channel c JOIN enrollment e ON e.id = c.enrollment_id \
                 WHERE c.enrollment_id = ?1 ORDER BY c.id"
            ))
            .map_err(backend)?;
        let rows = st.query_map([eid], channel_from_row).map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }

    fn channel(&self, n: &EnrollmentNumber, id: i64) -> StoreResult<Option<Channel>> {
        let c = self.read_conn()?;
        let eid = Self::enrollment_id(&c, n)?;
        get_channel(&c, eid, id)
    }

    fn remove_channel(&self, n: &EnrollmentNumber, id: i64, now: i64) -> StoreResult<bool> {
        let mut conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let tx = conn.transaction().map_err(backend)?;
        let k = tx
            .execute(
                "DELETE FROM notify_channel WHERE enrollment_id = ?1 AND id = ?2",
                params![eid, id],
            )
            .map_err(backend)?;
        if k == 1 {
            tx.execute(
                "UPDATE notify_delivery SET status = 'failed', last_error = 'channel removed', \
                 lease_until = NULL, next_attempt_at = ?3 \
                 WHERE enrollment_id = ?1 AND channel_id = ?2 AND status = 'pending'",
                params![eid, id, now],
            )
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(k == 1)
    }

    fn record_event(
        &self,
        n: &EnrollmentNumber,
        e: &NewEvent,
        deliveries: &[NewDelivery],
        now: i64,
    ) -> StoreResult<Option<Event>> {
        let mut conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let tx = conn.transaction().map_err(backend)?;
        let inserted = tx
            .execute(
                "INSERT INTO notify_event (enrollment_id, kind, dedupe_key, budget_id, fired_at, payload) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (enrollment_id, dedupe_key) DO NOTHING",
                params![eid, e.kind.name(), e.key, e.budget, now, e.payload],
            )
            .map_err(backend)?;
        if inserted == 0 {
            return Ok(None);
        }
        let event_id = tx.last_insert_rowid();
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO notify_delivery (enrollment_id, event_id, target_kind, address, channel_id, \
                     subject, body, status, next_attempt_at, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8)",
                )
                .map_err(backend)?;
            for d in deliveries {
                let (kind, address, channel) = target_parts(&d.target);
                ins.execute(params![
                    eid, event_id, kind, address, channel, d.subject, d.text, now
                ])
                .map_err(backend)?;
            }
        }
        let ev = tx
            .query_row(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM notify_event v JOIN enrollment e ON e.id = v.enrollment_id \
                     WHERE v.id = ?1"
                ),
                [event_id],
                event_from_row,
            )
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(Some(ev))
    }

    fn events(&self, n: &EnrollmentNumber, lim: usize) -> StoreResult<Vec<Event>> {
        let c = self.read_conn()?;
        let eid = Self::enrollment_id(&c, n)?;
        let mut st = c
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM notify_event v JOIN enrollment e ON e.id = v.enrollment_id \
                 WHERE v.enrollment_id = ?1 ORDER BY v.id DESC LIMIT ?2"
            ))
            .map_err(backend)?;
        let rows = st
            .query_map(params![eid, limit(lim)], event_from_row)
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }

    fn claim_delivery(&self, now: i64, lease_ms: i64) -> StoreResult<Option<Delivery>> {
        let mut conn = self.write_conn();
        let tx = conn.transaction().map_err(backend)?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM notify_delivery WHERE status = 'pending' AND next_attempt_at <= ?1 \
                 AND (lease_until IS NULL OR lease_until < ?1) ORDER BY next_attempt_at, id LIMIT 1",
                [now],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        let Some(id) = id else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE notify_delivery SET lease_until = ?2, attempts = attempts + 1 WHERE id = ?1",
            params![id, now.saturating_add(lease_ms)],
        )
        .map_err(backend)?;
        let d = get_delivery(&tx, id)?;
        tx.commit().map_err(backend)?;
        Ok(d)
    }

    fn finish_delivery(&self, id: i64, outcome: &DeliveryOutcome, now: i64) -> StoreResult<()> {
        let conn = self.write_conn();
        let k = match outcome {
            DeliveryOutcome::Delivered => conn.execute(
                "UPDATE notify_delivery SET status = 'delivered', delivered_at = ?2, lease_until = NULL, \
                 last_error = NULL WHERE id = ?1",
                params![id, now],
            ),
            DeliveryOutcome::Retry { at, error } => conn.execute(
                "UPDATE notify_delivery SET next_attempt_at = ?2, last_error = ?3, lease_until = NULL \
                 WHERE id = ?1",
                params![id, at, error],
            ),
            DeliveryOutcome::Failed { error } => conn.execute(
                "UPDATE notify_delivery SET status = 'failed', last_error = ?2, lease_until = NULL \
                 WHERE id = ?1",
                params![id, error],
            ),
        }
        .map_err(backend)?;
        if k == 0 {
            return Err(StoreError::NotFound(format!("no delivery {id}")));
        }
        Ok(())
    }

    fn deliveries(&self, n: &EnrollmentNumber, lim: usize) -> StoreResult<Vec<Delivery>> {
        let c = self.read_conn()?;
        let eid = Self::enrollment_id(&c, n)?;
        let mut st = c
            .prepare(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE d.enrollment_id = ?1 \
                 ORDER BY d.id DESC LIMIT ?2"
            ))
            .map_err(backend)?;
        let rows = st
            .query_map(params![eid, limit(lim)], delivery_from_row)
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }
}
