//! Reports: the monthly downloads of each billing period (balance and charges,
//! usage details, price list, marketplace charges: the CLI's reports with the
//! viewer's scope, in [`monthly`]), and advanced usage reports, prepared in
//! the background, with their job list, cancel and download (in [`advanced`]).
//! This module draws the page.

mod advanced;
mod monthly;

use super::overview::label;
use super::{render, Nav, Page, PageResult, Tab, Viewer};
use crate::AppState;
use advanced::{job_rows, visible_jobs};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use meterbook_core::access::Scope;
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::jobs::ExportFormat;
use meterbook_core::Day;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/e/{n}/reports", get(reports_page))
        .route("/portal/e/{n}/download/{kind}", get(monthly::download))
        .route("/portal/e/{n}/reports/request", post(advanced::request))
        .route("/portal/e/{n}/reports/jobs", get(advanced::jobs_fragment))
        .route(
            "/portal/e/{n}/reports/jobs/{id}/download",
            get(advanced::job_download),
        )
        .route(
            "/portal/e/{n}/reports/jobs/{id}/cancel",
            post(advanced::cancel),
        )
}

// ---------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------

/// A billing period of the monthly list.
pub struct PeriodRow {
    pub id: String,
    pub label: String,
    pub closed: bool,
    pub current: bool,
    pub has_prices: bool,
    pub has_marketplace: bool,
}

/// An option of a select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A job of the list, ready to show.
pub struct JobRow {
    pub id: String,
    pub short_id: String,
    pub requested: String,
    pub requested_by: String,
    pub range: String,
    pub format: String,
    pub filters: String,
    pub status: String,
    /// `queued`, `running`, `ready`, `empty`, `failed`, `cancelled`,
    /// `withheld`, `expired`.
    pub status_class: &'static str,
    /// Queued or running: the list refreshes itself while any row is open.
    pub open: bool,
    pub can_cancel: bool,
    pub progress: String,
    pub has_file: bool,
    pub error: String,
}

#[derive(Template)]
#[template(path = "portal/reports.html")]
struct ReportsPage {
    nav: Nav,
    freshness: String,
    periods: Vec<PeriodRow>,
    sees_balance: bool,
    sees_costs: bool,
    /// The advanced form asks for a billing period (else a date range).
    by_period: bool,
    /// The billing periods of the term up to the current one, newest first.
    period_choices: Vec<Choice>,
    start: String,
    end: String,
    /// The dates offered: the term's, up to today.
    date_min: String,
    date_max: String,
    term: String,
    accounts: Vec<Choice>,
    departments: Vec<Choice>,
    formats: Vec<Choice>,
    /// Why the last request was refused: next to `field` when it is about one
    /// (`period`, `start`, `end`), else above the form.
    message: Option<String>,
    field: &'static str,
    /// What just happened (requested, cancelled).
    notice: Option<String>,
    // The job list (shared with the fragment).
    number: String,
    csrf: String,
    jobs: Vec<JobRow>,
}

#[derive(Template)]
#[template(path = "portal/reports_jobs.html")]
struct JobsFragment {
    number: String,
    csrf: String,
    jobs: Vec<JobRow>,
}

#[derive(Deserialize, Default)]
pub struct PageQ {
    done: Option<String>,
    job: Option<String>,
}

/// What the advanced form holds (kept when a request is refused).
#[derive(Default)]
struct FormState {
    /// `period` (a billing period, as booked) or `range` (usage dates); empty: `range`.
    kind: String,
    period: Option<String>,
    start: Option<String>,
    end: Option<String>,
    accounts: Vec<String>,
    departments: Vec<String>,
    format: String,
    /// The field a refusal is about (empty: the form as a whole).
    field: &'static str,
}

async fn reports_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Query(q): Query<PageQ>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let notice = match (q.done.as_deref(), q.job.as_deref()) {
        (Some("requested"), Some(id)) => Some(format!(
            "Report {} requested. It appears in the list below; reload the page to see its progress.",
            short(id)
        )),
        (Some("cancelled"), Some(id)) => Some(format!("Report {} cancelled.", short(id))),
        (Some("ended"), Some(id)) => Some(format!(
            "Report {} had already ended: there was nothing to cancel.",
            short(id)
        )),
        _ => None,
    };
    show(&state, &page, FormState::default(), None, notice).await
}

