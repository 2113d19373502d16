//! TLS for the SIP transports (RFC 3261 s26.2, RFC 5630): acceptor and connector from PEM
//! (rustls, `ring` provider), and the self-signed certificate a TLS listener gets when
//! none is configured.
//!
//! [`ensure_self_signed`] writes the certificate and key once, into a folder the caller
//! keeps (the gateway uses its store folder), with mode 0600, and reuses them on later
//! starts, so peers that pinned the certificate keep working. Peers that validate
//! certificates need a configured one (`tls_cert`, `tls_key`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::TransportError;

/// File name of the generated certificate (PEM) inside the folder given to [`ensure_self_signed`].
pub const GENERATED_CERT: &str = "sip-tls-cert.pem";
/// File name of the generated private key (PEM).
pub const GENERATED_KEY: &str = "sip-tls-key.pem";

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

/// The certificate and key files in `dir` ([`GENERATED_CERT`], [`GENERATED_KEY`]),
/// generated for `names` when absent (files created with mode 0600). Returns their paths.
pub fn ensure_self_signed(
    dir: &Path,
    names: &[String],
) -> Result<(PathBuf, PathBuf), TransportError> {
    let cert = dir.join(GENERATED_CERT);
    let key = dir.join(GENERATED_KEY);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir)?;
    let (c, k) = self_signed(names)?;
    write_private(&key, k.as_bytes())?;
    write_private(&cert, c.as_bytes())?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate for the SIP TLS listener");
    Ok((cert, key))
}

/// Writes `data` to a new file readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(data)?;
    f.sync_all()
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
