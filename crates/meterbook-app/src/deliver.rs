//! Sending what the outbox holds: claim a due delivery, send it by e-mail or
//! as a signed webhook, and record how it went.
//!
//! Events and their deliveries are written in one transaction when an event
//! fires ([`meterbook_core::notify::NotifyStore::record_event`]); this is the
//! other half. A delivery is claimed under a lease, so on several nodes each
//! is attempted by one of them at a time, and one whose sender died is taken
//! over when the lease ends. A failure the receiver may recover from (a
//! timeout, a 5xx, a relay's 4xx) is retried on the [`Backoff`] schedule; any
//! other, or the last attempt, marks the delivery failed. Every outcome is in
//! the delivery log the portal and the API show.
//!
//! Delivery is at least once: a node that sent a message and died before
//! recording it sends it again after the lease. Receivers deduplicate on the
//! `Meterbook-Delivery` header (webhooks) or the Message-ID (e-mail), both
//! stable per delivery.

use crate::{App, AppResult};
use meterbook_core::notify::{Delivery, DeliveryOutcome, DeliveryTarget};
use meterbook_notify::{Backoff, Email, SendError, SmtpSettings, Webhook, WebhookClient};

/// How long a claimed delivery is its sender's: longer than the slowest
/// send (an SMTP exchange or a webhook, each bounded by its timeout).
const LEASE_MS: i64 = 5 * 60 * 1000;

/// What deliveries are sent with.
#[derive(Clone, Debug)]
pub struct Transport {
    /// The relay for e-mail; `None`: e-mail deliveries fail with a message
    /// saying no relay is configured (after their retries, in case one is).
    pub smtp: Option<SmtpSettings>,
    pub webhooks: WebhookClient,
    pub backoff: Backoff,
    /// The host part of Message-IDs (`<delivery-42@HOST>`).
    pub message_host: String,
}

impl App {
    /// Sends deliveries that are due, up to `max`, one at a time; returns how
    /// many were attempted. Store errors end the round (the deliveries stay
    /// claimed until their lease ends, then are tried again).
    pub fn deliver_due(&self, t: &Transport, max: usize) -> AppResult<usize> {
        let mut done = 0;
        while done < max {
            let now = self.clock().now_millis();
            let Some(d) = self.store().claim_delivery(now, LEASE_MS)? else {
                break;
            };
            done += 1;
            let outcome = match self.send(t, &d) {
                Ok(()) => DeliveryOutcome::Delivered,
                Err(e) => {
                    tracing::warn!(
                        delivery = d.id,
                        enrollment = %d.enrollment,
                        attempt = d.attempts,
                        retryable = e.retryable,
                        error = %e.message,
                        "delivery attempt failed"
                    );
                    let now = self.clock().now_millis();
                    match e
                        .retryable
                        .then(|| t.backoff.next_attempt(d.attempts, now, jitter()))
                        .flatten()
                    {
                        Some(at) => DeliveryOutcome::Retry {
                            at,
                            error: e.message,
                        },
                        None => DeliveryOutcome::Failed { error: e.message },
                    }
                }
            };
            self.store()
                .finish_delivery(d.id, &outcome, self.clock().now_millis())?;
        }
        Ok(done)
    }

    fn send(&self, t: &Transport, d: &Delivery) -> Result<(), SendError> {
        match &d.target {
            DeliveryTarget::Email(to) => {
                let Some(smtp) = &t.smtp else {
                    return Err(SendError {
                        retryable: true,
                        message: "no SMTP relay is configured (--smtp-relay)".into(),
                    });
                };
                meterbook_notify::send_email(
                    smtp,
                    &Email {
                        to: to.clone(),
                        subject: d.subject.clone(),
                        text: d.text.clone(),
                        message_id: format!("<delivery-{}@{}>", d.id, t.message_host),
                    },
                )
            }
            DeliveryTarget::Webhook { channel } => {
                let ch = match self.store().channel(&d.enrollment, *channel) {
                    Ok(Some(ch)) => ch,
                    Ok(None) => {
                        return Err(SendError {
                            retryable: false,
                            message: "the webhook channel was removed".into(),
                        })
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reading a webhook channel");
                        return Err(SendError {
                            retryable: true,
                            message: "the store is unavailable".into(),
                        });
                    }
                };
                let secret = self.webhook_secret(&ch).map_err(|e| {
                    tracing::error!(error = %e, "deriving a webhook secret");
                    SendError {
                        retryable: true,
                        message: "the signing secret is unavailable".into(),
                    }
                })?;
                let id = format!("delivery-{}", d.id);
                t.webhooks.post(
                    &Webhook {
                        url: ch.target.address(),
                        secret: secret.as_bytes(),
                        event_kind: d.event_kind.name(),
                        delivery_id: &id,
                        body: d.payload.as_bytes(),
                    },
                    self.clock().now_unix(),
                )
            }
        }
    }
}

/// A random number for the retry schedule's jitter (spreads retries of many
/// deliveries to one receiver).
fn jitter() -> u64 {
    let mut b = [0u8; 8];
    // Without randomness the schedule is merely unjittered.
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}
