//! [`JobStore`] on SQLite.

use crate::{backend, SqliteStore};
use meterbook_core::jobs::{
    parse_scope_text, scope_text, ExportFormat, Job, JobOutcome, JobProgress, JobSpec, JobStatus,
    JobStore, Requester,
};
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::{Day, EnrollmentNumber, Period};
use rusqlite::{params, OptionalExtension, Row};

const COLUMNS: &str = "j.id, e.number, j.scope, j.from_day, j.to_day, j.accounts, j.departments, \
     j.format, j.requested_by, j.requested_at, j.status, j.started_at, j.finished_at, j.rows_done, \
     j.rows_expected, j.bytes, j.error, j.attempts, j.lease_until, j.manifest, j.billing_period";

fn bad(m: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, m.to_string().into())
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let number: String = r.get(1)?;
    let scope: String = r.get(2)?;
    let names = |i: usize| -> rusqlite::Result<Vec<String>> {
        let s: String = r.get(i)?;
        serde_json::from_str(&s).map_err(|_| bad("job filter names"))
    };
    Ok(Job {
        id: r.get(0)?,
        enrollment: EnrollmentNumber::parse(&number).map_err(|_| bad("enrollment number"))?,
        spec: JobSpec {
            scope: parse_scope_text(&scope).ok_or_else(|| bad("job scope"))?,
            billing_period: match r.get::<_, Option<i64>>(20)? {
                None => None,
                Some(id) => Some(
                    u32::try_from(id)
                        .ok()
                        .and_then(Period::from_id)
                        .ok_or_else(|| bad("job billing period"))?,
                ),
            },
            from: Day::from_raw(r.get(3)?),
            to: Day::from_raw(r.get(4)?),
            accounts: names(5)?,
            departments: names(6)?,
            format: ExportFormat::parse(&r.get::<_, String>(7)?)
                .ok_or_else(|| bad("job format"))?,
        },
        requested_by: Requester(r.get(8)?),
        requested_at: r.get(9)?,
        status: JobStatus::from_code(r.get(10)?).ok_or_else(|| bad("job status"))?,
        started_at: r.get(11)?,
        finished_at: r.get(12)?,
        rows_done: r.get::<_, i64>(13)? as u64,
        rows_expected: r.get::<_, Option<i64>>(14)?.map(|v| v as u64),
        bytes: r.get::<_, i64>(15)? as u64,
        error: r.get(16)?,
        attempts: r.get::<_, i64>(17)? as u32,
        lease_until: r.get(18)?,
        manifest: r.get(19)?,
    })
}

fn get_job(c: &rusqlite::Connection, id: &str) -> StoreResult<Option<Job>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM report_job j JOIN enrollment e ON e.id = j.enrollment_id WHERE j.id = ?1"),
        [id],
        job_from_row,
    )
    .optional()
    .map_err(backend)
}

const OPEN: [i64; 2] = [JobStatus::Queued as i64, JobStatus::InProgress as i64];

