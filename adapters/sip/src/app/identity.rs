//! Who may speak for an identity: the parts of the SIP adapter's authentication policy
//! that do not depend on digest (see [`super::tu`] for the digest part).
//!
//! - **No identity by source address over UDP.** A UDP source address and port is
//!   trivially forged (issue 10), so a binding registered over UDP never vouches for a
//!   later request ([`flow_may_vouch`]): such requests are challenged. Over TCP or TLS the
//!   peer completed a handshake from that address, so a request over the flow a user
//!   registered on with digest (RFC 5626 s3: a flow is the connection; RFC 3261 s18)
//!   still counts as that user when `trust_registered_flows` is on. The flow is the
//!   connection itself ([`Source::connection`], an id the transport never reuses), not
//!   its address and port: a new connection from the same address and port after the
//!   old one closed inherits nothing, and a binding restored from the store vouches for
//!   nothing until the user registers again; a binding lives no longer than its
//!   registration.
//! - **Foreign domains (RFC 5922, RFC 7247 s5 / RFC 3261 s26.3.2.2).** A request whose From
//!   names a domain the gateway does not serve speaks for that domain. It is accepted only
//!   from a configured `trusted_peers` address (exact IP or CIDR prefix: the SBC or proxy
//!   that owns that domain) or over TLS whose peer certificate names the domain (RFC 5922
//!   s7.1; [`Source::verified_names`]: the transport validates a TLS client certificate
//!   against the system trust store plus `tls_ca` and reads its `sip:` URI and DNS
//!   subjectAltNames, see `crate::transport::peer`). Anyone else gets `403 Foreign Domain Not Trusted`.
//! - **The registrar is closed.** With no `[[sip.users]]` no credential can ever verify,
//!   so no request can act as a local user; the only ways in are then `trusted_peers`.
//!   (`SipConfig::user_exists` stays "open" for *delivery* to local users in that case,
//!   which needs no identity.)

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::transport::{Flow, Transport};

/// Where a request came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The transport the request arrived over.
    pub transport: Transport,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Domains the peer's TLS certificate was verified for (RFC 5922 s7.1); empty unless
    /// the transport verified a client certificate.
    pub verified_names: Vec<String>,
    /// The stream connection's id (never reused while the process runs); `None` for UDP.
    /// Flow trust is bound to it, not to the address and port.
    pub connection: Option<u64>,
}

impl Source {
    /// The flow the request arrived on (written `udp:192.0.2.1:5060`).
    pub fn flow(&self) -> Flow {
        Flow {
            transport: self.transport,
            remote: self.remote,
        }
    }
}

/// True if a binding registered over `src`'s flow may vouch for a later request on it:
/// only connection-oriented transports (TCP, TLS, WS/WSS), never UDP.
pub fn flow_may_vouch(src: &Source) -> bool {
    src.transport.is_reliable()
}

/// A trusted peer: one address or a CIDR prefix (`192.0.2.7`, `10.0.0.0/8`,
/// `2001:db8::/32`), written as a string in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerNet {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length (32 or 128 for one address).
    pub prefix: u8,
}

impl PeerNet {
    /// True if `ip` is inside this network (an IPv4-mapped IPv6 address matches its
    /// IPv4 form).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for PeerNet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<PeerNet> for String {
    fn from(p: PeerNet) -> String {
        p.to_string()
    }
}

impl std::str::FromStr for PeerNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("trusted peer {s:?}: not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("trusted peer {s:?}: bad prefix length"))?,
        };
        Ok(PeerNet { addr, prefix })
    }
}

