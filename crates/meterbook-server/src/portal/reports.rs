//! Reports: the monthly downloads of each billing period (balance and charges,
//! usage details, price list, marketplace charges: the CLI's writers with the
//! viewer's scope), and advanced usage reports, prepared in the background,
//! with their job list, cancel and download.

use super::overview::{current_period, label};
use super::{format, render, Nav, Page, PageResult, Tab, Viewer};
use crate::{ApiError, AppState};
use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use bytes::Bytes;
use meterbook_core::access::Scope;
use meterbook_core::hierarchy::Hierarchy;
use meterbook_core::jobs::{Job, JobSpec, JobStatus};
use meterbook_core::prices::{ChargeKind, MeterPrice};
use meterbook_core::statement::Statement;
use meterbook_core::store::UsageSelection;
use meterbook_core::{Day, Period};
use meterbook_io::report::export::ExportFormat;
use meterbook_io::report::usage::{UsageFilter, UsageReport};
use meterbook_io::report::{balance, prices, ReportFormat, ReportMeta, ReportScope};
use meterbook_jobs::runner::RequestError;
use meterbook_jobs::FileState;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/e/{n}/reports", get(reports_page))
        .route("/portal/e/{n}/download/{kind}", get(download))
        .route("/portal/e/{n}/reports/request", post(request))
        .route("/portal/e/{n}/reports/jobs", get(jobs_fragment))
        .route(
            "/portal/e/{n}/reports/jobs/{id}/download",
            get(job_download),
        )
        .route("/portal/e/{n}/reports/jobs/{id}/cancel", post(cancel))
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
    let number = page.n.clone();
    let cur = current_period(&page.e, page.clock.as_ref());
    let first = page.e.first_period();
    let scope = page.scope();
    let infos = state
        .blocking(move |s| {
            let mut out = Vec::new();
            for info in s
                .periods(&number)?
                .into_iter()
                .filter(|i| i.period <= cur && i.period >= first)
            {
                let marketplace = info.has_price_sheet
                    && s.price_sheet(&number, info.period)?
                        .iter()
                        .any(|(_, m)| m.info.kind() == ChargeKind::Marketplace);
                out.push((info, marketplace));
            }
            Ok(out)
        })
        .await?;
    let (h, jobs) = visible_jobs(state, page).await?;
    let periods = infos
        .iter()
        .rev()
        .map(|(i, marketplace)| PeriodRow {
            id: i.period.to_string(),
            label: label(i.period),
            closed: i.closed,
            current: i.period == cur,
            has_prices: i.has_price_sheet,
            has_marketplace: *marketplace,
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
            label: format_label(f.name()).to_string(),
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
    let end = form
        .end
        .unwrap_or_else(|| cur.last_day().min(e.end).min(Day::today()).to_string());
    let (date_min, date_max) = date_limits(e);
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
fn date_limits(e: &meterbook_core::Enrollment) -> (Day, Day) {
    (e.start, e.end.min(Day::today()).max(e.start))
}

/// The advanced form's dates, checked against each other and the offered
/// range: the field a refusal is about, and why.
fn check_dates(
    e: &meterbook_core::Enrollment,
    from: Day,
    to: Day,
) -> Result<(), (&'static str, String)> {
    let (min, max) = date_limits(e);
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

fn format_label(name: &str) -> &'static str {
    match name {
        "csv" => "CSV",
        "csv.gz" => "CSV, gzip-compressed",
        "parquet" => "Parquet",
        "focus-csv" => "FOCUS 1.2 CSV",
        "focus-parquet" => "FOCUS 1.2 Parquet",
        _ => "Other",
    }
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

// ---------------------------------------------------------------------------
// Monthly downloads
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Balance,
    Usage,
    Prices,
    Marketplace,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "balance" => Some(Kind::Balance),
            "usage" => Some(Kind::Usage),
            "prices" => Some(Kind::Prices),
            "marketplace" => Some(Kind::Marketplace),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Balance => "balance",
            Kind::Usage => "usage",
            Kind::Prices => "prices",
            Kind::Marketplace => "marketplace",
        }
    }
    /// The downloaded file's name part.
    fn file(self) -> &'static str {
        match self {
            Kind::Balance => "balance-and-charges",
            Kind::Usage => "usage-details",
            Kind::Prices => "price-list",
            Kind::Marketplace => "marketplace-charges",
        }
    }
}

