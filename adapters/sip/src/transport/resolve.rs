//! RFC 3263 s4 target selection: transport from the URI (`transport=` param, `sips`),
//! numeric hosts and explicit ports used directly, otherwise NAPTR -> SRV -> A/AAAA through
//! hickory-resolver. A static override table (domain -> list of (transport, host:port))
//! is consulted first; tests and the default configuration use it instead of DNS.
//! DNS goes to the system configuration or to explicit servers (`dns_servers`).
//! SRV records are ordered by priority, then by weight (heaviest first: a deterministic
//! stand-in for the RFC 2782 weighted random choice, so failover order is predictable).

use std::collections::HashMap;
use std::net::SocketAddr;

use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;

use super::Transport;
use crate::codec::{Host, Scheme, Uri};

/// One entry of the static override table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTarget {
    /// Transport to use.
    pub transport: Transport,
    /// `host:port` (an IP address, or a name resolved with A/AAAA).
    pub address: String,
}

/// Why no target was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The URI has no host (tel: or another scheme).
    #[error("URI {0} has no host to resolve")]
    NoHost(String),
    /// DNS gave nothing usable.
    #[error("no DNS records for {0}")]
    NotFound(String),
    /// The resolver could not be set up.
    #[error("resolver unavailable: {0}")]
    Unavailable(String),
}

/// A resolved target: transport, address, and the host name to verify for TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedTarget {
    /// Transport.
    pub transport: Transport,
    /// Socket address.
    pub addr: SocketAddr,
    /// TLS server name (the domain of the URI) when known.
    pub server_name: Option<String>,
}

/// RFC 3263 resolver with static overrides.
#[derive(Debug)]
pub struct Resolver {
    overrides: HashMap<String, Vec<StaticTarget>>,
    dns: Option<TokioResolver>,
    enabled: Vec<Transport>,
}

impl Resolver {
    /// `overrides` keys are domains (case-insensitive); `use_dns` enables hickory with the
    /// system configuration; `enabled` lists the transports this endpoint can use.
    pub fn new(
        overrides: &HashMap<String, Vec<StaticTarget>>,
        use_dns: bool,
        enabled: Vec<Transport>,
    ) -> Self {
        Self::with_dns_servers(overrides, use_dns, &[], enabled)
    }

