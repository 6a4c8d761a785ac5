//! Notification channels, the evaluation that records events, and the
//! delivery log.
//!
//! [`App::evaluate_notifications`] looks at an enrollment now: each budget's
//! thresholds, the closed periods, the usage watermark. What it finds is
//! recorded as an event under a key that names it (`budget:7:actual:80:202611`,
//! `closed:202610`, `watermark:2026-11-29`), with its deliveries, in one store
//! transaction that does nothing if the key is recorded already: however
//! often and on however many nodes it runs, each event and its messages are
//! written once (docs/design-notes.md, "Budgets and alerts"). Nothing is sent
//! here: a delivery worker drains the outbox.
//!
//! Who receives what:
//! - channels (set up by enterprise administrators) receive the kinds of
//!   event they subscribe to, for every budget;
//! - a budget alert also goes by e-mail to each enabled portal user whose
//!   role covers the budget's scope and may see its charges (enterprise
//!   administrators: every budget; department administrators: their
//!   department's and its accounts'; account owners: their account's), so
//!   nobody receives a figure they may not see.
//!
//! Data events (a period closed, the watermark moved) reach only channels
//! that existed when the change happened: adding a channel first records the
//! current state (delivered to the channels there are), so a new channel is
//! not sent the enrollment's history.

use crate::budgets::BudgetStatus;
use crate::{Access, Admin, App, AppError, AppResult, Enterprise};
use hmac::{Hmac, Mac};
use meterbook_core::access::Scope;
use meterbook_core::enrollment::Enrollment;
use meterbook_core::notify::{
    Basis, Channel, ChannelTarget, Delivery, DeliveryTarget, Event, EventKind, NewChannel,
    NewDelivery, NewEvent, Threshold,
};
use meterbook_core::{EnrollmentNumber, Money};
use serde_json::json;
use sha2::Sha256;

/// Channels an enrollment may have.
pub const MAX_CHANNELS: usize = 20;
/// Longest webhook URL.
pub const MAX_URL: usize = 2048;
/// Most events and deliveries a listing returns.
pub const MAX_LIST: usize = 500;

/// The server secret webhook signing secrets are derived from.
const SIGNING_SECRET: &str = "webhook-signing";

/// A channel as a front end asks for it.
#[derive(Clone, Debug, Default)]
pub struct ChannelInput {
    /// `email` or `webhook`.
    pub kind: String,
    /// The e-mail address or the URL.
    pub address: String,
    /// `alert`, `period-closed`, `watermark`.
    pub events: Vec<String>,
}

/// A channel just added, with its webhook signing secret (`whsec_…`) to
/// show once: it is derived when needed, never stored.
pub struct NewChannelMade {
    pub channel: Channel,
    pub secret: Option<String>,
}

impl std::fmt::Debug for NewChannelMade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewChannelMade")
            .field("channel", &self.channel.id)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A webhook URL: http(s), a host, no credentials in it.
pub fn webhook_url_ok(v: &str) -> AppResult<String> {
    let v = v.trim();
    let bad = |why: &str| Err(AppError::Invalid(format!("the webhook URL {why}")));
    if v.len() > MAX_URL {
        return bad(&format!("is longer than {MAX_URL} characters"));
    }
    let Ok(u) = url::Url::parse(v) else {
        return bad("is not a URL");
    };
    if !matches!(u.scheme(), "http" | "https") {
        return bad("must start with https:// or http://");
    }
    if u.host_str().is_none_or(str::is_empty) {
        return bad("has no host");
    }
    if !u.username().is_empty() || u.password().is_some() {
        return bad("must not hold a user name or password (the signature authenticates us)");
    }
    if u.fragment().is_some() {
        return bad("must not have a #fragment");
    }
    Ok(u.to_string())
}

