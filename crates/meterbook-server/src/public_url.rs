//! The deployment's public address, for the absolute links the server makes
//! (download links, `nextLink`s, job links, set-password links).
//!
//! Without it a link is built from the request's `Host` header, which the
//! client chooses: behind a proxy that passes `Host` through unchecked, a
//! stranger can have an administrator's set-password link, or a download
//! link, point at a host of theirs. And with several nodes behind a load
//! balancer each node's own name is no address to hand out. Set, it is used
//! for every link, whatever the request says.

use std::fmt;

/// `http(s)://host[:port]`, without a path: the server's routes are at the
/// root, so links and redirects stay consistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// Parses `http://host[:port]` or `https://host[:port]` (a trailing `/`
    /// is dropped). The host is a name, an IPv4 address or a bracketed IPv6
    /// one; no user, path, query or fragment.
    pub fn parse(s: &str) -> Result<PublicUrl, String> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.as_str();
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a public URL: write http://host[:port] or https://host[:port]"
                )
            })?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let allowed =
            |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']');
        if authority.is_empty() || !authority.bytes().all(allowed) {
            return Err(format!(
                "`{s}` is not a public URL: after the scheme comes only host[:port] (no user, path, query or fragment)"
            ));
        }
        let scheme_len = s.len() - rest.len();
        Ok(PublicUrl(format!("{}{}", &s[..scheme_len], authority)))
    }

    /// The URL, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::PublicUrl;

    #[test]
    fn only_a_scheme_and_an_authority() {
        let ok = |s: &str| PublicUrl::parse(s).map(|u| u.as_str().to_string());
        assert_eq!(
            ok("https://usage.example.com/").unwrap(),
            "https://usage.example.com"
        );
        assert_eq!(ok("http://10.0.0.5:8080").unwrap(), "http://10.0.0.5:8080");
        assert_eq!(ok(" https://[::1]:8443 ").unwrap(), "https://[::1]:8443");
        assert_eq!(
            ok("HTTPS://Usage.Example.COM").unwrap(),
            "https://usage.example.com"
        );
        for bad in [
            "usage.example.com",
            "ftp://usage.example.com",
            "https://",
            "https://usage.example.com/portal",
            "https://user@usage.example.com",
            "https://usage.example.com?x=1",
            "https://usage.example.com#f",
            "https://usage example.com",
        ] {
            assert!(ok(bad).is_err(), "{bad} was accepted");
        }
    }
}
