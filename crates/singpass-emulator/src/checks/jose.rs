//! JOSE checks shared by the client assertion and the DPoP proof: reading a compact JWS's
//! header before trusting it, typed claim access, the iat/exp window, the RFC 7638 thumbprint
//! and S256 hashing. Pure functions: the caller passes `now`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, JwsVerifier};
use josekit::jwt::JwtPayload;
use josekit::JoseError;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::errors::{Rejection, TokenKind};

/// How far `iat` may stray from the emulator's clock, either way.
pub(crate) const CLOCK_SKEW_SECS: i64 = 60;

/// Seconds since the Unix epoch by the real clock (the proxy signs with the real clock too).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// base64url(SHA-256(input)) without padding: PKCE S256 and DPoP `ath`.
pub(crate) fn s256(input: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()))
}

/// The required members of an EC public key, in the lexicographic order RFC 7638 demands
/// (serde writes struct fields in declaration order, with no whitespace).
#[derive(Serialize)]
struct EcThumbprintInput<'a> {
    crv: &'a str,
    kty: &'a str,
    x: &'a str,
    y: &'a str,
}

/// RFC 7638 thumbprint of an EC key; `None` when the key is not EC or lacks a member.
pub(crate) fn ec_thumbprint(jwk: &Jwk) -> Option<String> {
    if jwk.key_type() != "EC" {
        return None;
    }
    let member = |name: &str| jwk.parameter(name).and_then(|value| value.as_str());
    let input = EcThumbprintInput {
        crv: member("crv")?,
        kty: "EC",
        x: member("x")?,
        y: member("y")?,
    };
    let canonical = serde_json::to_vec(&input).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical)))
}

/// The protected header of a compact JWS, read (not yet trusted) to pick the key and check
/// `typ`/`alg`. `None` for anything that is not a three-part JWS with a JSON header.
pub(crate) fn peek_jws_header(compact: &str) -> Option<JwsHeader> {
    let header = josekit::jwt::decode_header(compact).ok()?;
    header
        .into_any()
        .downcast::<JwsHeader>()
        .ok()
        .map(|boxed| *boxed)
}

/// Verifies the signature and parses the claims. A bad signature is "Invalid JWS
/// Verification"; any other failure means the token itself is malformed.
pub(crate) fn verify_signed_claims(
    compact: &str,
    verifier: &dyn JwsVerifier,
    kind: TokenKind,
) -> Result<JwtPayload, Rejection> {
    match josekit::jwt::decode_with_verifier(compact, verifier) {
        Ok((payload, _header)) => Ok(payload),
        Err(JoseError::InvalidSignature(_)) => Err(Rejection::bad_signature()),
        Err(_) => Err(kind.malformed()),
    }
}

/// A string claim that must be present and non-empty.
pub(crate) fn string_claim<'a>(
    payload: &'a JwtPayload,
    name: &str,
    kind: TokenKind,
) -> Result<&'a str, Rejection> {
    match payload.claim(name) {
        None => Err(kind.missing(name)),
        Some(value) => match value.as_str() {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(kind.invalid(name)),
        },
    }
}

/// An integer claim (NumericDate). Floats and out-of-range numbers are invalid; josekit's own
/// accessors are avoided because they panic on absurd values.
pub(crate) fn integer_claim(
    payload: &JwtPayload,
    name: &str,
    kind: TokenKind,
) -> Result<i64, Rejection> {
    match payload.claim(name) {
        None => Err(kind.missing(name)),
        Some(value) => value.as_i64().ok_or_else(|| kind.invalid(name)),
    }
}

/// The validity window of a signed token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lifetime {
    pub(crate) iat: i64,
    pub(crate) exp: i64,
}

/// `iat` within [`CLOCK_SKEW_SECS`] of `now` either way; `exp` after `now` and at most
/// `max_lifetime_secs` after `iat`.
pub(crate) fn check_lifetime(
    payload: &JwtPayload,
    now: i64,
    max_lifetime_secs: i64,
    kind: TokenKind,
) -> Result<Lifetime, Rejection> {
    let iat = integer_claim(payload, "iat", kind)?;
    if now.saturating_sub(iat).abs() > CLOCK_SKEW_SECS {
        return Err(kind.invalid("iat"));
    }
    let exp = integer_claim(payload, "exp", kind)?;
    if exp <= now || exp > iat.saturating_add(max_lifetime_secs) {
        return Err(kind.invalid("exp"));
    }
    Ok(Lifetime { iat, exp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(claims: serde_json::Value) -> JwtPayload {
        let map = claims.as_object().cloned().unwrap_or_default();
        JwtPayload::from_map(map).expect("test claims are well-typed")
    }

    #[test]
    fn thumbprint_matches_the_rfc_9449_example_key() {
        // The proof key of RFC 9449 section 4.1, whose `jkt` the RFC gives in section 6.1.
        let jwk = Jwk::from_bytes(
            br#"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}"#,
        )
        .expect("valid jwk");
        assert_eq!(
            ec_thumbprint(&jwk).as_deref(),
            Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
    }

    #[test]
    fn thumbprint_needs_every_member() {
        let jwk = Jwk::from_bytes(br#"{"kty":"EC","crv":"P-256","x":"abc"}"#).expect("jwk");
        assert_eq!(ec_thumbprint(&jwk), None);
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn lifetime_window_is_enforced() {
        let kind = TokenKind::DpopProof;
        let now = 1_700_000_000;
        let good = payload(json!({"iat": now, "exp": now + 120}));
        assert_eq!(
            check_lifetime(&good, now, 120, kind),
            Ok(Lifetime {
                iat: now,
                exp: now + 120
            })
        );
        let stale = payload(json!({"iat": now - 300, "exp": now + 10}));
        assert_eq!(
            check_lifetime(&stale, now, 120, kind),
            Err(kind.invalid("iat"))
        );
        let future = payload(json!({"iat": now + 61, "exp": now + 100}));
        assert_eq!(
            check_lifetime(&future, now, 120, kind),
            Err(kind.invalid("iat"))
        );
        let long = payload(json!({"iat": now, "exp": now + 121}));
        assert_eq!(
            check_lifetime(&long, now, 120, kind),
            Err(kind.invalid("exp"))
        );
        let expired = payload(json!({"iat": now - 30, "exp": now}));
        assert_eq!(
            check_lifetime(&expired, now, 120, kind),
            Err(kind.invalid("exp"))
        );
        let float = payload(json!({"iat": 1.5e300, "exp": now}));
        assert_eq!(
            check_lifetime(&float, now, 120, kind),
            Err(kind.invalid("iat"))
        );
        let missing = payload(json!({"iat": now}));
        assert_eq!(
            check_lifetime(&missing, now, 120, kind),
            Err(kind.missing("exp"))
        );
    }
}
