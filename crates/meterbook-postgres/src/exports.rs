//! [`ExportStore`] on PostgreSQL. Several nodes run due exports against one
//! database: a claim locks the schedule's row first (`FOR UPDATE`), so two
//! nodes claiming the same run key take turns, and the second finds the
//! first's run under a live lease and leaves it.

use crate::metadata::enrollment_id;
use crate::tx::{is_unique_violation, pg};
use crate::PgStore;
use meterbook_core::exports::{
    Cadence, Claim, ExportRun, ExportSchedule, ExportStore, RunOutcome, RunStatus,
};
use meterbook_core::jobs::ExportFormat;
use meterbook_core::store::{StoreError, StoreResult};
use meterbook_core::{Day, EnrollmentNumber};
use postgres::{GenericClient, Row};

const SCHEDULE: &str = "s.id, e.number, s.name, s.folder, s.cadence, s.from_day, s.to_day, \
     s.format, s.created_at, s.created_by";
const RUN: &str = "schedule_id, run_key, run_id, status, attempts, started_at, finished_at, \
     lease_until, retry_at, error, manifest";

fn bad(m: &str) -> StoreError {
    StoreError::Backend(format!("corrupt {m} in database"))
}

fn schedule_from_row(r: &Row) -> StoreResult<ExportSchedule> {
    let number: String = r.get(1);
    let cadence: String = r.get(4);
    let range = (r.get::<_, Option<i32>>(5), r.get::<_, Option<i32>>(6));
    let format: String = r.get(7);
    Ok(ExportSchedule {
        id: r.get(0),
        enrollment: EnrollmentNumber::parse(&number).map_err(|_| bad("enrollment number"))?,
        name: r.get(2),
        folder: r.get(3),
        cadence: match (cadence.as_str(), range) {
            ("daily", _) => Cadence::DailyMonthToDate,
            ("monthly", _) => Cadence::MonthlyClosed,
            ("once", (Some(f), Some(t))) => Cadence::Once {
                from: Day::from_raw(f),
                to: Day::from_raw(t),
            },
            _ => return Err(bad("export cadence")),
        },
        format: ExportFormat::parse(&format).ok_or_else(|| bad("export format"))?,
        created_at: r.get(8),
        created_by: r.get(9),
    })
}

fn run_from_row(r: &Row) -> StoreResult<ExportRun> {
    Ok(ExportRun {
        schedule_id: r.get(0),
        run_key: r.get(1),
        run_id: r.get(2),
        status: RunStatus::from_code(r.get::<_, i16>(3).into()).ok_or_else(|| bad("run status"))?,
        attempts: r.get::<_, i32>(4) as u32,
        started_at: r.get(5),
        finished_at: r.get(6),
        lease_until: r.get(7),
        retry_at: r.get(8),
        error: r.get(9),
        manifest: r.get(10),
    })
}

fn get_run(c: &mut impl GenericClient, id: &str, key: &str) -> StoreResult<Option<ExportRun>> {
    c.query_opt(
        &format!("SELECT {RUN} FROM export_run WHERE schedule_id = $1 AND run_key = $2"),
        &[&id, &key],
    )
    .map_err(pg)?
    .as_ref()
    .map(run_from_row)
    .transpose()
}

const RUNNING: i16 = RunStatus::Running as i16;

