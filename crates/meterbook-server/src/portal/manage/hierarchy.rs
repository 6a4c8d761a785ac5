//! Manage › Hierarchy: departments, accounts and subscriptions, and the forms
//! that add a subscription, edit a department or account, rename, and move a
//! subscription with an effective date. The rules are the use-case layer's
//! ([`meterbook_app::hierarchy`]).

use super::{
    as_admin, as_enterprise, csrf_form, id, opts, outcome, with_status, AdminForm, Manager, Notice,
    Opt,
};
use crate::portal::{render, Nav, Page, PageResult, Tab};
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use meterbook_app::hierarchy::{owner, AccountDetails, NewSubscription, Renamed};
use meterbook_app::{Admin, AppResult};
use serde::Deserialize;

pub struct DeptView {
    pub id: i64,
    pub name: String,
    pub cost_center: String,
    pub accounts: usize,
}

pub struct AcctView {
    pub id: i64,
    pub name: String,
    pub owner_email: String,
    pub cost_center: String,
    pub dept_opts: Vec<Opt>,
    pub subscriptions: usize,
}

pub struct SubView {
    pub guid: String,
    pub name: String,
    pub account: String,
    /// The owners over time: `a1 from 2025-10-01, b1 from 2025-11-15`.
    pub history: String,
}

#[derive(Template)]
#[template(path = "portal/manage_hierarchy.html")]
struct HierarchyPage {
    nav: Nav,
    section: &'static str,
    notice: Option<Notice>,
    departments: Vec<DeptView>,
    accounts: Vec<AcctView>,
    subscriptions: Vec<SubView>,
    account_opts: Vec<Opt>,
    dept_names: Vec<String>,
    sub_opts: Vec<Opt>,
    today: String,
    closed_note: String,
}

