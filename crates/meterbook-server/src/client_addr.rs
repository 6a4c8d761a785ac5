//! The client's address, for throttling and logs. Behind a reverse proxy every
//! connection comes from the proxy, so the address must come from
//! `X-Forwarded-For` — but only when the socket's peer is a proxy the
//! operator listed as trusted (anyone else could write the header at will).
//! The header is read from the right: each trusted proxy appends the address
//! it received from, so the rightmost address that is not a trusted proxy is
//! the first one no trusted party vouches past; everything left of it is the
//! client's own claim and is ignored.

use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The proxies whose `X-Forwarded-For` is believed: addresses or CIDR ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// `10.0.0.0/8, 192.0.2.7, ::1`: comma-separated addresses or CIDRs; an
    /// empty list trusts nobody.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                IpNet::from_str(s)
                    .or_else(|_| IpAddr::from_str(s).map(IpNet::from))
                    .map_err(|_| format!("`{s}` is not an IP address or CIDR range"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a connection from `peer` carrying `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A hop that does not parse is where the trusted chain ends: the
            // last trusted proxy's own view is all that can be believed.
            let Some(ip) = parse_hop(hop) else { break };
            client = canonical(ip);
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

/// An address as proxies write it: bare, `[v6]`, `v4:port` or `[v6]:port`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    IpAddr::from_str(s)
        .ok()
        .or_else(|| SocketAddr::from_str(s).ok().map(|a| a.ip()))
        .or_else(|| IpAddr::from_str(s.trim_start_matches('[').trim_end_matches(']')).ok())
}

/// An IPv4 address seen through an IPv6 socket is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address as a string ("unknown" without socket information).
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(
                    || "unknown".to_string(),
                    |c| {
                        state
                            .settings()
                            .trusted_proxies
                            .client(c.0.ip(), &parts.headers)
                            .to_string()
                    },
                ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let t = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7").unwrap();
        // Untrusted peer: the header is ignored.
        assert_eq!(
            t.client(ip("198.51.100.1"), &headers(&["203.0.113.5"])),
            ip("198.51.100.1")
        );
        // Trusted peer: the client's spoofed left part is ignored.
        let h = headers(&["1.2.3.4, 203.0.113.5", "10.1.1.1"]);
        assert_eq!(t.client(ip("192.0.2.7"), &h), ip("203.0.113.5"));
        // Every hop trusted: the leftmost one.
        assert_eq!(
            t.client(ip("10.0.0.1"), &headers(&["10.9.9.9"])),
            ip("10.9.9.9")
        );
        // No header: the proxy itself.
        assert_eq!(t.client(ip("10.0.0.1"), &headers(&[])), ip("10.0.0.1"));
        // Garbage ends the chain at the last trusted hop.
        assert_eq!(
            t.client(ip("10.0.0.1"), &headers(&["nonsense"])),
            ip("10.0.0.1")
        );
        // Ports and brackets, and v4 seen through v6.
        assert_eq!(
            t.client(ip("::ffff:10.0.0.1"), &headers(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
        assert_eq!(
            TrustedProxies::parse(" ").unwrap(),
            TrustedProxies::default()
        );
    }
}
