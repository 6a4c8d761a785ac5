//! Manage: the enrollment's settings, hierarchy, people and audit log. Its
//! read-write enterprise administrators change them ([`Page::can_manage`]);
//! read-only enterprise administrators see the same pages without a form
//! ([`Page::sees_manage`]), and every change they post is a 403 (design §5:
//! "only read-write manages users, keys, settings"). Everyone else gets a 403
//! page for every page and form here, and no tab.
//!
//! Every form posts the session's CSRF token, checked first. A change is
//! written to the audit log (`setting-changed`, `hierarchy-changed`,
//! `user-invited`, `role-changed`, `role-removed`). The answer to a form is
//! the section's page with what happened (or why not) on top, so a one-time
//! set-password link is shown once and never stored.
//!
//! The hierarchy is changed through the store's upsert, one hierarchy-file row
//! per subscription, so what it allows is what the file allows: a subscription
//! is added with its account (new or existing) and department (new or
//! existing); in the file, names are the keys of departments and accounts, so
//! renaming one goes through the store's `rename` (its id, usage, keys and
//! roles stay); their cost centers, owner e-mail and department can change; a
//! subscription can be renamed, and changes account only by a move with an
//! effective date.

use super::session::random_token;
use super::{render, Page, PageError, PageResult, Tab, Viewer};
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use meterbook_core::access::Scope;
use meterbook_core::enrollment::ChargeVisibility;
use meterbook_core::hierarchy::{normalize_guid, Account, Hierarchy, HierarchyRow, Subscription};
use meterbook_core::store::StoreError;
use meterbook_core::users::Role;
use meterbook_core::{Day, EnrollmentNumber};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/e/{n}/manage", get(settings_page))
        .route("/portal/e/{n}/manage/settings", post(settings_post))
        .route("/portal/e/{n}/manage/hierarchy", get(hierarchy_page))
        .route(
            "/portal/e/{n}/manage/hierarchy/subscription",
            post(add_subscription),
        )
        .route(
            "/portal/e/{n}/manage/hierarchy/department",
            post(edit_department),
        )
        .route("/portal/e/{n}/manage/hierarchy/account", post(edit_account))
        .route(
            "/portal/e/{n}/manage/hierarchy/rename",
            post(rename_subscription),
        )
        .route(
            "/portal/e/{n}/manage/hierarchy/move",
            post(move_subscription),
        )
        .route(
            "/portal/e/{n}/manage/hierarchy/rename-unit",
            post(rename_unit),
        )
        .route("/portal/e/{n}/manage/users", get(users_page))
        .route("/portal/e/{n}/manage/users/invite", post(invite))
        .route("/portal/e/{n}/manage/users/role", post(change_role))
        .route("/portal/e/{n}/manage/users/remove", post(remove_role))
        .route("/portal/e/{n}/manage/audit", get(audit_page))
}

/// How long a set-password link works (as `meterbook user create` makes them).
pub const INVITE_DAYS: i64 = 7;

/// Audit entries shown.
pub const AUDIT_LIMIT: usize = 200;

/// The enrollment's page for an enterprise administrator, read-only or not
/// (the pages hide their forms from read-only ones); a 403 for anyone else.
async fn reader(state: &AppState, viewer: Viewer, n: &str) -> Result<Page, ApiError> {
    let page = Page::load(state, viewer, n).await?;
    if !page.sees_manage() {
        return Err(ApiError::Forbidden(
            "managing this enrollment is for its enterprise administrators".into(),
        ));
    }
    Ok(page)
}

/// The enrollment's page for a read-write enterprise administrator; a 403 for anyone else.
async fn admin(state: &AppState, viewer: Viewer, n: &str) -> Result<Page, ApiError> {
    let page = Page::load(state, viewer, n).await?;
    if !page.can_manage() {
        return Err(ApiError::Forbidden(
            "managing this enrollment is for its read-write enterprise administrators".into(),
        ));
    }
    Ok(page)
}

/// What a form did, shown on top of the page.
pub struct Notice {
    pub ok: bool,
    pub text: String,
}