impl App {
    /// The signing secret of a webhook channel: HMAC-SHA256 of the
    /// channel's random salt under the deployment's webhook signing secret.
    /// Derived whenever it is needed (to sign, and once to show), never stored.
    /// The text (`whsec_` and 64 hex digits) is the key: receivers verify
    /// with the bytes of the text they were shown (docs/notifications.md).
    pub fn webhook_secret(&self, channel: &Channel) -> AppResult<String> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| AppError::Internal(e.to_string()))?;
        let key = self.secret(SIGNING_SECRET, &fresh)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        // The salt alone (random, per channel): a copy of the store (`store
        // copy`) keeps every channel's secret, whatever ids the copy gives.
        mac.update(format!("channel:{}", hex(&channel.salt)).as_bytes());
        Ok(format!("whsec_{}", hex(&mac.finalize().into_bytes())))
    }

    /// Records every event the enrollment's state calls for now (budget
    /// thresholds crossed, periods closed, a new watermark day) with their
    /// deliveries; returns the events recorded by this call (none that were
    /// recorded before).
    pub fn evaluate_notifications(&self, n: &EnrollmentNumber) -> AppResult<Vec<Event>> {
        let e = self.store().enrollment(n)?;
        let mut out = self.evaluate_data_events(&e)?;
        out.extend(self.evaluate_budgets(&e)?);
        Ok(out)
    }

    /// [`App::evaluate_notifications`] for every enrollment (what a
    /// background task of `serve` calls now and then). An enrollment that
    /// fails is logged and skipped; the others go on. Returns the events
    /// recorded.
    pub fn evaluate_all_notifications(&self) -> AppResult<Vec<Event>> {
        let mut out = Vec::new();
        for e in self.store().enrollments()? {
            match self.evaluate_notifications(&e.number) {
                Ok(evs) => out.extend(evs),
                Err(err) => tracing::warn!(
                    enrollment = %e.number,
                    error = %err,
                    "cannot evaluate budgets and data events"
                ),
            }
        }
        Ok(out)
    }

    fn evaluate_budgets(&self, e: &Enrollment) -> AppResult<Vec<Event>> {
        let s = self.store();
        let budgets = s.budgets(&e.number)?;
        if budgets.is_empty() {
            return Ok(Vec::new());
        }
        let channels = s.channels(&e.number)?;
        let h = s.hierarchy(&e.number)?;
        let users = s.enrollment_users(&e.number)?;
        let mut out = Vec::new();
        for st in self.budget_statuses(e, budgets)? {
            for &t in &st.crossed {
                let key = format!(
                    "budget:{}:{}:{}:{}",
                    st.budget.id,
                    t.basis.name(),
                    t.percent,
                    st.span_key(t)
                );
                let (subject, text) = alert_text(e, &st, t);
                let mut to: Vec<DeliveryTarget> = channel_targets(&channels, EventKind::Alert);
                for (u, role) in &users {
                    if !u.disabled
                        && role.scope.covers(st.budget.scope, &h)
                        && role.scope.sees_costs(e.visibility)
                    {
                        push_unique(&mut to, DeliveryTarget::Email(u.email.clone()));
                    }
                }
                let ev = NewEvent {
                    kind: EventKind::Alert,
                    payload: alert_payload(e, &st, t, &key).to_string(),
                    key,
                    budget: Some(st.budget.id),
                };
                let ds = deliveries(to, &subject, &text);
                if let Some(ev) = s.record_event(&e.number, &ev, &ds, self.clock().now_millis())? {
                    out.push(ev);
                }
            }
        }
        Ok(out)
    }

    /// Closed periods and the watermark day, to the channels subscribed.
    fn evaluate_data_events(&self, e: &Enrollment) -> AppResult<Vec<Event>> {
        let s = self.store();
        let channels = s.channels(&e.number)?;
        let mut out = Vec::new();
        let now = self.clock().now_millis();
        for p in s.periods(&e.number)?.into_iter().filter(|p| p.closed) {
            let key = format!("closed:{}", p.period);
            let subject = format!(
                "Enrollment {}: billing period {} is closed",
                e.number, p.period
            );
            let text = format!(
                "Billing period {} of enrollment {} ({}) is closed: its statement and usage are final.",
                p.period, e.number, e.name
            );
            let payload = json!({
                "event": EventKind::PeriodClosed.name(),
                "key": key,
                "enrollment": e.number.as_str(),
                "period": p.period.to_string(),
                "from": p.period.first_day().max(e.start).to_string(),
                "to": p.period.last_day().min(e.end).to_string(),
            });
            let ev = NewEvent {
                kind: EventKind::PeriodClosed,
                key,
                budget: None,
                payload: payload.to_string(),
            };
            let ds = deliveries(
                channel_targets(&channels, EventKind::PeriodClosed),
                &subject,
                &text,
            );
            if let Some(ev) = s.record_event(&e.number, &ev, &ds, now)? {
                out.push(ev);
            }
        }
        if let Some(w) = e.watermark {
            let key = format!("watermark:{w}");
            let subject = format!("Enrollment {}: usage complete through {w}", e.number);
            let text = format!(
                "Usage of enrollment {} ({}) is complete through {w}.",
                e.number, e.name
            );
            let payload = json!({
                "event": EventKind::Watermark.name(),
                "key": key,
                "enrollment": e.number.as_str(),
                "watermark": w.to_string(),
            });
            let ev = NewEvent {
                kind: EventKind::Watermark,
                key,
                budget: None,
                payload: payload.to_string(),
            };
            let ds = deliveries(
                channel_targets(&channels, EventKind::Watermark),
                &subject,
                &text,
            );
            if let Some(ev) = s.record_event(&e.number, &ev, &ds, now)? {
                out.push(ev);
            }
        }
        Ok(out)
    }
}

