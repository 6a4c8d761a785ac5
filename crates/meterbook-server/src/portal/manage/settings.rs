//! Manage › Settings: the enrollment's details as the provider set them, and
//! who besides enterprise administrators sees charges.

use super::{as_admin, as_enterprise, csrf_form, with_status, AdminForm, Manager, Notice};
use crate::portal::{render, Nav, Page, PageResult, Tab};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use meterbook_core::enrollment::ChargeVisibility;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "portal/manage.html")]
struct SettingsPage {
    nav: Nav,
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
    let st = as_enterprise(state, page, |en| en.settings()).await?;
    let e = &st.enrollment;
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
            match (st.closed_through, st.oldest_open) {
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

pub(super) async fn page(State(state): State<AppState>, Manager(page): Manager) -> PageResult {
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
csrf_form!(SettingsForm);

pub(super) async fn post(
    State(state): State<AppState>,
    AdminForm { page, form: f }: AdminForm<SettingsForm>,
) -> PageResult {
    let want = ChargeVisibility {
        department_admins_view_charges: f.department_admins_view_charges.is_some(),
        account_owners_view_charges: f.account_owners_view_charges.is_some(),
    };
    let changes = as_admin(&state, &page, move |admin| admin.set_visibility(want)).await?;
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
