//! Scheduled exports: enterprise administrators see an enrollment's export
//! schedules and their runs; read-write ones create, delete and run them
//! now. Everyone else is refused (403): an export holds the whole
//! enrollment's usage with its costs.
//!
//! Where files go is the operator's choice (`--export-root`): a schedule
//! names only a folder under it, checked by
//! [`meterbook_core::exports::check_folder`].

use crate::{Access, AppError, AppResult, Span};
use meterbook_core::exports::{check_folder, Cadence, ExportRun, ExportSchedule};
use meterbook_core::jobs::ExportFormat;
use meterbook_jobs::exports::{ExportRoot, ExportRunner};
use std::sync::Arc;
use std::time::Duration;

/// How long a run holds its key before another node may take it over.
pub const RUN_LEASE: Duration = Duration::from_secs(30 * 60);

/// What a caller asks a schedule to be.
#[derive(Clone, Debug)]
pub struct NewExport {
    pub name: String,
    pub folder: String,
    /// `daily`, `monthly`, or `once` with `span`.
    pub schedule: String,
    /// For `once`: the range (a billing period is its days).
    pub span: Option<Span>,
    pub format: ExportFormat,
}

impl crate::App {
    /// Sets where exports go; until then, running one is refused.
    pub fn set_export_root(&self, root: Arc<dyn ExportRoot>) {
        *self.inner.export_root.write().expect("not poisoned") = Some(root);
    }

    /// The runner of scheduled exports, if an export root is set.
    pub fn export_runner(&self) -> Option<ExportRunner> {
        let root = self
            .inner
            .export_root
            .read()
            .expect("not poisoned")
            .clone()?;
        Some(ExportRunner {
            store: self.store_arc().clone(),
            root,
            clock: self.clock().clone(),
            focus: self.runner().settings().focus.clone(),
            lease: RUN_LEASE,
        })
    }
}

impl Access {
    /// The enrollment's export schedules, oldest first.
    pub fn exports(&self) -> AppResult<Vec<ExportSchedule>> {
        self.enterprise()?;
        Ok(self.app.store().export_schedules(Some(self.number()))?)
    }

    /// A schedule of this enrollment (NotFound for another's).
    pub fn export(&self, id: &str) -> AppResult<ExportSchedule> {
        self.enterprise()?;
        match self.app.store().export_schedule(id)? {
            Some(s) if s.enrollment == *self.number() => Ok(s),
            _ => Err(AppError::NotFound(format!("no export {}", quote(id)))),
        }
    }

    /// Creates a schedule.
    pub fn create_export(&self, r: NewExport) -> AppResult<ExportSchedule> {
        self.admin()?;
        let name = r.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AppError::Invalid(
                "name: 1 to 100 characters, no control characters".into(),
            ));
        }
        check_folder(&r.folder).map_err(AppError::Invalid)?;
        let cadence = match (r.schedule.as_str(), r.span) {
            ("daily", None) => Cadence::DailyMonthToDate,
            ("monthly", None) => Cadence::MonthlyClosed,
            ("once", Some(span)) => {
                let (from, to) = match span {
                    Span::Period(p) => {
                        let p = self.check_period(p)?;
                        (p.first_day(), p.last_day())
                    }
                    Span::Range(from, to) => (from, to),
                };
                if from > to {
                    return Err(AppError::Invalid(
                        "startDate must not be after endDate".into(),
                    ));
                }
                let e = self.enrollment();
                if from < e.start || to > e.end {
                    return Err(AppError::Invalid(format!(
                        "the range must lie inside the enrollment's term, {} to {}",
                        e.start, e.end
                    )));
                }
                Cadence::Once { from, to }
            }
            ("once", None) => {
                return Err(AppError::Invalid(
                    "a once export needs startDate and endDate".into(),
                ))
            }
            ("daily" | "monthly", Some(_)) => {
                return Err(AppError::Invalid(
                    "only a once export takes startDate and endDate".into(),
                ))
            }
            (other, _) => {
                return Err(AppError::Invalid(format!(
                    "unknown schedule \"{}\": use daily, monthly or once",
                    quote(other)
                )))
            }
        };
        // Bounded like channels and budgets: every schedule is work for the
        // nodes at every tick.
        if self
            .app
            .store()
            .export_schedules(Some(self.number()))?
            .len()
            >= MAX_SCHEDULES
        {
            return Err(AppError::Conflict(format!(
                "an enrollment has at most {MAX_SCHEDULES} scheduled exports; delete one first"
            )));
        }
        let s = ExportSchedule {
            id: meterbook_jobs::new_job_id(),
            enrollment: self.number().clone(),
            name: name.to_string(),
            folder: r.folder,
            cadence,
            format: r.format,
            created_at: self.app.clock().now_millis(),
            created_by: self.actor().requester().to_string(),
        };
        self.app.store().create_export(&s)?;
        self.audit(
            "export-created",
            format!(
                "{} ({}, {}, folder {})",
                s.name,
                cadence.name(),
                s.format,
                s.folder
            ),
        );
        Ok(s)
    }

    /// Deletes a schedule and its runs' records; files already written stay.
    pub fn delete_export(&self, id: &str) -> AppResult<()> {
        self.admin()?;
        let s = self.export(id)?;
        self.app.store().delete_export(self.number(), &s.id)?;
        self.audit(
            "export-deleted",
            format!("{} (folder {})", s.name, s.folder),
        );
        Ok(())
    }

    /// A schedule's runs, newest key first.
    pub fn export_runs(&self, id: &str) -> AppResult<Vec<ExportRun>> {
        let s = self.export(id)?;
        Ok(self.app.store().export_runs(&s.id)?)
    }

    /// Runs a schedule's current key now (again if it ran), on a thread of
    /// its own: the run as it ended if it ends within [`RUN_NOW_WAIT`], else
    /// as it is then (status running; it goes on, and its runs say how it
    /// ended). A request never waits on a large export for longer than
    /// that. Conflict while another node runs that key.
    pub fn run_export_now(&self, id: &str) -> AppResult<ExportRun> {
        self.admin()?;
        let s = self.export(id)?;
        let runner = self
            .app
            .export_runner()
            .ok_or_else(|| AppError::Conflict("exports are not enabled on this server".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let schedule = s.clone();
        std::thread::Builder::new()
            .name("export-run-now".into())
            .spawn(move || {
                let _ = tx.send(runner.run_now(&schedule));
            })
            .map_err(|e| AppError::Internal(format!("cannot start the export: {e}")))?;
        match rx.recv_timeout(RUN_NOW_WAIT) {
            Ok(Ok(Some(r))) => Ok(r.run),
            Ok(Ok(None)) => Err(AppError::Conflict(
                "this export is running now; try again when it ends".into(),
            )),
            Ok(Err(e)) => Err(e.into()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => self
                .app
                .store()
                .export_runs(&s.id)?
                .into_iter()
                .find(|r| r.status == meterbook_core::exports::RunStatus::Running)
                .ok_or_else(|| AppError::Internal("the export run was not recorded".into())),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(AppError::Internal("the export run stopped".into()))
            }
        }
    }
}

/// How long a run-now request waits for its run to end.
pub const RUN_NOW_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Scheduled exports an enrollment may have.
pub const MAX_SCHEDULES: usize = 20;

fn quote(s: &str) -> String {
    meterbook_core::quote::quote(s).to_string()
}
