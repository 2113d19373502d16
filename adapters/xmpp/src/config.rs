//! Configuration of the XMPP adapter (the `[xmpp]` table of the gateway config).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How the adapter reaches the XMPP network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Mode {
    /// XEP-0114: an external component of one XMPP server.
    Component {
        /// `host:port` of the server's component listener.
        server: String,
        /// The component's domain (e.g. `sip.xmpp.test`): every gateway user is
        /// `user@domain`.
        domain: String,
        /// The shared secret of the handshake.
        secret: String,
    },
    /// RFC 6120 server-to-server federation.
    S2s {
        /// The domains the gateway serves.
        domains: Vec<String>,
        /// Where to accept incoming s2s streams.
        listen: String,
        /// PEM certificate chain, also the client certificate of outgoing streams; a
        /// self-signed one is generated when absent.
        #[serde(default)]
        cert: Option<String>,
        /// PEM private key for `cert`.
        #[serde(default)]
        key: Option<String>,
        /// Secret of the dialback keys (XEP-0185). Empty (absent) in the gateway's config:
        /// the gateway generates one at first start and keeps it in its store.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        dialback_secret: String,
        /// Static SRV overrides: domain -> `host:port` (tried before DNS).
        #[serde(default)]
        srv_overrides: BTreeMap<String, String>,
        /// PEM files of trust roots for peers' certificates, in addition to the system's
        /// trust store; a certificate listed here is also accepted as a peer's own
        /// (self-signed) certificate, for the names it carries. Used for the server
        /// certificate of outgoing streams and for SASL EXTERNAL (XEP-0178) on incoming
        /// ones.
        #[serde(default)]
        trust_roots: Vec<String>,
        /// Refuse peers without STARTTLS, both ways (RFC 6120 s5, s13.7): an outgoing
        /// stream to a peer that does not offer it sends nothing and its deliveries fail;
        /// an incoming stream must negotiate TLS before anything else. Default true.
        #[serde(default = "yes")]
        require_tls: bool,
        /// Let Server Dialback run on a stream without TLS (default false; XEP-0344 s2:
        /// dialback without TLS is only as good as DNS and the path to the peer).
        /// Plaintext s2s needs both `require_tls = false` and this.
        #[serde(default)]
        allow_dialback_without_tls: bool,
    },
}

/// The adapter's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XmppConfig {
    /// Component or s2s.
    pub mode: Mode,
    /// Seconds of outgoing silence before a whitespace keep-alive (RFC 6120 s4.6.1).
    pub keepalive_secs: u64,
    /// Seconds of incoming silence before an XEP-0199 ping is sent.
    pub ping_interval_secs: u64,
    /// Seconds to wait for any input after a ping before the link is declared dead.
    pub ping_timeout_secs: u64,
    /// Reconnect backoff: first delay in milliseconds (doubled up to the cap, with jitter).
    pub reconnect_initial_ms: u64,
    /// Reconnect backoff cap in milliseconds.
    pub reconnect_max_ms: u64,
    /// Stanzas kept while the link is down; beyond that `deliver` answers 503.
    pub queue_capacity: usize,
    /// Queue operations while the link is down (true) or answer 503 at once (false).
    pub queue_when_down: bool,
    /// Seconds a delivery may take in all (queued time included) before it resolves 408.
    pub delivery_timeout_secs: u64,
    /// Milliseconds to wait after the ordering barrier (ping result) for a late bounce.
    pub grace_ms: u64,
    /// Largest stanza accepted, in bytes.
    pub max_stanza_bytes: usize,
    /// The name and version answered to XEP-0092.
    pub software_name: String,
    /// s2s: an incoming stream with no input at all for this many seconds is closed with
    /// a `<connection-timeout/>` stream error (RFC 6120 s4.9.3.4); 0 turns it off.
    pub s2s_idle_timeout_secs: u64,
    /// s2s: seconds an incoming stream has to send its stream header, counted from the
    /// connection (not reset by trickled bytes); 0 turns it off.
    pub s2s_open_timeout_secs: u64,
    /// s2s: seconds an incoming stream has to authenticate a domain (TLS, SASL or
    /// dialback included), counted from the connection; 0 turns it off.
    pub s2s_auth_timeout_secs: u64,
    /// s2s: DNS servers (`ip` or `ip:port`) for the `_xmpp-server._tcp` SRV lookups;
    /// empty means the system configuration (`/etc/resolv.conf`).
    pub dns_servers: Vec<String>,
    /// s2s: incoming connections open at once per source address (per /64 for IPv6);
    /// past it a new connection is closed at once.
    pub s2s_max_connections_per_source: usize,
    /// s2s: incoming connections open at once in all. Each costs a descriptor, a 16 KiB
    /// read buffer and its stream state (up to `max_stanza_bytes` buffered).
    pub s2s_max_connections: usize,
}

fn yes() -> bool {
    true
}

impl Default for Mode {
    fn default() -> Self {
        Mode::Component {
            server: "127.0.0.1:5347".into(),
            domain: "sip.xmpp.test".into(),
            secret: String::new(),
        }
    }
}

impl Default for XmppConfig {
    fn default() -> Self {
        XmppConfig {
            mode: Mode::default(),
            keepalive_secs: 60,
            ping_interval_secs: 120,
            ping_timeout_secs: 30,
            reconnect_initial_ms: 500,
            reconnect_max_ms: 30_000,
            queue_capacity: 1000,
            queue_when_down: true,
            delivery_timeout_secs: 30,
            grace_ms: 200,
            max_stanza_bytes: 256 * 1024,
            software_name: "cpim-gateway".into(),
            s2s_idle_timeout_secs: 600,
            s2s_open_timeout_secs: 10,
            s2s_auth_timeout_secs: 30,
            dns_servers: Vec::new(),
            s2s_max_connections_per_source: 32,
            s2s_max_connections: 1024,
        }
    }
}

impl XmppConfig {
    /// The domains this adapter serves (the component domain or the s2s domains).
    pub fn local_domains(&self) -> Vec<String> {
        match &self.mode {
            Mode::Component { domain, .. } => vec![domain.to_ascii_lowercase()],
            Mode::S2s { domains, .. } => domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_component_config_parses_and_unknown_fields_are_refused() {
        let c: XmppConfig = toml::from_str(
            "ping_interval_secs = 5\n[mode]\nkind = 'component'\nserver = '127.0.0.1:5347'\ndomain = 'sip.xmpp.test'\nsecret = 's'\n",
        )
        .unwrap();
        assert_eq!(c.ping_interval_secs, 5);
        assert_eq!(c.local_domains(), vec!["sip.xmpp.test".to_string()]);
        assert!(toml::from_str::<XmppConfig>("bogus = 1").is_err());
        // s2s: TLS required and dialback only inside TLS unless said otherwise.
        let c: XmppConfig = toml::from_str(
            "[mode]\nkind = 's2s'\ndomains = ['a.test']\nlisten = '127.0.0.1:5269'\ndialback_secret = 's'\n",
        )
        .unwrap();
        assert!(matches!(
            c.mode,
            Mode::S2s {
                require_tls: true,
                allow_dialback_without_tls: false,
                ..
            }
        ));
        assert_eq!((c.s2s_open_timeout_secs, c.s2s_auth_timeout_secs), (10, 30));
        assert!(toml::from_str::<XmppConfig>(
            "[mode]\nkind = 'component'\nserver = 'x'\ndomain = 'd'\nsecret = 's'\nextra = 1\n"
        )
        .is_err());
    }
}
