//! [`ExportStore`] on SQLite. Claims run in an IMMEDIATE transaction, so a
//! `meterbook exports run-due` from cron and a `serve` on the same file
//! cannot both take one run key.

use crate::{backend, SqliteStore};
use meterbook_core::exports::{
    Cadence, Claim, ExportRun, ExportSchedule, ExportStore, RunOutcome, RunStatus,
};
use meterbook_core::jobs::ExportFormat;
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::{Day, EnrollmentNumber};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

const SCHEDULE: &str = "s.id, e.number, s.name, s.folder, s.cadence, s.from_day, s.to_day, \
     s.format, s.created_at, s.created_by";
const RUN: &str = "schedule_id, run_key, run_id, status, attempts, started_at, finished_at, \
     lease_until, retry_at, error, manifest";

fn bad(m: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, m.to_string().into())
}

fn schedule_from_row(r: &Row<'_>) -> rusqlite::Result<ExportSchedule> {
    let number: String = r.get(1)?;
    let cadence: String = r.get(4)?;
    let range = (r.get::<_, Option<i32>>(5)?, r.get::<_, Option<i32>>(6)?);
    Ok(ExportSchedule {
        id: r.get(0)?,
        enrollment: EnrollmentNumber::parse(&number).map_err(|_| bad("enrollment number"))?,
        name: r.get(2)?,
        folder: r.get(3)?,
        cadence: match (cadence.as_str(), range) {
            ("daily", _) => Cadence::DailyMonthToDate,
            ("monthly", _) => Cadence::MonthlyClosed,
            ("once", (Some(f), Some(t))) => Cadence::Once {
                from: Day::from_raw(f),
                to: Day::from_raw(t),
            },
            _ => return Err(bad("export cadence")),
        },
        format: ExportFormat::parse(&r.get::<_, String>(7)?).ok_or_else(|| bad("export format"))?,
        created_at: r.get(8)?,
        created_by: r.get(9)?,
    })
}

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<ExportRun> {
    Ok(ExportRun {
        schedule_id: r.get(0)?,
        run_key: r.get(1)?,
        run_id: r.get(2)?,
        status: RunStatus::from_code(r.get(3)?).ok_or_else(|| bad("run status"))?,
        attempts: r.get::<_, i64>(4)? as u32,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        lease_until: r.get(7)?,
        retry_at: r.get(8)?,
        error: r.get(9)?,
        manifest: r.get(10)?,
    })
}

fn get_run(c: &rusqlite::Connection, id: &str, key: &str) -> StoreResult<Option<ExportRun>> {
    c.query_row(
        &format!("SELECT {RUN} FROM export_run WHERE schedule_id = ?1 AND run_key = ?2"),
        params![id, key],
        run_from_row,
    )
    .optional()
    .map_err(backend)
}

