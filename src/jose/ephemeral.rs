//! Ephemeral DPoP keys: one per v4 transaction or FAPI login, generated ahead of time on a
//! background thread so that key generation stays off the request path.

use super::keys::{short_reason, KeyError};
use super::thumbprint::thumbprint;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use josekit::jwk::Jwk;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::fmt;
use std::sync::Arc;

/// A short-lived P-256 key for DPoP: one per v4 transaction or FAPI login, never reused.
///
/// The key lives in ring (about 200 bytes, built in microseconds) rather than in an OpenSSL
/// object (about 4 KiB each, and 0.4 ms to build through josekit's DER path): a proxy holds
/// one per live token binding. Proofs are serialised and signed without josekit (`jws.rs`).
pub struct EphemeralKey {
    signer: RingEs256,
    /// base64url(SHA-256) of the public JWK: 43 ASCII characters, kept inline. The JWK itself
    /// is built when a proof needs it (a josekit `Jwk` is about 1.3 KB; a proxy keeps one key
    /// per live binding).
    jkt: [u8; 43],
    /// The private scalar, kept (32 bytes, wiped on drop) because ring cannot export a key
    /// pair: a shared binding store seals it (see [`EphemeralKey::export_secret`]).
    scalar: zeroize::Zeroizing<[u8; 32]>,
}

/// The length of [`EphemeralKey::export_secret`]: the 32-byte private scalar and the 65-byte
/// uncompressed public point.
const EPHEMERAL_SECRET_LEN: usize = 32 + 65;

impl fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralKey")
            .field("jkt", &self.jkt())
            .finish()
    }
}

impl EphemeralKey {
    /// Generates a new key pair.
    pub fn generate() -> Result<Self, KeyError> {
        let failed = |what: &str| KeyError::Invalid(format!("ephemeral key: {what}"));
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| failed("generation failed"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| failed("not a P-256 key"))?;
        let scalar = private_scalar(pkcs8.as_ref()).ok_or_else(|| failed("no private scalar"))?;
        Self::with_pair(pair, rng, scalar)
    }

    /// The key's secret half, to be sealed by a shared binding store: the 32-byte private
    /// scalar followed by the 65-byte public point. Wiped when dropped; never log it.
    pub fn export_secret(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(EPHEMERAL_SECRET_LEN));
        out.extend_from_slice(&self.scalar[..]);
        out.extend_from_slice(self.signer.pair.public_key().as_ref());
        out
    }

    /// Rebuilds a key from [`EphemeralKey::export_secret`]'s bytes (ring checks that the
    /// scalar and the point belong together).
    pub fn import_secret(secret: &[u8]) -> Result<Self, KeyError> {
        let failed = || KeyError::Invalid("ephemeral key: not an exported P-256 key".into());
        if secret.len() != EPHEMERAL_SECRET_LEN {
            return Err(failed());
        }
        let (scalar, point) = secret.split_at(32);
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar,
            point,
            &rng,
        )
        .map_err(|_| failed())?;
        let mut kept = zeroize::Zeroizing::new([0u8; 32]);
        kept.copy_from_slice(scalar);
        Self::with_pair(pair, rng, kept)
    }

    fn with_pair(
        pair: EcdsaKeyPair,
        rng: SystemRandom,
        scalar: zeroize::Zeroizing<[u8; 32]>,
    ) -> Result<Self, KeyError> {
        let failed = |what: &str| KeyError::Invalid(format!("ephemeral key: {what}"));
        let jkt = thumbprint(&public_jwk(&pair)?).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let jkt = jkt
            .as_bytes()
            .try_into()
            .map_err(|_| failed("a SHA-256 thumbprint is 43 characters"))?;
        Ok(Self {
            signer: RingEs256 {
                pair: Arc::new(pair),
                rng,
            },
            jkt,
            scalar,
        })
    }
    /// The public JWK (`kty`, `crv`, `x`, `y` only) that goes in the proof header, built from
    /// the key's 65-byte public point.
    pub fn public_jwk(&self) -> Jwk {
        public_jwk(&self.signer.pair).expect("a P-256 point makes a JWK")
    }
    /// The RFC 7638 thumbprint (`jkt`).
    pub fn jkt(&self) -> &str {
        std::str::from_utf8(&self.jkt).expect("base64url is ASCII")
    }
    /// The 65-byte uncompressed public point, 0x04 || x || y.
    pub(crate) fn public_point(&self) -> &[u8] {
        self.signer.pair.public_key().as_ref()
    }
    /// The ring key pair and the RNG its signatures draw on.
    pub(crate) fn ring_pair(&self) -> (&EcdsaKeyPair, &SystemRandom) {
        (&self.signer.pair, &self.signer.rng)
    }
}

/// The private scalar of ring's P-256 PKCS#8 document (PKCS#8 around a SEC1 ECPrivateKey),
/// read with the RustCrypto DER decoders.
fn private_scalar(pkcs8: &[u8]) -> Option<zeroize::Zeroizing<[u8; 32]>> {
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8).ok()?;
    let sec1 = sec1::EcPrivateKey::try_from(info.private_key).ok()?;
    let mut scalar = zeroize::Zeroizing::new([0u8; 32]);
    if sec1.private_key.len() != 32 {
        return None;
    }
    scalar.copy_from_slice(sec1.private_key);
    Some(scalar)
}

/// The public JWK of a key pair: the uncompressed point is 0x04 || x (32 bytes) || y (32 bytes).
fn public_jwk(pair: &EcdsaKeyPair) -> Result<Jwk, KeyError> {
    let point = pair.public_key().as_ref();
    let (x, y) = (&point[1..33], &point[33..65]);
    let mut public = Jwk::new("EC");
    public.set_curve("P-256");
    public
        .set_parameter("x", Some(URL_SAFE_NO_PAD.encode(x).into()))
        .map_err(|e| KeyError::Invalid(short_reason(&e)))?;
    public
        .set_parameter("y", Some(URL_SAFE_NO_PAD.encode(y).into()))
        .map_err(|e| KeyError::Invalid(short_reason(&e)))?;
    Ok(public)
}

/// ES256 signatures by ring, in JWS form (the 64-byte fixed r || s encoding).
struct RingEs256 {
    pair: Arc<EcdsaKeyPair>,
    rng: SystemRandom,
}

impl fmt::Debug for RingEs256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RingEs256")
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
