//! Manage › Audit log: the newest entries, for every enterprise administrator.

use super::{as_enterprise, Manager, Notice, AUDIT_LIMIT};
use crate::portal::{render, Nav, PageResult, Tab};
use crate::AppState;
use askama::Template;
use axum::extract::State;

pub struct AuditView {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "portal/manage_audit.html")]
struct AuditPage {
    nav: Nav,
    section: &'static str,
    notice: Option<Notice>,
    entries: Vec<AuditView>,
    limit: usize,
}

fn when(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0).map_or_else(
        || at.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

pub(super) async fn page(State(state): State<AppState>, Manager(page): Manager) -> PageResult {
    let log = as_enterprise(&state, &page, |en| en.audit_log(AUDIT_LIMIT)).await?;
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