impl std::fmt::Display for PeerNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl From<IpAddr> for PeerNet {
    fn from(addr: IpAddr) -> PeerNet {
        PeerNet {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }
}

/// True if `ip` is one of `peers`.
pub fn is_trusted(peers: &[PeerNet], ip: IpAddr) -> bool {
    peers.iter().any(|p| p.contains(ip))
}

/// May `src` speak for users of `domain`, a domain the gateway does not serve? Only a
/// trusted peer or a TLS peer whose certificate names `domain` (RFC 5922 s7.1).
pub fn may_speak_for_foreign(peers: &[PeerNet], src: &Source, domain: &str) -> bool {
    is_trusted(peers, src.remote.ip())
        || (src.transport == Transport::Tls
            && src
                .verified_names
                .iter()
                .any(|n| cpim_core::domain::same(n, domain)))
}

/// The digest part of the policy, on the transaction user: [`Tu::authenticate`] decides
/// for every request that speaks for an identity (RFC 3261 s22, RFC 7616).
mod digest_auth {
    use cpim_core::address::Address;
    use rand::Rng;

    use super::super::digest::{self, AuthFailure, Secret};
    use super::super::identity;
    use super::super::tu::{aor_of, Source, Tu};
    use crate::codec::{HeaderName, MessageBuilder as Reply, Request, Response};

    fn reply(req: &Request, code: u16, reason: Option<&str>) -> Reply {
        Response::for_request(req, code, reason)
    }

    /// The result of [`Tu::authenticate`].
    pub(in crate::app) enum Authn {
        /// From a trusted peer (or not a local user): no identity check.
        Trusted,
        /// This digest user.
        User(String),
        /// Answer with this.
        Respond(Reply),
    }

    impl Tu {
        pub(in crate::app) fn lookup_secret(&self, username: &str, domain: &str) -> Option<Secret> {
            self.config
                .users
                .iter()
                .find(|u| {
                    u.username == username
                        && u.domain
                            .as_deref()
                            .is_none_or(|d| cpim_core::domain::same(d, domain))
                })
                .and_then(|u| match (&u.password, &u.ha1) {
                    (Some(p), _) => Some(Secret::Password(p.clone())),
                    (None, Some(h)) => Some(Secret::Ha1(
                        u.ha1_algorithm.unwrap_or(digest::Algorithm::Md5),
                        h.clone(),
                    )),
                    _ => None,
                })
        }

        pub(in crate::app) fn challenge(&self, req: &Request, stale: bool, now: u64) -> Reply {
            let random = rand::thread_rng().gen::<[u8; 16]>();
            let challenges = self.lock().digest.challenge(now, stale, random);
            let mut b = Response::for_request(req, 401, None);
            for c in challenges {
                b = b.header(HeaderName::WwwAuthenticate, &c.to_header());
            }
            b
        }