/// A form's outcome as a notice and the page's status; internal errors become
/// the error page (their cause goes to the log, not to the page).
fn outcome(r: Result<String, ApiError>) -> Result<(Notice, StatusCode), PageError> {
    match r {
        Ok(text) => Ok((Notice { ok: true, text }, StatusCode::OK)),
        Err(e) => {
            let status = match &e {
                ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
                ApiError::NotFound(_) => StatusCode::NOT_FOUND,
                ApiError::Conflict(_) => StatusCode::CONFLICT,
                ApiError::Forbidden(_) | ApiError::ForbiddenCode { .. } => StatusCode::FORBIDDEN,
                _ => return Err(PageError(e)),
            };
            Ok((
                Notice {
                    ok: false,
                    text: e.to_string(),
                },
                status,
            ))
        }
    }
}

fn with_status(mut r: Response, status: StatusCode) -> Response {
    *r.status_mut() = status;
    r
}

/// An option of a `<select>`.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn opts(items: &[(String, String)], selected: &str) -> Vec<Opt> {
    items
        .iter()
        .map(|(v, l)| Opt {
            value: v.clone(),
            label: l.clone(),
            selected: v == selected,
        })
        .collect()
}

fn when(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0).map_or_else(
        || at.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/manage.html")]
struct SettingsPage {
    nav: super::Nav,
    section: &'static str,
    notice: Option<Notice>,
    /// (label, value) of the enrollment's details.
    details: Vec<(String, String)>,
    dept_view: bool,
    acct_view: bool,
}

async fn render_settings(
    state: &AppState,
    page: &Page,
    notice: Option<Notice>,
    status: StatusCode,
) -> PageResult {
    let number = page.n.clone();
    let (e, periods) = state
        .blocking(move |s| Ok((s.enrollment(&number)?, s.periods(&number)?)))
        .await?;
    let closed = periods.iter().filter(|p| p.closed).map(|p| p.period).max();
    let open = periods.iter().find(|p| !p.closed).map(|p| p.period);
    let details = vec![
        ("Enrollment number".into(), e.number.to_string()),
        ("Name".into(), e.name.clone()),
        (
            "Currency".into(),
            format!(
                "{} ({} decimal{})",
                e.currency.code(),
                e.currency.exponent(),
                if e.currency.exponent() == 1 { "" } else { "s" }
            ),
        ),
        ("Term".into(), format!("{} to {}", e.start, e.end)),
        (
            "Usage complete through".into(),
            e.watermark
                .map_or("(not set by the provider yet)".into(), |d| d.to_string()),
        ),
        (
            "Billing periods".into(),
            match (closed, open) {
                (Some(c), Some(o)) => format!("closed through {c}; oldest open {o}"),
                (Some(c), None) => format!("all closed (last {c})"),
                (None, _) => "none closed yet".into(),
            },
        ),
    ];
    Ok(with_status(
        render(&SettingsPage {
            nav: page.nav(Tab::Manage),
            section: "settings",
            notice,
            details,
            dept_view: e.visibility.department_admins_view_charges,
            acct_view: e.visibility.account_owners_view_charges,
        }),
        status,
    ))
}

async fn settings_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
) -> PageResult {
    let page = reader(&state, viewer, &n).await?;
    render_settings(&state, &page, None, StatusCode::OK).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SettingsForm {
    csrf: String,
    /// Present (any value) when the box is ticked.
    department_admins_view_charges: Option<String>,
    account_owners_view_charges: Option<String>,
}

async fn settings_post(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<SettingsForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let page = admin(&state, viewer, &n).await?;
    let want = ChargeVisibility {
        department_admins_view_charges: f.department_admins_view_charges.is_some(),
        account_owners_view_charges: f.account_owners_view_charges.is_some(),
    };
    let number = page.n.clone();
    let before = state
        .blocking(move |s| {
            let before = s.enrollment(&number)?.visibility;
            if before != want {
                s.set_visibility(&number, want)?;
            }
            Ok(before)
        })
        .await?;
    let mut changes = Vec::new();
    for (name, old, new) in [
        (
            "DepartmentAdminsViewCharges",
            before.department_admins_view_charges,
            want.department_admins_view_charges,
        ),
        (
            "AccountOwnersViewCharges",
            before.account_owners_view_charges,
            want.account_owners_view_charges,
        ),
    ] {
        if old != new {
            let c = format!("{name}: {old} → {new}");
            page.audit(&state, "setting-changed", c.clone()).await;
            changes.push(c);
        }
    }
    let text = if changes.is_empty() {
        "Nothing changed.".to_string()
    } else {
        format!("Saved: {}.", changes.join("; "))
    };
    render_settings(
        &state,
        &page,
        Some(Notice { ok: true, text }),
        StatusCode::OK,
    )
    .await
}

// ---------------------------------------------------------------------------
// Hierarchy
// ---------------------------------------------------------------------------

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
    pub department: String,
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
    nav: super::Nav,
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

/// The account a subscription belongs to now (its latest owner).
fn owner<'h>(h: &'h Hierarchy, s: &Subscription) -> Option<&'h Account> {
    s.owners.last().and_then(|(_, a)| h.accounts.get(a))
}

