//! JOSE for the proxy: keys, RFC 7638 thumbprints, DPoP proofs and client assertions.
//!
//! Everything here is pure: no I/O, `now` is passed in and randomness comes from the caller's
//! RNG, so that every artefact can be checked member by member in tests.

mod assertion;
mod dpop;
mod ephemeral;
mod jws;
mod keys;
mod thumbprint;
mod unwrap;

pub use assertion::{client_assertion, AssertionClaims, CLIENT_ASSERTION_TYPE};
pub use dpop::{access_token_hash, dpop_proof, ProofClaims, PROOF_LIFETIME};
pub use ephemeral::{EphemeralKey, EphemeralKeyPool};
pub use keys::EncryptionKey;
pub use keys::{generate_client_jwks, ClientKeys, KeyError, SigningKey};
pub use thumbprint::{thumbprint, ThumbprintError};
pub use unwrap::{decrypt, verify, UnwrapError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh 128-bit identifier, base64url without padding (22 characters).
pub fn random_jti(rng: &mut dyn RngCore) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whole seconds since the Unix epoch (JWT `NumericDate`); times before 1970 count as 0.
pub fn unix_seconds(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// base64url(SHA-256(input)) without padding: PKCE S256, `ath`, thumbprints.
pub fn sha256_b64url(input: &[u8]) -> String {
    use sha2::Digest as _;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(input))
}
