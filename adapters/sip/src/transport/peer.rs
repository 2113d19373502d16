//! Who is at the other end of a stream connection.
//!
//! - [`Connection`]: every TCP or TLS connection gets an id from a counter that is never
//!   reused while the process runs. The application layer binds flow trust to that id
//!   (RFC 5626 s3: a flow is the connection, not the address and port it came from), so
//!   trust earned on one connection dies with it even if a new connection later comes
//!   from the same address and port.
//! - `PeerTrust`: what a TLS peer's certificate proves (RFC 5922). The listener asks for
//!   a client certificate without judging it in the handshake (a UA without one still
//!   connects); afterwards the chain is checked with webpki against the SIP trust roots
//!   (the system store plus `tls_ca`, [`super::tls::trust_roots`]) for client
//!   authentication, and the domains it is valid for are read per RFC 5922 s7.1:
//!   subjectAltName URIs of the `sip` scheme (their host), then subjectAltName DNS
//!   names, and the subject's most specific CommonName only when the certificate has no
//!   subjectAltName at all. Wildcard names are never taken (RFC 5922 s7.2). A chain that
//!   does not validate proves nothing: the connection stays up with no verified name.
//! - `sips_over_insecure`: a `sips:` Request-URI received over a transport other than
//!   TLS (RFC 3261 s26.2.2, RFC 5630); answered 416 as a scheme not served on that
//!   transport (RFC 3261 s8.2.2.1).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};

use super::Transport;
use crate::codec::{Request, Scheme};

/// A stream connection as the application layer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Unique for the life of the process (never reused).
    pub id: u64,
    /// Domains the peer's TLS certificate was verified for (RFC 5922 s7.1); empty for TCP
    /// and for a TLS peer without a valid certificate.
    pub verified_names: Vec<String>,
}

/// The roots client certificates are validated against, and the RFC 5922 reading of a
/// validated certificate.
#[derive(Debug)]
pub(crate) struct PeerTrust {
    roots: rustls::RootCertStore,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PeerTrust {
    pub(crate) fn new(roots: rustls::RootCertStore) -> PeerTrust {
        PeerTrust {
            roots,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    /// The domains `chain` (end-entity first, as the peer sent it) is valid for at `now`;
    /// empty when it does not chain to a trusted root or is not good for client
    /// authentication.
    pub(crate) fn verified_names(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Vec<String> {
        let Some(ee) = chain.first() else {
            return Vec::new();
        };
        let Ok(cert) = webpki::EndEntityCert::try_from(ee) else {
            return Vec::new();
        };
        let verified = cert.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.roots.roots,
            &chain[1..],
            now,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        );
        match verified {
            Ok(_) => domain_names(&cert),
            Err(e) => {
                tracing::debug!(error = %e, "TLS client certificate not validated: no domain proven");
                Vec::new()
            }
        }
    }
}

/// The SIP domains a certificate names, per RFC 5922 s7.1 (see the module docs), lower
/// case, without duplicates.
pub(crate) fn domain_names(cert: &webpki::EndEntityCert<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut any_san = false;
    let mut push = |n: &str| {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if !n.is_empty() && !n.contains('*') && !out.contains(&n) {
            out.push(n);
        }
    };
    for uri in cert.valid_uri_names() {
        any_san = true;
        if let Some(host) = sip_uri_domain(uri) {
            push(host);
        }
    }
    for dns in cert.valid_dns_names() {
        any_san = true;
        push(dns);
    }
    if !any_san {
        if let Some(cn) = common_name(cert.subject()) {
            push(&cn);
        }
    }
    out
}

/// The host of a `sip:` URI naming a domain (no user part), RFC 5922 s7.1.
fn sip_uri_domain(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sip") || rest.contains('@') {
        return None;
    }
    let end = rest.find([':', ';', '?']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// One DER TLV: (tag, contents, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, r) = rest.split_at(n);
        rest = r;
        bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b))
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The last (most specific) CommonName of a DER Name's contents (the RDNSequence).
fn common_name(mut name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03]; // 2.5.4.3
    let mut found = None;
    while !name.is_empty() {
        let (_, mut set, rest) = tlv(name)?;
        name = rest;
        while !set.is_empty() {
            let (_, atv, r) = tlv(set)?;
            set = r;
            let (oid_tag, oid, value) = tlv(atv)?;
            if oid_tag == 0x06 && oid == CN {
                let (_, v, _) = tlv(value)?;
                if let Ok(s) = std::str::from_utf8(v) {
                    found = Some(s.to_owned());
                }
            }
        }
    }
    found
}

/// True if `req` has a `sips:` Request-URI but came over `transport`, which is not TLS:
/// the request asked for TLS on every hop and did not get it on the last one (RFC 3261
/// s26.2.2, RFC 5630). The endpoint answers it with 416 and a reason.
pub(crate) fn sips_over_insecure(req: &Request, transport: Transport) -> bool {
    transport != Transport::Tls && req.uri().is_ok_and(|u| u.scheme == Scheme::Sips)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(f: impl FnOnce(&mut rcgen::CertificateParams)) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        f(&mut p);
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn names(der: &[u8]) -> Vec<String> {
        let der = CertificateDer::from(der.to_vec());
        domain_names(&webpki::EndEntityCert::try_from(&der).unwrap())
    }

    /// RFC 5922 s7.1: SIP URIs and DNS names from subjectAltName; no wildcards (s7.2);
    /// no URI with a user part.
    #[test]
    fn rfc5922_names_come_from_subject_alt_name() {
        let der = cert_with(|p| {
            p.subject_alt_names = vec![
                rcgen::SanType::URI("sip:Peer.TEST".try_into().unwrap()),
                rcgen::SanType::URI("sip:alice@other.test".try_into().unwrap()),
                rcgen::SanType::URI("https://web.test/".try_into().unwrap()),
                rcgen::SanType::DnsName("proxy.peer.test".try_into().unwrap()),
                rcgen::SanType::DnsName("*.wild.test".try_into().unwrap()),
            ];
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "cn.test");
        });
        assert_eq!(names(&der), vec!["peer.test", "proxy.peer.test"]);
    }

    /// RFC 5922 s7.1: the CommonName counts only when there is no subjectAltName.
    #[test]
    fn rfc5922_common_name_only_without_subject_alt_name() {
        let der = cert_with(|p| {
            p.distinguished_name
                .push(rcgen::DnType::OrganizationName, "Org");
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "cn.test");
        });
        assert_eq!(names(&der), vec!["cn.test"]);
    }

    #[test]
    fn truncated_names_do_not_panic() {
        for n in [
            &[][..],
            &[0x31],
            &[0x31, 0x05, 0x30],
            &[0x31, 0x84, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(common_name(n), None);
        }
    }
}
