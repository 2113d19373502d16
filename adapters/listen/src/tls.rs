//! TLS pieces every TLS listener of the gateway shares (SIP TLS, XMPP s2s).
//!
//! [`AnyClientCert`]: the listener asks for a client certificate but does not judge it
//! during the handshake; the TLS handshake still proves the peer holds the key. The
//! protocol layer then decides what the certificate is good for (SIP: RFC 5922 s7.1
//! domain names after a webpki check; XMPP: SASL EXTERNAL per RFC 6120 s13.7.2), so a
//! peer whose certificate cannot be validated, or that sends none, still gets TLS and
//! speaks with no certified identity.
//!
//! [`root_store`]: the system trust store (`rustls-native-certs`) plus PEM roots.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// Asks for a client certificate (optional) and accepts any whose handshake signature
/// verifies; see the module docs.
#[derive(Debug)]
pub struct AnyClientCert(Arc<CryptoProvider>);

impl AnyClientCert {
    /// The verifier, checking handshake signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Arc<AnyClientCert> {
        Arc::new(AnyClientCert(provider))
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The system's trust store (when `system` is true; unreadable entries are logged and
/// skipped) plus `extra` roots. Returns the store and how many system roots it holds.
pub fn root_store(
    system: bool,
    extra: impl IntoIterator<Item = CertificateDer<'static>>,
) -> Result<(RootCertStore, usize), rustls::Error> {
    let mut store = RootCertStore::empty();
    let mut added = 0;
    if system {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("system trust store: {e}");
        }
        added = store.add_parsable_certificates(native.certs).0;
        tracing::debug!("system trust store: {added} root(s)");
    }
    for c in extra {
        store
            .add(c)
            .map_err(|e| rustls::Error::General(format!("trust root: {e}")))?;
    }
    Ok((store, added))
}
