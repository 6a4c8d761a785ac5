//! The store's address: `clickhouse://HOST:HTTP_PORT[,HOST:HTTP_PORT…]/DATABASE[?cluster=NAME]`.
//!
//! The hosts are the shards' HTTP endpoints in the cluster's shard order
//! (an enrollment's shard is picked by its position here). Without a cluster
//! there is exactly one host, and it is read directly.

use meterbook_core::store::{StoreError, StoreResult};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// `host:port` of each shard's HTTP interface, in shard order.
    pub hosts: Vec<String>,
    pub database: String,
    pub cluster: Option<String>,
}

fn invalid(msg: String) -> StoreError {
    StoreError::Invalid(format!("ClickHouse address: {msg}"))
}

/// A database or cluster name: letters, digits and `_` (cluster names may
/// also hold `-` and `.`), so it can be written into statements unquoted.
fn is_name(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || extra.contains(&c))
}

fn host(h: &str) -> StoreResult<String> {
    let (name, port) = if let Some(rest) = h.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once("]:") else {
            return Err(invalid(format!("`{h}` is not HOST:PORT")));
        };
        (ip, port)
    } else {
        let Some((name, port)) = h.rsplit_once(':') else {
            return Err(invalid(format!(
                "`{h}` has no port (each host is HOST:HTTP_PORT)"
            )));
        };
        (name, port)
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._:".contains(&c));
    if !name_ok {
        return Err(invalid(format!("`{h}` does not name a host")));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(h.to_owned()),
        _ => Err(invalid(format!("`{h}` has no valid port (1-65535)"))),
    }
}

impl Address {
    pub fn parse(url: &str) -> StoreResult<Address> {
        let Some(rest) = url.strip_prefix("clickhouse://") else {
            return Err(invalid("it must start with clickhouse://".into()));
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let Some((hosts, database)) = rest.split_once('/') else {
            return Err(invalid("it names no database (…/DATABASE)".into()));
        };
        if hosts.is_empty() {
            return Err(invalid("it names no host".into()));
        }
        let hosts = hosts
            .split(',')
            .map(host)
            .collect::<StoreResult<Vec<_>>>()?;
        for (i, h) in hosts.iter().enumerate() {
            if hosts[..i].contains(h) {
                return Err(invalid(format!("host `{h}` is listed twice")));
            }
        }
        if !is_name(database, b"") {
            return Err(invalid(format!(
                "`{database}` is not a database name (letters, digits and _, not starting with a digit)"
            )));
        }
        if database.eq_ignore_ascii_case("system") {
            return Err(invalid(
                "the database cannot be `system` (the server's own tables)".into(),
            ));
        }
        let mut cluster = None;
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("cluster", name)) if is_name(name, b"-.") => {
                    if cluster.is_some() {
                        return Err(invalid("cluster is given twice".into()));
                    }
                    cluster = Some(name.to_owned());
                }
                Some(("cluster", name)) => {
                    return Err(invalid(format!("`{name}` is not a cluster name")))
                }
                _ => {
                    return Err(invalid(format!(
                        "unknown parameter `{pair}` (only cluster=NAME)"
                    )))
                }
            }
        }
        if cluster.is_none() && hosts.len() > 1 {
            return Err(invalid(format!(
                "{} hosts are given without ?cluster=NAME (shards are read through a cluster)",
                hosts.len()
            )));
        }
        Ok(Address {
            hosts,
            database: database.to_owned(),
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        match Address::parse(url) {
            Err(StoreError::Invalid(m)) => m,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn parses_shards_and_cluster() {
        let a = Address::parse("clickhouse://a:8123,10.0.0.2:8124/mb?cluster=c-1").unwrap();
        assert_eq!(a.hosts, ["a:8123", "10.0.0.2:8124"]);
        assert_eq!(a.database, "mb");
        assert_eq!(a.cluster.as_deref(), Some("c-1"));
        let a = Address::parse("clickhouse://[::1]:8123/mb").unwrap();
        assert_eq!(a.hosts, ["[::1]:8123"]);
        assert_eq!(a.cluster, None);
    }

    #[test]
    fn says_what_is_wrong() {
        assert!(err("http://a:1/mb").contains("clickhouse://"));
        assert!(err("clickhouse://a:1").contains("no database"));
        assert!(err("clickhouse://a/mb").contains("no port"));
        assert!(err("clickhouse://a:0/mb").contains("valid port"));
        assert!(err("clickhouse://a:99999/mb").contains("valid port"));
        assert!(err("clickhouse://a:1/m;b").contains("not a database name"));
        assert!(err("clickhouse://a:1,b:2/mb").contains("without ?cluster"));
        assert!(err("clickhouse://a:1,a:1/mb?cluster=c").contains("twice"));
        assert!(err("clickhouse://a:1/mb?x=1").contains("unknown parameter"));
        assert!(err("clickhouse://a:1/mb?cluster=a'b").contains("not a cluster name"));
        assert!(err("clickhouse:///mb").contains("no host"));
        assert!(err("clickhouse://a:1/system").contains("system"));
        assert!(err("clickhouse://a b:1/mb").contains("does not name a host"));
    }
}