/// A subscription currently owned by `account`, if any.
fn owned_by(h: &Hierarchy, account: i64) -> Option<&Subscription> {
    let mut subs: Vec<&Subscription> = h
        .subscriptions
        .values()
        .filter(|s| owner(h, s).is_some_and(|a| a.id == account))
        .collect();
    subs.sort_by(|a, b| a.guid.cmp(&b.guid));
    subs.into_iter().next()
}

/// The hierarchy-file row that restates a subscription as it is now.
fn row_of(h: &Hierarchy, s: &Subscription, a: &Account) -> HierarchyRow {
    let d = h.department(a.department_id);
    HierarchyRow {
        line: 1,
        department_name: d.map_or_else(String::new, |d| d.name.clone()),
        department_cost_center: d.map_or_else(String::new, |d| d.cost_center.clone()),
        account_name: a.name.clone(),
        account_owner_email: a.owner_email.clone(),
        account_cost_center: a.cost_center.clone(),
        subscription_guid: s.guid.clone(),
        subscription_name: s.name.clone(),
    }
}

/// Upserts one row: the store's "line 1: " prefix (a file's) is left out of messages.
fn upsert(
    s: &dyn meterbook_core::store::Store,
    n: &EnrollmentNumber,
    row: HierarchyRow,
) -> Result<(), ApiError> {
    s.upsert_hierarchy(n, &[row]).map_err(|e| {
        let strip = |m: String| m.strip_prefix("line 1: ").map_or(m.clone(), str::to_string);
        ApiError::from(match e {
            StoreError::Invalid(m) => StoreError::Invalid(strip(m)),
            StoreError::Conflict(m) => StoreError::Conflict(strip(m)),
            other => other,
        })
    })?;
    Ok(())
}

async fn render_hierarchy(
    state: &AppState,
    page: &Page,
    notice: Option<Notice>,
    status: StatusCode,
) -> PageResult {
    let number = page.n.clone();
    let (h, periods) = state
        .blocking(move |s| Ok((s.hierarchy(&number)?, s.periods(&number)?)))
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
                department: dept,
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
    let closed_note = match periods.iter().filter(|p| p.closed).map(|p| p.period).max() {
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
            today: page.clock.today().to_string(),
            closed_note,
        }),
        status,
    ))
}

async fn hierarchy_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
) -> PageResult {
    let page = reader(&state, viewer, &n).await?;
    render_hierarchy(&state, &page, None, StatusCode::OK).await
}

/// Runs a hierarchy change: on success audits `hierarchy-changed` with its
/// description; either way answers with the hierarchy page.
async fn hierarchy_change<F>(state: AppState, page: Page, change: F) -> PageResult
where
    F: FnOnce(&dyn meterbook_core::store::Store, &EnrollmentNumber) -> Result<String, ApiError>
        + Send
        + 'static,
{
    let number = page.n.clone();
    let done = state.blocking(move |s| change(s, &number)).await;
    if let Ok(what) = &done {
        page.audit(&state, "hierarchy-changed", what.clone()).await;
    }
    let (notice, status) = outcome(done.map(|w| format!("Done: {w}.")))?;
    render_hierarchy(&state, &page, Some(notice), status).await
}

fn required<'a>(v: &'a str, what: &str) -> Result<&'a str, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        Err(ApiError::BadRequest(format!("{what} is required")))
    } else if v.chars().count() > 200 {
        Err(ApiError::BadRequest(format!("{what} is too long")))
    } else {
        Ok(v)
    }
}

