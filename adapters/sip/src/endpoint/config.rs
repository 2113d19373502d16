//! [`EndpointConfig`]: the `[sip.endpoint]` table (listeners, limits, timers, TLS).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::codec::Policy;
use crate::transport::resolve::StaticTarget;
use crate::transport::Transport;

/// Endpoint configuration (the `[sip.endpoint]` part of the gateway configuration).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointConfig {
    /// UDP listen addresses.
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS listen addresses. Without `tls_cert` and `tls_key` a self-signed
    /// certificate is made for `advertised_host` (or `localhost`) and the listen IPs.
    pub tls: Vec<SocketAddr>,
    /// PEM certificate chain for the TLS listener.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS listener.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates trusted, besides the system's trust store, for outgoing TLS
    /// connections and for the client certificates TLS peers present (a validated client
    /// certificate lets the peer speak for the domains it names, RFC 5922).
    pub tls_ca: Option<PathBuf>,
    /// Host (name or IP) put in Via sent-by and Contact; defaults to the listen address.
    pub advertised_host: Option<String>,
    /// Largest accepted header section in bytes (RFC 3261 s18.3 limits).
    pub max_head_bytes: usize,
    /// Largest accepted body in bytes; larger requests get 413.
    pub max_body_bytes: usize,
    /// Requests larger than this that would go over UDP go over TCP (RFC 3261 s18.1.1).
    pub udp_max_request_bytes: usize,
    /// Idle stream connections (nothing pending) are closed after this many seconds.
    pub idle_timeout_secs: u64,
    /// A message on a stream connection must be complete (head and body) this many
    /// seconds after its first byte, however slowly the bytes trickle in; otherwise the
    /// connection is closed.
    pub message_timeout_secs: u64,
    /// Incoming TCP and TLS connections open at once, in all (past it new ones are
    /// closed at once). Each costs a task pair, about 8-24 KiB of buffers, and a
    /// descriptor: keep it well under the process's descriptor limit.
    pub max_connections: usize,
    /// Incoming TCP and TLS connections open at once per source address (per /64 for
    /// IPv6).
    pub max_connections_per_source: usize,
    /// Timer T1 in milliseconds.
    pub t1_ms: u64,
    /// Timer T2 in milliseconds.
    pub t2_ms: u64,
    /// Timer T4 in milliseconds.
    pub t4_ms: u64,
    /// Use the system DNS resolver for RFC 3263 (static targets are always consulted first).
    pub dns: bool,
    /// DNS servers (`ip:port`) for the RFC 3263 lookups; empty means the system
    /// configuration (`/etc/resolv.conf`). Used only when `dns` is true.
    pub dns_servers: Vec<SocketAddr>,
    /// Static RFC 3263 overrides: domain -> list of (transport, host:port).
    pub static_targets: HashMap<String, Vec<StaticTarget>>,
    /// Methods the TU handles (advertised in Allow; others get 405 or 501).
    pub allow: Vec<String>,
    /// Option tags the TU supports (a Require of anything else gets 420).
    pub supported: Vec<String>,
    /// Request-URI schemes accepted besides sip, sips and tel (others get 416).
    pub extra_uri_schemes: Vec<String>,
    /// New requests the TU holds at once: in progress in the SIP adapter's dispatcher, or
    /// waiting in [`super::IncomingRequests`]; past it a request gets 503 with Retry-After.
    pub tu_queue: usize,
    /// Server transactions held at once (each about 2-3 KiB while it lasts, up to 32 s over
    /// UDP); past it new requests get a stateless 503 ([`crate::transaction::stateless`]).
    pub max_server_transactions: usize,
    /// SO_RCVBUF and SO_SNDBUF asked for on each UDP socket, in bytes (the kernel may
    /// cap it at `net.core.rmem_max`/`wmem_max`); the kernel default (about 208 KiB)
    /// drops datagrams under bursts. 0 keeps the kernel default.
    pub udp_buffer_bytes: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        let lo: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 5060));
        let mut static_targets = HashMap::new();
        static_targets.insert(
            "localhost".to_string(),
            vec![
                StaticTarget {
                    transport: Transport::Udp,
                    address: "127.0.0.1:5060".into(),
                },
                StaticTarget {
                    transport: Transport::Tcp,
                    address: "127.0.0.1:5060".into(),
                },
            ],
        );
        EndpointConfig {
            udp: vec![lo],
            tcp: vec![lo],
            tls: vec![SocketAddr::from(([127, 0, 0, 1], 5061))],
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            advertised_host: None,
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            udp_max_request_bytes: 1300,
            idle_timeout_secs: 300,
            message_timeout_secs: 10,
            max_connections: 1024,
            max_connections_per_source: 32,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            dns: true,
            dns_servers: Vec::new(),
            static_targets,
            allow: Policy::default()
                .allow
                .iter()
                .map(|m| m.to_string())
                .collect(),
            supported: Vec::new(),
            extra_uri_schemes: Vec::new(),
            tu_queue: 4096,
            max_server_transactions: 32_768,
            udp_buffer_bytes: 4 * 1024 * 1024,
        }
    }
}
