//! The DNS mechanisms the SIP and XMPP adapters share, on hickory-resolver: a resolver
//! set up from the system configuration or from explicit name servers (the test hook:
//! tests point it at an in-process responder), SRV records in RFC 2782 order, NAPTR
//! records in RFC 3403 order, and A/AAAA lookups. Which names to ask for, default ports
//! and transports are each adapter's policy: SIP follows RFC 3263 s4, XMPP RFC 6120 s3.2.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;

/// One SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative weight within one priority.
    pub weight: u16,
    /// Target host in ASCII form, as received (a trailing `.` kept).
    pub target: String,
    /// Port on the target.
    pub port: u16,
}

impl Srv {
    /// The target without its trailing dot; empty for the RFC 2782 "no service" target `.`.
    pub fn host(&self) -> &str {
        self.target.trim_end_matches('.')
    }
}

/// RFC 2782 order: lowest priority first; within one priority the heavier record first.
/// This is a deterministic reading of the weighted random choice, so failover order is
/// predictable. The sort is stable: equal records keep the order DNS gave them.
pub fn order_srv(recs: &mut [Srv]) {
    recs.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
}

/// RFC 2782: a single record whose target is `.` says the service is decidedly not
/// available at this domain.
pub fn service_absent(recs: &[Srv]) -> bool {
    recs.len() == 1 && recs[0].host().is_empty()
}

/// One NAPTR record (RFC 3403 s4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naptr {
    /// Lower is used first.
    pub order: u16,
    /// Lower is preferred within one order.
    pub preference: u16,
    /// Flags (`s`: the replacement is an SRV name).
    pub flags: Vec<u8>,
    /// Service field, e.g. `SIP+D2U` (RFC 3263 s4.1).
    pub services: Vec<u8>,
    /// Replacement domain name, ASCII form.
    pub replacement: String,
}

/// `ip` or `ip:port`, port 53 when absent.
pub fn parse_server(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

/// A DNS client: the system's name servers, or explicit ones.
#[derive(Debug, Clone)]
pub struct Dns {
    inner: TokioResolver,
}

impl Dns {
    /// A resolver asking `servers` (each over UDP, then TCP on truncation), or the system
    /// configuration when `servers` is empty. `None` when it cannot be set up.
    pub fn new(servers: &[SocketAddr]) -> Option<Self> {
        let inner = if servers.is_empty() {
            TokioResolver::builder_tokio().ok()?.build().ok()?
        } else {
            let servers = servers
                .iter()
                .map(|a| {
                    let conns = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                        .into_iter()
                        .map(|mut c| {
                            c.port = a.port();
                            c
                        })
                        .collect();
                    NameServerConfig::new(a.ip(), true, conns)
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
            .build()
            .ok()?
        };
        Some(Dns { inner })
    }

    /// SRV records of `name` (e.g. `_sip._udp.example.com`) in [`order_srv`] order; `None`
    /// when the lookup fails (no records, no answer).
    pub async fn srv(&self, name: &str) -> Option<Vec<Srv>> {
        let l = self.inner.lookup(name, RecordType::SRV).await.ok()?;
        let mut recs: Vec<Srv> = l
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some(Srv {
                    priority: s.priority,
                    weight: s.weight,
                    target: s.target.to_ascii(),
                    port: s.port,
                }),
                _ => None,
            })
            .collect();
        order_srv(&mut recs);
        Some(recs)
    }

    /// NAPTR records of `name` sorted by order, then preference (RFC 3403 s4.1); empty
    /// when the lookup fails.
    pub async fn naptr(&self, name: &str) -> Vec<Naptr> {
        let Ok(l) = self.inner.lookup(name, RecordType::NAPTR).await else {
            return Vec::new();
        };
        let mut recs: Vec<Naptr> = l
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::NAPTR(n) => Some(Naptr {
                    order: n.order,
                    preference: n.preference,
                    flags: n.flags.to_vec(),
                    services: n.services.to_vec(),
                    replacement: n.replacement.to_ascii(),
                }),
                _ => None,
            })
            .collect();
        recs.sort_by_key(|n| (n.order, n.preference));
        recs
    }

    /// A and AAAA addresses of `host`, each with `port`; empty when the lookup fails.
    pub async fn ips(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        match self.inner.lookup_ip(host).await {
            Ok(l) => l.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str, port: u16) -> Srv {
        Srv {
            priority,
            weight,
            target: target.into(),
            port,
        }
    }

    #[test]
    fn srv_order_is_priority_then_heavier_first_and_stable() {
        let mut v = vec![
            srv(20, 0, "c.", 3),
            srv(10, 5, "b.", 2),
            srv(10, 60, "a.", 1),
            srv(10, 5, "d.", 4),
        ];
        order_srv(&mut v);
        let hosts: Vec<&str> = v.iter().map(Srv::host).collect();
        assert_eq!(hosts, ["a", "b", "d", "c"]);
    }

    #[test]
    fn a_single_dot_target_means_no_service() {
        assert!(service_absent(&[srv(0, 0, ".", 0)]));
        assert!(!service_absent(&[srv(0, 0, "a.", 1)]));
        assert!(!service_absent(&[]));
    }

    #[test]
    fn servers_parse_with_or_without_port() {
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            "127.0.0.1:5353".parse().ok()
        );
        assert_eq!(parse_server("::1"), "[::1]:53".parse().ok());
        assert_eq!(parse_server("dns.example"), None);
    }

    #[tokio::test]
    async fn explicit_servers_build_a_resolver() {
        assert!(Dns::new(&["127.0.0.1:5353".parse().unwrap()]).is_some());
    }
}
