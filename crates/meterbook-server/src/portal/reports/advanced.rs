//! Advanced usage reports: prepared in the background through the use-case
//! layer (the API's and the CLI's rules: reach, term, quota), with their job
//! list, cancel and download.

use super::super::overview::label;
use super::super::{format, render, Page, PageResult, Viewer};
use super::{check_dates, format_label, short, show, FormState, JobRow, JobsFragment};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use meterbook_app::jobs::ReportRequest;
use meterbook_app::{AppError, Span};
use meterbook_core::access::Scope;
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::jobs::{ExportFormat, Job, JobStatus};
use meterbook_core::{Day, Period};
use meterbook_jobs::FileState;
use serde::Deserialize;

fn ms_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn status_text(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "Queued",
        JobStatus::InProgress => "Running",
        JobStatus::Completed => "Completed",
        JobStatus::Failed => "Failed",
        JobStatus::NoDataFound => "Ready (no rows matched)",
        JobStatus::ReadyToDownload => "Ready",
        JobStatus::TimedOut => "Timed out",
        JobStatus::Cancelled => "Cancelled",
    }
}

fn status_class(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "queued",
        JobStatus::InProgress => "running",
        JobStatus::Completed | JobStatus::ReadyToDownload => "ready",
        JobStatus::NoDataFound => "empty",
        JobStatus::Failed | JobStatus::TimedOut => "failed",
        JobStatus::Cancelled => "cancelled",
    }
}

fn scope_label(h: &Hierarchy, s: Scope) -> String {
    match s {
        Scope::Enrollment => "the enrollment".into(),
        Scope::Department(d) => h
            .departments
            .get(&d)
            .map_or(format!("department {d}"), |d| {
                format!("department {}", d.name)
            }),
        Scope::Account(a) => h
            .accounts
            .get(&a)
            .map_or(format!("account {a}"), |a| format!("account {}", a.name)),
    }
}

/// The jobs the viewer may see, with the state of their files (a Ready job
/// whose download would answer 410 is listed as what it is), and the
/// hierarchy that names their filters.
pub(super) async fn visible_jobs(
    state: &AppState,
    page: &Page,
) -> Result<(Hierarchy, Vec<(Job, FileState)>), ApiError> {
    let a = page.access.clone();
    state
        .run(move |_| Ok((a.hierarchy()?, a.report_jobs()?)))
        .await
}

pub(super) fn job_rows(jobs: &[(Job, FileState)], page: &Page, h: &Hierarchy) -> Vec<JobRow> {
    jobs.iter()
        .map(|(j, file)| {
            let mut filters = Vec::new();
            if !j.spec.departments.is_empty() {
                filters.push(format!("departments {}", j.spec.departments.join(", ")));
            }
            if !j.spec.accounts.is_empty() {
                filters.push(format!("accounts {}", j.spec.accounts.join(", ")));
            }
            if filters.is_empty() {
                filters.push(format!("all of {}", scope_label(h, j.spec.scope)));
            }
            let rows = match j.rows_expected {
                Some(x) => format!(
                    "{} of {} rows",
                    format::group(&j.rows_done.to_string()),
                    format::group(&x.to_string())
                ),
                None => format!("{} rows", format::group(&j.rows_done.to_string())),
            };
            JobRow {
                id: j.id.clone(),
                short_id: short(&j.id),
                requested: ms_text(j.requested_at),
                requested_by: j.requested_by.to_string(),
                range: match j.spec.billing_period {
                    Some(p) => format!("Billing period {} (as billed)", label(p)),
                    None => format!("{} to {} (usage dates)", j.spec.from, j.spec.to),
                },
                format: format_label(j.spec.format).to_string(),
                filters: filters.join("; "),
                status: match file {
                    FileState::Withheld => {
                        "Withheld — charges now hidden from your role; request again"
                    }
                    FileState::Gone => "Expired — request again",
                    FileState::NoFile | FileState::Available => status_text(j.status),
                }
                .to_string(),
                status_class: match file {
                    FileState::Withheld => "withheld",
                    FileState::Gone => "expired",
                    FileState::NoFile | FileState::Available => status_class(j.status),
                },
                open: !j.status.is_final(),
                can_cancel: !j.status.is_final() && page.access.may_cancel(j),
                progress: format!("{rows}, {} bytes", format::group(&j.bytes.to_string())),
                has_file: *file == FileState::Available,
                error: j.error.clone().unwrap_or_default(),
            }
        })
        .collect()
}

/// `GET .../reports/jobs`: the job list alone, for the page's auto-refresh.
pub(super) async fn jobs_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let (h, jobs) = visible_jobs(&state, &page).await?;
    Ok(render(&JobsFragment {
        number: page.n.to_string(),
        csrf: page.viewer.session.csrf.clone(),
        jobs: job_rows(&jobs, &page, &h),
    }))
}