fn email_ok(v: &str) -> Result<String, ApiError> {
    let v = v.trim().to_ascii_lowercase();
    let ok = v.len() <= 254
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        && v.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if ok {
        Ok(v)
    } else {
        Err(ApiError::BadRequest(format!(
            "`{v}` is not an e-mail address"
        )))
    }
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

async fn add_subscription(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<AddSubscriptionForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let page = admin(&state, viewer, &n).await?;
    hierarchy_change(state, page, move |s, n| {
        let h = s.hierarchy(n)?;
        let guid = normalize_guid(required(&f.guid, "the subscription's GUID")?);
        if guid.len() > 64 || guid.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ApiError::BadRequest(format!(
                "`{guid}` is not a subscription GUID"
            )));
        }
        let name = required(&f.name, "the subscription's name")?.to_string();
        if let Some(sub) = h.subscriptions.values().find(|s| s.guid == guid) {
            return Err(ApiError::Conflict(format!(
                "subscription {guid} exists (in account {}): rename or move it instead",
                owner(&h, sub).map_or("?", |a| a.name.as_str())
            )));
        }
        let (row, what) = if !f.account.trim().is_empty() {
            let a = h
                .account_by_name(f.account.trim())
                .ok_or_else(|| ApiError::NotFound(format!("no account {}", f.account.trim())))?;
            let d = h.department(a.department_id);
            (
                HierarchyRow {
                    line: 1,
                    department_name: d.map_or_else(String::new, |d| d.name.clone()),
                    department_cost_center: d.map_or_else(String::new, |d| d.cost_center.clone()),
                    account_name: a.name.clone(),
                    account_owner_email: a.owner_email.clone(),
                    account_cost_center: a.cost_center.clone(),
                    subscription_guid: guid.clone(),
                    subscription_name: name.clone(),
                },
                format!("subscription {name} ({guid}) added to account {}", a.name),
            )
        } else {
            let acct = required(&f.new_account, "an account (existing, or a new one's name)")?;
            if h.account_by_name(acct).is_some() {
                return Err(ApiError::Conflict(format!(
                    "account {acct} exists: choose it in the list of existing accounts"
                )));
            }
            let owner_email = email_ok(&f.owner_email)?;
            let dept_name = f.department.trim();
            let (dept_cc, dept_what) = if dept_name.is_empty() {
                (String::new(), "no department".to_string())
            } else if let Some(d) = h.department_by_name(dept_name) {
                (d.cost_center.clone(), format!("department {dept_name}"))
            } else {
                if dept_name.chars().count() > 200 {
                    return Err(ApiError::BadRequest("the department's name is too long".into()));
                }
                (
                    f.department_cost_center.trim().to_string(),
                    format!("new department {dept_name}"),
                )
            };
            (
                HierarchyRow {
                    line: 1,
                    department_name: dept_name.to_string(),
                    department_cost_center: dept_cc,
                    account_name: acct.to_string(),
                    account_owner_email: owner_email.clone(),
                    account_cost_center: f.account_cost_center.trim().to_string(),
                    subscription_guid: guid.clone(),
                    subscription_name: name.clone(),
                },
                format!(
                    "subscription {name} ({guid}) added to new account {acct} (owner {owner_email}) in {dept_what}"
                ),
            )
        };
        upsert(s, n, row)?;
        Ok(what)
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DepartmentForm {
    csrf: String,
    id: String,
    cost_center: String,
}

async fn edit_department(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<DepartmentForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let page = admin(&state, viewer, &n).await?;
    hierarchy_change(state, page, move |s, n| {
        let h = s.hierarchy(n)?;
        let d = f
            .id
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|id| h.departments.get(&id))
            .ok_or_else(|| ApiError::NotFound("no such department".into()))?;
        let cc = f.cost_center.trim().to_string();
        if cc == d.cost_center {
            return Err(ApiError::BadRequest(format!(
                "department {} already has cost center `{cc}`",
                d.name
            )));
        }
        // The cost center travels on a subscription's row: any of the department's will do.
        let mut accts: Vec<&Account> = h
            .accounts
            .values()
            .filter(|a| a.department_id == Some(d.id))
            .collect();
        accts.sort_by(|a, b| a.name.cmp(&b.name));
        let (a, sub) = accts
            .into_iter()
            .find_map(|a| owned_by(&h, a.id).map(|s| (a, s)))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "department {} has no subscription: its cost center is set with a subscription's row (add one first)",
                    d.name
                ))
            })?;
        let mut row = row_of(&h, sub, a);
        row.department_cost_center = cc.clone();
        upsert(s, n, row)?;
        Ok(format!(
            "department {}: cost center `{}` → `{cc}`",
            d.name, d.cost_center
        ))
    })
    .await
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

