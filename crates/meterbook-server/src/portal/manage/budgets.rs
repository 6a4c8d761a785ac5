//! Manage › Budgets and alerts: the enrollment's budgets with their figures
//! now (a bar of the share used), notification channels (a webhook's
//! signing secret shown once, when it is added) and the delivery log. The
//! rules and figures are the use-case layer's ([`meterbook_app::budgets`],
//! [`meterbook_app::notifications`]); read-only enterprise administrators
//! see everything here without the forms.

use super::{
    as_admin, as_enterprise, csrf_form, id, outcome, with_status, AdminForm, Manager, Notice,
};
use crate::portal::{render, Nav, Page, PageResult, Tab};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use meterbook_app::budgets::BudgetInput;
use meterbook_app::notifications::ChannelInput;
use meterbook_core::notify::{ChannelTarget, DeliveryTarget};
use serde::Deserialize;

/// Deliveries shown.
const LOG_LIMIT: usize = 100;

pub struct BudgetView {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub cadence: String,
    pub span: String,
    pub actual: String,
    pub amount: String,
    pub forecast: Option<String>,
    /// Tenths of a percent used, for the bar (capped at 100 %).
    pub bar: i128,
    pub used: String,
    pub thresholds: Vec<(String, bool)>,
}

/// A budget as the portal shows it (Manage, and every role's overview).
pub(crate) fn budget_view(
    st: &meterbook_app::budgets::BudgetStatus,
    exp: u32,
    code: &str,
) -> BudgetView {
    let money = |m: meterbook_core::Money| format!("{} {code}", m.format(exp));
    let t = st.used_tenths_percent;
    BudgetView {
        id: st.budget.id,
        name: st.budget.name.clone(),
        scope: match &st.scope_name {
            Some(n) => format!("{} {n}", st.budget.scope.kind()),
            None => "whole enrollment".into(),
        },
        cadence: st.budget.cadence.name().into(),
        span: format!("{} to {}", st.from, st.to),
        actual: money(st.actual),
        amount: money(st.budget.amount),
        forecast: st.forecast.map(money),
        bar: t.clamp(0, 1000),
        used: format!("{}.{}%", t / 10, (t % 10).abs()),
        thresholds: st
            .budget
            .thresholds
            .iter()
            .map(|th| {
                (
                    format!("{} {}%", th.basis.name(), th.percent),
                    st.crossed.contains(th),
                )
            })
            .collect(),
    }
}

pub struct ChannelView {
    pub id: i64,
    pub kind: &'static str,
    pub address: String,
    pub events: String,
}

pub struct DeliveryView {
    pub created: String,
    pub event: String,
    pub to: String,
    pub status: &'static str,
    pub attempts: u32,
    pub error: String,
}

