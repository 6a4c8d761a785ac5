//! The one error type of a send.

use std::fmt;

/// Why a send failed, and whether trying again later may succeed.
///
/// `retryable` is true for what a receiver or the network may get over
/// (timeouts, refused connections, HTTP 408/429/5xx, SMTP 4xx) and false for
/// what will fail the same way every time (HTTP 4xx, a redirect, an address
/// refused, SMTP 5xx, a malformed address). `message` names the host and the
/// status; it never holds a secret, a URL's path or query, or the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub retryable: bool,
    pub message: String,
}

impl SendError {
    pub(crate) fn retry(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    pub(crate) fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable {
            "will retry"
        } else {
            "permanent"
        };
        write!(f, "{} ({kind})", self.message)
    }
}

impl std::error::Error for SendError {}