fn push_unique(to: &mut Vec<DeliveryTarget>, t: DeliveryTarget) {
    if !to.contains(&t) {
        to.push(t);
    }
}

fn channel_targets(channels: &[Channel], kind: EventKind) -> Vec<DeliveryTarget> {
    let mut to = Vec::new();
    for c in channels.iter().filter(|c| c.events.contains(&kind)) {
        push_unique(
            &mut to,
            match &c.target {
                ChannelTarget::Email { address } => DeliveryTarget::Email(address.clone()),
                ChannelTarget::Webhook { .. } => DeliveryTarget::Webhook { channel: c.id },
            },
        );
    }
    to
}

fn deliveries(to: Vec<DeliveryTarget>, subject: &str, text: &str) -> Vec<NewDelivery> {
    to.into_iter()
        .map(|target| NewDelivery {
            target,
            subject: subject.to_string(),
            text: text.to_string(),
        })
        .collect()
}

fn money(e: &Enrollment, m: Money) -> String {
    format!("{} {}", m.format(e.currency.exponent()), e.currency.code())
}

fn scope_label(st: &BudgetStatus) -> String {
    match (st.budget.scope, &st.scope_name) {
        (Scope::Enrollment, _) => "the whole enrollment".into(),
        (Scope::Department(_), Some(n)) => format!("department {n}"),
        (Scope::Account(_), Some(n)) => format!("account {n}"),
        (s, None) => format!("a removed {}", s.kind()),
    }
}

fn span_label(st: &BudgetStatus, t: Threshold) -> String {
    if st.span_key(t) == "term" {
        format!("the term ({} to {})", st.from, st.to)
    } else {
        format!("billing period {}", st.period)
    }
}

fn alert_text(e: &Enrollment, st: &BudgetStatus, t: Threshold) -> (String, String) {
    let b = &st.budget;
    let what = match t.basis {
        Basis::Actual => format!(
            "actual charges reached {}% of the budget: {} of {}",
            t.percent,
            money(e, st.actual),
            money(e, b.amount)
        ),
        Basis::Forecast => format!(
            "forecast charges reached {}% of the budget: {} expected, budget {}",
            t.percent,
            money(e, st.forecast.unwrap_or_default()),
            money(e, b.amount)
        ),
        Basis::Balance => {
            let bal = st.balance.unwrap_or(crate::budgets::Balance {
                left: Money::ZERO,
                total: Money::ZERO,
            });
            format!(
                "the commitment left is at or below {}% of the term's purchases: {} of {} left",
                t.percent,
                money(e, bal.left),
                money(e, bal.total)
            )
        }
    };
    let subject = format!(
        "Budget \"{}\" ({}): {} {}%",
        b.name,
        e.number,
        t.basis.name(),
        t.percent
    );
    let as_of = st
        .as_of
        .map_or("no usage yet".to_string(), |d| format!("usage through {d}"));
    let text = format!(
        "Budget \"{}\" of enrollment {} ({}), for {} in {}: {}.\nFigures as of {as_of}; actual charges {}.",
        b.name,
        e.number,
        e.name,
        scope_label(st),
        span_label(st, t),
        what,
        money(e, st.actual),
    );
    (subject, text)
}

fn alert_payload(e: &Enrollment, st: &BudgetStatus, t: Threshold, key: &str) -> serde_json::Value {
    let exp = e.currency.exponent();
    let b = &st.budget;
    let term = st.span_key(t) == "term";
    json!({
        "event": EventKind::Alert.name(),
        "key": key,
        "enrollment": e.number.as_str(),
        "currency": e.currency.code(),
        "budget": {
            "id": b.id,
            "name": b.name,
            "scope": b.scope.kind(),
            "scopeName": st.scope_name,
            "cadence": b.cadence.name(),
            "amount": b.amount.format(exp),
        },
        "threshold": { "basis": t.basis.name(), "percent": t.percent },
        "period": if term { None } else { Some(st.period.to_string()) },
        "from": st.from.to_string(),
        "to": st.to.to_string(),
        "actual": st.actual.format(exp),
        "forecast": st.forecast.map(|f| f.format(exp)),
        "balance": st.balance.map(|bal| json!({
            "left": bal.left.format(exp),
            "total": bal.total.format(exp),
        })),
        "asOf": st.as_of.map(|d| d.to_string()),
    })
}

