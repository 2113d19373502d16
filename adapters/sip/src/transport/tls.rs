//! TLS for the SIP transports (RFC 3261 s26.2, RFC 5630): acceptor and connector from PEM
//! (rustls, `ring` provider), and the self-signed certificate a TLS listener gets when
//! none is configured.
//!
//! [`self_signed`] makes the certificate and key in memory only; keeping them is the
//! caller's concern (the gateway writes them once into its store folder, mode 0600, and
//! reuses them on later starts, so peers that pinned the certificate keep working). Peers
//! that validate certificates need a configured one (`tls_cert`, `tls_key`).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TransportError;

/// A self-signed certificate and key (PEM) for `names` (DNS names or IP addresses).
pub fn self_signed(names: &[String]) -> Result<(String, String), TransportError> {
    let mut names: Vec<String> = names.iter().filter(|n| !n.is_empty()).cloned().collect();
    if names.is_empty() {
        names.push("localhost".into());
    }
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(TransportError::tls("generating a certificate"))?;
    Ok((ck.cert.pem(), ck.key_pair.serialize_pem()))
}

/// Builds a TLS acceptor from PEM certificate chain and key files (ring provider). It asks
/// for a client certificate, optionally, and accepts any (`cpim_listen::tls::AnyClientCert`):
/// what the certificate proves is judged after the handshake ([`super::peer`], RFC 5922).
pub fn tls_acceptor_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<tokio_rustls::TlsAcceptor, TransportError> {
    let (certs, key) = identity_from_pem(cert_pem, key_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TransportError::tls("server configuration"))?
        .with_client_cert_verifier(cpim_listen::tls::AnyClientCert::new(provider))
        .with_single_cert(certs, key)
        .map_err(TransportError::tls("certificate and key"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A PEM certificate chain and private key.
fn identity_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Identity, TransportError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(TransportError::tls("certificate"))?;
    if certs.is_empty() {
        return Err(TransportError::Tls("no certificate in PEM".into()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(TransportError::tls("key"))?
        .ok_or_else(|| TransportError::Tls("no private key in PEM".into()))?;
    Ok((certs, key))
}

/// Builds a TLS connector trusting the certificates in `ca_pem` (ring provider).
pub fn tls_connector_from_pem(ca_pem: &[u8]) -> Result<tokio_rustls::TlsConnector, TransportError> {
    tls_connector(add_pem_roots(rustls::RootCertStore::empty(), ca_pem)?, None)
}

/// The roots SIP TLS trusts, for outgoing connections and for client certificates
/// alike: the system's trust store (`rustls-native-certs`) plus the certificates in
/// `ca_pem` (the `tls_ca` file; may be empty).
pub fn trust_roots(ca_pem: &[u8]) -> Result<rustls::RootCertStore, TransportError> {
    let (roots, system) = cpim_listen::tls::root_store(true, [])
        .map_err(TransportError::tls("system trust store"))?;
    if system == 0 {
        tracing::warn!("no system trust anchors found: SIP TLS trusts tls_ca only");
    }
    add_pem_roots(roots, ca_pem)
}

/// Builds a TLS connector trusting `roots` (see [`trust_roots`]), presenting `client`
/// (PEM certificate chain and key: the listener's certificate) as client certificate so
/// that the peer can authenticate the gateway's domain (mutual TLS between SIP domains,
/// RFC 5922 s7).
pub fn tls_connector_with_roots(
    roots: rustls::RootCertStore,
    client: Option<(&[u8], &[u8])>,
) -> Result<tokio_rustls::TlsConnector, TransportError> {
    let client = client.map(|(c, k)| identity_from_pem(c, k)).transpose()?;
    tls_connector(roots, client)
}

fn add_pem_roots(
    mut roots: rustls::RootCertStore,
    ca_pem: &[u8],
) -> Result<rustls::RootCertStore, TransportError> {
    for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
        let c = c.map_err(TransportError::tls("CA certificate"))?;
        roots
            .add(c)
            .map_err(TransportError::tls("CA certificate"))?;
    }
    Ok(roots)
}

fn tls_connector(
    roots: rustls::RootCertStore,
    client: Option<Identity>,
) -> Result<tokio_rustls::TlsConnector, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TransportError::tls("client configuration"))?
        .with_root_certificates(roots);
    let cfg = match client {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(TransportError::tls("client certificate"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

/// The TLS side of an endpoint from its certificate and key (PEM; `None`: no TLS
/// listener) and its `tls_ca` (PEM, may be empty): the acceptor, the connector (which
/// presents the same certificate as client certificate) and the judge of client
/// certificates, the last two trusting [`trust_roots`].
#[allow(clippy::type_complexity)]
pub(crate) fn endpoint_tls(
    identity: Option<&(Vec<u8>, Vec<u8>)>,
    ca_pem: &[u8],
) -> Result<
    (
        Option<tokio_rustls::TlsAcceptor>,
        tokio_rustls::TlsConnector,
        Arc<super::peer::PeerTrust>,
    ),
    TransportError,
> {
    let acceptor = identity
        .map(|(c, k)| tls_acceptor_from_pem(c, k))
        .transpose()?;
    let roots = trust_roots(ca_pem)?;
    let client = identity.map(|(c, k)| (&c[..], &k[..]));
    let connector = tls_connector_with_roots(roots.clone(), client)?;
    Ok((
        acceptor,
        connector,
        Arc::new(super::peer::PeerTrust::new(roots)),
    ))
}
