//! Signed, expiring download links. A link carries the job id, the scope it
//! was made for and its expiry, with an HMAC-SHA256 over all three under a
//! server secret kept in the store: it works without an API key until it
//! expires, and changing any byte of it breaks the signature.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The query of a signed link: `scope`, `expires` (Unix seconds), `signature` (hex).
pub struct Signed<'a> {
    pub job_id: &'a str,
    pub scope: &'a str,
    pub expires: i64,
}

/// Why a link was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The signature does not match: the link was altered (or made elsewhere).
    BadSignature,
    Expired {
        at: i64,
    },
}

fn mac(secret: &[u8], s: &Signed<'_>) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(
        format!(
            "meterbook-download-v1\n{}\n{}\n{}",
            s.job_id, s.scope, s.expires
        )
        .as_bytes(),
    );
    m
}

pub fn sign(secret: &[u8], s: &Signed<'_>) -> String {
    mac(secret, s)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks the signature (in constant time), then the expiry.
pub fn verify(
    secret: &[u8],
    s: &Signed<'_>,
    signature_hex: &str,
    now: i64,
) -> Result<(), LinkError> {
    let sig = decode_hex(signature_hex).ok_or(LinkError::BadSignature)?;
    mac(secret, s)
        .verify_slice(&sig)
        .map_err(|_| LinkError::BadSignature)?;
    if now >= s.expires {
        return Err(LinkError::Expired { at: s.expires });
    }
    Ok(())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_until_it_expires_and_not_once_altered() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let s = Signed {
            job_id: "abc",
            scope: "enrollment",
            expires: 1000,
        };
        let sig = sign(secret, &s);
        assert_eq!(verify(secret, &s, &sig, 999), Ok(()));
        assert_eq!(
            verify(secret, &s, &sig, 1000),
            Err(LinkError::Expired { at: 1000 })
        );
        // Any field changed, or the signature, or another secret: refused.
        let longer = Signed { expires: 5000, ..s };
        assert_eq!(
            verify(secret, &longer, &sig, 999),
            Err(LinkError::BadSignature)
        );
        let other_scope = Signed {
            scope: "account:1",
            ..s
        };
        assert_eq!(
            verify(secret, &other_scope, &sig, 999),
            Err(LinkError::BadSignature)
        );
        let other_job = Signed { job_id: "abd", ..s };
        assert_eq!(
            verify(secret, &other_job, &sig, 999),
            Err(LinkError::BadSignature)
        );
        let mut flipped = sig.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            verify(secret, &s, &flipped, 999),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            verify(b"another secret", &s, &sig, 999),
            Err(LinkError::BadSignature)
        );
        assert_eq!(verify(secret, &s, "zz", 999), Err(LinkError::BadSignature));
        assert_eq!(verify(secret, &s, "", 999), Err(LinkError::BadSignature));
    }
}