#[derive(Deserialize)]
pub struct DownloadQ {
    period: Option<String>,
    format: Option<String>,
}

/// What a download writes, loaded (and failed, if it must) before the response starts.
enum Prepared {
    Balance(Vec<Statement>, u32),
    Prices(Vec<MeterPrice>),
    Usage(Box<UsageReport>),
}

/// Bytes written on a blocking thread, sent to the response body through a
/// bounded channel: the report streams and memory stays flat.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /portal/e/{n}/download/{kind}?period=YYYYMM&format=csv|json`: what
/// `meterbook report <kind> --period P --format F` writes, limited to the
/// viewer's scope (design §5).
async fn download(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((n, kind)): Path<(String, String)>,
    Query(q): Query<DownloadQ>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let kind = Kind::parse(&kind)
        .ok_or_else(|| ApiError::NotFound(format!("there is no {kind} report")))?;
    let scope = page.scope();
    if matches!(kind, Kind::Balance | Kind::Prices) && !scope.sees_balance() {
        return Err(ApiError::Forbidden(
            "the balance and the price list are for enterprise administrators".into(),
        )
        .into());
    }
    let e = page.e.clone();
    let period: Period = match q.period.as_deref().filter(|p| !p.is_empty()) {
        None => current_period(&e, page.clock.as_ref()),
        Some(p) => p
            .parse()
            .map_err(|err: meterbook_core::calendar::DateError| ApiError::BadRequest(err.0))?,
    };
    if period < e.first_period() || period > e.last_period() {
        return Err(ApiError::BadRequest(format!(
            "billing period {period} is outside the enrollment's term {} to {}",
            e.start, e.end
        ))
        .into());
    }
    let (format, ext, content_type) = match q.format.as_deref().unwrap_or("csv") {
        "csv" => (ReportFormat::Csv, "csv", "text/csv; charset=utf-8"),
        "json" => (ReportFormat::Json, "json", "application/json"),
        other => {
            return Err(ApiError::BadRequest(format!(
                "the format must be csv or json, not `{}`",
                meterbook_core::quote::quote(other)
            ))
            .into())
        }
    };
    let meta = ReportMeta {
        enrollment: page.n.to_string(),
        scope: ReportScope::Period(period.to_string()),
        generated_at: page.clock.now_rfc3339(),
        watermark: e.watermark.map(|d| d.to_string()),
        currency: e.currency.code().to_string(),
    };
    let number = page.n.clone();
    let show_costs = page.sees_costs();
    let pmeta = meta.clone();
    let prepared = state
        .blocking(move |s| {
            Ok(match kind {
                Kind::Balance => {
                    let sts = meterbook_core::ledger::statements(s, &number, period)?
                        .into_iter()
                        .map(|(st, _)| st)
                        .filter(|st| st.period >= period)
                        .collect();
                    Prepared::Balance(sts, e.currency.exponent())
                }
                Kind::Prices => Prepared::Prices(
                    s.price_sheet(&number, period)?
                        .into_iter()
                        .map(|(_, m)| m)
                        .collect(),
                ),
                Kind::Usage | Kind::Marketplace => {
                    let filter = UsageFilter {
                        marketplace_only: kind == Kind::Marketplace,
                        ..UsageFilter::within(
                            scope,
                            show_costs,
                            UsageSelection {
                                booked: Some(period),
                                ..Default::default()
                            },
                        )
                    };
                    Prepared::Usage(Box::new(UsageReport::prepare(s, &number, filter, pmeta)?))
                }
            })
        })
        .await?;
    page.audit(
        &state,
        "download",
        format!("{} {period} {ext}", kind.name()),
    )
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = state.store().clone();
    let number = page.n.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx: tx.clone() };
        let done: Result<(), String> = match &prepared {
            Prepared::Balance(sts, exp) => {
                balance::write(&meta, sts, *exp, format, &mut w).map_err(|e| e.to_string())
            }
            Prepared::Prices(sheet) => {
                prices::write(&meta, sheet, format, &mut w).map_err(|e| e.to_string())
            }
            Prepared::Usage(report) => report
                .write(store.as_ref(), &number, format, &mut w)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "portal download ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other("report failed")));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let file = format!("{}_{}_{period}.{ext}", kind.file(), page.n);
    let mut res = Body::from_stream(stream).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

// ---------------------------------------------------------------------------
// Advanced reports (jobs)
// ---------------------------------------------------------------------------

/// Whether the viewer may see `job`: an enterprise administrator sees every
/// job of the enrollment; others see the jobs requested with their own scope
/// (the API's rule).
fn visible(page: &Page, job: &Job) -> bool {
    job.enrollment == page.n && (page.scope().sees_balance() || job.spec.scope == page.scope())
}

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

/// Who may cancel a job: a role that may change things, or whoever asked for it.
fn may_cancel(page: &Page, job: &Job) -> bool {
    !page.role.read_only || job.requested_by == page.viewer.user.email
}

/// The jobs the viewer may see, with the state of their files (a Ready job
/// whose download would answer 410 is listed as what it is).
async fn visible_jobs(
    state: &AppState,
    page: &Page,
) -> Result<(Hierarchy, Vec<(Job, FileState)>), ApiError> {
    let number = page.n.clone();
    let scope = page.scope();
    let runner = state.reports().runner.clone();
    state
        .blocking(move |s| {
            let visibility = s.enrollment(&number)?.visibility;
            let jobs = s
                .jobs(&number)?
                .into_iter()
                .filter(|j| scope.sees_balance() || j.spec.scope == scope)
                .map(|j| {
                    let f = meterbook_jobs::file_state(&j, visibility, runner.files());
                    (j, f)
                })
                .collect();
            Ok((s.hierarchy(&number)?, jobs))
        })
        .await
}

fn job_rows(jobs: &[(Job, FileState)], page: &Page, h: &Hierarchy) -> Vec<JobRow> {
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
                requested_by: j.requested_by.clone(),
                range: match j.spec.billing_period {
                    Some(p) => format!("Billing period {} (as billed)", label(p)),
                    None => format!("{} to {} (usage dates)", j.spec.from, j.spec.to),
                },
                format: format_label(&j.spec.format).to_string(),
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
                can_cancel: !j.status.is_final() && may_cancel(page, j),
                progress: format!("{rows}, {} bytes", format::group(&j.bytes.to_string())),
                has_file: *file == FileState::Available,
                error: j.error.clone().unwrap_or_default(),
            }
        })
        .collect()
}

