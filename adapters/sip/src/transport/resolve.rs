//! RFC 3263 s4 target selection: transport from the URI (`transport=` param, `sips`),
//! numeric hosts and explicit ports used directly, otherwise NAPTR -> SRV -> A/AAAA through
//! the shared `cpim-dns` resolver. A static override table (domain -> list of
//! (transport, host:port)) is consulted first; tests and the default configuration use it
//! instead of DNS.
//! DNS goes to the system configuration or to explicit servers (`dns_servers`).
//! SRV records come in `cpim-dns`'s RFC 2782 order (priority, then heaviest first).
//! This module keeps the SIP policy: service names, NAPTR services, transports, ports.

use std::collections::HashMap;
use std::net::SocketAddr;

use cpim_dns::Dns;

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
    dns: Option<Dns>,
    enabled: Vec<Transport>,
}

impl Resolver {
    /// `overrides` keys are domains (case-insensitive); `use_dns` enables DNS with the
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
        let dns = if use_dns { Dns::new(dns_servers) } else { None };
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
            return self.address_targets(domain, port, t).await;
        }
        let dns = self.dns.as_ref().ok_or_else(|| {
            ResolveError::Unavailable("DNS disabled and no static override".into())
        })?;

        // s4.1 NAPTR
        let mut srv_names: Vec<(Transport, String)> = Vec::new();
        if forced.is_none() {
            for n in dns.naptr(domain).await {
                let svc = String::from_utf8_lossy(&n.services).to_ascii_uppercase();
                let t = match svc.as_str() {
                    "SIP+D2U" => Transport::Udp,
                    "SIP+D2T" => Transport::Tcp,
                    "SIPS+D2T" => Transport::Tls,
                    _ => continue,
                };
                if self.enabled.contains(&t) && n.flags.eq_ignore_ascii_case(b"s") {
                    srv_names.push((t, n.replacement));
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
            let Some(srvs) = dns.srv(&name).await else {
                continue;
            };
            for s in srvs {
                for addr in self.lookup_ips(s.host(), s.port).await {
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
        self.address_targets(domain, t.default_port(), t).await
    }

    /// s4.2: the A/AAAA addresses of `domain` on `port` over `t`, without SRV.
    async fn address_targets(
        &self,
        domain: &str,
        port: u16,
        t: Transport,
    ) -> Result<Vec<ResolvedTarget>, ResolveError> {
        let addrs = self.lookup_ips(domain, port).await;
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
            Some(dns) => dns.ips(host, port).await,
            None => Vec::new(),
        }
    }
}