async fn edit_account(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<AccountForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let page = admin(&state, viewer, &n).await?;
    hierarchy_change(state, page, move |s, n| {
        let h = s.hierarchy(n)?;
        let a = f
            .id
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|id| h.accounts.get(&id))
            .ok_or_else(|| ApiError::NotFound("no such account".into()))?;
        let email = email_ok(&f.owner_email)?;
        let cc = f.cost_center.trim().to_string();
        let dept = match f.department.trim() {
            "" => None,
            name => Some(
                h.department_by_name(name)
                    .ok_or_else(|| ApiError::NotFound(format!("no department {name}")))?,
            ),
        };
        let old_dept = h.department(a.department_id);
        let mut changes = Vec::new();
        if email != a.owner_email {
            changes.push(format!("owner {} → {email}", a.owner_email));
        }
        if cc != a.cost_center {
            changes.push(format!("cost center `{}` → `{cc}`", a.cost_center));
        }
        if dept.map(|d| d.id) != old_dept.map(|d| d.id) {
            let nm = |d: Option<&meterbook_core::hierarchy::Department>| {
                d.map_or("(none)".to_string(), |d| d.name.clone())
            };
            changes.push(format!("department {} → {}", nm(old_dept), nm(dept)));
        }
        if changes.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "nothing to change in account {}",
                a.name
            )));
        }
        let sub = owned_by(&h, a.id).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "account {} has no subscription: its details are set with a subscription's row (add one first)",
                a.name
            ))
        })?;
        let mut row = row_of(&h, sub, a);
        row.account_owner_email = email;
        row.account_cost_center = cc;
        row.department_name = dept.map_or_else(String::new, |d| d.name.clone());
        row.department_cost_center = dept.map_or_else(String::new, |d| d.cost_center.clone());
        upsert(s, n, row)?;
        Ok(format!("account {}: {}", a.name, changes.join(", ")))
    })
    .await
}