#[derive(Template)]
#[template(path = "portal/manage_budgets.html")]
struct BudgetsPage {
    nav: Nav,
    section: &'static str,
    notice: Option<Notice>,
    /// A new webhook's signing secret, shown once.
    secret: Option<String>,
    budgets: Vec<BudgetView>,
    channels: Vec<ChannelView>,
    deliveries: Vec<DeliveryView>,
    scope_opts: Vec<(String, String)>,
    currency: String,
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

async fn render_page(
    state: &AppState,
    page: &Page,
    notice: Option<Notice>,
    secret: Option<String>,
    status: StatusCode,
) -> PageResult {
    let (e, h, list, channels, deliveries) = as_enterprise(state, page, |en| {
        let a = en.access();
        Ok((
            a.enrollment().clone(),
            a.hierarchy()?,
            a.budgets()?,
            en.channels()?,
            en.deliveries(LOG_LIMIT)?,
        ))
    })
    .await?;
    let exp = e.currency.exponent();
    let code = e.currency.code().to_string();
    let budgets = list.iter().map(|st| budget_view(st, exp, &code)).collect();
    let channel_name = |id: i64| {
        channels
            .iter()
            .find(|c| c.id == id)
            .map_or(format!("webhook {id} (removed)"), |c| {
                format!("webhook {}", c.target.address())
            })
    };
    let deliveries = deliveries
        .into_iter()
        .map(|d| DeliveryView {
            created: when(d.created_at),
            event: d.event_key.clone(),
            to: match &d.target {
                DeliveryTarget::Email(a) => a.clone(),
                DeliveryTarget::Webhook { channel } => channel_name(*channel),
            },
            status: d.status.name(),
            attempts: d.attempts,
            error: d.last_error.unwrap_or_default(),
        })
        .collect();
    let channels = channels
        .iter()
        .map(|c| ChannelView {
            id: c.id,
            kind: c.target.kind(),
            address: match &c.target {
                ChannelTarget::Email { address } => address.clone(),
                ChannelTarget::Webhook { url } => url.clone(),
            },
            events: c
                .events
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let mut scope_opts = vec![("enrollment".to_string(), "Whole enrollment".to_string())];
    let mut depts: Vec<&str> = h.departments.values().map(|d| d.name.as_str()).collect();
    depts.sort();
    scope_opts.extend(
        depts
            .iter()
            .map(|d| (format!("department:{d}"), format!("Department {d}"))),
    );
    let mut accounts: Vec<&str> = h.accounts.values().map(|a| a.name.as_str()).collect();
    accounts.sort();
    scope_opts.extend(
        accounts
            .iter()
            .map(|a| (format!("account:{a}"), format!("Account {a}"))),
    );
    Ok(with_status(
        render(&BudgetsPage {
            nav: page.nav(Tab::Manage),
            section: "budgets",
            notice,
            secret,
            budgets,
            channels,
            deliveries,
            scope_opts,
            currency: code,
        }),
        status,
    ))
}

pub(super) async fn page(State(state): State<AppState>, Manager(page): Manager) -> PageResult {
    render_page(&state, &page, None, None, StatusCode::OK).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct BudgetForm {
    csrf: String,
    name: String,
    /// `enrollment`, `department:NAME` or `account:NAME`.
    scope: String,
    cadence: String,
    amount: String,
    /// `actual:50, actual:80, forecast:100`.
    thresholds: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ChannelForm {
    csrf: String,
    kind: String,
    address: String,
    alert: String,
    period_closed: String,
    watermark: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct IdForm {
    csrf: String,
    id: String,
}

csrf_form!(BudgetForm, ChannelForm, IdForm);

/// The thresholds field: `BASIS:PERCENT` items separated by commas or spaces.
fn thresholds(v: &str) -> Result<Vec<(String, i64)>, String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (b, p) = item.split_once(':').ok_or_else(|| {
                format!("thresholds are BASIS:PERCENT (e.g. actual:80), not {item}")
            })?;
            let p = p
                .trim_end_matches('%')
                .parse::<i64>()
                .map_err(|_| format!("{item}: the percent is not a whole number"))?;
            Ok((b.to_string(), p))
        })
        .collect()
}

pub(super) async fn create(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<BudgetForm>,
) -> PageResult {
    let done = match thresholds(&f.thresholds) {
        Err(m) => Err(crate::ApiError::BadRequest(m)),
        Ok(ts) => {
            let (scope, scope_name) = match f.scope.split_once(':') {
                Some((k, n)) => (k.to_string(), Some(n.to_string())),
                None => (f.scope.clone(), None),
            };
            let input = BudgetInput {
                name: f.name,
                scope,
                scope_name,
                cadence: f.cadence,
                amount: f.amount,
                thresholds: ts,
            };
            as_admin(&state, &page, move |admin| admin.create_budget(&input))
                .await
                .map(|st| format!("Budget \"{}\" added.", st.budget.name))
        }
    };
    let (notice, status) = outcome(done)?;
    render_page(&state, &page, Some(notice), None, status).await
}

pub(super) async fn delete(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<IdForm>,
) -> PageResult {
    let bid = id(&f.id);
    let done = as_admin(&state, &page, move |admin| admin.delete_budget(bid)).await;
    let (notice, status) = outcome(done.map(|()| "Budget deleted.".to_string()))?;
    render_page(&state, &page, Some(notice), None, status).await
}

pub(super) async fn add_channel(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<ChannelForm>,
) -> PageResult {
    let mut events = Vec::new();
    for (on, name) in [
        (&f.alert, "alert"),
        (&f.period_closed, "period-closed"),
        (&f.watermark, "watermark"),
    ] {
        if !on.is_empty() {
            events.push(name.to_string());
        }
    }
    let input = ChannelInput {
        kind: f.kind,
        address: f.address,
        events,
    };
    let done = as_admin(&state, &page, move |admin| admin.add_channel(&input)).await;
    let (notice, status, secret) = match done {
        Ok(made) => (
            Notice {
                ok: true,
                text: format!(
                    "Channel added: {} {}.{}",
                    made.channel.target.kind(),
                    made.channel.target.address(),
                    if made.secret.is_some() {
                        " Its signing secret is below: it is not stored and will not be shown again."
                    } else {
                        ""
                    }
                ),
            },
            StatusCode::OK,
            made.secret,
        ),
        Err(e) => {
            let (n, s) = outcome(Err(e))?;
            (n, s, None)
        }
    };
    render_page(&state, &page, Some(notice), secret, status).await
}

pub(super) async fn remove_channel(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<IdForm>,
) -> PageResult {
    let cid = id(&f.id);
    let done = as_admin(&state, &page, move |admin| admin.remove_channel(cid)).await;
    let (notice, status) = outcome(done.map(|()| "Channel removed.".to_string()))?;
    render_page(&state, &page, Some(notice), None, status).await
}
