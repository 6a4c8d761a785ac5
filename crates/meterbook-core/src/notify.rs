//! Budgets, notification channels, the events they fire on, and the outbox
//! of deliveries.
//!
//! **Exactly once.** An event is recorded under a dedupe key that names what
//! happened and when (`budget:7:actual:80:202611`, `closed:202610`,
//! `watermark:2026-11-29`); the store keeps one event per enrollment and key
//! (a unique constraint), so however often, and on however many nodes, the
//! evaluation runs, the second attempt to record the same event finds it and
//! does nothing. The deliveries of an event are written in the same
//! transaction as the event ([`NotifyStore::record_event`]): either both are
//! stored or neither, so an event is never recorded without its messages,
//! nor a message queued twice. Delivery workers then claim the outbox's rows
//! under a lease ([`NotifyStore::claim_delivery`]), as report workers claim
//! jobs.
//!
//! Times here are Unix milliseconds. Money is in the enrollment currency's
//! minor unit.

use crate::access::Scope;
use crate::enrollment::EnrollmentNumber;
use crate::fixed::Money;
use crate::store::StoreResult;

/// What a threshold compares with the budget's amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Basis {
    /// Charges so far in the budget's period (or term).
    Actual,
    /// Charges expected at the end of the budget's period (or term).
    Forecast,
    /// The commitment left, at or below `percent`% of the term's purchases
    /// (and adjustments): only on budgets of the whole enrollment.
    Balance,
}

impl Basis {
    pub const ALL: [Basis; 3] = [Basis::Actual, Basis::Forecast, Basis::Balance];

    /// The stored and shown name: `actual`, `forecast`, `balance`.
    pub fn name(self) -> &'static str {
        match self {
            Basis::Actual => "actual",
            Basis::Forecast => "forecast",
            Basis::Balance => "balance",
        }
    }

    pub fn parse(s: &str) -> Option<Basis> {
        Self::ALL.into_iter().find(|b| b.name() == s)
    }
}

/// One alert point of a budget: e.g. actual charges at 80% of its amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Threshold {
    pub basis: Basis,
    pub percent: u32,
}

impl Threshold {
    /// `actual:80`: how thresholds are stored and keyed.
    pub fn text(self) -> String {
        format!("{}:{}", self.basis.name(), self.percent)
    }

    pub fn parse(s: &str) -> Option<Threshold> {
        let (b, p) = s.split_once(':')?;
        Some(Threshold {
            basis: Basis::parse(b)?,
            percent: p.parse().ok()?,
        })
    }
}

/// Thresholds as one stored text: `actual:50,actual:80,forecast:100`.
pub fn thresholds_text(t: &[Threshold]) -> String {
    t.iter().map(|t| t.text()).collect::<Vec<_>>().join(",")
}

pub fn parse_thresholds(s: &str) -> Option<Vec<Threshold>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(',').map(Threshold::parse).collect()
}

/// The span a budget's amount is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cadence {
    /// Each billing period (calendar month) on its own.
    Monthly,
    /// The whole term of the enrollment.
    Term,
}

impl Cadence {
    pub fn name(self) -> &'static str {
        match self {
            Cadence::Monthly => "monthly",
            Cadence::Term => "term",
        }
    }

    pub fn parse(s: &str) -> Option<Cadence> {
        [Cadence::Monthly, Cadence::Term]
            .into_iter()
            .find(|c| c.name() == s)
    }
}

/// What it takes to make a budget (validated by the use-case layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBudget {
    pub name: String,
    pub scope: Scope,
    pub cadence: Cadence,
    pub amount: Money,
    pub thresholds: Vec<Threshold>,
}

/// A stored budget. Ids are never reused, so an event key naming a deleted
/// budget can never stop a later budget's alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    pub id: i64,
    pub enrollment: EnrollmentNumber,
    pub name: String,
    pub scope: Scope,
    pub cadence: Cadence,
    pub amount: Money,
    pub thresholds: Vec<Threshold>,
    pub created_at: i64,
    pub created_by: String,
}