/// `GET .../reports/jobs`: the job list alone, for the page's auto-refresh.
async fn jobs_fragment(
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
async fn request(
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
    let form = FormState {
        kind: get("kind").unwrap_or_default(),
        period: get("period"),
        start: get("start"),
        end: get("end"),
        accounts: all("accounts"),
        departments: all("departments"),
        format: get("format").unwrap_or_else(|| "csv".into()),
        field: "",
    };
    let mut form = form;
    let day = |v: &Option<String>, what: &str| -> Result<Day, String> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Err(format!("The {what} date is required (YYYY-MM-DD).")),
            Some(s) => s
                .parse::<Day>()
                .map_err(|e| format!("The {what} date: {}.", e.0)),
        }
    };
    let spans = match form.kind.as_str() {
        "period" => billing_period(&page, form.period.as_deref()).map_err(|m| ("period", m)),
        "" | "range" => match (day(&form.start, "start"), day(&form.end, "end")) {
            (Ok(f), Ok(t)) => check_dates(&page.e, f, t).map(|_| (None, f, t)),
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
    let (billing_period, from, to) = match spans {
        Ok(v) => v,
        Err((field, m)) => {
            form.field = field;
            return show(&state, &page, form, Some(m), None).await;
        }
    };
    let spec = JobSpec {
        scope: page.scope(),
        billing_period,
        from,
        to,
        accounts: form.accounts.clone(),
        departments: form.departments.clone(),
        format: form.format.clone(),
    };
    let detail = format!(
        "{}, {}{}{}",
        match billing_period {
            Some(p) => format!("billing period {p}"),
            None => format!("{from} to {to}"),
        },
        spec.format,
        if spec.departments.is_empty() {
            String::new()
        } else {
            format!(", departments {}", spec.departments.join(", "))
        },
        if spec.accounts.is_empty() {
            String::new()
        } else {
            format!(", accounts {}", spec.accounts.join(", "))
        },
    );
    let (runner, number, by) = (
        state.reports().runner.clone(),
        page.n.clone(),
        page.viewer.user.email.clone(),
    );
    let submitted = state
        .blocking(move |_| Ok(runner.submit(&number, spec, &by)))
        .await?;
    let job = match submitted {
        Ok((job, created)) => {
            if created {
                state.reports().workers.notify();
            }
            job
        }
        Err(RequestError::Invalid(m)) => {
            return show(&state, &page, form, Some(sentence(&m)), None).await
        }
        Err(RequestError::Quota { message, .. }) => {
            // Shown on the reports page, where the viewer can cancel or delete jobs.
            let mut r = show(&state, &page, form, Some(sentence(&message)), None).await?;
            *r.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
            return Ok(r);
        }
        Err(RequestError::Forbidden(m)) => return Err(ApiError::Forbidden(m).into()),
        Err(RequestError::Store(e)) => return Err(e.into()),
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

/// The form's billing period and its days inside the term: the rows booked
/// in it, as its monthly Usage details download holds them.
fn billing_period(page: &Page, v: Option<&str>) -> Result<(Option<Period>, Day, Day), String> {
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
    Ok((Some(p), p.first_day().max(e.start), p.last_day().min(e.end)))
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

async fn load_job(state: &AppState, page: &Page, id: &str) -> Result<Job, ApiError> {
    let lookup = id.to_string();
    state
        .blocking(move |s| Ok(s.job(&lookup)?))
        .await?
        .filter(|j| visible(page, j))
        .ok_or_else(|| ApiError::NotFound(format!("no report {id}")))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST .../reports/jobs/{id}/cancel`: cancels a queued or running job.
async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((n, id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    page.viewer.check_csrf(&f.csrf)?;
    let job = load_job(&state, &page, &id).await?;
    if !may_cancel(&page, &job) {
        return Err(ApiError::Forbidden(
            "a read-only role may cancel only the reports it requested".into(),
        )
        .into());
    }
    let done = if job.status.is_final() {
        "ended"
    } else {
        let (jid, reason) = (
            job.id.clone(),
            format!("cancelled by {}", page.viewer.user.email),
        );
        let now_ms = state.clock().now_millis();
        let after = state
            .blocking(move |s| Ok(s.cancel_job(&jid, now_ms, &reason)?))
            .await?;
        // The job may have ended on its own meanwhile: say what happened.
        if after == Some(JobStatus::Cancelled) {
            page.audit(&state, "report-cancelled", format!("job {}", job.id))
                .await;
            "cancelled"
        } else {
            "ended"
        }
    };
    Ok(Redirect::to(&format!(
        "/portal/e/{}/reports?done={done}&job={}#jobs",
        page.n, job.id
    ))
    .into_response())
}

/// `GET|HEAD .../reports/jobs/{id}/download`: the job's file, with Range, HEAD and ETag.
async fn job_download(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((n, id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> PageResult {
    let page = Page::load(&state, viewer, &n).await?;
    let job = load_job(&state, &page, &id).await?;
    let res = state.serve_job_file(&job, &method, &headers).await?;
    // One audit line per whole download (not per range or revalidation).
    if method == Method::GET && res.status() == StatusCode::OK {
        page.audit(&state, "download", format!("report job {}", job.id))
            .await;
    }
    Ok(res)
}