impl ExportStore for SqliteStore {
    fn create_export(&self, s: &ExportSchedule) -> StoreResult<()> {
        let conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, &s.enrollment)?;
        let (from, to) = match s.cadence {
            Cadence::Once { from, to } => (Some(from.raw()), Some(to.raw())),
            _ => (None, None),
        };
        conn.execute(
            "INSERT INTO export_schedule (id, enrollment_id, name, folder, cadence, from_day, \
             to_day, format, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                s.id,
                eid,
                s.name,
                s.folder,
                s.cadence.name(),
                from,
                to,
                s.format.name(),
                s.created_at,
                s.created_by
            ],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict(
                    "the enrollment has an export of that name or folder".to_string(),
                )
            }
            e => backend(e),
        })?;
        Ok(())
    }

    fn export_schedule(&self, id: &str) -> StoreResult<Option<ExportSchedule>> {
        let c = self.read_conn()?;
        c.query_row(
            &format!(
                "SELECT {SCHEDULE} FROM export_schedule s JOIN enrollment e ON e.id = s.enrollment_id \
                 WHERE s.id = ?1"
            ),
            [id],
            schedule_from_row,
        )
        .optional()
        .map_err(backend)
    }

    fn export_schedules(&self, n: Option<&EnrollmentNumber>) -> StoreResult<Vec<ExportSchedule>> {
        let c = self.read_conn()?;
        let mut st = c
            .prepare(&format!(
                "SELECT {SCHEDULE} FROM export_schedule s JOIN enrollment e ON e.id = s.enrollment_id \
                 WHERE ?1 IS NULL OR e.number = ?1 ORDER BY s.created_at, s.id"
            ))
            .map_err(backend)?;
        let rows = st
            .query_map([n.map(|n| n.as_str())], schedule_from_row)
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<_>>().map_err(backend)
    }

    fn delete_export(&self, n: &EnrollmentNumber, id: &str) -> StoreResult<()> {
        let mut conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, n)?;
        let tx = conn.transaction().map_err(backend)?;
        tx.execute("DELETE FROM export_run WHERE schedule_id = ?1 AND EXISTS (SELECT 1 FROM export_schedule WHERE id = ?1 AND enrollment_id = ?2)", params![id, eid])
            .map_err(backend)?;
        let gone = tx
            .execute(
                "DELETE FROM export_schedule WHERE id = ?1 AND enrollment_id = ?2",
                params![id, eid],
            )
            .map_err(backend)?;
        if gone == 0 {
            return Err(StoreError::NotFound(format!("no export {id}")));
        }
        tx.commit().map_err(backend)
    }

    fn claim_export_run(
        &self,
        id: &str,
        key: &str,
        run_id: &str,
        claim: Claim,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Option<ExportRun>> {
        let mut conn = self.write_conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let exists: Option<i64> = tx
            .query_row("SELECT 1 FROM export_schedule WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("no export {id}")));
        }
        let attempts = match get_run(&tx, id, key)? {
            None => 1,
            Some(r) if r.claimable(claim, now) => {
                // A run again by hand starts its count afresh.
                if matches!(r.status, RunStatus::Succeeded | RunStatus::Failed) {
                    1
                } else {
                    r.attempts + 1
                }
            }
            Some(_) => return Ok(None),
        };
        tx.execute(
            "INSERT INTO export_run (schedule_id, run_key, run_id, status, attempts, started_at, \
             lease_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (schedule_id, run_key) DO UPDATE SET run_id = excluded.run_id, \
             status = excluded.status, attempts = excluded.attempts, started_at = excluded.started_at, \
             lease_until = excluded.lease_until, finished_at = NULL, retry_at = NULL",
            params![
                id,
                key,
                run_id,
                RunStatus::Running as i64,
                attempts,
                now,
                lease_until
            ],
        )
        .map_err(backend)?;
        let r = get_run(&tx, id, key)?;
        tx.commit().map_err(backend)?;
        Ok(r)
    }

    fn renew_export_run(
        &self,
        id: &str,
        key: &str,
        run_id: &str,
        lease_until: i64,
    ) -> StoreResult<bool> {
        let conn = self.write_conn();
        let n = conn
            .execute(
                "UPDATE export_run SET lease_until = ?4 \
                 WHERE schedule_id = ?1 AND run_key = ?2 AND run_id = ?3 AND status = ?5",
                params![id, key, run_id, lease_until, RunStatus::Running as i64],
            )
            .map_err(backend)?;
        Ok(n == 1)
    }

    fn finish_export_run(
        &self,
        id: &str,
        key: &str,
        run_id: &str,
        at: i64,
        o: &RunOutcome,
    ) -> StoreResult<bool> {
        let conn = self.write_conn();
        let n = match o {
            RunOutcome::Succeeded { manifest } => conn.execute(
                "UPDATE export_run SET status = ?4, finished_at = ?5, lease_until = NULL, \
                 retry_at = NULL, error = NULL, manifest = ?6 \
                 WHERE schedule_id = ?1 AND run_key = ?2 AND run_id = ?3 AND status = ?7",
                params![
                    id,
                    key,
                    run_id,
                    RunStatus::Succeeded as i64,
                    at,
                    manifest,
                    RunStatus::Running as i64
                ],
            ),
            RunOutcome::Failed { error, retry_at } => conn.execute(
                "UPDATE export_run SET status = ?4, finished_at = ?5, lease_until = NULL, \
                 retry_at = ?6, error = ?7 \
                 WHERE schedule_id = ?1 AND run_key = ?2 AND run_id = ?3 AND status = ?8",
                params![
                    id,
                    key,
                    run_id,
                    if retry_at.is_some() {
                        RunStatus::Retrying
                    } else {
                        RunStatus::Failed
                    } as i64,
                    at,
                    retry_at,
                    error,
                    RunStatus::Running as i64
                ],
            ),
        }
        .map_err(backend)?;
        Ok(n == 1)
    }

    fn export_runs(&self, id: &str) -> StoreResult<Vec<ExportRun>> {
        let c = self.read_conn()?;
        let mut st = c
            .prepare(&format!(
                "SELECT {RUN} FROM export_run WHERE schedule_id = ?1 ORDER BY run_key DESC"
            ))
            .map_err(backend)?;
        let rows = st.query_map([id], run_from_row).map_err(backend)?;
        rows.collect::<rusqlite::Result<_>>().map_err(backend)
    }
}