/// The subscription a form names by GUID (in any case or bracing).
fn find_subscription<'h>(
    h: &'h Hierarchy,
    guid: &str,
) -> Result<(String, &'h Subscription), ApiError> {
    let guid = normalize_guid(guid);
    let sub = h
        .subscriptions
        .values()
        .find(|s| s.guid == guid)
        .ok_or_else(|| ApiError::NotFound(format!("no subscription {guid}")))?;
    Ok((guid, sub))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RenameForm {
    csrf: String,
    guid: String,
    name: String,
}

async fn rename_subscription(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<RenameForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let page = admin(&state, viewer, &n).await?;
    hierarchy_change(state, page, move |s, n| {
        let h = s.hierarchy(n)?;
        let (guid, sub) = find_subscription(&h, &f.guid)?;
        let name = required(&f.name, "the subscription's name")?.to_string();
        if name == sub.name {
            return Err(ApiError::BadRequest(format!(
                "subscription {guid} is already named {name}"
            )));
        }
        let a = owner(&h, sub)
            .ok_or_else(|| ApiError::Internal(format!("subscription {guid} has no account")))?;
        let mut row = row_of(&h, sub, a);
        row.subscription_name = name.clone();
        upsert(s, n, row)?;
        Ok(format!("subscription {guid} renamed {} → {name}", sub.name))
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RenameUnitForm {
    csrf: String,
    /// `department:<name>` or `account:<name>`.
    unit: String,
    name: String,
}

/// Renames a department or an account: its id stays, so its usage, keys and
/// users' roles stay with it.
async fn rename_unit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<RenameUnitForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let page = admin(&state, viewer, &n).await?;
    hierarchy_change(state, page, move |s, n| {
        use meterbook_core::store::Renamed;
        let (what, old) = match f.unit.split_once(':') {
            Some(("department", old)) => (Renamed::Department, old.to_string()),
            Some(("account", old)) => (Renamed::Account, old.to_string()),
            _ => {
                return Err(ApiError::BadRequest(
                    "choose the department or account to rename".into(),
                ))
            }
        };
        let name = required(&f.name, "the new name")?.to_string();
        s.rename(n, what, &old, &name)?;
        Ok(format!(
            "{} {old} renamed {name}",
            if what == Renamed::Department {
                "department"
            } else {
                "account"
            }
        ))
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct MoveForm {
    csrf: String,
    guid: String,
    account: String,
    effective: String,
}

async fn move_subscription(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<MoveForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let page = admin(&state, viewer, &n).await?;
    hierarchy_change(state, page, move |s, n| {
        let h = s.hierarchy(n)?;
        let (guid, sub) = find_subscription(&h, &f.guid)?;
        let target = h
            .account_by_name(f.account.trim())
            .ok_or_else(|| ApiError::NotFound(format!("no account {}", f.account.trim())))?;
        let day: Day = f.effective.trim().parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "the effective date must be a date (YYYY-MM-DD), not `{}`",
                f.effective.trim()
            ))
        })?;
        let from = h.account_on(sub.key, day);
        if from.is_some_and(|a| a.id == target.id)
            && owner(&h, sub).is_some_and(|a| a.id == target.id)
        {
            return Err(ApiError::BadRequest(format!(
                "subscription {} already belongs to account {} on {day}",
                sub.name, target.name
            )));
        }
        // The store refuses dates outside the term and in closed periods.
        s.move_subscription(n, &guid, &target.name, day)?;
        Ok(format!(
            "subscription {} ({guid}) moved from account {} to {} effective {day}",
            sub.name,
            from.map_or("(none)", |a| a.name.as_str()),
            target.name
        ))
    })
    .await
}

// ---------------------------------------------------------------------------
// Users and roles
// ---------------------------------------------------------------------------

/// A role as a form value: `enterprise-admin`, `enterprise-reader`,
/// `department-admin:<id>`, `department-reader:<id>`, `account-owner:<id>`.
fn role_value(r: &Role) -> String {
    match (r.scope, r.read_only) {
        (Scope::Enrollment, false) => "enterprise-admin".into(),
        (Scope::Enrollment, true) => "enterprise-reader".into(),
        (Scope::Department(d), false) => format!("department-admin:{d}"),
        (Scope::Department(d), true) => format!("department-reader:{d}"),
        (Scope::Account(a), _) => format!("account-owner:{a}"),
    }
}

/// A role for reading, with its department's or account's name.
fn role_label(r: &Role, h: &Hierarchy) -> String {
    match r.scope {
        Scope::Enrollment => r.title(),
        Scope::Department(d) => format!(
            "{} of {}",
            r.title(),
            h.departments.get(&d).map_or("?", |d| d.name.as_str())
        ),
        Scope::Account(a) => format!(
            "{} of {}",
            r.title(),
            h.accounts.get(&a).map_or("?", |a| a.name.as_str())
        ),
    }
}

fn parse_role(v: &str, h: &Hierarchy, n: &EnrollmentNumber) -> Result<Role, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "`{}` is not a role",
            meterbook_core::quote::quote(v)
        ))
    };
    let (kind, id) = match v.split_once(':') {
        Some((k, id)) => (k, Some(id.parse::<i64>().map_err(|_| bad())?)),
        None => (v, None),
    };
    let dept = |id: Option<i64>| -> Result<i64, ApiError> {
        id.filter(|d| h.departments.contains_key(d))
            .ok_or_else(|| ApiError::NotFound("no such department".into()))
    };
    let (scope, read_only) = match kind {
        "enterprise-admin" if id.is_none() => (Scope::Enrollment, false),
        "enterprise-reader" if id.is_none() => (Scope::Enrollment, true),
        "department-admin" => (Scope::Department(dept(id)?), false),
        "department-reader" => (Scope::Department(dept(id)?), true),
        "account-owner" => (
            Scope::Account(
                id.filter(|a| h.accounts.contains_key(a))
                    .ok_or_else(|| ApiError::NotFound("no such account".into()))?,
            ),
            false,
        ),
        _ => return Err(bad()),
    };
    Ok(Role {
        enrollment: n.clone(),
        scope,
        read_only,
    })
}

/// Every role of the enrollment as (form value, label).
fn role_items(h: &Hierarchy) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "enterprise-admin".to_string(),
            "Enterprise administrator".to_string(),
        ),
        (
            "enterprise-reader".to_string(),
            "Enterprise administrator (read-only)".to_string(),
        ),
    ];
    let mut depts: Vec<_> = h.departments.values().collect();
    depts.sort_by(|a, b| a.name.cmp(&b.name));
    for d in &depts {
        out.push((
            format!("department-admin:{}", d.id),
            format!("Department administrator of {}", d.name),
        ));
        out.push((
            format!("department-reader:{}", d.id),
            format!("Department administrator (read-only) of {}", d.name),
        ));
    }
    let mut accts: Vec<_> = h.accounts.values().collect();
    accts.sort_by(|a, b| a.name.cmp(&b.name));
    for a in accts {
        out.push((
            format!("account-owner:{}", a.id),
            format!("Account owner of {}", a.name),
        ));
    }
    out
}

pub struct UserView {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    pub status: String,
    pub role_opts: Vec<Opt>,
    pub is_self: bool,
}