/// `POST .../reports/request`: an advanced report for the viewer's scope.
pub(super) async fn request(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let get = |k: &str| {
        fields
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.trim().to_string())
    };
    let all = |k: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|(name, v)| name == k && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    };
    page.viewer.check_csrf(&get("csrf").unwrap_or_default())?;
    let mut form = FormState {
        kind: get("kind").unwrap_or_default(),
        period: get("period"),
        start: get("start"),
        end: get("end"),
        accounts: all("accounts"),
        departments: all("departments"),
        format: get("format").unwrap_or_else(|| "csv".into()),
        field: "",
    };
    let day = |v: &Option<String>, what: &str| -> Result<Day, String> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Err(format!("The {what} date is required (YYYY-MM-DD).")),
            Some(s) => s
                .parse::<Day>()
                .map_err(|e| format!("The {what} date: {}.", e.0)),
        }
    };
    let span = match form.kind.as_str() {
        "period" => billing_period(&page, form.period.as_deref()).map_err(|m| ("period", m)),
        "" | "range" => match (day(&form.start, "start"), day(&form.end, "end")) {
            (Ok(f), Ok(t)) => check_dates(&page, f, t).map(|_| Span::Range(f, t)),
            (Err(m), _) => Err(("start", m)),
            (_, Err(m)) => Err(("end", m)),
        },
        other => Err((
            "",
            format!(
                "Choose a billing period or a date range, not `{}`.",
                meterbook_core::quote::quote(other)
            ),
        )),
    };
    let span_format = span.and_then(|s| {
        ExportFormat::requested(&form.format)
            .map(|f| (s, f))
            .map_err(|m| ("", sentence(&m)))
    });
    let (span, format) = match span_format {
        Ok(v) => v,
        Err((field, m)) => {
            form.field = field;
            return show(&state, &page, form, Some(m), None).await;
        }
    };
    let r = ReportRequest {
        span,
        accounts: form.accounts.clone(),
        departments: form.departments.clone(),
        format,
    };
    let detail = format!(
        "{}, {}{}{}",
        match span {
            Span::Period(p) => format!("billing period {p}"),
            Span::Range(from, to) => format!("{from} to {to}"),
        },
        r.format,
        if r.departments.is_empty() {
            String::new()
        } else {
            format!(", departments {}", r.departments.join(", "))
        },
        if r.accounts.is_empty() {
            String::new()
        } else {
            format!(", accounts {}", r.accounts.join(", "))
        },
    );
    let a = page.access.clone();
    // Refusals the viewer can fix are shown on the page, with the form.
    let submitted = state.run(move |_| Ok(a.submit_report(r))).await?;
    let job = match submitted {
        Ok((job, created)) => {
            if created {
                state.reports().workers.notify();
            }
            job
        }
        Err(AppError::Invalid(m)) => {
            return show(&state, &page, form, Some(sentence(&m)), None).await
        }
        Err(AppError::Quota { message, .. }) => {
            // Shown on the reports page, where the viewer can cancel or delete jobs.
            let mut r = show(&state, &page, form, Some(sentence(&message)), None).await?;
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            return Ok(r);
        }
        Err(e) => return Err(ApiError::from(e).into()),
    };
    page.audit(
        &state,
        "report-requested",
        format!("{detail} (job {})", job.id),
    )
    .await;
    Ok(Redirect::to(&format!(
        "/portal/e/{}/reports?done=requested&job={}#jobs",
        page.n, job.id
    ))
    .into_response())
}

/// The form's billing period, inside the term up to the current period.
fn billing_period(page: &Page, v: Option<&str>) -> Result<Span, String> {
    let p: Period = match v.filter(|s| !s.is_empty()) {
        None => return Err("Choose a billing period.".into()),
        Some(s) => s
            .parse()
            .map_err(|e: meterbook_core::calendar::DateError| {
                format!("The billing period: {}.", e.0)
            })?,
    };
    let e = &page.e;
    let last = page.access.current_period();
    if p < e.first_period() || p > last {
        return Err(format!(
            "Billing period {} is not inside the enrollment's term up to the current period: choose one from {} to {}.",
            label(p),
            label(e.first_period()),
            label(last)
        ));
    }
    Ok(Span::Period(p))
}

/// A message with a capital letter and a full stop.
fn sentence(m: &str) -> String {
    let mut c = m.chars();
    let mut s = match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    };
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST .../reports/jobs/{id}/cancel`: cancels a queued or running job.
pub(super) async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((n, id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    page.viewer.check_csrf(&f.csrf)?;
    let (a, jid) = (page.access.clone(), id.clone());
    // Ok(true): cancelled now; Ok(false): it had ended (or ended meanwhile).
    let cancelled = state
        .run(move |_| match a.cancel_report(&jid) {
            Ok(after) => Ok(after == JobStatus::Cancelled),
            Err(AppError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        })
        .await?;
    let done = if cancelled {
        page.audit(&state, "report-cancelled", format!("job {id}"))
            .await;
        "cancelled"
    } else {
        "ended"
    };
    Ok(Redirect::to(&format!(
        "/portal/e/{}/reports?done={done}&job={id}#jobs",
        page.n
    ))
    .into_response())
}

/// `GET|HEAD .../reports/jobs/{id}/download`: the job's file, with Range, HEAD and ETag.
pub(super) async fn job_download(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((n, id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let (a, jid) = (page.access.clone(), id.clone());
    let (job, _) = state.run(move |_| a.report_job(&jid)).await?;
    let res = state.serve_job_file(&job, &method, &headers).await?;
    // One audit line per whole download (not per range or revalidation).
    if method == Method::GET && res.status() == StatusCode::OK {
        page.audit(&state, "download", format!("report job {}", job.id))
            .await;
    }
    Ok(res)
}
