//! Ephemeral DPoP keys: one per v4 transaction or FAPI login, generated ahead of time on a
//! background thread so that key generation stays off the request path.

use super::keys::{short_reason, KeyError};
use super::thumbprint::thumbprint;
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::{Jwk, KeyPair as _};
use josekit::jws::alg::ecdsa::EcdsaJwsSigner;
use josekit::jws::ES256;
use std::fmt;
use std::sync::Arc;

/// A short-lived P-256 key for DPoP: one per v4 transaction or FAPI login, never reused.
pub struct EphemeralKey {
    signer: EcdsaJwsSigner,
    public: Jwk,
    jkt: String,
}

impl fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralKey")
            .field("jkt", &self.jkt)
            .finish()
    }
}

impl EphemeralKey {
    /// Generates a new key pair (about 0.4 ms: prefer [`EphemeralKeyPool::take`]).
    pub fn generate() -> Result<Self, KeyError> {
        let pair =
            EcKeyPair::generate(EcCurve::P256).map_err(|e| KeyError::Invalid(short_reason(&e)))?;
        let public = pair.to_jwk_public_key();
        let jkt = thumbprint(&public).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let signer = ES256
            .signer_from_der(pair.to_der_private_key())
            .map_err(|e| KeyError::Invalid(short_reason(&e)))?;
        Ok(Self {
            signer,
            public,
            jkt,
        })
    }
    /// The public JWK (`kty`, `crv`, `x`, `y` only) that goes in the proof header.
    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }
    /// The RFC 7638 thumbprint (`jkt`).
    pub fn jkt(&self) -> &str {
        &self.jkt
    }
    pub(crate) fn signer(&self) -> &EcdsaJwsSigner {
        &self.signer
    }
}

/// Ephemeral keys generated ahead of time on a background thread, so that key generation
/// stays off the request path. When the pool runs dry, `take` generates inline.
#[derive(Clone)]
pub struct EphemeralKeyPool {
    ready: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<EphemeralKey>>>,
}

impl fmt::Debug for EphemeralKeyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EphemeralKeyPool")
    }
}

impl EphemeralKeyPool {
    /// Starts a generator thread that keeps up to `capacity` keys ready. The thread ends when
    /// the last clone of the pool is dropped.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        std::thread::Builder::new()
            .name("ephemeral-keys".into())
            .spawn(move || {
                while let Ok(key) = EphemeralKey::generate() {
                    if tx.send(key).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning the key generator thread");
        Self {
            ready: Arc::new(std::sync::Mutex::new(rx)),
        }
    }

    /// A key nobody has used, from the pool when one is ready.
    pub fn take(&self) -> Result<EphemeralKey, KeyError> {
        let ready = self.ready.lock().ok().and_then(|rx| rx.try_recv().ok());
        match ready {
            Some(key) => Ok(key),
            None => EphemeralKey::generate(),
        }
    }
}
