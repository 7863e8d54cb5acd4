//! Who may call the main listener: static API keys (compared by SHA-256 in constant time) and
//! mTLS (client certificates checked by rustls during the handshake).

use crate::config::{ConfigError, Inbound, InboundTls};
use crate::error::{ProblemCode, ProxyError};
use http::{HeaderMap, HeaderName};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The header an app sends its API key in. It never goes upstream.
pub static API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The API-key check; empty when the config has no keys.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    hashes: Arc<Vec<[u8; 32]>>,
}

impl ApiKeys {
    /// The keys of the config.
    pub fn new(inbound: &Inbound) -> Self {
        Self {
            hashes: Arc::new(inbound.api_key_sha256.clone()),
        }
    }

    /// Accepts a request when no keys are configured, or when its `X-Api-Key` hashes to one.
    /// Every configured hash is compared, in constant time, whatever matches first.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ProxyError> {
        if self.hashes.is_empty() {
            return Ok(());
        }
        let refused = || {
            ProxyError::new(ProblemCode::AuthApiKeyInvalid, "send a valid API key in the X-Api-Key header; requests without one never reach Singpass")
        };
        let given = headers.get(&API_KEY).ok_or_else(refused)?;
        let hash: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let matched = self
            .hashes
            .iter()
            .fold(subtle::Choice::from(0), |acc, h| acc | h.ct_eq(&hash));
        if bool::from(matched) {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

/// The TLS acceptor of the main listener; with a client CA, it requires client certificates
/// that chain to it (mTLS).
pub fn tls_acceptor(tls: &InboundTls) -> Result<tokio_rustls::TlsAcceptor, ConfigError> {
    let bad = |key: &str, problem: String| {
        ConfigError::new(key, problem, "point it at a readable PEM file")
    };
    let certs = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            bad(
                "inbound.tls_cert_file",
                format!("{}: {e}", tls.cert_file.display()),
            )
        })?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        bad(
            "inbound.tls_key_file",
            format!("{}: {e}", tls.key_file.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("inbound", e.to_string(), "report this as a bug"))?;
    let builder = match &tls.client_ca_file {
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca_file)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    bad(
                        "inbound.client_ca_file",
                        format!("{}: {e}", ca_file.display()),
                    )
                })?;
            for ca in cas {
                roots.add(ca).map_err(|e| {
                    bad(
                        "inbound.client_ca_file",
                        format!("{}: {e}", ca_file.display()),
                    )
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| {
                bad(
                    "inbound.client_ca_file",
                    format!("{}: {e}", ca_file.display()),
                )
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        ConfigError::new(
            "inbound.tls_key_file",
            format!("the certificate and key do not fit together: {e}"),
            "give the key of the certificate in tls_cert_file",
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
