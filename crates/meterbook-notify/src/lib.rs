//! Delivery of alerts and data-event notifications: e-mail over SMTP to a
//! configured relay, and webhooks signed with HMAC-SHA256.
//!
//! The API is blocking on purpose: a delivery worker runs each send on a
//! blocking thread, claims a delivery from the store's outbox, calls
//! [`send_email`] or [`WebhookClient::post`], and records the outcome. This
//! crate knows nothing of the store: it sends, says whether a failure is worth
//! retrying ([`SendError::retryable`]), and computes when to try again
//! ([`Backoff`]).
//!
//! Error messages name the receiving host and the status or the kind of
//! failure, never a secret, a URL's path or query (webhook URLs often carry a
//! token there), or the body: they end up in a delivery log that the portal
//! shows.
//!
//! TLS is the `tls` cargo feature (HTTPS webhooks and STARTTLS to the relay);
//! a default build speaks plain HTTP and plain SMTP only. See
//! `docs/notifications.md` for the receiver's side: headers, signature check
//! and retry schedule.
//!
//! ```
//! use meterbook_notify::{sign, verify};
//! let header = sign(b"channel secret", 1_700_000_000, br#"{"kind":"budget.threshold"}"#);
//! assert!(verify(b"channel secret", &header, br#"{"kind":"budget.threshold"}"#, 1_700_000_030, 300));
//! ```
#![forbid(unsafe_code)]

mod backoff;
mod email;
mod error;
mod net;
mod signature;
mod webhook;

pub use backoff::Backoff;
pub use email::{send_email, Email, SmtpCredentials, SmtpSettings};
pub use error::SendError;
pub use net::is_public_ip;
pub use signature::{sign, verify, SIGNATURE_HEADER};
pub use webhook::{
    check_webhook_url, Webhook, WebhookClient, DELIVERY_HEADER, EVENT_HEADER, MAX_URL_LEN,
};
