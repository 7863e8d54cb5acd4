//! Signed-then-encrypted answers to the client: a JWS by the emulator's key inside a compact
//! JWE (ECDH-ES+A256KW) to the client's registered `use=enc` key. Myinfo v4's person uses
//! A256GCM; FAPI's id_token and userinfo use A256CBC-HS512, as Singpass documents.

use josekit::jwe::{JweHeader, ECDH_ES_A256KW};
use josekit::jwk::{Jwk, JwkSet};
use serde_json::Value;

use crate::signing::EmulatorKey;

/// Content encryption of FAPI's id_token and userinfo JWEs.
pub(crate) const FAPI_CONTENT_ENCRYPTION: &str = "A256CBC-HS512";

/// Why an answer could not be sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SealError {
    /// The client's JWKS holds no usable `use=enc` P-256 key with a `kid`.
    NoEncryptionKey,
    /// Signing or encrypting failed (not expected with a usable key).
    Jose,
}

/// The client's encryption key: EC P-256, `use=enc`, for ECDH-ES+A256KW (or no `alg`).
pub(crate) fn client_encryption_key(jwks: &JwkSet) -> Option<&Jwk> {
    jwks.keys().into_iter().find(|jwk| {
        jwk.key_use() == Some("enc")
            && jwk.key_type() == "EC"
            && jwk.curve() == Some("P-256")
            && matches!(jwk.algorithm(), None | Some("ECDH-ES+A256KW"))
            && jwk.key_id().is_some()
    })
}

/// Signs `payload` (JSON) with the emulator's key, then encrypts that JWS to the client with
/// content encryption `enc`; the JWE names the client key's `kid` and `cty` "JWT".
pub(crate) fn seal_for_client(
    key: &EmulatorKey,
    payload: &Value,
    client_jwks: &JwkSet,
    enc: &str,
) -> Result<String, SealError> {
    let enc_key = client_encryption_key(client_jwks).ok_or(SealError::NoEncryptionKey)?;
    let encrypter = ECDH_ES_A256KW
        .encrypter_from_jwk(enc_key)
        .map_err(|_| SealError::NoEncryptionKey)?;
    let jws = key
        .sign_payload(payload.to_string().as_bytes())
        .map_err(|_| SealError::Jose)?;
    let mut header = JweHeader::new();
    header.set_content_encryption(enc);
    header.set_content_type("JWT");
    if let Some(kid) = enc_key.key_id() {
        header.set_key_id(kid);
    }
    josekit::jwe::serialize_compact(jws.as_bytes(), &header, &encrypter)
        .map_err(|_| SealError::Jose)
}