/// Renders the page (with the form as given, and a message when a request was refused).
async fn show(
    state: &AppState,
    page: &Page,
    form: FormState,
    message: Option<String>,
    notice: Option<String>,
) -> PageResult {
    let cur = page.access.current_period();
    let first = page.e.first_period();
    let scope = page.scope();
    let a = page.access.clone();
    let entries = state.run(move |_| a.billing_periods()).await?;
    let (h, jobs) = visible_jobs(state, page).await?;
    // Newest first.
    let periods = entries
        .iter()
        .map(|entry| PeriodRow {
            id: entry.info.period.to_string(),
            label: label(entry.info.period),
            closed: entry.info.closed,
            current: entry.info.period == cur,
            has_prices: entry.info.has_price_sheet,
            has_marketplace: entry.marketplace,
        })
        .collect();
    let (accounts, departments) = choices(&h, scope, &form);
    let fmt = if form.format.is_empty() {
        "csv".to_string()
    } else {
        form.format.clone()
    };
    let formats = ExportFormat::ALL
        .iter()
        .map(|f| Choice {
            value: f.name().to_string(),
            label: format_label(*f).to_string(),
            selected: f.name() == fmt,
        })
        .collect();
    let e = &page.e;
    let chosen = form.period.clone().unwrap_or_else(|| cur.to_string());
    let period_choices = first
        .through(cur.min(e.last_period()))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|p| Choice {
            value: p.to_string(),
            label: label(p),
            selected: p.to_string() == chosen,
        })
        .collect();
    // Default range: the current period, inside the term.
    let start = form
        .start
        .unwrap_or_else(|| cur.first_day().max(e.start).to_string());
    let end = form.end.unwrap_or_else(|| {
        cur.last_day()
            .min(e.end)
            .min(page.access.today())
            .to_string()
    });
    let (date_min, date_max) = date_limits(page);
    let freshness = format!(
        "Usage complete through {}; generated {}",
        e.watermark
            .map_or("(not set)".to_string(), |d| d.to_string()),
        page.clock.now().format("%Y-%m-%d %H:%M UTC")
    );
    let failed = message.is_some();
    let mut r = render(&ReportsPage {
        nav: page.nav(Tab::Reports),
        freshness,
        periods,
        sees_balance: scope.sees_balance(),
        sees_costs: page.sees_costs(),
        by_period: form.kind == "period",
        period_choices,
        start,
        end,
        date_min: date_min.to_string(),
        date_max: date_max.to_string(),
        term: format!("{} to {}", e.start, e.end),
        accounts,
        departments,
        formats,
        message,
        field: form.field,
        notice,
        number: page.n.to_string(),
        csrf: page.viewer.session.csrf.clone(),
        jobs: job_rows(&jobs, page, &h),
    });
    if failed {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

/// The dates the advanced form offers and accepts: the term's, up to today
/// (a term that starts after today offers its first day).
fn date_limits(page: &Page) -> (Day, Day) {
    let e = &page.e;
    (e.start, e.end.min(page.access.today()).max(e.start))
}

/// The advanced form's dates, checked against each other and the offered
/// range: the field a refusal is about, and why.
fn check_dates(page: &Page, from: Day, to: Day) -> Result<(), (&'static str, String)> {
    let (min, max) = date_limits(page);
    if from < min || from > max {
        return Err((
            "start",
            format!("The start date must be from {min} to {max} (the enrollment's term, up to today), not {from}."),
        ));
    }
    if to < min || to > max {
        return Err((
            "end",
            format!("The end date must be from {min} to {max} (the enrollment's term, up to today), not {to}."),
        ));
    }
    if to < from {
        return Err((
            "end",
            format!("The end date {to} is before the start date {from}."),
        ));
    }
    Ok(())
}

/// The accounts and departments the viewer may filter on.
fn choices(h: &Hierarchy, scope: Scope, form: &FormState) -> (Vec<Choice>, Vec<Choice>) {
    let mut accounts: Vec<Choice> = h
        .accounts
        .values()
        .filter(|a| scope.covers(Scope::Account(a.id), h))
        .map(|a| Choice {
            value: a.name.clone(),
            label: match h.department(a.department_id) {
                Some(d) => format!("{} ({})", a.name, d.name),
                None => a.name.clone(),
            },
            selected: form.accounts.contains(&a.name),
        })
        .collect();
    accounts.sort_by(|a, b| a.value.cmp(&b.value));
    let mut departments: Vec<Choice> = h
        .departments
        .values()
        .filter(|d| scope.covers(Scope::Department(d.id), h))
        .map(|d| Choice {
            value: d.name.clone(),
            label: d.name.clone(),
            selected: form.departments.contains(&d.name),
        })
        .collect();
    departments.sort_by(|a, b| a.value.cmp(&b.value));
    (accounts, departments)
}

fn format_label(f: ExportFormat) -> &'static str {
    match f {
        ExportFormat::Csv => "CSV",
        ExportFormat::CsvGzip => "CSV, gzip-compressed",
        ExportFormat::Parquet => "Parquet",
        ExportFormat::FocusCsv => "FOCUS 1.2 CSV",
        ExportFormat::FocusParquet => "FOCUS 1.2 Parquet",
    }
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}
