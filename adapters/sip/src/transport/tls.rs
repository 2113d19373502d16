//! TLS for the SIP transports (RFC 3261 s26.2, RFC 5630): acceptor and connector from PEM
//! (rustls, `ring` provider), and the self-signed certificate a TLS listener gets when
//! none is configured.
//!
//! [`self_signed`] makes the certificate and key in memory only; keeping them is the
//! caller's concern (the gateway writes them once into its store folder, mode 0600, and
//! reuses them on later starts, so peers that pinned the certificate keep working). Peers
//! that validate certificates need a configured one (`tls_cert`, `tls_key`).

use std::sync::Arc;

use super::TransportError;

/// A self-signed certificate and key (PEM) for `names` (DNS names or IP addresses).
pub fn self_signed(names: &[String]) -> Result<(String, String), TransportError> {
    let mut names: Vec<String> = names.iter().filter(|n| !n.is_empty()).cloned().collect();
    if names.is_empty() {
        names.push("localhost".into());
    }
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TransportError::Tls(format!("generating a certificate: {e}")))?;
    Ok((ck.cert.pem(), ck.key_pair.serialize_pem()))
}

/// Builds a TLS acceptor from PEM certificate chain and key files (ring provider).
pub fn tls_acceptor_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<tokio_rustls::TlsAcceptor, TransportError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| TransportError::Tls(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TransportError::Tls("no certificate in PEM".into()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| TransportError::Tls(format!("key: {e}")))?
        .ok_or_else(|| TransportError::Tls("no private key in PEM".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Builds a TLS connector trusting the certificates in `ca_pem` (ring provider).
pub fn tls_connector_from_pem(ca_pem: &[u8]) -> Result<tokio_rustls::TlsConnector, TransportError> {
    tls_connector(rustls::RootCertStore::empty(), ca_pem)
}

/// Builds a TLS connector trusting the system's trust store (`rustls-native-certs`)
/// plus the certificates in `ca_pem` (may be empty): what outgoing TLS (and so every
/// `sips:` target) uses when no `tls_ca` is configured only the system store.
pub fn tls_connector_with_system_roots(
    ca_pem: &[u8],
) -> Result<tokio_rustls::TlsConnector, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "system trust store partly unreadable");
    }
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("no system trust anchors found: outgoing SIP TLS trusts tls_ca only");
    }
    tls_connector(roots, ca_pem)
}

fn tls_connector(
    mut roots: rustls::RootCertStore,
    ca_pem: &[u8],
) -> Result<tokio_rustls::TlsConnector, TransportError> {
    for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
        let c = c.map_err(|e| TransportError::Tls(format!("CA certificate: {e}")))?;
        roots
            .add(c)
            .map_err(|e| TransportError::Tls(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}