#[derive(Template)]
#[template(path = "portal/manage_users.html")]
struct UsersPage {
    nav: super::Nav,
    section: &'static str,
    notice: Option<Notice>,
    /// A one-time set-password link, shown once.
    invite_link: Option<String>,
    invite_days: i64,
    users: Vec<UserView>,
    role_opts: Vec<Opt>,
}

async fn render_users(
    state: &AppState,
    page: &Page,
    notice: Option<Notice>,
    invite_link: Option<String>,
    status: StatusCode,
) -> PageResult {
    let number = page.n.clone();
    let (h, people) = state
        .blocking(move |s| Ok((s.hierarchy(&number)?, s.enrollment_users(&number)?)))
        .await?;
    let items = role_items(&h);
    let users = people
        .into_iter()
        .map(|(u, r)| UserView {
            id: u.id,
            is_self: u.id == page.viewer.user.id,
            status: if u.disabled {
                "disabled".into()
            } else if u.password_hash.is_none() {
                "invited (no password yet)".into()
            } else {
                "active".into()
            },
            role: role_label(&r, &h),
            role_opts: opts(&items, &role_value(&r)),
            email: u.email,
            name: u.name,
        })
        .collect();
    Ok(with_status(
        render(&UsersPage {
            nav: page.nav(Tab::Manage),
            section: "users",
            notice,
            invite_link,
            invite_days: INVITE_DAYS,
            users,
            role_opts: opts(&items, ""),
        }),
        status,
    ))
}

async fn users_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
) -> PageResult {
    let page = reader(&state, viewer, &n).await?;
    render_users(&state, &page, None, None, StatusCode::OK).await
}

