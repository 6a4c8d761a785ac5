//! Manage › Exports: the enrollment's scheduled exports with their recent
//! runs (status, attempts, error), a form to create one, and per schedule
//! "run now" and "delete". Enterprise administrators see the page;
//! read-write ones get the forms. The rules are the use-case layer's
//! ([`meterbook_app::exports`]).

use super::{as_admin, as_enterprise, csrf_form, outcome, with_status, AdminForm, Manager, Notice};
use crate::portal::{render, Nav, Page, PageResult, Tab};
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use meterbook_app::exports::NewExport;
use meterbook_app::Span;
use meterbook_core::exports::{Cadence, ExportRun};
use meterbook_core::jobs::ExportFormat;
use serde::Deserialize;

/// Runs shown per schedule.
const RUNS_SHOWN: usize = 10;

pub struct RunView {
    pub key: String,
    pub status: String,
    pub attempts: u32,
    pub finished: String,
    pub retry: String,
    pub error: String,
    pub rows: String,
}

pub struct ExportView {
    pub id: String,
    pub name: String,
    pub folder: String,
    pub schedule: String,
    pub format: String,
    pub runs: Vec<RunView>,
}

#[derive(Template)]
#[template(path = "portal/manage_exports.html")]
struct ExportsPage {
    nav: Nav,
    section: &'static str,
    notice: Option<Notice>,
    exports: Vec<ExportView>,
    formats: Vec<&'static str>,
}

fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or(String::new(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn run_view(r: ExportRun) -> RunView {
    let rows = r
        .manifest
        .as_deref()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .and_then(|m| m["rows"].as_u64())
        .map_or(String::new(), |n| n.to_string());
    RunView {
        key: r.run_key,
        status: r.status.name().into(),
        attempts: r.attempts,
        finished: when(r.finished_at),
        retry: when(r.retry_at),
        error: r.error.unwrap_or_default(),
        rows,
    }
}

async fn render_exports(
    state: &AppState,
    page: &Page,
    notice: Option<Notice>,
    status: StatusCode,
) -> PageResult {
    let list = as_enterprise(state, page, |en| {
        let a = en.access();
        let mut out = Vec::new();
        for s in a.exports()? {
            let runs = a.export_runs(&s.id)?;
            out.push((s, runs));
        }
        Ok(out)
    })
    .await?;
    let exports = list
        .into_iter()
        .map(|(s, runs)| ExportView {
            schedule: match s.cadence {
                Cadence::Once { from, to } => format!("once, {from} to {to}"),
                Cadence::DailyMonthToDate => "daily, month to date".into(),
                Cadence::MonthlyClosed => "monthly, each closed period".into(),
            },
            id: s.id,
            name: s.name,
            folder: s.folder,
            format: s.format.name().into(),
            runs: runs.into_iter().take(RUNS_SHOWN).map(run_view).collect(),
        })
        .collect();
    Ok(with_status(
        render(&ExportsPage {
            nav: page.nav(Tab::Manage),
            section: "exports",
            notice,
            exports,
            formats: ExportFormat::ALL.iter().map(|f| f.name()).collect(),
        }),
        status,
    ))
}

pub(super) async fn page(State(state): State<AppState>, Manager(page): Manager) -> PageResult {
    render_exports(&state, &page, None, StatusCode::OK).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CreateForm {
    csrf: String,
    name: String,
    folder: String,
    schedule: String,
    format: String,
    from: String,
    to: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ExportForm {
    csrf: String,
    export_id: String,
}

csrf_form!(CreateForm, ExportForm);

pub(super) async fn create(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<CreateForm>,
) -> PageResult {
    let parsed = (|| -> Result<NewExport, ApiError> {
        let day = |v: &str, what: &str| -> Result<meterbook_core::Day, ApiError> {
            v.trim()
                .parse()
                .map_err(|e: meterbook_core::calendar::DateError| {
                    ApiError::BadRequest(format!("{what}: {}", e.0))
                })
        };
        let span = match (f.from.trim(), f.to.trim()) {
            ("", "") => None,
            (a, b) => Some(Span::Range(day(a, "from")?, day(b, "to")?)),
        };
        Ok(NewExport {
            name: f.name,
            folder: f.folder.trim().to_string(),
            schedule: f.schedule,
            span,
            format: ExportFormat::requested(&f.format).map_err(ApiError::BadRequest)?,
        })
    })();
    let done = match parsed {
        Ok(r) => as_admin(&state, &page, move |admin| admin.access().create_export(r)).await,
        Err(e) => Err(e),
    };
    let (notice, status) = outcome(done.map(|s| format!("Export “{}” created.", s.name)))?;
    render_exports(&state, &page, Some(notice), status).await
}

pub(super) async fn run_now(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<ExportForm>,
) -> PageResult {
    let done = as_admin(&state, &page, move |admin| {
        admin.access().run_export_now(&f.export_id)
    })
    .await;
    let (notice, status) = outcome(done.map(|r| match r.error {
        None => format!("Run {}: {}.", r.run_key, r.status.name()),
        Some(e) => format!("Run {}: {} ({e}).", r.run_key, r.status.name()),
    }))?;
    render_exports(&state, &page, Some(notice), status).await
}

pub(super) async fn delete(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<ExportForm>,
) -> PageResult {
    let done = as_admin(&state, &page, move |admin| {
        admin.access().delete_export(&f.export_id)
    })
    .await;
    let (notice, status) =
        outcome(done.map(|()| "Export deleted (files already written stay).".to_string()))?;
    render_exports(&state, &page, Some(notice), status).await
}
