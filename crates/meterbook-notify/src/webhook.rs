//! Webhooks: a JSON body POSTed with a signature, an event kind and a
//! delivery id in headers.
//!
//! The client follows no redirect (a 3xx is a permanent failure: the
//! receiver's URL needs fixing, and following it would also let a public URL
//! bounce the request to a private address), ignores proxy variables (a proxy
//! would connect on our behalf to an address we never checked), and reads only
//! the status line, never the body. Plain `http` always works; `https` needs
//! the `tls` cargo feature.

use std::fmt;
use std::time::Duration;

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use url::Url;

use crate::error::SendError;
use crate::net::is_public_ip;
use crate::signature::{sign, SIGNATURE_HEADER};

/// The header naming the event kind (`budget.threshold`, `period.closed`, ...).
pub const EVENT_HEADER: &str = "Meterbook-Event";
/// The header carrying the delivery id: the same on every retry of one
/// delivery, so a receiver can drop a duplicate.
pub const DELIVERY_HEADER: &str = "Meterbook-Delivery";
/// The longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2_048;

/// One webhook request.
#[derive(Debug, Clone, Copy)]
pub struct Webhook<'a> {
    pub url: &'a str,
    pub secret: &'a [u8],
    pub event_kind: &'a str,
    pub delivery_id: &'a str,
    pub body: &'a [u8],
}

/// Parses a webhook URL as given by an administrator: `http` or `https`, a
/// host, no user name or password (they would travel in clear in logs and
/// are not how receivers authenticate us: the signature is), no fragment,
/// at most [`MAX_URL_LEN`] bytes. Addresses are checked when sending, not
/// here: a name may resolve differently by then.
pub fn check_webhook_url(url: &str) -> Result<Url, String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} characters"));
    }
    let parsed = Url::parse(url.trim()).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("the URL must start with http:// or https://".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the URL must not hold a user name or password".into());
    }
    if parsed.fragment().is_some() {
        return Err("the URL must not have a #fragment".into());
    }
    Ok(parsed)
}

/// Posts webhooks. One client serves every delivery (it keeps idle
/// connections for reuse); it is `Send + Sync`.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    agent: ureq::Agent,
}

impl WebhookClient {
    /// A client whose requests each take at most `timeout` in all (resolve,
    /// connect, send, response head). With `allow_private` false, a host that
    /// resolves to any non-public address (loopback, private, link-local,
    /// ...; see [`crate::is_public_ip`]) is refused without connecting.
    pub fn new(timeout: Duration, allow_private: bool) -> Self {
        let builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(timeout))
            .user_agent(concat!("Meterbook-Webhook/", env!("CARGO_PKG_VERSION")));
        #[cfg(feature = "tls")]
        let builder = builder.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        );
        let agent = ureq::Agent::with_parts(
            builder.build(),
            DefaultConnector::default(),
            GuardedResolver { allow_private },
        );
        Self { agent }
    }

    /// Posts `w` signed at `now_unix`. `Ok` on a 2xx answer.
    pub fn post(&self, w: &Webhook, now_unix: i64) -> Result<(), SendError> {
        let url = check_webhook_url(w.url)
            .map_err(|e| SendError::permanent(format!("webhook URL refused: {e}")))?;
        let target = target_name(&url);
        if url.scheme() == "https" && !cfg!(feature = "tls") {
            return Err(SendError::permanent(format!(
                "webhook to {target}: https needs a build with the `tls` feature"
            )));
        }
        for (name, value) in [
            (EVENT_HEADER, w.event_kind),
            (DELIVERY_HEADER, w.delivery_id),
        ] {
            if value.is_empty() || value.len() > 200 || !value.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(SendError::permanent(format!(
                    "webhook to {target}: the {name} value is empty, too long or not printable ASCII"
                )));
            }
        }
        let result = self
            .agent
            .post(url.as_str())
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, sign(w.secret, now_unix, w.body))
            .header(EVENT_HEADER, w.event_kind)
            .header(DELIVERY_HEADER, w.delivery_id)
            .send(w.body);
        match result {
            Ok(response) => classify_status(&target, response.status().as_u16()),
            Err(e) => Err(classify_error(&target, e)),
        }
    }
}

