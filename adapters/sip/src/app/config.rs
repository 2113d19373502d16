//! The `[sip]` section of the gateway configuration.
//!
//! Every struct is `serde(deny_unknown_fields)` with a `Default`, so a typo in a config
//! file is an error and an empty `[sip]` section is a working loopback setup.

use serde::{Deserialize, Serialize};

use super::digest::Algorithm;
use crate::endpoint::EndpointConfig;

/// The SIP adapter's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// The transport side (`[sip.endpoint]`): listen addresses (UDP, TCP, TLS; port 0
    /// picks a free port, see [`crate::app::adapter::SipHandle::local_addr`]), the
    /// advertised host, size limits, timers, RFC 3263 static targets.
    pub endpoint: EndpointConfig,
    /// The gateway's own SIP domains: their users register here (registrar mode) and
    /// requests from them must be authenticated.
    pub domains: Vec<String>,
    /// The digest realm; defaults to the first domain.
    pub realm: Option<String>,
    /// Users of the gateway's domains and their credentials.
    pub users: Vec<SipUser>,
    /// Digest algorithms offered in challenges, in order of preference (RFC 8760 s2.4:
    /// one challenge per algorithm, the preferred first).
    pub auth_algorithms: Vec<Algorithm>,
    /// How long a nonce stays valid, in seconds; a later use gets `stale=TRUE`.
    pub nonce_lifetime: u32,
    /// Accept an unauthenticated MESSAGE/SUBSCRIBE/PUBLISH from a local user when it
    /// arrives over the same TCP/TLS connection as a binding the same user registered
    /// with digest authentication (the connection itself, not a later one from the same
    /// address and port). Never over UDP, whose source address anyone can forge (see
    /// [`super::identity`]).
    pub trust_registered_flows: bool,
    /// Source addresses or CIDR prefixes (`"192.0.2.7"`, `"10.0.0.0/8"`) whose requests
    /// are trusted without digest and may speak for foreign domains (the outbound proxy
    /// when it owns the users, an SBC). Empty by default: a request from a domain the
    /// gateway does not serve then gets 403 unless it comes over TLS with a certificate
    /// naming that domain.
    pub trusted_peers: Vec<super::identity::PeerNet>,
    /// Registrar limits.
    pub registrar: RegistrarConfig,
    /// Subscription (SUBSCRIBE) limits, for SIP watchers and for the gateway's own
    /// subscriptions.
    pub subscription: ExpiryLimits,
    /// Publication (PUBLISH) limits.
    pub publication: ExpiryLimits,
    /// Limits per network source and caps on standing state (`[sip.limits]`).
    pub limits: super::limits::LimitsConfig,
    /// Outbound-proxy mode: a proxy such as Kamailio owns the users; the gateway sends
    /// out-of-domain requests through it and does not register users itself.
    pub outbound_proxy: Option<OutboundProxy>,
    /// Remote SIP domains the adapter serves (reached through the outbound proxy or RFC
    /// 3263 resolution), besides its own domains.
    pub remote_domains: Vec<String>,
    /// Credentials used when a remote server or proxy challenges the gateway.
    pub credentials: Vec<ClientCredential>,
    /// Largest MESSAGE body the gateway sends, in bytes; larger gets 413 (RFC 3428 s5).
    /// Incoming bodies are bounded by the router (`[limits] max_body_bytes`).
    pub max_message_size: usize,
    /// Seconds a fetch (SUBSCRIBE with Expires: 0) waits for the presentity's state
    /// before its single NOTIFY goes out without a body.
    pub fetch_wait: u32,
    /// RFC 3856 s6.4: at most one NOTIFY with a state change per subscription in this
    /// many seconds; changes in between are coalesced (the latest wins). 0 disables.
    pub notify_min_interval: u32,
    /// When a MESSAGE to a SIP user goes in `message/cpim` (RFC 3862, with the RFC 5438
    /// IMDN headers) rather than as the bare payload.
    pub cpim_wrap: CpimWrap,
}