impl JobStore for SqliteStore {
    fn submit_job(&self, job: &Job) -> StoreResult<(Job, bool)> {
        let mut conn = self.write_conn();
        let eid = Self::enrollment_id(&conn, &job.enrollment)?;
        let tx = conn.transaction().map_err(backend)?;
        let key = job.spec.dedupe_key();
        let existing: Option<String> = tx
            .query_row(
                "SELECT id FROM report_job WHERE enrollment_id = ?1 AND dedupe_key = ?2 \
                 AND status IN (?3, ?4) ORDER BY requested_at LIMIT 1",
                params![eid, key, OPEN[0], OPEN[1]],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        if let Some(id) = existing {
            let j = get_job(&tx, &id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
            return Ok((j, false));
        }
        let json = |v: &Vec<String>| serde_json::to_string(v).expect("names serialize");
        tx.execute(
            "INSERT INTO report_job (id, enrollment_id, scope, from_day, to_day, accounts, departments, \
             format, dedupe_key, requested_by, requested_at, status, billing_period) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                job.id,
                eid,
                scope_text(job.spec.scope),
                job.spec.from.raw(),
                job.spec.to.raw(),
                json(&job.spec.accounts),
                json(&job.spec.departments),
                job.spec.format.name(),
                key,
                job.requested_by.as_str(),
                job.requested_at,
                JobStatus::Queued as i64,
                job.spec.billing_period.map(|p| p.id()),
            ],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict(format!("a job with id {} exists", job.id))
            }
            e => backend(e),
        })?;
        let j = get_job(&tx, &job.id)?.ok_or_else(|| StoreError::NotFound(job.id.clone()))?;
        tx.commit().map_err(backend)?;
        Ok((j, true))
    }

    fn job(&self, id: &str) -> StoreResult<Option<Job>> {
        let c = self.read_conn()?;
        get_job(&c, id)
    }

    fn jobs(&self, n: &EnrollmentNumber) -> StoreResult<Vec<Job>> {
        let c = self.read_conn()?;
        let eid = Self::enrollment_id(&c, n)?;
        let mut st = c
            .prepare(&format!(
                "SELECT {COLUMNS} FROM report_job j JOIN enrollment e ON e.id = j.enrollment_id \
                 WHERE j.enrollment_id = ?1 ORDER BY j.requested_at DESC, j.id"
            ))
            .map_err(backend)?;
        let rows = st.query_map([eid], job_from_row).map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }

    fn claim_job(
        &self,
        now: i64,
        lease_until: i64,
        only: Option<&str>,
    ) -> StoreResult<Option<Job>> {
        let mut conn = self.write_conn();
        let tx = conn.transaction().map_err(backend)?;
        let id: Option<String> = tx
            .query_row(
                "SELECT id FROM report_job WHERE (status = ?1 OR (status = ?2 AND lease_until < ?3)) \
                 AND (?4 IS NULL OR id = ?4) ORDER BY requested_at, id LIMIT 1",
                params![OPEN[0], OPEN[1], now, only],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        let Some(id) = id else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE report_job SET status = ?2, attempts = attempts + 1, lease_until = ?3, \
             started_at = ?4, rows_done = 0, bytes = 0 WHERE id = ?1",
            params![id, OPEN[1], lease_until, now],
        )
        .map_err(backend)?;
        let j = get_job(&tx, &id)?;
        tx.commit().map_err(backend)?;
        Ok(j)
    }

    fn job_heartbeat(
        &self,
        id: &str,
        attempt: u32,
        p: JobProgress,
        lease_until: i64,
    ) -> StoreResult<Option<JobStatus>> {
        let conn = self.write_conn();
        conn.execute(
            "UPDATE report_job SET rows_done = ?3, rows_expected = ?4, bytes = ?5, lease_until = ?6 \
             WHERE id = ?1 AND attempts = ?2 AND status = ?7",
            params![
                id,
                attempt,
                p.rows_done as i64,
                p.rows_expected.map(|v| v as i64),
                p.bytes as i64,
                lease_until,
                OPEN[1]
            ],
        )
        .map_err(backend)?;
        let st: Option<(i64, i64)> = conn
            .query_row(
                "SELECT status, attempts FROM report_job WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend)?;
        Ok(st.and_then(|(s, a)| {
            if a != attempt as i64 {
                // Another worker took it over: to this one, the job has ended.
                Some(JobStatus::Failed)
            } else {
                JobStatus::from_code(s)
            }
        }))
    }

    fn finish_job(&self, id: &str, attempt: u32, at: i64, o: &JobOutcome) -> StoreResult<bool> {
        let conn = self.write_conn();
        let n = conn
            .execute(
                "UPDATE report_job SET status = ?3, finished_at = ?4, rows_done = ?5, rows_expected = ?6, \
                 bytes = ?7, error = ?8, manifest = ?9, lease_until = NULL \
                 WHERE id = ?1 AND attempts = ?2 AND status = ?10",
                params![
                    id,
                    attempt,
                    o.status as i64,
                    at,
                    o.progress.rows_done as i64,
                    o.progress.rows_expected.map(|v| v as i64),
                    o.progress.bytes as i64,
                    o.error,
                    o.manifest,
                    OPEN[1]
                ],
            )
            .map_err(backend)?;
        Ok(n == 1)
    }

    fn cancel_job(&self, id: &str, at: i64, reason: &str) -> StoreResult<Option<JobStatus>> {
        let conn = self.write_conn();
        conn.execute(
            "UPDATE report_job SET status = ?2, finished_at = ?3, error = ?4, lease_until = NULL \
             WHERE id = ?1 AND status IN (?5, ?6)",
            params![
                id,
                JobStatus::Cancelled as i64,
                at,
                reason,
                OPEN[0],
                OPEN[1]
            ],
        )
        .map_err(backend)?;
        let st: Option<i64> = conn
            .query_row("SELECT status FROM report_job WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?;
        Ok(st.and_then(JobStatus::from_code))
    }

    fn expired_jobs(&self, before: i64) -> StoreResult<Vec<Job>> {
        let c = self.read_conn()?;
        let mut st = c
            .prepare(&format!(
                "SELECT {COLUMNS} FROM report_job j JOIN enrollment e ON e.id = j.enrollment_id \
                 WHERE j.status NOT IN (?1, ?2) AND j.finished_at < ?3 ORDER BY j.finished_at"
            ))
            .map_err(backend)?;
        let rows = st
            .query_map(params![OPEN[0], OPEN[1], before], job_from_row)
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }

    fn delete_job(&self, id: &str) -> StoreResult<()> {
        self.write_conn()
            .execute("DELETE FROM report_job WHERE id = ?1", [id])
            .map_err(backend)?;
        Ok(())
    }

    fn secret(&self, name: &str, fresh: &[u8]) -> StoreResult<Vec<u8>> {
        let conn = self.write_conn();
        conn.execute(
            "INSERT INTO server_secret (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![name, fresh],
        )
        .map_err(backend)?;
        conn.query_row(
            "SELECT value FROM server_secret WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .map_err(backend)
    }

    fn secrets(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let c = self.read_conn()?;
        let mut st = c
            .prepare("SELECT name, value FROM server_secret ORDER BY name")
            .map_err(backend)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }
}
