//! E-mail over SMTP to a configured relay.
//!
//! A delivery worker hands its message to a relay (the host's MTA, or the
//! organisation's mail gateway) and the relay does the rest: MX lookup,
//! queueing, its own retries. So the client is small: plain SMTP by default
//! (a relay on the same host or network), STARTTLS with the `tls` feature.
//! The message is built by `lettre`, which encodes what needs encoding (a
//! UTF-8 subject as an RFC 2047 encoded word, a body with long or non-ASCII
//! lines as quoted-printable or base64), so nothing a user typed can break
//! out of a header.
//!
//! The Message-ID is the caller's, stable per delivery: when a retry follows
//! a send whose answer was lost, the recipient's mail system (and a human)
//! can see the two copies are one message.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::SmtpTransport;
use lettre::{Message, Transport};

use crate::error::SendError;

/// Where and how to hand mail over.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// The sender, `Meterbook <billing@example.com>` or a bare address.
    pub from: String,
    /// For the whole exchange with the relay (each command's answer).
    pub timeout: Duration,
    /// Upgrade the connection with STARTTLS before sending (needs the `tls`
    /// feature; refused without it). Required by the relay, not optional:
    /// a relay that does not offer it fails the send.
    pub starttls: bool,
    /// Log in to the relay (AUTH PLAIN or LOGIN, whichever it offers). Only
    /// over STARTTLS, or to a relay on loopback: a password is never sent in
    /// clear over a network.
    pub credentials: Option<SmtpCredentials>,
}

/// A user name and password for the relay. `Debug` hides the password.
#[derive(Clone)]
pub struct SmtpCredentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// One e-mail: plain text, one recipient.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// `<id@host>`, stable per delivery (e.g. `<delivery-42@meterbook.example>`).
    pub message_id: String,
}

/// Sends `e` through the relay in `s`.
pub fn send_email(s: &SmtpSettings, e: &Email) -> Result<(), SendError> {
    let relay = format!("{}:{}", s.host, s.port);
    let bad = |what: String| SendError::permanent(format!("e-mail via {relay}: {what}"));
    let from: Mailbox = s
        .from
        .parse()
        .map_err(|err| bad(format!("the sender address is not valid ({err})")))?;
    let to: Mailbox =
        e.to.parse()
            .map_err(|err| bad(format!("the recipient address is not valid ({err})")))?;
    if !valid_message_id(&e.message_id) {
        return Err(bad("the Message-ID must look like <local@host>".into()));
    }
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(e.subject.as_str())
        .message_id(Some(e.message_id.clone()))
        .header(ContentType::TEXT_PLAIN)
        .body(e.text.clone())
        .map_err(|err| bad(format!("the message could not be built ({err})")))?;
    let transport = transport(s, &relay)?;
    transport
        .send(&message)
        .map(|_| ())
        .map_err(|err| classify(&relay, &err))
}

fn transport(s: &SmtpSettings, relay: &str) -> Result<SmtpTransport, SendError> {
    let mut builder = SmtpTransport::builder_dangerous(s.host.as_str())
        .port(s.port)
        .timeout(Some(s.timeout));
    if let Some(c) = &s.credentials {
        if !s.starttls && !is_loopback(&s.host) {
            return Err(SendError::permanent(format!(
                "e-mail via {relay}: a password is sent only over STARTTLS or to a relay on loopback"
            )));
        }
        builder = builder.credentials(Credentials::new(c.user.clone(), c.password.clone()));
    }
    if !s.starttls {
        return Ok(builder.build());
    }
    #[cfg(feature = "tls")]
    {
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        let params = TlsParameters::new(s.host.clone()).map_err(|err| {
            SendError::permanent(format!("e-mail via {relay}: TLS set-up failed ({err})"))
        })?;
        Ok(builder.tls(Tls::Required(params)).build())
    }
    #[cfg(not(feature = "tls"))]
    Err(SendError::permanent(format!(
        "e-mail via {relay}: STARTTLS needs a build with the `tls` feature"
    )))
}

/// SMTP 5xx and malformed requests are permanent; 4xx, refused connections,
/// timeouts and broken answers are worth another try.
fn classify(relay: &str, err: &lettre::transport::smtp::Error) -> SendError {
    let message = format!("e-mail via {relay}: {err}");
    if err.is_permanent() || err.is_client() {
        SendError::permanent(message)
    } else {
        SendError::retry(message)
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn valid_message_id(id: &str) -> bool {
    let Some(inner) = id.strip_prefix('<').and_then(|r| r.strip_suffix('>')) else {
        return false;
    };
    let Some((left, right)) = inner.split_once('@') else {
        return false;
    };
    id.len() <= 250
        && !left.is_empty()
        && !right.is_empty()
        && inner
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>\"\\()[],;:".contains(&b))
        && !right.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["mail.example.com", "10.0.0.1", "localhost.example.com", ""] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn credentials_hide_the_password() {
        let c = SmtpCredentials {
            user: "mailer".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("mailer") && !shown.contains("hunter2"));
    }

    #[test]
    fn message_ids() {
        for ok in ["<delivery-42@meterbook.example>", "<a.b+c@x>"] {
            assert!(valid_message_id(ok), "{ok}");
        }
        for bad in [
            "",
            "delivery-42@x",
            "<delivery-42>",
            "<@x>",
            "<a@>",
            "<a b@x>",
            "<a@x>\r\nBcc: evil@example.com",
            "<a@b@c>",
            "<é@x>",
        ] {
            assert!(!valid_message_id(bad), "{bad}");
        }
    }
}