/// When the gateway wraps a MESSAGE body in `message/cpim` (see [`super::message::wrap`]).
/// A body that already is `message/cpim` goes as it came in every case, and an IMDN
/// (`message/imdn+xml`) always goes in CPIM unless `never` (RFC 5438 s7.1.1.2 carries it
/// in CPIM with `Content-Disposition: notification`). A user's own `cpim` setting
/// ([`SipUser::cpim`]) wins over the adapter's policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpimWrap {
    /// To a binding whose UA has sent `message/cpim` itself (learned per binding, kept
    /// with it); bare to every other target. A UA that answers 415 to a wrapped
    /// MESSAGE gets it again bare. The default.
    #[default]
    Learn,
    /// To every SIP target.
    Always,
    /// Never (the bare payload, IMDNs included).
    Never,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            endpoint: EndpointConfig::default(),
            domains: Vec::new(),
            realm: None,
            users: Vec::new(),
            auth_algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            nonce_lifetime: 300,
            trust_registered_flows: true,
            trusted_peers: Vec::new(),
            registrar: RegistrarConfig::default(),
            subscription: ExpiryLimits {
                min: 60,
                max: 7200,
                default: 3600,
            },
            publication: ExpiryLimits {
                min: 60,
                max: 7200,
                default: 3600,
            },
            limits: super::limits::LimitsConfig::default(),
            outbound_proxy: None,
            remote_domains: Vec::new(),
            credentials: Vec::new(),
            max_message_size: 64 * 1024,
            fetch_wait: 2,
            notify_min_interval: 5,
            cpim_wrap: CpimWrap::Learn,
        }
    }
}

impl SipConfig {
    /// The digest realm: the configured one or the first domain.
    pub fn realm(&self) -> &str {
        self.realm
            .as_deref()
            .or(self.domains.first().map(String::as_str))
            .unwrap_or("cpim-gateway")
    }

    /// True if `domain` is one of the gateway's own domains, compared in the canonical
    /// form of [`cpim_core::domain`] (case, trailing dot, IDNA): `SIP.test.` is local.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains
            .iter()
            .any(|d| cpim_core::domain::same(d, domain))
    }

    /// Whether `user@domain` (a local domain) can exist: always when no `users` are
    /// configured (then the registrar is open), else only for a configured user (the
    /// user part compares exactly, RFC 3261 s19.1.4; the domain without case).
    pub fn user_exists(&self, user: &str, domain: &str) -> bool {
        self.users.is_empty() || self.user(user, domain).is_some()
    }

    /// The configured entry of `user@domain` (a local domain), if any.
    pub fn user(&self, user: &str, domain: &str) -> Option<&SipUser> {
        self.users.iter().find(|u| {
            u.username == user
                && u.domain
                    .as_deref()
                    .is_none_or(|d| cpim_core::domain::same(d, domain))
        })
    }

    /// The `cpim_wrap` policy for messages to `user@domain`: the user's own `cpim`
    /// setting, else the adapter's.
    pub fn cpim_wrap_for(&self, user: &str, domain: &str) -> CpimWrap {
        match self.user(user, domain).and_then(|u| u.cpim) {
            Some(true) => CpimWrap::Always,
            Some(false) => CpimWrap::Never,
            None => self.cpim_wrap,
        }
    }

    /// True in outbound-proxy mode.
    pub fn proxy_mode(&self) -> bool {
        self.outbound_proxy.is_some()
    }

    /// Checks the values a config file can get wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for limits in [
            ("registrar", self.registrar.limits()),
            ("subscription", self.subscription.clone()),
            ("publication", self.publication.clone()),
        ] {
            let (name, l) = limits;
            if l.min > l.max || l.default < l.min || l.default > l.max {
                return Err(ConfigError::Limits(name));
            }
        }
        for u in &self.users {
            if u.username.is_empty() {
                return Err(ConfigError::User("empty username".into()));
            }
            match (&u.password, &u.ha1) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(ConfigError::User(format!(
                        "user {:?}: give exactly one of password and ha1",
                        u.username
                    )))
                }
            }
            if let Some(ha1) = &u.ha1 {
                if hex::decode(ha1).is_err() {
                    return Err(ConfigError::User(format!(
                        "user {:?}: ha1 is not hex",
                        u.username
                    )));
                }
            }
        }
        if self.auth_algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithm);
        }
        self.limits.validate().map_err(ConfigError::SourceLimits)?;
        if self.endpoint.max_server_transactions == 0 {
            return Err(ConfigError::SourceLimits(
                "sip.endpoint.max_server_transactions must be > 0".into(),
            ));
        }
        Ok(())
    }
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// min/default/max out of order.
    #[error("[sip.{0}]: need min <= default <= max")]
    Limits(&'static str),
    /// A user entry is malformed.
    #[error("[[sip.users]]: {0}")]
    User(String),
    /// `[sip.limits]` is inconsistent.
    #[error("{0}")]
    SourceLimits(String),
    /// `auth_algorithms` is empty.
    #[error("sip.auth_algorithms must name at least one algorithm")]
    NoAlgorithm,
}

