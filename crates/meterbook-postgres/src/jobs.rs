//! [`JobStore`] on PostgreSQL.
//!
//! Several nodes run workers against one database: a claim selects the
//! oldest claimable job `FOR UPDATE SKIP LOCKED`, so two workers claiming at
//! once take different jobs (or one takes it and the other none), and a
//! submit relies on a unique index over the open jobs' dedupe keys rather
//! than on a check made alone.

use crate::metadata::{enrollment_id, period_from_sql, period_to_sql};
use crate::tx::is_unique_violation;
use crate::tx::pg;
use crate::PgStore;
use meterbook_core::jobs::{
    parse_scope_text, scope_text, ExportFormat, Job, JobOutcome, JobProgress, JobSpec, JobStatus,
    JobStore, Requester,
};
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::{Day, EnrollmentNumber};
use postgres::types::Type;
use postgres::{GenericClient, Row};

const COLUMNS: &str = "j.id, e.number, j.scope, j.from_day, j.to_day, j.accounts, j.departments, \
     j.format, j.requested_by, j.requested_at, j.status, j.started_at, j.finished_at, j.rows_done, \
     j.rows_expected, j.bytes, j.error, j.attempts, j.lease_until, j.manifest, j.billing_period";

fn bad(m: &str) -> StoreError {
    StoreError::Backend(format!("corrupt {m} in database"))
}

fn job_from_row(r: &Row) -> StoreResult<Job> {
    let number: String = r.get(1);
    let scope: String = r.get(2);
    let names = |i: usize| -> StoreResult<Vec<String>> {
        let s: String = r.get(i);
        serde_json::from_str(&s).map_err(|_| bad("job filter names"))
    };
    let format: String = r.get(7);
    Ok(Job {
        id: r.get(0),
        enrollment: EnrollmentNumber::parse(&number).map_err(|_| bad("enrollment number"))?,
        spec: JobSpec {
            scope: parse_scope_text(&scope).ok_or_else(|| bad("job scope"))?,
            billing_period: r
                .get::<_, Option<i32>>(20)
                .map(period_from_sql)
                .transpose()?,
            from: Day::from_raw(r.get(3)),
            to: Day::from_raw(r.get(4)),
            accounts: names(5)?,
            departments: names(6)?,
            format: ExportFormat::parse(&format).ok_or_else(|| bad("job format"))?,
        },
        requested_by: Requester(r.get(8)),
        requested_at: r.get(9),
        status: JobStatus::from_code(r.get::<_, i16>(10).into())
            .ok_or_else(|| bad("job status"))?,
        started_at: r.get(11),
        finished_at: r.get(12),
        rows_done: r.get::<_, i64>(13) as u64,
        rows_expected: r.get::<_, Option<i64>>(14).map(|v| v as u64),
        bytes: r.get::<_, i64>(15) as u64,
        error: r.get(16),
        attempts: r.get::<_, i32>(17) as u32,
        lease_until: r.get(18),
        manifest: r.get(19),
    })
}

fn get_job(c: &mut impl GenericClient, id: &str) -> StoreResult<Option<Job>> {
    c.query_typed_opt(
        &format!(
            "SELECT {COLUMNS} FROM report_job j JOIN enrollment e ON e.id = j.enrollment_id \
             WHERE j.id = $1"
        ),
        &[(&id, Type::TEXT)],
    )
    .map_err(pg)?
    .as_ref()
    .map(job_from_row)
    .transpose()
}

const QUEUED: i16 = JobStatus::Queued as i16;
const RUNNING: i16 = JobStatus::InProgress as i16;

/// The open job of the enrollment with this dedupe key, if any.
fn open_duplicate(c: &mut impl GenericClient, eid: i64, key: &str) -> StoreResult<Option<Job>> {
    let id: Option<String> = c
        .query_opt(
            "SELECT id FROM report_job WHERE enrollment_id = $1 AND dedupe_key = $2 \
             AND status IN ($3, $4) ORDER BY requested_at LIMIT 1",
            &[&eid, &key, &QUEUED, &RUNNING],
        )
        .map_err(pg)?
        .map(|r| r.get(0));
    match id {
        None => Ok(None),
        Some(id) => match get_job(c, &id)? {
            Some(j) => Ok(Some(j)),
            None => Err(StoreError::NotFound(id)),
        },
    }
}