    /// Like [`Resolver::new`], but DNS queries go to `dns_servers` (UDP, then TCP on
    /// truncation) instead of the system configuration when the list is not empty.
    pub fn with_dns_servers(
        overrides: &HashMap<String, Vec<StaticTarget>>,
        use_dns: bool,
        dns_servers: &[SocketAddr],
        enabled: Vec<Transport>,
    ) -> Self {
        let dns = if !use_dns {
            None
        } else if dns_servers.is_empty() {
            TokioResolver::builder_tokio()
                .ok()
                .and_then(|b| b.build().ok())
        } else {
            use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
            let servers = dns_servers
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
                hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
            )
            .build()
            .ok()
        };
        Resolver {
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            dns,
            enabled,
        }
    }

    /// Ordered list of targets for a URI (first is preferred).
    pub async fn resolve(&self, uri: &Uri<'_>) -> Result<Vec<ResolvedTarget>, ResolveError> {
        let host = uri
            .host
            .ok_or_else(|| ResolveError::NoHost(uri.raw.to_string()))?;
        let secure = uri.scheme == Scheme::Sips;
        let forced = uri.transport_param().and_then(Transport::from_token);
        let forced = if secure { Some(Transport::Tls) } else { forced };

        if let Host::Domain(d) = host {
            if let Some(list) = self.overrides.get(&d.to_ascii_lowercase()) {
                let mut out = Vec::new();
                for t in list {
                    if forced.is_some_and(|f| f != t.transport) {
                        continue;
                    }
                    for addr in self
                        .lookup_hostport(&t.address, t.transport.default_port())
                        .await
                    {
                        out.push(ResolvedTarget {
                            transport: t.transport,
                            addr,
                            server_name: Some(d.to_string()),
                        });
                    }
                }
                if !out.is_empty() {
                    return Ok(out);
                }
                return Err(ResolveError::NotFound(d.to_string()));
            }
        }

        // s4.1/s4.2: numeric host or explicit port -> no NAPTR/SRV
        if let Some(ip) = host.ip() {
            let t = forced.unwrap_or(Transport::Udp);
            return Ok(vec![ResolvedTarget {
                transport: t,
                addr: SocketAddr::new(ip, uri.port.unwrap_or(t.default_port())),
                server_name: None,
            }]);
        }
        let Host::Domain(domain) = host else {
            return Err(ResolveError::NotFound(uri.raw.to_string()));
        };
        if let Some(port) = uri.port {
            let t = forced.unwrap_or(Transport::Udp);
            let addrs = self.lookup_ips(domain, port).await;
            return if addrs.is_empty() {
                Err(ResolveError::NotFound(domain.to_string()))
            } else {
                Ok(addrs
                    .into_iter()
                    .map(|addr| ResolvedTarget {
                        transport: t,
                        addr,
                        server_name: Some(domain.to_string()),
                    })
                    .collect())
            };
        }
        let dns = self.dns.as_ref().ok_or_else(|| {
            ResolveError::Unavailable("DNS disabled and no static override".into())
        })?;

        // s4.1 NAPTR
        let mut srv_names: Vec<(Transport, String)> = Vec::new();
        if forced.is_none() {
            if let Ok(l) = dns.lookup(domain, RecordType::NAPTR).await {
                let mut recs: Vec<_> = l
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::NAPTR(n) => Some(n.clone()),
                        _ => None,
                    })
                    .collect();
                recs.sort_by_key(|n| (n.order, n.preference));
                for n in recs {
                    let svc = String::from_utf8_lossy(&n.services).to_ascii_uppercase();
                    let t = match svc.as_str() {
                        "SIP+D2U" => Transport::Udp,
                        "SIP+D2T" => Transport::Tcp,
                        "SIPS+D2T" => Transport::Tls,
                        _ => continue,
                    };
                    if self.enabled.contains(&t) && n.flags.eq_ignore_ascii_case(b"s") {
                        srv_names.push((t, n.replacement.to_string()));
                    }
                }
            }
        }
        if srv_names.is_empty() {
            let all = [
                (Transport::Udp, format!("_sip._udp.{domain}")),
                (Transport::Tcp, format!("_sip._tcp.{domain}")),
                (Transport::Tls, format!("_sips._tcp.{domain}")),
            ];
            for (t, n) in all {
                if self.enabled.contains(&t) && forced.is_none_or(|f| f == t) {
                    srv_names.push((t, n));
                }
            }
        }
        // s4.2 SRV
        let mut out = Vec::new();
        for (t, name) in srv_names {
            let Ok(l) = dns.lookup(name.as_str(), RecordType::SRV).await else {
                continue;
            };
            let mut srvs: Vec<_> = l
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            srvs.sort_by_key(|s| (s.priority, std::cmp::Reverse(s.weight)));
            for s in srvs {
                let target = s.target.to_string();
                for addr in self.lookup_ips(target.trim_end_matches('.'), s.port).await {
                    out.push(ResolvedTarget {
                        transport: t,
                        addr,
                        server_name: Some(domain.to_string()),
                    });
                }
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        // s4.2 fallback: A/AAAA on the domain with the default port
        let t = forced.unwrap_or(Transport::Udp);
        let addrs = self.lookup_ips(domain, t.default_port()).await;
        if addrs.is_empty() {
            return Err(ResolveError::NotFound(domain.to_string()));
        }
        Ok(addrs
            .into_iter()
            .map(|addr| ResolvedTarget {
                transport: t,
                addr,
                server_name: Some(domain.to_string()),
            })
            .collect())
    }

    async fn lookup_hostport(&self, hp: &str, default_port: u16) -> Vec<SocketAddr> {
        if let Ok(a) = hp.parse::<SocketAddr>() {
            return vec![a];
        }
        match crate::codec::uri::parse_hostport_pub(hp) {
            Some((Host::Domain(d), port)) => self.lookup_ips(d, port.unwrap_or(default_port)).await,
            Some((h, port)) => h
                .ip()
                .map(|ip| vec![SocketAddr::new(ip, port.unwrap_or(default_port))])
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    async fn lookup_ips(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return vec![SocketAddr::new(ip, port)];
        }
        if host.eq_ignore_ascii_case("localhost") {
            return vec![SocketAddr::from(([127, 0, 0, 1], port))];
        }
        match &self.dns {
            Some(dns) => match dns.lookup_ip(host).await {
                Ok(l) => l.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
                Err(_) => Vec::new(),
            },
            None => Vec::new(),
        }
    }
}