/// One user of the gateway's domains (`[[sip.users]]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipUser {
    /// The user part of the AOR and the digest username.
    pub username: String,
    /// The domain; any of the gateway's domains when absent.
    pub domain: Option<String>,
    /// The password in clear.
    pub password: Option<String>,
    /// Or the precomputed HA1 = H(username:realm:password), hex, for the algorithm
    /// named in `ha1_algorithm`.
    pub ha1: Option<String>,
    /// The algorithm `ha1` was computed with (MD5 when absent).
    pub ha1_algorithm: Option<Algorithm>,
    /// Messages to this user in `message/cpim`: `true` always (as `cpim_wrap =
    /// "always"`), `false` never (as `"never"`); absent, `cpim_wrap` decides.
    pub cpim: Option<bool>,
}

/// Registrar limits (RFC 3261 s10.3 steps 7 and 8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// Shortest registration accepted; shorter gets 423 with Min-Expires.
    pub min_expires: u32,
    /// Longest registration granted; longer is shortened.
    pub max_expires: u32,
    /// Used when the request gives no expiry.
    pub default_expires: u32,
    /// Most bindings one AOR may hold.
    pub max_bindings: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_bindings: 16,
        }
    }
}

impl RegistrarConfig {
    /// The limits as an [`ExpiryLimits`].
    pub fn limits(&self) -> ExpiryLimits {
        ExpiryLimits {
            min: self.min_expires,
            max: self.max_expires,
            default: self.default_expires,
        }
    }
}

/// Minimum, maximum and default expiry in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpiryLimits {
    /// Shortest accepted (423 Interval Too Brief below, except 0).
    pub min: u32,
    /// Longest granted.
    pub max: u32,
    /// When the request gives none.
    pub default: u32,
}

impl Default for ExpiryLimits {
    fn default() -> Self {
        ExpiryLimits {
            min: 60,
            max: 7200,
            default: 3600,
        }
    }
}

impl ExpiryLimits {
    /// Applies the limits to a requested expiry: `Err(min)` when it is too brief (not
    /// zero and under `min`), the granted value otherwise.
    pub fn grant(&self, requested: Option<u32>) -> Result<u32, u32> {
        let e = requested.unwrap_or(self.default);
        if e != 0 && e < self.min {
            return Err(self.min);
        }
        Ok(e.min(self.max))
    }
}

/// The outbound proxy (`[sip.outbound_proxy]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundProxy {
    /// Where to send: `host:port` (UDP and TCP) of the proxy.
    pub address: String,
    /// Transport toward the proxy: `udp` (the default), `tcp` or `tls`; over UDP the
    /// transport layer still switches to TCP for requests over 1300 bytes.
    pub transport: Option<crate::transport::Transport>,
}