impl JobStore for PgStore {
    fn submit_job(&self, job: &Job) -> StoreResult<(Job, bool)> {
        let key = job.spec.dedupe_key();
        let json = |v: &Vec<String>| serde_json::to_string(v).map_err(crate::backend);
        let (accounts, departments) = (json(&job.spec.accounts)?, json(&job.spec.departments)?);
        self.write(|tx| {
            let eid = enrollment_id(tx, &job.enrollment)?;
            // A duplicate submitted meanwhile by another node makes the
            // insert do nothing (the unique index waits for that node's
            // commit), and that job is returned instead; should it end in
            // between, the insert is tried again.
            for _ in 0..3 {
                if let Some(j) = open_duplicate(tx, eid, &key)? {
                    return Ok((j, false));
                }
                let inserted = tx
                    .execute(
                        "INSERT INTO report_job (id, enrollment_id, scope, from_day, to_day, accounts, \
                         departments, format, dedupe_key, requested_by, requested_at, status, billing_period) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                         ON CONFLICT (enrollment_id, dedupe_key) WHERE status IN (1, 2) DO NOTHING",
                        &[
                            &job.id,
                            &eid,
                            &scope_text(job.spec.scope),
                            &job.spec.from.raw(),
                            &job.spec.to.raw(),
                            &accounts,
                            &departments,
                            &job.spec.format.name(),
                            &key,
                            &job.requested_by.as_str(),
                            &job.requested_at,
                            &QUEUED,
                            &job.spec.billing_period.map(period_to_sql),
                        ],
                    )
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::Conflict(format!("a job with id {} exists", job.id))
                        } else {
                            pg(e)
                        }
                    })?;
                if inserted == 1 {
                    let j = get_job(tx, &job.id)?
                        .ok_or_else(|| StoreError::NotFound(job.id.clone()))?;
                    return Ok((j, true));
                }
            }
            Err(StoreError::Backend(
                "the open job of the same request kept ending during submit".into(),
            ))
        })
    }

    fn job(&self, id: &str) -> StoreResult<Option<Job>> {
        self.read(|tx| get_job(tx, id))
    }

    fn jobs(&self, n: &EnrollmentNumber) -> StoreResult<Vec<Job>> {
        self.read(|tx| {
            let eid = enrollment_id(tx, n)?;
            tx.query(
                &format!(
                    "SELECT {COLUMNS} FROM report_job j JOIN enrollment e ON e.id = j.enrollment_id \
                     WHERE j.enrollment_id = $1 ORDER BY j.requested_at DESC, j.id"
                ),
                &[&eid],
            )
            .map_err(pg)?
            .iter()
            .map(job_from_row)
            .collect()
        })
    }

    fn claim_job(
        &self,
        now: i64,
        lease_until: i64,
        only: Option<&str>,
    ) -> StoreResult<Option<Job>> {
        self.write(|tx| {
            // A job another worker is claiming right now is skipped, not
            // waited for; a row changed since this statement began is
            // checked again against the condition once its lock is taken.
            let id: Option<String> = tx
                .query_opt(
                    "SELECT id FROM report_job WHERE (status = $1 OR (status = $2 AND lease_until < $3)) \
                     AND ($4::text IS NULL OR id = $4) ORDER BY requested_at, id LIMIT 1 \
                     FOR UPDATE SKIP LOCKED",
                    &[&QUEUED, &RUNNING, &now, &only],
                )
                .map_err(pg)?
                .map(|r| r.get(0));
            let Some(id) = id else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE report_job SET status = $2, attempts = attempts + 1, lease_until = $3, \
                 started_at = $4, rows_done = 0, bytes = 0 WHERE id = $1",
                &[&id, &RUNNING, &lease_until, &now],
            )
            .map_err(pg)?;
            get_job(tx, &id)
        })
    }

    fn job_heartbeat(
        &self,
        id: &str,
        attempt: u32,
        p: JobProgress,
        lease_until: i64,
    ) -> StoreResult<Option<JobStatus>> {
        self.write(|tx| {
            tx.execute(
                "UPDATE report_job SET rows_done = $3, rows_expected = $4, bytes = $5, lease_until = $6 \
                 WHERE id = $1 AND attempts = $2::bigint AND status = $7",
                &[
                    &id,
                    &i64::from(attempt),
                    &(p.rows_done as i64),
                    &p.rows_expected.map(|v| v as i64),
                    &(p.bytes as i64),
                    &lease_until,
                    &RUNNING,
                ],
            )
            .map_err(pg)?;
            let st: Option<(i16, i32)> = tx
                .query_opt(
                    "SELECT status, attempts FROM report_job WHERE id = $1",
                    &[&id],
                )
                .map_err(pg)?
                .map(|r| (r.get(0), r.get(1)));
            Ok(st.and_then(|(s, a)| {
                if i64::from(a) != i64::from(attempt) {
                    // Another worker took it over: to this one, the job has ended.
                    Some(JobStatus::Failed)
                } else {
                    JobStatus::from_code(s.into())
                }
            }))
        })
    }

    fn finish_job(&self, id: &str, attempt: u32, at: i64, o: &JobOutcome) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE report_job SET status = $3, finished_at = $4, rows_done = $5, \
                     rows_expected = $6, bytes = $7, error = $8, manifest = $9, lease_until = NULL \
                     WHERE id = $1 AND attempts = $2::bigint AND status = $10",
                    &[
                        &id,
                        &i64::from(attempt),
                        &(o.status as i16),
                        &at,
                        &(o.progress.rows_done as i64),
                        &o.progress.rows_expected.map(|v| v as i64),
                        &(o.progress.bytes as i64),
                        &o.error,
                        &o.manifest,
                        &RUNNING,
                    ],
                )
                .map_err(pg)?;
            Ok(n == 1)
        })
    }

    fn cancel_job(&self, id: &str, at: i64, reason: &str) -> StoreResult<Option<JobStatus>> {
        self.write(|tx| {
            tx.execute(
                "UPDATE report_job SET status = $2, finished_at = $3, error = $4, lease_until = NULL \
                 WHERE id = $1 AND status IN ($5, $6)",
                &[
                    &id,
                    &(JobStatus::Cancelled as i16),
                    &at,
                    &reason,
                    &QUEUED,
                    &RUNNING,
                ],
            )
            .map_err(pg)?;
            let st: Option<i16> = tx
                .query_opt("SELECT status FROM report_job WHERE id = $1", &[&id])
                .map_err(pg)?
                .map(|r| r.get(0));
            Ok(st.and_then(|s| JobStatus::from_code(s.into())))
        })
    }

    fn expired_jobs(&self, before: i64) -> StoreResult<Vec<Job>> {
        self.read(|tx| {
            tx.query(
                &format!(
                    "SELECT {COLUMNS} FROM report_job j JOIN enrollment e ON e.id = j.enrollment_id \
                     WHERE j.status NOT IN ($1, $2) AND j.finished_at < $3 ORDER BY j.finished_at"
                ),
                &[&QUEUED, &RUNNING, &before],
            )
            .map_err(pg)?
            .iter()
            .map(job_from_row)
            .collect()
        })
    }

    fn delete_job(&self, id: &str) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM report_job WHERE id = $1", &[&id])
                .map_err(pg)?;
            Ok(())
        })
    }

    fn secret(&self, name: &str, fresh: &[u8]) -> StoreResult<Vec<u8>> {
        self.write(|tx| {
            // Of two nodes making the secret at once, the second's insert
            // waits for the first's commit and keeps its value.
            tx.execute(
                "INSERT INTO server_secret (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &fresh],
            )
            .map_err(pg)?;
            Ok(tx
                .query_one("SELECT value FROM server_secret WHERE name = $1", &[&name])
                .map_err(pg)?
                .get(0))
        })
    }

    fn secrets(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.read(|tx| {
            Ok(tx
                .query("SELECT name, value FROM server_secret ORDER BY name", &[])
                .map_err(pg)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }
}
