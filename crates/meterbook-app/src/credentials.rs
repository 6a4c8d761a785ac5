//! Credentials: the API key and operator token format `mbk_<id>_<secret>`. The prefix lets secret scanners
//! recognise a leaked key; the id finds the stored record without a scan; only
//! the SHA-256 of the secret is stored, and compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Customer API keys.
pub const PREFIX: &str = "mbk_";
/// Operator tokens.
pub const OPERATOR_PREFIX: &str = "mbo_";

/// A newly generated key: shown once, then only its hash exists.
pub struct NewKey {
    pub id: String,
    pub secret_hash: [u8; 32],
    /// The full key string for the client.
    pub token: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn generate() -> Result<NewKey, getrandom::Error> {
    generate_with(PREFIX)
}

pub fn generate_with(prefix: &str) -> Result<NewKey, getrandom::Error> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let (id, secret) = (hex(&id), hex(&secret));
    Ok(NewKey {
        secret_hash: hash_secret(&secret),
        token: format!("{prefix}{id}_{secret}"),
        id,
    })
}

/// A random token of 32 bytes as 64 hex digits (portal sessions, CSRF
/// tokens, set-password links); only its [`hash_secret`] is stored.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(hex(&b))
}

/// Splits a presented key into (id, secret); `None` when it is not a key's shape.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    parse_with(PREFIX, token)
}

pub fn parse_with<'a>(prefix: &str, token: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = token.strip_prefix(prefix)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_hexdigit());
    (hex_of(id, 16) && hex_of(secret, 64)).then_some((id, secret))
}

/// Constant-time comparison of a presented secret with a stored hash.
pub fn verify(secret: &str, stored: &[u8; 32]) -> bool {
    hash_secret(secret).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let k = generate().unwrap();
        let (id, secret) = parse(&k.token).unwrap();
        assert_eq!(id, k.id);
        assert!(verify(secret, &k.secret_hash));
        assert!(!verify(&"0".repeat(64), &k.secret_hash));
        assert!(parse("mbk_short_x").is_none());
        assert!(parse(&k.token.replace("mbk_", "xyz_")).is_none());
    }
}