/// Credentials for a challenge from a remote realm (`[[sip.credentials]]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientCredential {
    /// The realm these answer; any realm when absent.
    pub realm: Option<String>,
    /// Digest username.
    pub username: String,
    /// Password.
    pub password: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_applies_min_and_max() {
        let l = ExpiryLimits {
            min: 60,
            max: 3600,
            default: 1800,
        };
        assert_eq!(l.grant(None), Ok(1800));
        assert_eq!(l.grant(Some(0)), Ok(0));
        assert_eq!(l.grant(Some(30)), Err(60));
        assert_eq!(l.grant(Some(99999)), Ok(3600));
    }

    #[test]
    fn user_exists_only_for_configured_users_when_there_are_any() {
        let mut c = SipConfig {
            domains: vec!["sip.test".into(), "other.test".into()],
            ..SipConfig::default()
        };
        assert!(c.user_exists("anyone", "sip.test"), "open registrar");
        c.users.push(SipUser {
            username: "alice".into(),
            password: Some("x".into()),
            ..Default::default()
        });
        c.users.push(SipUser {
            username: "bob".into(),
            domain: Some("other.test".into()),
            password: Some("x".into()),
            ..Default::default()
        });
        assert!(c.user_exists("alice", "SIP.test"));
        assert!(
            !c.user_exists("Alice", "sip.test"),
            "user parts compare exactly"
        );
        assert!(!c.user_exists("nobody", "sip.test"));
        assert!(c.user_exists("bob", "other.test"));
        assert!(!c.user_exists("bob", "sip.test"));
    }

    #[test]
    fn validate_rejects_a_zero_transaction_cap() {
        let mut c = SipConfig::default();
        c.endpoint.max_server_transactions = 0;
        assert!(
            matches!(c.validate(), Err(ConfigError::SourceLimits(e)) if e.contains("max_server_transactions"))
        );
    }

    #[test]
    fn validate_rejects_user_with_password_and_ha1() {
        let mut c = SipConfig::default();
        c.users.push(SipUser {
            username: "alice".into(),
            password: Some("x".into()),
            ha1: Some("00".into()),
            ..Default::default()
        });
        assert!(matches!(c.validate(), Err(ConfigError::User(_))));
        c.users[0].ha1 = None;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn realm_defaults_to_first_domain() {
        let c = SipConfig {
            domains: vec!["sip.test".into(), "other.test".into()],
            ..Default::default()
        };
        assert_eq!(c.realm(), "sip.test");
        assert!(c.is_local_domain("SIP.test"));
        assert!(!c.is_local_domain("xmpp.test"));
    }
}

#[cfg(test)]
mod toml_tests {
    use super::*;

    /// A full `[sip]` section as an operator writes it parses, and a typo is an error.
    #[test]
    fn parses_toml_and_rejects_unknown_fields() {
        let text = r#"
domains = ["sip.test"]
auth_algorithms = ["SHA-256", "MD5"]
trusted_peers = ["127.0.0.1"]
remote_domains = ["kamailio.test"]
max_message_size = 4096

[endpoint]
udp = ["127.0.0.1:5060"]
tcp = ["127.0.0.1:5060"]

[[users]]
username = "alice"
password = "wonderland"

[[users]]
username = "bob"
ha1 = "00112233445566778899aabbccddeeff"
ha1_algorithm = "MD5"

[registrar]
min_expires = 30

[outbound_proxy]
address = "127.0.0.1:5064"
transport = "tcp"

[[credentials]]
realm = "kamailio.test"
username = "gw"
password = "secret"
"#;
        let c: SipConfig = toml::from_str(text).unwrap();
        assert_eq!(c.users.len(), 2);
        assert_eq!(c.users[1].ha1_algorithm, Some(Algorithm::Md5));
        assert_eq!(c.auth_algorithms, vec![Algorithm::Sha256, Algorithm::Md5]);
        assert_eq!(c.registrar.min_expires, 30);
        assert_eq!(c.registrar.max_expires, 7200, "defaults fill the rest");
        assert!(c.proxy_mode());
        assert_eq!(
            c.outbound_proxy.as_ref().and_then(|p| p.transport),
            Some(crate::transport::Transport::Tcp)
        );
        assert_eq!(c.validate(), Ok(()));
        let typo = "domain = [\"sip.test\"]";
        assert!(toml::from_str::<SipConfig>(typo).is_err());
        let typo = "[[users]]\nusername = \"a\"\npasword = \"x\"";
        assert!(toml::from_str::<SipConfig>(typo).is_err());
        let empty: SipConfig = toml::from_str("").unwrap();
        assert_eq!(empty, SipConfig::default());
    }

    #[test]
    fn outbound_proxy_transport_is_a_transport_token() {
        let e = toml::from_str::<SipConfig>(
            "[outbound_proxy]\naddress = \"127.0.0.1:5064\"\ntransport = \"sctp\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("transport") && e.contains("sctp"), "{e}");
    }
}
