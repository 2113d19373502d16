//! TLS configuration for s2s (rustls with the `ring` provider).
//!
//! Server side: the configured certificate and key, or a self-signed certificate for the
//! served domains generated with rcgen. Client side: peers are checked against the
//! configured trust roots with webpki (chain, validity, name = the peer's domain); a
//! certificate listed in the trust roots is also accepted as the peer's own end-entity
//! certificate when it is presented exactly (byte for byte), which is how a test trusts a
//! self-signed peer explicitly.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {0}: {1}")]
    Io(String, std::io::Error),
    /// A PEM file holds nothing usable.
    #[error("{0}: {1}")]
    Pem(String, String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Certificate generation failed.
    #[error("self-signed certificate: {0}")]
    Rcgen(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|e| TlsError::Io(path.into(), e))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(path.into(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(path.into(), "no certificate".into()));
    }
    Ok(certs)
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|e| TlsError::Io(path.into(), e))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| TlsError::Pem(path.into(), e.to_string()))?
        .ok_or_else(|| TlsError::Pem(path.into(), "no private key".into()))
}

/// A self-signed certificate (PEM) and key (PEM) for `domains`.
pub fn self_signed(domains: &[String]) -> Result<(String, String), TlsError> {
    let ck = rcgen::generate_simple_self_signed(domains.to_vec())
        .map_err(|e| TlsError::Rcgen(e.to_string()))?;
    Ok((ck.cert.pem(), ck.key_pair.serialize_pem()))
}

/// The server configuration: `cert`/`key` files, or a fresh self-signed certificate.
pub fn server_config(
    cert: Option<&str>,
    key: Option<&str>,
    domains: &[String],
) -> Result<Arc<ServerConfig>, TlsError> {
    let (certs, key) = match (cert, key) {
        (Some(c), Some(k)) => (load_certs(c)?, load_key(k)?),
        _ => {
            let (c, k) = self_signed(domains)?;
            let certs = rustls_pemfile::certs(&mut c.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Pem("generated".into(), e.to_string()))?;
            let key = rustls_pemfile::private_key(&mut k.as_bytes())
                .map_err(|e| TlsError::Pem("generated".into(), e.to_string()))?
                .ok_or_else(|| TlsError::Pem("generated".into(), "no key".into()))?;
            (certs, key)
        }
    };
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(cfg))
}

/// The client configuration: trust `roots` (PEM files).
pub fn client_config(roots: &[String]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    let mut pinned = Vec::new();
    for path in roots {
        for c in load_certs(path)? {
            let _ = store.add(c.clone());
            pinned.push(c);
        }
    }
    let webpki = if store.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
                .build()
                .map_err(|e| TlsError::Pem("trust roots".into(), e.to_string()))?,
        )
    };
    let verifier = Arc::new(Verifier {
        webpki,
        pinned,
        provider: provider(),
    });
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