impl ExportStore for PgStore {
    fn create_export(&self, s: &ExportSchedule) -> StoreResult<()> {
        let (from, to) = match s.cadence {
            Cadence::Once { from, to } => (Some(from.raw()), Some(to.raw())),
            _ => (None, None),
        };
        self.write(|tx| {
            let eid = enrollment_id(tx, &s.enrollment)?;
            tx.execute(
                "INSERT INTO export_schedule (id, enrollment_id, name, folder, cadence, from_day, \
                 to_day, format, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &s.id,
                    &eid,
                    &s.name,
                    &s.folder,
                    &s.cadence.name(),
                    &from,
                    &to,
                    &s.format.name(),
                    &s.created_at,
                    &s.created_by,
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(
                        "the enrollment has an export of that name or folder".to_string(),
                    )
                } else {
                    pg(e)
                }
            })?;
            Ok(())
        })
    }

    fn export_schedule(&self, id: &str) -> StoreResult<Option<ExportSchedule>> {
        self.read(|tx| {
            tx.query_opt(
                &format!(
                    "SELECT {SCHEDULE} FROM export_schedule s \
                     JOIN enrollment e ON e.id = s.enrollment_id WHERE s.id = $1"
                ),
                &[&id],
            )
            .map_err(pg)?
            .as_ref()
            .map(schedule_from_row)
            .transpose()
        })
    }

    fn export_schedules(&self, n: Option<&EnrollmentNumber>) -> StoreResult<Vec<ExportSchedule>> {
        let number = n.map(|n| n.as_str().to_string());
        self.read(|tx| {
            tx.query(
                &format!(
                    "SELECT {SCHEDULE} FROM export_schedule s \
                     JOIN enrollment e ON e.id = s.enrollment_id \
                     WHERE $1::TEXT IS NULL OR e.number = $1 ORDER BY s.created_at, s.id"
                ),
                &[&number],
            )
            .map_err(pg)?
            .iter()
            .map(schedule_from_row)
            .collect()
        })
    }

    fn delete_export(&self, n: &EnrollmentNumber, id: &str) -> StoreResult<()> {
        self.write(|tx| {
            let eid = enrollment_id(tx, n)?;
            let gone = tx
                .execute(
                    "DELETE FROM export_schedule WHERE id = $1 AND enrollment_id = $2",
                    &[&id, &eid],
                )
                .map_err(pg)?;
            if gone == 0 {
                return Err(StoreError::NotFound(format!("no export {id}")));
            }
            Ok(())
        })
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
        self.write(|tx| {
            // The schedule's row lock serializes claims of its keys.
            if tx
                .query_opt(
                    "SELECT 1 FROM export_schedule WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .map_err(pg)?
                .is_none()
            {
                return Err(StoreError::NotFound(format!("no export {id}")));
            }
            let attempts: i32 = match get_run(tx, id, key)? {
                None => 1,
                Some(r) if r.claimable(claim, now) => {
                    if matches!(r.status, RunStatus::Succeeded | RunStatus::Failed) {
                        1
                    } else {
                        r.attempts as i32 + 1
                    }
                }
                Some(_) => return Ok(None),
            };
            tx.execute(
                "INSERT INTO export_run (schedule_id, run_key, run_id, status, attempts, \
                 started_at, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (schedule_id, run_key) DO UPDATE SET run_id = excluded.run_id, \
                 status = excluded.status, attempts = excluded.attempts, \
                 started_at = excluded.started_at, lease_until = excluded.lease_until, \
                 finished_at = NULL, retry_at = NULL",
                &[&id, &key, &run_id, &RUNNING, &attempts, &now, &lease_until],
            )
            .map_err(pg)?;
            get_run(tx, id, key)
        })
    }

    fn renew_export_run(
        &self,
        id: &str,
        key: &str,
        run_id: &str,
        lease_until: i64,
    ) -> StoreResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE export_run SET lease_until = $4 \
                     WHERE schedule_id = $1 AND run_key = $2 AND run_id = $3 AND status = $5",
                    &[&id, &key, &run_id, &lease_until, &RUNNING],
                )
                .map_err(pg)?;
            Ok(n == 1)
        })
    }

    fn finish_export_run(
        &self,
        id: &str,
        key: &str,
        run_id: &str,
        at: i64,
        o: &RunOutcome,
    ) -> StoreResult<bool> {
        self.write(|tx| {
            let n = match o {
                RunOutcome::Succeeded { manifest } => tx.execute(
                    "UPDATE export_run SET status = $4, finished_at = $5, lease_until = NULL, \
                     retry_at = NULL, error = NULL, manifest = $6 \
                     WHERE schedule_id = $1 AND run_key = $2 AND run_id = $3 AND status = $7",
                    &[
                        &id,
                        &key,
                        &run_id,
                        &(RunStatus::Succeeded as i16),
                        &at,
                        manifest,
                        &RUNNING,
                    ],
                ),
                RunOutcome::Failed { error, retry_at } => tx.execute(
                    "UPDATE export_run SET status = $4, finished_at = $5, lease_until = NULL, \
                     retry_at = $6, error = $7 \
                     WHERE schedule_id = $1 AND run_key = $2 AND run_id = $3 AND status = $8",
                    &[
                        &id,
                        &key,
                        &run_id,
                        &(if retry_at.is_some() {
                            RunStatus::Retrying
                        } else {
                            RunStatus::Failed
                        } as i16),
                        &at,
                        retry_at,
                        error,
                        &RUNNING,
                    ],
                ),
            }
            .map_err(pg)?;
            Ok(n == 1)
        })
    }

    fn export_runs(&self, id: &str) -> StoreResult<Vec<ExportRun>> {
        self.read(|tx| {
            tx.query(
                &format!(
                    "SELECT {RUN} FROM export_run WHERE schedule_id = $1 \
                     ORDER BY run_key COLLATE \"C\" DESC"
                ),
                &[&id],
            )
            .map_err(pg)?
            .iter()
            .map(run_from_row)
            .collect()
        })
    }
}
