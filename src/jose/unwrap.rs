//! Opening encrypted answers: a JWE (ECDH-ES+A128KW/A192KW/A256KW, A256CBC-HS512 or A256GCM)
//! to one of the client's enc keys, around a JWS signed by the upstream (ES256), checked
//! against the upstream's JWKS. Pure: the caller fetches the JWKS.

use super::EncryptionKey;
use josekit::jwe::JweDecrypter;
use josekit::jwk::JwkSet;
use josekit::jws::{JwsVerifier, ES256};
use std::collections::HashMap;

/// Why an answer could not be opened. Messages name the step, never the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    /// Not a compact JWE, or for an algorithm the client does not use.
    #[error("the answer is not a JWE the client can decrypt: {0}")]
    Decrypt(String),
    /// The inner JWS names a key the upstream JWKS does not hold (refetch the JWKS once).
    #[error("the answer is signed with key {0:?}, which is not in the upstream's JWKS")]
    UnknownSigningKey(Option<String>),
    /// The signature is wrong, or the inner content is not a JWS.
    #[error("the answer's signature does not verify: {0}")]
    Signature(String),
    /// The signed payload is not a JSON object.
    #[error("the answer's payload is not a JSON object")]
    Payload,
}

/// Decrypts a compact JWE with the key its `kid` names, or else each key in turn.
pub fn decrypt(jwe: &str, keys: &[EncryptionKey]) -> Result<Vec<u8>, UnwrapError> {
    let header = josekit::jwe::JweHeader::from_bytes(&header_bytes(jwe)?)
        .map_err(|e| UnwrapError::Decrypt(first_line(&e)))?;
    let alg = header.algorithm().unwrap_or_default().to_owned();
    let named: Vec<&EncryptionKey> = match header.key_id() {
        Some(kid) => keys.iter().filter(|k| k.kid() == kid).collect(),
        None => Vec::new(),
    };
    let candidates: Vec<&EncryptionKey> = if named.is_empty() {
        keys.iter().collect()
    } else {
        named
    };
    let mut last = format!("no enc key for alg `{alg}`");
    for key in candidates {
        let Some(decrypter) = key.decrypter(&alg) else {
            continue;
        };
        let chosen: &dyn JweDecrypter = decrypter;
        match josekit::jwe::deserialize_compact(jwe, chosen) {
            Ok((plain, _)) => return Ok(plain),
            Err(e) => last = first_line(&e),
        }
    }
    Err(UnwrapError::Decrypt(last))
}

/// Verifies a compact JWS against `jwks` (by `kid`; ES256) and returns its JSON payload.
pub fn verify(
    jws: &[u8],
    jwks: &JwkSet,
) -> Result<serde_json::Map<String, serde_json::Value>, UnwrapError> {
    let text = std::str::from_utf8(jws).map_err(|_| UnwrapError::Signature("not text".into()))?;
    let header = josekit::jws::JwsHeader::from_bytes(
        &header_bytes(text).map_err(|e| UnwrapError::Signature(e.to_string()))?,
    )
    .map_err(|e| UnwrapError::Signature(first_line(&e)))?;
    if header.algorithm() != Some("ES256") {
        return Err(UnwrapError::Signature(format!(
            "alg {:?}, expected ES256",
            header.algorithm()
        )));
    }
    let verifiers: HashMap<Option<&str>, Box<dyn JwsVerifier>> = jwks
        .keys()
        .into_iter()
        .filter(|k| k.key_use().is_none_or(|u| u == "sig"))
        .filter_map(|k| {
            ES256
                .verifier_from_jwk(k)
                .ok()
                .map(|v| (k.key_id(), Box::new(v) as Box<dyn JwsVerifier>))
        })
        .collect();
    let verifier = match header.key_id() {
        Some(kid) => verifiers.get(&Some(kid)),
        None if verifiers.len() == 1 => verifiers.values().next(),
        None => None,
    }
    .ok_or_else(|| UnwrapError::UnknownSigningKey(header.key_id().map(str::to_owned)))?;
    let (payload, _) = josekit::jws::deserialize_compact(text, verifier.as_ref())
        .map_err(|e| UnwrapError::Signature(first_line(&e)))?;
    match serde_json::from_slice(&payload) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(UnwrapError::Payload),
    }
}

fn header_bytes(compact: &str) -> Result<Vec<u8>, UnwrapError> {
    use base64::Engine as _;
    let first = compact.split('.').next().unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim())
        .map_err(|_| UnwrapError::Decrypt("not a compact serialization".into()))
}

fn first_line(e: &josekit::JoseError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests;
