//! TLS for api-ssl (port 8729) with rustls: a verified CA, a pinned certificate fingerprint, or
//! no verification at all (still encrypted; for lab use and first contact).
//!
//! Anonymous-DH (api-ssl on a router with `certificate=none`) needs OpenSSL's `ADH` suites with
//! `@SECLEVEL=0`, which rustls does not implement: [`TlsMode::Anonymous`] goes through the system
//! OpenSSL when the `openssl` feature is on (the default). It encrypts but authenticates nothing.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// How the server certificate is checked.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Chain to one of these CA certificates (PEM), for the device's name or address.
    Verified {
        /// PEM with one or more CA certificates.
        ca_pem: Vec<u8>,
    },
    /// The leaf certificate's SHA-256 must equal this (any issuer, any name).
    Pinned {
        /// SHA-256 of the DER certificate.
        sha256: [u8; 32],
    },
    /// Accept any certificate (encrypted, not authenticated).
    Insecure,
    /// Anonymous Diffie-Hellman, no certificate at all (OpenSSL only; encrypted, not authenticated).
    Anonymous,
}

impl std::fmt::Debug for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Verified { .. } => f.write_str("Verified"),
            Self::Pinned { sha256 } => write!(f, "Pinned({})", hex::encode(sha256)),
            Self::Insecure => f.write_str("Insecure"),
            Self::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// Parses a fingerprint written as 64 hex digits, colons allowed.
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(hex).ok()?;
    bytes.try_into().ok()
}

/// SHA-256 of a DER certificate (what [`TlsMode::Pinned`] compares).
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls client configuration for a mode.
pub fn client_config(mode: &TlsMode) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match mode {
        TlsMode::Verified { ca_pem } => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca_pem) {
                roots
                    .add(cert.map_err(|e| format!("CA PEM: {e}"))?)
                    .map_err(|e| format!("CA certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("CA PEM holds no certificate".into());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsMode::Pinned { sha256 } => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert {
                pin: Some(*sha256),
                provider: provider(),
            }))
            .with_no_client_auth(),
        TlsMode::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert {
                pin: None,
                provider: provider(),
            }))
            .with_no_client_auth(),
        TlsMode::Anonymous => return Err("anonymous-DH is not available with rustls; it needs OpenSSL".into()),
    };
    Ok(Arc::new(config))
}

/// The OpenSSL context settings both sides of anonymous-DH need: ADH suites at security level 0,
/// TLS 1.2 at most (TLS 1.3 has no anonymous suites).
#[cfg(feature = "openssl")]
pub mod anonymous {
    use std::pin::Pin;

    use openssl::dh::Dh;
    use openssl::ssl::{Ssl, SslContext, SslMethod, SslVerifyMode, SslVersion};
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio_openssl::SslStream;

    fn context(server: bool) -> Result<SslContext, openssl::error::ErrorStack> {
        let method = if server {
            SslMethod::tls_server()
        } else {
            SslMethod::tls_client()
        };
        let mut b = SslContext::builder(method)?;
        b.set_cipher_list("ADH:@SECLEVEL=0")?;
        b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_verify(SslVerifyMode::NONE);
        if server {
            let dh = Dh::get_2048_256()?;
            b.set_tmp_dh(&dh)?;
        }
        Ok(b.build())
    }

    /// Client side of an anonymous-DH handshake.
    pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<SslStream<S>, String> {
        let ctx = context(false).map_err(|e| e.to_string())?;
        let ssl = Ssl::new(&ctx).map_err(|e| e.to_string())?;
        let mut s = SslStream::new(ssl, stream).map_err(|e| e.to_string())?;
        Pin::new(&mut s).connect().await.map_err(|e| e.to_string())?;
        Ok(s)
    }

    /// Server side (the simulator's routers without a certificate).
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<SslStream<S>, String> {
        let ctx = context(true).map_err(|e| e.to_string())?;
        let ssl = Ssl::new(&ctx).map_err(|e| e.to_string())?;
        let mut s = SslStream::new(ssl, stream).map_err(|e| e.to_string())?;
        Pin::new(&mut s).accept().await.map_err(|e| e.to_string())?;
        Ok(s)
    }
}

/// The server name to present and verify: an IP address or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned()).map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}

/// Accepts any certificate, or exactly the pinned one; handshake signatures are still verified,
/// so the peer must hold the certificate's private key.
#[derive(Debug)]
struct AnyCert {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            Some(pin) if fingerprint(end_entity) != pin => Err(rustls::Error::General(format!(
                "certificate fingerprint {} does not match the pinned {}",
                hex::encode(fingerprint(end_entity)),
                hex::encode(pin)
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let raw = [0xabu8; 32];
        let plain = hex::encode(raw);
        let colons: Vec<String> = raw.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_fingerprint(&plain), Some(raw));
        assert_eq!(parse_fingerprint(&colons.join(":")), Some(raw));
        assert_eq!(parse_fingerprint("abcd"), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
    }

    #[test]
    fn configs_build_and_bad_ca_pem_is_an_error() {
        assert!(client_config(&TlsMode::Insecure).is_ok());
        assert!(client_config(&TlsMode::Pinned { sha256: [0; 32] }).is_ok());
        assert!(
            client_config(&TlsMode::Verified {
                ca_pem: b"not pem".to_vec()
            })
            .is_err()
        );
        assert!(server_name("10.0.0.1").is_ok());
        assert!(server_name("router.example").is_ok());
    }
}