async fn render_hierarchy(
    state: &AppState,
    page: &Page,
    notice: Option<Notice>,
    status: StatusCode,
) -> PageResult {
    let (h, closed, today) = as_enterprise(state, page, |en| {
        let a = en.access();
        Ok((a.hierarchy()?, en.settings()?.closed_through, a.today()))
    })
    .await?;
    let mut departments: Vec<DeptView> = h
        .departments
        .values()
        .map(|d| DeptView {
            id: d.id,
            name: d.name.clone(),
            cost_center: d.cost_center.clone(),
            accounts: h
                .accounts
                .values()
                .filter(|a| a.department_id == Some(d.id))
                .count(),
        })
        .collect();
    departments.sort_by(|a, b| a.name.cmp(&b.name));
    let mut dept_names: Vec<String> = departments.iter().map(|d| d.name.clone()).collect();
    dept_names.sort();
    let dept_items: Vec<(String, String)> = std::iter::once((String::new(), "(none)".into()))
        .chain(dept_names.iter().map(|d| (d.clone(), d.clone())))
        .collect();
    let mut accounts: Vec<AcctView> = h
        .accounts
        .values()
        .map(|a| {
            let dept = h
                .department(a.department_id)
                .map_or_else(String::new, |d| d.name.clone());
            AcctView {
                id: a.id,
                name: a.name.clone(),
                owner_email: a.owner_email.clone(),
                cost_center: a.cost_center.clone(),
                dept_opts: opts(&dept_items, &dept),
                subscriptions: h
                    .subscriptions
                    .values()
                    .filter(|s| owner(&h, s).is_some_and(|o| o.id == a.id))
                    .count(),
            }
        })
        .collect();
    accounts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut subscriptions: Vec<SubView> = h
        .subscriptions
        .values()
        .map(|s| SubView {
            guid: s.guid.clone(),
            name: s.name.clone(),
            account: owner(&h, s).map_or_else(String::new, |a| a.name.clone()),
            history: s
                .owners
                .iter()
                .map(|(d, a)| {
                    format!(
                        "{} from {d}",
                        h.accounts.get(a).map_or("?", |a| a.name.as_str())
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    subscriptions
        .sort_by(|a, b| (&a.account, &a.name, &a.guid).cmp(&(&b.account, &b.name, &b.guid)));
    let account_items: Vec<(String, String)> = accounts
        .iter()
        .map(|a| (a.name.clone(), a.name.clone()))
        .collect();
    let sub_items: Vec<(String, String)> = subscriptions
        .iter()
        .map(|s| {
            (
                s.guid.clone(),
                format!("{} ({}, {})", s.name, s.guid, s.account),
            )
        })
        .collect();
    let closed_note = match closed {
        Some(c) => format!(
            "Periods through {c} are closed: a move takes effect on {} at the earliest.",
            c.last_day().succ()
        ),
        None => "No period is closed yet: a move may take effect on any day of the term.".into(),
    };
    Ok(with_status(
        render(&HierarchyPage {
            nav: page.nav(Tab::Manage),
            section: "hierarchy",
            notice,
            departments,
            accounts,
            subscriptions,
            account_opts: opts(&account_items, ""),
            dept_names,
            sub_opts: opts(&sub_items, ""),
            today: today.to_string(),
            closed_note,
        }),
        status,
    ))
}

pub(super) async fn page(State(state): State<AppState>, Manager(page): Manager) -> PageResult {
    render_hierarchy(&state, &page, None, StatusCode::OK).await
}

/// Runs a hierarchy change as the page's administrator (the layer audits it
/// as `hierarchy-changed`); either way answers with the hierarchy page.
async fn change<F>(state: AppState, page: Page, f: F) -> PageResult
where
    F: for<'a> FnOnce(Admin<'a>) -> AppResult<String> + Send + 'static,
{
    let done: Result<String, ApiError> = as_admin(&state, &page, f).await;
    let (notice, status) = outcome(done.map(|w| format!("Done: {w}.")))?;
    render_hierarchy(&state, &page, Some(notice), status).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AddSubscriptionForm {
    csrf: String,
    guid: String,
    name: String,
    /// An existing account's name, or empty for a new account (the fields below).
    account: String,
    new_account: String,
    owner_email: String,
    account_cost_center: String,
    /// Existing or new department of a new account; empty for none.
    department: String,
    department_cost_center: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DepartmentForm {
    csrf: String,
    id: String,
    cost_center: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AccountForm {
    csrf: String,
    id: String,
    owner_email: String,
    cost_center: String,
    /// The department's name; empty for none.
    department: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RenameForm {
    csrf: String,
    guid: String,
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RenameUnitForm {
    csrf: String,
    /// `department:<name>` or `account:<name>`.
    unit: String,
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct MoveForm {
    csrf: String,
    guid: String,
    account: String,
    effective: String,
}

csrf_form!(
    AddSubscriptionForm,
    DepartmentForm,
    AccountForm,
    RenameForm,
    RenameUnitForm,
    MoveForm,
);

pub(super) async fn add_subscription(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<AddSubscriptionForm>,
) -> PageResult {
    let new = NewSubscription {
        guid: f.guid,
        name: f.name,
        account: f.account,
        new_account: f.new_account,
        owner_email: f.owner_email,
        account_cost_center: f.account_cost_center,
        department: f.department,
        department_cost_center: f.department_cost_center,
    };
    change(state, page, move |admin| admin.add_subscription(&new)).await
}

pub(super) async fn edit_department(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<DepartmentForm>,
) -> PageResult {
    change(state, page, move |admin| {
        admin.set_department_cost_center(id(&f.id), &f.cost_center)
    })
    .await
}

pub(super) async fn edit_account(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<AccountForm>,
) -> PageResult {
    let details = AccountDetails {
        owner_email: f.owner_email,
        cost_center: f.cost_center,
        department: f.department,
    };
    change(state, page, move |admin| {
        admin.edit_account(id(&f.id), &details)
    })
    .await
}

pub(super) async fn rename_subscription(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<RenameForm>,
) -> PageResult {
    change(state, page, move |admin| {
        admin.rename_subscription(&f.guid, &f.name)
    })
    .await
}

/// Renames a department or an account: its id stays, so its usage, keys and
/// users' roles stay with it.
pub(super) async fn rename_unit(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<RenameUnitForm>,
) -> PageResult {
    let (what, old) = match f.unit.split_once(':') {
        Some(("department", old)) => (Renamed::Department, old.to_string()),
        Some(("account", old)) => (Renamed::Account, old.to_string()),
        _ => {
            let (notice, status) = outcome(Err(ApiError::BadRequest(
                "choose the department or account to rename".into(),
            )))?;
            return render_hierarchy(&state, &page, Some(notice), status).await;
        }
    };
    change(state, page, move |admin| admin.rename(what, &old, &f.name)).await
}

pub(super) async fn move_subscription(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<MoveForm>,
) -> PageResult {
    change(state, page, move |admin| {
        admin.move_subscription(&f.guid, &f.account, &f.effective)
    })
    .await
}
