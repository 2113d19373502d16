//! TLS configuration for s2s (rustls with the `ring` provider).
//!
//! Our identity: the configured certificate and key, or a self-signed certificate for
//! the served domains generated with rcgen; it is the server certificate of the listener
//! and the client certificate of outgoing streams (XEP-0178 both ways).
//!
//! [`Trust`]: a peer's certificate is checked with webpki (chain, validity, name = the
//! peer's domain) against the system's trust store (`rustls-native-certs`) plus the
//! configured `trust_roots`; a certificate listed in the trust roots is also accepted as
//! the peer's own end-entity certificate when presented exactly (byte for byte, which is
//! how a test trusts a self-signed peer explicitly), and then too only for the names it
//! carries. The same check serves the server certificate of an outgoing stream and the
//! client certificate offered for SASL EXTERNAL on an incoming one (RFC 6120 s13.7.2,
//! XEP-0178 s3). The TLS layer of the listener asks for a client certificate but does not
//! judge it (`cpim_listen::tls::AnyClientCert`, shared with the SIP TLS listener): the SASL layer does, for the domain claimed, so a peer whose certificate we
//! cannot validate still gets TLS and can fall back to dialback.

use std::sync::Arc;

use cpim_listen::tls::AnyClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

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

/// Our certificate chain and key.
#[derive(Debug)]
pub struct Identity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// `cert`/`key` files, or a fresh self-signed certificate for `domains`.
    pub fn load(
        cert: Option<&str>,
        key: Option<&str>,
        domains: &[String],
    ) -> Result<Identity, TlsError> {
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
        Ok(Identity { certs, key })
    }
}

/// The server configuration: our identity; a client certificate is asked for (optional)
/// and left for the SASL layer to judge (see the module docs).
pub fn server_config(id: &Identity) -> Result<Arc<ServerConfig>, TlsError> {
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(AnyClientCert::new(provider()))
        .with_single_cert(id.certs.clone(), id.key.clone_key())?;
    Ok(Arc::new(cfg))
}

/// The client configuration: peers checked with `trust`, our identity as client
/// certificate.
pub fn client_config(trust: Arc<Trust>, id: &Identity) -> Result<Arc<ClientConfig>, TlsError> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(trust)
        .with_client_auth_cert(id.certs.clone(), id.key.clone_key())?;
    Ok(Arc::new(cfg))
}

/// Which peer certificates are believed, and for which domains.
#[derive(Debug)]
pub struct Trust {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl Trust {
    /// The system's trust store (when `system` is true) plus `roots` (PEM files).
    pub fn new(roots: &[String], system: bool) -> Result<Trust, TlsError> {
        let (mut store, _) = cpim_listen::tls::root_store(system, [])?;
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
        Ok(Trust {
            webpki,
            pinned,
            provider: provider(),
        })
    }

    /// True when `chain` (end-entity first) is a valid certificate for `domain` (RFC 6120
    /// s13.7.2, RFC 6125 DNS-ID): pinned exactly and naming `domain`, or chaining to a
    /// trusted root, valid at `now` and naming `domain`.
    pub fn valid_for(&self, chain: &[CertificateDer<'_>], domain: &str, now: UnixTime) -> bool {
        let (Some(ee), Ok(name)) = (chain.first(), ServerName::try_from(domain)) else {
            return false;
        };
        self.check(ee, &chain[1..], &name, now).is_ok()
    }

    fn check(
        &self,
        ee: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        if self.pinned.iter().any(|p| p.as_ref() == ee.as_ref()) {
            let cert = webpki::EndEntityCert::try_from(ee).map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
            })?;
            return cert.verify_is_valid_for_subject_name(name).map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            });
        }
        match &self.webpki {
            Some(v) => v
                .verify_server_cert(ee, intermediates, name, &[], now)
                .map(|_| ()),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }
}

impl ServerCertVerifier for Trust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, server_name, now)
            .map(|()| ServerCertVerified::assertion())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6120 s13.7.2: a pinned (explicitly trusted) certificate is good only for the
    /// names it carries; an unknown one for nothing.
    #[test]
    fn pinned_certificate_is_valid_only_for_its_own_names() {
        let dir = std::env::temp_dir().join(format!("cpim-xmpp-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (pem, _) = self_signed(&["a.test".into()]).unwrap();
        let path = dir.join("a.crt");
        std::fs::write(&path, &pem).unwrap();
        let trust = Trust::new(&[path.to_string_lossy().into_owned()], false).unwrap();
        let chain = rustls_pemfile::certs(&mut pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let now = UnixTime::now();
        assert!(trust.valid_for(&chain, "a.test", now));
        assert!(!trust.valid_for(&chain, "b.test", now));
        let (other, _) = self_signed(&["b.test".into()]).unwrap();
        let other = rustls_pemfile::certs(&mut other.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert!(!trust.valid_for(&other, "b.test", now));
        assert!(!trust.valid_for(&[], "a.test", now));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
