//! Client assertion verification (private_key_jwt, RFC 7523): an ES256 JWT signed by the
//! client's registered `use=sig` key, `iss` = `sub` = client_id, `aud` exactly as expected, a
//! bounded life and a never-seen `jti`. Myinfo v4 flavour: `aud` = the token URL, at most 300 s,
//! and `cnf.jkt` naming the DPoP key. FAPI and CIBA flavour: `aud` = the issuer, at most 120 s,
//! no `cnf` required (one present is ignored).

use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::ES256;
use serde_json::Value;

use crate::checks::jose::{check_lifetime, peek_jws_header, string_claim, verify_signed_claims};
use crate::errors::{Rejection, TokenKind};
use crate::state::ReplayCache;

const KIND: TokenKind = TokenKind::ClientAssertion;

/// Myinfo v4 allows `exp` at most this long after `iat`.
pub(crate) const V4_MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// FAPI 2.0 and CIBA allow `exp` at most this long after `iat`.
pub(crate) const FAPI_MAX_ASSERTION_LIFETIME_SECS: i64 = 120;

/// What the assertion must say for this token request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AssertionExpectation<'a> {
    pub(crate) client_id: &'a str,
    /// The token URL (v4) or the issuer (FAPI, CIBA), exactly.
    pub(crate) audience: &'a str,
    /// The client's registered public keys.
    pub(crate) client_jwks: &'a JwkSet,
    /// Thumbprint of the key that signed this request's DPoP proof, which `cnf.jkt` must
    /// name (v4); `None` where the assertion carries no key binding (FAPI, CIBA).
    pub(crate) proof_jkt: Option<&'a str>,
    /// How long after `iat` `exp` may be.
    pub(crate) max_lifetime_secs: i64,
}

/// Checks a client assertion. `observed_jti` receives its `jti` once the signature verified.
pub(crate) fn verify_client_assertion(
    assertion: &str,
    expected: AssertionExpectation<'_>,
    seen_jtis: &ReplayCache,
    now: i64,
    observed_jti: &mut Option<String>,
) -> Result<(), Rejection> {
    let header = peek_jws_header(assertion).ok_or_else(|| KIND.malformed())?;
    if header.algorithm() != Some("ES256") || header.token_type() != Some("JWT") {
        return Err(KIND.malformed());
    }
    let kid = header.key_id().ok_or_else(|| KIND.malformed())?;
    let key =
        registered_signing_key(expected.client_jwks, kid).ok_or_else(Rejection::bad_signature)?;
    let verifier = ES256
        .verifier_from_jwk(key)
        .map_err(|_| Rejection::bad_signature())?;
    let claims = verify_signed_claims(assertion, &verifier, KIND)?;

    let jti = string_claim(&claims, "jti", KIND)?;
    *observed_jti = Some(jti.to_owned());
    let lifetime = check_lifetime(&claims, now, expected.max_lifetime_secs, KIND)?;
    if !seen_jtis.first_use(jti, lifetime.exp, now) {
        return Err(KIND.replayed());
    }
    // "Invalid iss"/"Invalid aud" are extrapolated from the table's "Invalid sub" wording.
    if string_claim(&claims, "iss", KIND)? != expected.client_id {
        return Err(KIND.invalid("iss"));
    }
    if string_claim(&claims, "sub", KIND)? != expected.client_id {
        return Err(KIND.invalid("sub"));
    }
    match claims.claim("aud") {
        None => return Err(KIND.missing("aud")),
        Some(aud) if !names_only(aud, expected.audience) => return Err(KIND.invalid("aud")),
        Some(_) => {}
    }
    let Some(proof_jkt) = expected.proof_jkt else {
        return Ok(());
    };
    // The table files `cnf.jkt` problems under the DPoP proof (401), not the assertion.
    let jkt = claims.claim("cnf").map(|cnf| cnf.get("jkt"));
    match jkt {
        None | Some(None) => Err(TokenKind::DpopProof.missing("jkt")),
        Some(Some(Value::String(jkt))) if jkt == proof_jkt => Ok(()),
        Some(Some(_)) => Err(Rejection::wrong_key_binding()),
    }
}

/// The client's `use=sig` EC key with this `kid`.
fn registered_signing_key<'a>(jwks: &'a JwkSet, kid: &str) -> Option<&'a Jwk> {
    jwks.get(kid)
        .into_iter()
        .find(|jwk| jwk.key_use() == Some("sig") && jwk.key_type() == "EC")
}

/// `aud` as a string equal to `audience`, or an array holding exactly that one string.
fn names_only(aud: &Value, audience: &str) -> bool {
    match aud {
        Value::String(single) => single == audience,
        Value::Array(many) => {
            matches!(many.as_slice(), [Value::String(single)] if single == audience)
        }
        _ => false,
    }
}