impl Access {
    /// Recent events this caller may see, newest first: data events, and
    /// alerts of the budgets within reach (none where charges are hidden).
    pub fn events(&self, limit: usize) -> AppResult<Vec<Event>> {
        let limit = limit.min(MAX_LIST);
        let s = self.app.store();
        let all = s.events(self.number(), limit)?;
        if self.scope() == Scope::Enrollment {
            return Ok(all);
        }
        let visible: Vec<i64> = match self.budgets_visible() {
            Ok(bs) => bs.iter().map(|b| b.id).collect(),
            Err(AppError::Forbidden(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(all
            .into_iter()
            .filter(|ev| match ev.kind {
                EventKind::Alert => ev.budget.is_some_and(|b| visible.contains(&b)),
                EventKind::PeriodClosed | EventKind::Watermark => true,
            })
            .collect())
    }
}

impl Enterprise<'_> {
    /// The enrollment's notification channels.
    pub fn channels(&self) -> AppResult<Vec<Channel>> {
        let a = self.access();
        Ok(a.app.store().channels(a.number())?)
    }

    /// The delivery log, newest first.
    pub fn deliveries(&self, limit: usize) -> AppResult<Vec<Delivery>> {
        let a = self.access();
        Ok(a.app.store().deliveries(a.number(), limit.min(MAX_LIST))?)
    }
}

/// Checks a channel request.
pub fn parse_channel(input: &ChannelInput) -> AppResult<(ChannelTarget, Vec<EventKind>)> {
    let target = match input.kind.to_ascii_lowercase().as_str() {
        "email" => ChannelTarget::Email {
            address: crate::users::email_ok(&input.address)?,
        },
        "webhook" => ChannelTarget::Webhook {
            url: webhook_url_ok(&input.address)?,
        },
        other => {
            return Err(AppError::Invalid(format!(
                "`kind` must be email or webhook, not `{}`",
                meterbook_core::quote::quote(other)
            )))
        }
    };
    if input.events.is_empty() || input.events.len() > EventKind::ALL.len() {
        return Err(AppError::Invalid(
            "`events` names 1 to 3 of alert, period-closed, watermark".into(),
        ));
    }
    let mut events = Vec::new();
    for k in &input.events {
        let kind = EventKind::parse(&k.to_ascii_lowercase()).ok_or_else(|| {
            AppError::Invalid(format!(
                "`events` names alert, period-closed or watermark, not `{}`",
                meterbook_core::quote::quote(k)
            ))
        })?;
        if events.contains(&kind) {
            return Err(AppError::Invalid(format!(
                "event {} is named twice",
                kind.name()
            )));
        }
        events.push(kind);
    }
    events.sort_by_key(|k| EventKind::ALL.iter().position(|x| x == k));
    Ok((target, events))
}

impl Admin<'_> {
    /// Adds a channel. A webhook's signing secret is returned once.
    pub fn add_channel(&self, input: &ChannelInput) -> AppResult<NewChannelMade> {
        let a = self.access();
        let (target, events) = parse_channel(input)?;
        let s = a.app.store();
        if s.channels(a.number())?.len() >= MAX_CHANNELS {
            return Err(AppError::Conflict(format!(
                "an enrollment has at most {MAX_CHANNELS} channels: remove one first"
            )));
        }
        // What has happened so far goes to the channels there are, not to
        // this one (no history is replayed to a new channel).
        a.app.evaluate_data_events(&a.e)?;
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| AppError::Internal(e.to_string()))?;
        let channel = s.add_channel(
            a.number(),
            &NewChannel {
                target,
                events,
                salt,
            },
            a.actor().requester(),
            a.app.clock().now_millis(),
        )?;
        let secret = match channel.target {
            ChannelTarget::Webhook { .. } => Some(a.app.webhook_secret(&channel)?),
            ChannelTarget::Email { .. } => None,
        };
        a.audit(
            "channel-added",
            format!(
                "{} channel {} to {}",
                channel.target.kind(),
                channel.id,
                channel.target.address()
            ),
        );
        Ok(NewChannelMade { channel, secret })
    }

    /// Removes a channel; its pending webhook deliveries are given up.
    pub fn remove_channel(&self, id: i64) -> AppResult<()> {
        let a = self.access();
        if !a
            .app
            .store()
            .remove_channel(a.number(), id, a.app.clock().now_millis())?
        {
            return Err(AppError::NotFound(format!("there is no channel {id}")));
        }
        a.audit("channel-removed", format!("channel {id}"));
        Ok(())
    }
}

impl crate::Operator {
    /// [`App::evaluate_notifications`], for the operator's command line.
    pub fn evaluate_notifications(&self, n: &EnrollmentNumber) -> AppResult<Vec<Event>> {
        self.app.evaluate_notifications(n)
    }
}
