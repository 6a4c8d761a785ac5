//! Webhook signatures: `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<body>"`, the scheme Stripe made familiar.
//!
//! The timestamp is inside the signed text so that a captured request cannot
//! be replayed later than the receiver's tolerance; the receiver compares in
//! constant time so that the comparison leaks nothing of the expected MAC.
//! Several `v1=` entries may stand in one header (a sender rotating its
//! secret signs with both); one match is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Meterbook-Signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// The `Meterbook-Signature` header value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut out = format!("t={timestamp},v1=");
    for b in mac(secret, timestamp, body) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `header` is a valid signature of `body` under `secret`, made no
/// more than `tolerance_s` seconds from `now_unix` (either way: clocks drift).
/// Malformed headers are simply not valid.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_unix: i64, tolerance_s: i64) -> bool {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return false;
        };
        match key {
            "t" if timestamp.is_none() => match value.parse::<i64>() {
                Ok(t) => timestamp = Some(t),
                Err(_) => return false,
            },
            "t" => return false,
            "v1" => {
                if let Some(bytes) = decode_hex32(value) {
                    candidates.push(bytes);
                }
            }
            // Other schemes a later sender may add are ignored.
            _ => {}
        }
    }
    let Some(t) = timestamp else { return false };
    if candidates.is_empty() || now_unix.abs_diff(t) > tolerance_s.max(0) as u64 {
        return false;
    }
    let expected = mac(secret, t, body);
    let mut ok = subtle::Choice::from(0);
    for c in &candidates {
        ok |= expected.ct_eq(c);
    }
    ok.into()
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            sign(b"secret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

    #[test]
    fn round_trip_and_rejections() {
        let h = sign(b"k", 100, b"body");
        assert!(verify(b"k", &h, b"body", 100, 0));
        assert!(verify(b"k", &h, b"body", 400, 300));
        assert!(verify(b"k", &h, b"body", -200, 300));
        assert!(!verify(b"k", &h, b"body", 401, 300));
        assert!(!verify(b"k2", &h, b"body", 100, 300));
        assert!(!verify(b"k", &h, b"bodY", 100, 300));
        assert!(!verify(
            b"k",
            &h.replace("t=100", "t=101"),
            b"body",
            100,
            300
        ));
        for bad in ["", "t=100", "v1=00", "t=x,v1=00", "garbage", "t=100,v1=zz"] {
            assert!(!verify(b"k", bad, b"body", 100, 300), "{bad}");
        }
    }

    #[test]
    fn any_of_several_v1_matches() {
        let good = sign(b"new", 100, b"b");
        let v1_new = good.split_once("v1=").unwrap().1;
        let v1_old = sign(b"old", 100, b"b")
            .split_once("v1=")
            .unwrap()
            .1
            .to_owned();
        let both = format!("t=100,v1={v1_old},v1={v1_new}");
        assert!(verify(b"new", &both, b"b", 100, 10));
        assert!(verify(b"old", &both, b"b", 100, 10));
        assert!(!verify(b"other", &both, b"b", 100, 10));
    }
}