/// `host[:port]` of a URL: what a message may name (the path and query may
/// hold a receiver's token).
fn target_name(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

fn classify_status(target: &str, status: u16) -> Result<(), SendError> {
    let msg = |what: &str| format!("webhook to {target}: HTTP {status}{what}");
    match status {
        200..=299 => Ok(()),
        300..=399 => Err(SendError::permanent(msg(" (redirects are not followed)"))),
        408 | 429 | 500..=599 => Err(SendError::retry(msg(""))),
        _ => Err(SendError::permanent(msg(""))),
    }
}

fn classify_error(target: &str, e: ureq::Error) -> SendError {
    use ureq::Error as E;
    match e {
        E::Other(inner) => match inner.downcast_ref::<AddressRefused>() {
            Some(refused) => SendError::permanent(format!("webhook to {target}: {refused}")),
            None => SendError::retry(format!("webhook to {target}: {inner}")),
        },
        E::Timeout(t) => SendError::retry(format!("webhook to {target}: timed out ({t})")),
        E::HostNotFound => SendError::retry(format!("webhook to {target}: host not found")),
        E::ConnectionFailed => SendError::retry(format!("webhook to {target}: connection failed")),
        E::Io(io) => SendError::retry(format!("webhook to {target}: {io}")),
        // The request itself could not be made: it will not get better. (Not
        // the error's text: it may quote the URL.)
        E::BadUri(_) | E::Http(_) | E::RequireHttpsOnly(_) | E::TlsRequired => {
            SendError::permanent(format!(
                "webhook to {target}: the HTTP client could not make this request"
            ))
        }
        other => SendError::retry(format!("webhook to {target}: {other}")),
    }
}

/// Resolves as ureq does, then refuses the lot when private addresses are
/// not allowed and any of them is one: the connector only ever sees what
/// passed.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        if !self.allow_private {
            if let Some(bad) = addrs.iter().find(|a| !is_public_ip(a.ip())) {
                return Err(ureq::Error::Other(Box::new(AddressRefused(bad.ip()))));
            }
        }
        Ok(addrs)
    }
}

#[derive(Debug)]
struct AddressRefused(std::net::IpAddr);

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the host resolves to {}, a private or reserved address, and private addresses are not allowed",
            self.0
        )
    }
}

impl std::error::Error for AddressRefused {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "http://example.com/hook",
            "https://example.com:8443/a/b?token=x",
            "http://10.0.0.1/",
            "https://[2001:db8::1]/x",
        ] {
            assert!(check_webhook_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "example.com/hook",
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "http://user:pw@example.com/",
            "http://user@example.com/",
            "http://",
            "http://:80/",
            "https://example.com/#frag",
            "mailto:a@example.com",
        ] {
            assert!(check_webhook_url(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_webhook_url(&long).is_err());
    }

    #[test]
    fn status_classes() {
        assert!(classify_status("h", 200).is_ok());
        assert!(classify_status("h", 204).is_ok());
        for (s, retry) in [
            (301, false),
            (400, false),
            (401, false),
            (404, false),
            (410, false),
            (408, true),
            (429, true),
            (500, true),
            (503, true),
        ] {
            let e = classify_status("h:1", s).unwrap_err();
            assert_eq!(e.retryable, retry, "{s}");
            assert!(e.message.contains("h:1") && e.message.contains(&s.to_string()));
        }
    }

    #[test]
    fn messages_name_the_host_not_the_path() {
        let url = check_webhook_url("https://hooks.example.com/services/T000/SECRET?k=v").unwrap();
        assert_eq!(target_name(&url), "hooks.example.com");
        let url = check_webhook_url("http://h.example:8080/x").unwrap();
        assert_eq!(target_name(&url), "h.example:8080");
    }
}