/// `https://host` of the request (for a link the admin passes on).
fn origin(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']'))
        });
    let https = state.settings().portal.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    match host {
        Some(h) => format!("{}://{h}", if https { "https" } else { "http" }),
        None => String::new(),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct InviteForm {
    csrf: String,
    email: String,
    name: String,
    role: String,
}

async fn invite(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    headers: HeaderMap,
    Form(f): Form<InviteForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let page = admin(&state, viewer, &n).await?;
    let number = page.n.clone();
    let me = page.viewer.user.id;
    let now = state.now_unix();
    let done = state
        .blocking(move |s| {
            let email = email_ok(&f.email)?;
            let name = match f.name.trim() {
                "" => email.split('@').next().unwrap_or_default().to_string(),
                nm if nm.chars().count() > 200 => {
                    return Err(ApiError::BadRequest("the name is too long".into()))
                }
                nm => nm.to_string(),
            };
            let h = s.hierarchy(&number)?;
            let role = parse_role(f.role.trim(), &h, &number)?;
            let (user, created) = match s.create_user(&email, &name, None, now) {
                Ok(u) => (u, true),
                Err(StoreError::Conflict(_)) => (
                    s.user_by_email(&email)?
                        .ok_or_else(|| ApiError::Internal("the user vanished".into()))?,
                    false,
                ),
                Err(e) => return Err(e.into()),
            };
            if user.id == me {
                return Err(ApiError::BadRequest(
                    "you cannot change your own role; ask another administrator".into(),
                ));
            }
            let roles = s.roles(user.id)?;
            let before = roles.iter().find(|r| r.enrollment == number).cloned();
            // Only this enrollment's own users get a set-password link here: a
            // link for someone who holds roles elsewhere would let this
            // enrollment's administrators take over their account.
            let only_here = roles.iter().all(|r| r.enrollment == number);
            s.grant_role(user.id, &role)?;
            let token = if user.password_hash.is_none() && only_here {
                let t = random_token();
                s.put_password_token(
                    &super::session::token_hash(&t),
                    user.id,
                    now + INVITE_DAYS * 86_400,
                )?;
                Some(t)
            } else {
                None
            };
            let label = role_label(&role, &h);
            let mut text = match (&before, created) {
                (_, true) => format!("Invited {email} as {label}"),
                (Some(b), false) => format!(
                    "{email} already had a role here ({}): now {label}",
                    role_label(b, &h)
                ),
                (None, false) => format!("{email} already has an account: now {label} here"),
            };
            if user.disabled {
                text.push_str(" (note: this user is disabled and cannot sign in)");
            }
            let detail = format!(
                "{email} as {label}{}{}",
                if created {
                    ", new user"
                } else {
                    ", existing user"
                },
                if token.is_some() {
                    ", set-password link issued"
                } else {
                    ""
                }
            );
            Ok((text, detail, token))
        })
        .await;
    let (notice, status, link) = match done {
        Ok((text, detail, token)) => {
            page.audit(&state, "user-invited", detail).await;
            let link = token
                .map(|t| format!("{}/portal/set-password?token={t}", origin(&state, &headers)));
            let text = if link.is_some() {
                format!("{text}. Send them the link below: it works once, for {INVITE_DAYS} days, and is not shown again.")
            } else {
                format!("{text}. They sign in with their password.")
            };
            (Notice { ok: true, text }, StatusCode::OK, link)
        }
        Err(e) => {
            let (n, s) = outcome(Err(e))?;
            (n, s, None)
        }
    };
    render_users(&state, &page, Some(notice), link, status).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RoleForm {
    csrf: String,
    user_id: String,
    role: String,
}

/// The user (of this enrollment) a form names, and their role here.
fn member(
    s: &dyn meterbook_core::store::Store,
    n: &EnrollmentNumber,
    id: &str,
) -> Result<(meterbook_core::users::User, Role), ApiError> {
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| ApiError::NotFound("no such user in this enrollment".into()))?;
    s.enrollment_users(n)?
        .into_iter()
        .find(|(u, _)| u.id == id)
        .ok_or_else(|| ApiError::NotFound("no such user in this enrollment".into()))
}

async fn change_role(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<RoleForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let page = admin(&state, viewer, &n).await?;
    let (number, me) = (page.n.clone(), page.viewer.user.id);
    let done = state
        .blocking(move |s| {
            let (u, old) = member(s, &number, &f.user_id)?;
            if u.id == me {
                return Err(ApiError::Forbidden(
                    "you cannot change your own role: another enterprise administrator can".into(),
                ));
            }
            let h = s.hierarchy(&number)?;
            let role = parse_role(f.role.trim(), &h, &number)?;
            if role == old {
                return Err(ApiError::BadRequest(format!(
                    "{} already is {}",
                    u.email,
                    role_label(&role, &h)
                )));
            }
            s.grant_role(u.id, &role)?;
            Ok(format!(
                "{}: {} → {}",
                u.email,
                role_label(&old, &h),
                role_label(&role, &h)
            ))
        })
        .await;
    if let Ok(d) = &done {
        page.audit(&state, "role-changed", d.clone()).await;
    }
    let (notice, status) = outcome(done.map(|d| format!("Role changed: {d}.")))?;
    render_users(&state, &page, Some(notice), None, status).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RemoveForm {
    csrf: String,
    user_id: String,
}

async fn remove_role(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(f): Form<RemoveForm>,
) -> PageResult {
    viewer.check_csrf(&f.csrf)?;
    let page = admin(&state, viewer, &n).await?;
    let (number, me) = (page.n.clone(), page.viewer.user.id);
    let done = state
        .blocking(move |s| {
            let (u, old) = member(s, &number, &f.user_id)?;
            if u.id == me {
                return Err(ApiError::Forbidden(
                    "you cannot remove your own role: another enterprise administrator can".into(),
                ));
            }
            let h = s.hierarchy(&number)?;
            s.revoke_role(u.id, &number)?;
            Ok(format!("{} (was {})", u.email, role_label(&old, &h)))
        })
        .await;
    if let Ok(d) = &done {
        page.audit(&state, "role-removed", d.clone()).await;
    }
    let (notice, status) = outcome(done.map(|d| format!("Role removed: {d}.")))?;
    render_users(&state, &page, Some(notice), None, status).await
}

// ---------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------

pub struct AuditView {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "portal/manage_audit.html")]
struct AuditPage {
    nav: super::Nav,
    section: &'static str,
    notice: Option<Notice>,
    entries: Vec<AuditView>,
    limit: usize,
}

async fn audit_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(n): Path<String>,
) -> PageResult {
    let page = reader(&state, viewer, &n).await?;
    let number = page.n.clone();
    let log = state
        .blocking(move |s| Ok(s.audit_log(&number, AUDIT_LIMIT)?))
        .await?;
    Ok(render(&AuditPage {
        nav: page.nav(Tab::Manage),
        section: "audit",
        notice: None,
        entries: log
            .into_iter()
            .map(|e| AuditView {
                at: when(e.at),
                actor: e.actor,
                action: e.action,
                detail: e.detail,
            })
            .collect(),
        limit: AUDIT_LIMIT,
    }))
}