/// What an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A budget's threshold was crossed.
    Alert,
    /// A billing period closed (its figures are final).
    PeriodClosed,
    /// The usage watermark moved to a new day.
    Watermark,
}

impl EventKind {
    pub const ALL: [EventKind; 3] = [
        EventKind::Alert,
        EventKind::PeriodClosed,
        EventKind::Watermark,
    ];

    /// `alert`, `period-closed`, `watermark`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Alert => "alert",
            EventKind::PeriodClosed => "period-closed",
            EventKind::Watermark => "watermark",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Kinds as one stored text: `alert,watermark`.
pub fn kinds_text(k: &[EventKind]) -> String {
    k.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
}

pub fn parse_kinds(s: &str) -> Option<Vec<EventKind>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(',').map(EventKind::parse).collect()
}

/// Where a channel sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelTarget {
    Email { address: String },
    Webhook { url: String },
}

impl ChannelTarget {
    /// `email` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelTarget::Email { .. } => "email",
            ChannelTarget::Webhook { .. } => "webhook",
        }
    }

    /// The address or URL.
    pub fn address(&self) -> &str {
        match self {
            ChannelTarget::Email { address } => address,
            ChannelTarget::Webhook { url } => url,
        }
    }

    pub fn from_parts(kind: &str, address: String) -> Option<ChannelTarget> {
        match kind {
            "email" => Some(ChannelTarget::Email { address }),
            "webhook" => Some(ChannelTarget::Webhook { url: address }),
            _ => None,
        }
    }
}

/// What it takes to add a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewChannel {
    pub target: ChannelTarget,
    pub events: Vec<EventKind>,
    /// Random bytes the webhook signing secret is derived from (with a
    /// server secret): the signing secret itself is never stored.
    pub salt: Vec<u8>,
}

/// A stored notification channel of an enrollment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    pub id: i64,
    pub enrollment: EnrollmentNumber,
    pub target: ChannelTarget,
    pub events: Vec<EventKind>,
    pub salt: Vec<u8>,
    pub created_at: i64,
    pub created_by: String,
}

/// An event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: EventKind,
    /// The dedupe key: one event per enrollment and key, ever.
    pub key: String,
    pub budget: Option<i64>,
    /// The event as JSON (what webhooks post).
    pub payload: String,
}

/// A recorded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub enrollment: EnrollmentNumber,
    pub kind: EventKind,
    pub key: String,
    pub budget: Option<i64>,
    pub fired_at: i64,
    pub payload: String,
}

/// Where one delivery goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryTarget {
    /// An e-mail to this address.
    Email(String),
    /// A signed POST to this webhook channel's URL (read when it is sent,
    /// with the channel's salt for the signature).
    Webhook { channel: i64 },
}

/// A message to queue with an event (its body is the event's payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    pub target: DeliveryTarget,
    pub subject: String,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for (another) attempt.
    Pending,
    Delivered,
    /// Given up on.
    Failed,
}

impl DeliveryStatus {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// One message of the outbox, with its event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub enrollment: EnrollmentNumber,
    pub event_id: i64,
    pub event_kind: EventKind,
    pub event_key: String,
    pub target: DeliveryTarget,
    pub subject: String,
    pub text: String,
    /// The event's JSON.
    pub payload: String,
    pub status: DeliveryStatus,
    /// Attempts claimed so far.
    pub attempts: u32,
    /// Not to be tried before this.
    pub next_attempt_at: i64,
    /// The claiming worker's lease: past it, another may take the delivery.
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at `at`.
    Retry {
        at: i64,
        error: String,
    },
    /// Give up.
    Failed {
        error: String,
    },
}