        /// Authentication on every way in (see ARCHITECTURE.md, "adapters/sip"):
        /// `claimed` is the identity the request speaks for (From, or To for REGISTER).
        pub(in crate::app) fn authenticate(
            &self,
            req: &Request,
            src: &Source,
            claimed: &Address,
            always: bool,
            now: u64,
        ) -> Authn {
            if identity::is_trusted(&self.config.trusted_peers, src.remote.ip()) {
                return Authn::Trusted;
            }
            let local = self.config.is_local_domain(&claimed.domain);
            if !local && !always {
                if identity::may_speak_for_foreign(&self.config.trusted_peers, src, &claimed.domain)
                {
                    return Authn::Trusted;
                }
                return Authn::Respond(reply(req, 403, Some("Foreign Domain Not Trusted")));
            }
            if !local {
                return Authn::Respond(reply(req, 403, Some("Not A Local Domain")));
            }
            let realm = self.config.realm().to_owned();
            let creds = req
                .header_all(HeaderName::Authorization)
                .find(|h| digest::Credentials::parse(h).is_ok_and(|c| c.realm == realm));
            let user = match creds {
                Some(h) => {
                    // RFC 7616 s3.4.6: the digest-uri must name this request's target, or
                    // the gateway itself (SIPp puts the address it sends to there).
                    let uri_ok = digest::Credentials::parse(h).is_ok_and(|c| {
                        c.uri.trim().eq_ignore_ascii_case(req.uri_str().trim())
                            || self.names_gateway(&c.uri)
                    });
                    if !uri_ok {
                        return Authn::Respond(reply(req, 400, Some("Digest URI Mismatch")));
                    }
                    let method = req.method().as_str().to_owned();
                    let domain = claimed.domain.clone();
                    let result = {
                        let mut st = self.lock();
                        st.digest
                            .verify(h, &method, now, |u| self.lookup_secret(u, &domain))
                    };
                    match result {
                        Ok(u) => u,
                        Err(AuthFailure::Stale) => {
                            return Authn::Respond(self.challenge(req, true, now))
                        }
                        Err(AuthFailure::Malformed(e)) => {
                            return Authn::Respond(reply(
                                req,
                                400,
                                Some(&format!("Bad Authorization: {e}")),
                            ))
                        }
                        Err(AuthFailure::Replay) | Err(AuthFailure::Rejected) | Err(_) => {
                            return Authn::Respond(self.challenge(req, false, now))
                        }
                    }
                }
                None => {
                    let flow_user = (!always
                        && self.config.trust_registered_flows
                        && identity::flow_may_vouch(src))
                    .then(|| {
                        self.lock()
                            .registrar
                            .flow_authenticated(
                                &aor_of(claimed),
                                &src.flow().to_string(),
                                src.connection,
                                now,
                            )
                            .map(str::to_owned)
                    })
                    .flatten();
                    match flow_user {
                        Some(u) => u,
                        None => return Authn::Respond(self.challenge(req, false, now)),
                    }
                }
            };
            // No forging: the authenticated user must be the one the request speaks for.
            if claimed.user.as_deref() != Some(user.as_str()) {
                return Authn::Respond(reply(req, 403, Some("Identity Mismatch")));
            }
            Authn::User(user)
        }
    }
}

pub(in crate::app) use digest_auth::Authn;

#[cfg(test)]
mod tests {
    use super::*;

    fn src(t: &str, ip: &str) -> Source {
        Source {
            transport: t.parse().unwrap(),
            remote: SocketAddr::new(ip.parse().unwrap(), 5060),
            verified_names: Vec::new(),
            connection: None,
        }
    }

    #[test]
    fn peers_match_by_prefix() {
        let peers: Vec<PeerNet> = ["192.0.2.7", "10.0.0.0/8", "2001:db8::/32"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(is_trusted(&peers, "192.0.2.7".parse().unwrap()));
        assert!(!is_trusted(&peers, "192.0.2.8".parse().unwrap()));
        assert!(is_trusted(&peers, "10.200.0.1".parse().unwrap()));
        assert!(is_trusted(&peers, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(is_trusted(&peers, "2001:db8:1::5".parse().unwrap()));
        assert!(!is_trusted(&peers, "2001:db9::5".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<PeerNet>().is_err());
        assert!("nope".parse::<PeerNet>().is_err());
        assert_eq!(
            "0.0.0.0/0".parse::<PeerNet>().unwrap().to_string(),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn udp_flows_never_vouch() {
        assert!(!flow_may_vouch(&src("udp", "127.0.0.1")));
        assert!(flow_may_vouch(&src("tcp", "127.0.0.1")));
        assert!(flow_may_vouch(&src("tls", "127.0.0.1")));
    }

    /// RFC 5922 s7.1: only a TLS peer whose certificate names the domain speaks for it.
    #[test]
    fn foreign_domain_needs_trust_or_a_certificate() {
        let mut s = src("tcp", "192.0.2.1");
        assert!(!may_speak_for_foreign(&[], &s, "evil.test"));
        s.verified_names = vec!["evil.test".into()];
        assert!(!may_speak_for_foreign(&[], &s, "evil.test"), "not over TLS");
        s.transport = Transport::Tls;
        assert!(may_speak_for_foreign(&[], &s, "EVIL.test."));
        assert!(!may_speak_for_foreign(&[], &s, "other.test"));
        let peers = ["192.0.2.0/24".parse().unwrap()];
        assert!(may_speak_for_foreign(
            &peers,
            &src("udp", "192.0.2.9"),
            "x.test"
        ));
    }
}