/// Budgets, channels, events and the outbox. Every method is one transaction.
pub trait NotifyStore {
    fn create_budget(
        &self,
        n: &EnrollmentNumber,
        b: &NewBudget,
        created_by: &str,
        now: i64,
    ) -> StoreResult<Budget>;
    /// The enrollment's budgets, by id.
    fn budgets(&self, n: &EnrollmentNumber) -> StoreResult<Vec<Budget>>;
    fn budget(&self, n: &EnrollmentNumber, id: i64) -> StoreResult<Option<Budget>>;
    /// Deletes a budget (its events stay); false when there is none.
    fn delete_budget(&self, n: &EnrollmentNumber, id: i64) -> StoreResult<bool>;

    fn add_channel(
        &self,
        n: &EnrollmentNumber,
        c: &NewChannel,
        created_by: &str,
        now: i64,
    ) -> StoreResult<Channel>;
    /// The enrollment's channels, by id.
    fn channels(&self, n: &EnrollmentNumber) -> StoreResult<Vec<Channel>>;
    fn channel(&self, n: &EnrollmentNumber, id: i64) -> StoreResult<Option<Channel>>;
    /// Removes a channel; its pending webhook deliveries fail ("channel
    /// removed"). False when there is none.
    fn remove_channel(&self, n: &EnrollmentNumber, id: i64, now: i64) -> StoreResult<bool>;

    /// Records `e` with its `deliveries`, in one transaction, unless an event
    /// of the enrollment has the same key: then nothing is written and the
    /// answer is `None`.
    fn record_event(
        &self,
        n: &EnrollmentNumber,
        e: &NewEvent,
        deliveries: &[NewDelivery],
        now: i64,
    ) -> StoreResult<Option<Event>>;
    /// The newest `limit` events, newest first.
    fn events(&self, n: &EnrollmentNumber, limit: usize) -> StoreResult<Vec<Event>>;

    /// Takes the oldest due pending delivery of any enrollment whose lease is
    /// free or past `now`: leases it until `now + lease_ms` and counts the
    /// attempt. Of workers claiming at once, each gets a different one.
    fn claim_delivery(&self, now: i64, lease_ms: i64) -> StoreResult<Option<Delivery>>;
    /// Ends an attempt. NotFound when there is no such delivery.
    fn finish_delivery(&self, id: i64, outcome: &DeliveryOutcome, now: i64) -> StoreResult<()>;
    /// The newest `limit` deliveries, newest first.
    fn deliveries(&self, n: &EnrollmentNumber, limit: usize) -> StoreResult<Vec<Delivery>>;
}

/// A delivery target as stored: (`email`, address, NULL) or (`webhook`, NULL, channel).
pub fn target_parts(t: &DeliveryTarget) -> (&'static str, Option<&str>, Option<i64>) {
    match t {
        DeliveryTarget::Email(a) => ("email", Some(a), None),
        DeliveryTarget::Webhook { channel } => ("webhook", None, Some(*channel)),
    }
}

pub fn target_from_parts(
    kind: &str,
    address: Option<String>,
    channel: Option<i64>,
) -> Option<DeliveryTarget> {
    match (kind, address, channel) {
        ("email", Some(a), _) => Some(DeliveryTarget::Email(a)),
        ("webhook", _, Some(c)) => Some(DeliveryTarget::Webhook { channel: c }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored texts: they must not change.
    #[test]
    fn names_round_trip() {
        let t = vec![
            Threshold {
                basis: Basis::Actual,
                percent: 80,
            },
            Threshold {
                basis: Basis::Balance,
                percent: 10,
            },
        ];
        assert_eq!(thresholds_text(&t), "actual:80,balance:10");
        assert_eq!(parse_thresholds("actual:80,balance:10"), Some(t));
        assert_eq!(parse_thresholds("actual:x"), None);
        let k = EventKind::ALL.to_vec();
        assert_eq!(kinds_text(&k), "alert,period-closed,watermark");
        assert_eq!(parse_kinds(&kinds_text(&k)), Some(k));
        assert_eq!(Cadence::parse("term"), Some(Cadence::Term));
        assert_eq!(
            DeliveryStatus::parse("failed"),
            Some(DeliveryStatus::Failed)
        );
    }
}
