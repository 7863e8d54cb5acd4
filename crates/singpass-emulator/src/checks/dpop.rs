//! DPoP proof verification (RFC 9449 as Singpass applies it): exactly one `DPoP` header, a
//! `dpop+jwt` ES256 JWS signed by the public P-256 key it embeds, `htm`/`htu` naming this very
//! request, a short life, a never-seen `jti`, `ath` exactly when an access token is sent, and
//! (FAPI only) the server's current `nonce` while it requires one.

use http::HeaderMap;
use josekit::jwk::Jwk;
use josekit::jws::ES256;

use crate::checks::jose::{
    check_lifetime, ec_thumbprint, peek_jws_header, s256, string_claim, verify_signed_claims,
};
use crate::checks::nonce::DpopNonces;
use crate::errors::{Rejection, TokenKind};
use crate::state::ReplayCache;

const KIND: TokenKind = TokenKind::DpopProof;

/// Singpass asks for `exp` at most this long after `iat`.
const MAX_PROOF_LIFETIME_SECS: i64 = 120;

/// JWK members that only a private key has (EC `d`, and RSA's and symmetric keys' for good
/// measure): a proof carrying any of them leaks its key and is refused.
const PRIVATE_KEY_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// What the proof must say to be valid for the request being served.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProofExpectation<'a> {
    /// The request's method.
    pub(crate) htm: &'a str,
    /// The endpoint's URL as the client must see it, without query.
    pub(crate) htu: &'a str,
    /// The access token sent with the request, whose hash `ath` must carry; `None` at /token,
    /// where `ath` must be absent.
    pub(crate) access_token: Option<&'a str>,
    /// The server's nonces (FAPI); `None` where nonces are not used (Myinfo v4), and then
    /// a `nonce` claim is ignored.
    pub(crate) nonces: Option<&'a DpopNonces>,
}

/// A proof that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof's key: what `cnf.jkt` must name.
    pub(crate) jkt: String,
}

/// Checks the request's `DPoP` header. `observed_jti` receives the proof's `jti` as soon as
/// its signature has verified, so the request log shows it even when a later check fails.
pub(crate) fn verify_dpop_proof(
    headers: &HeaderMap,
    expected: ProofExpectation<'_>,
    seen_jtis: &ReplayCache,
    now: i64,
    observed_jti: &mut Option<String>,
) -> Result<VerifiedProof, Rejection> {
    let proof = single_proof_header(headers)?;
    let header = peek_jws_header(proof).ok_or_else(|| KIND.malformed())?;
    if header.token_type() != Some("dpop+jwt") || header.algorithm() != Some("ES256") {
        return Err(KIND.malformed());
    }
    let jwk = embedded_public_key(header.claim("jwk"))?;
    let verifier = ES256
        .verifier_from_jwk(&jwk)
        .map_err(|_| KIND.invalid("jwk"))?;
    let claims = verify_signed_claims(proof, &verifier, KIND)?;

    let jti = string_claim(&claims, "jti", KIND)?;
    *observed_jti = Some(jti.to_owned());
    if string_claim(&claims, "htm", KIND)? != expected.htm {
        return Err(KIND.invalid("htm"));
    }
    if string_claim(&claims, "htu", KIND)? != expected.htu {
        return Err(KIND.invalid("htu"));
    }
    let lifetime = check_lifetime(&claims, now, MAX_PROOF_LIFETIME_SECS, KIND)?;
    match expected.access_token {
        Some(token) => {
            if string_claim(&claims, "ath", KIND)? != s256(token) {
                return Err(KIND.invalid("ath"));
            }
        }
        None => {
            if claims.claim("ath").is_some() {
                return Err(KIND.invalid("ath"));
            }
        }
    }
    // Checked before the jti is remembered, so a retry with the nonce is a fresh proof
    // anyway but nothing else about this one is spent.
    if let Some(nonces) = expected.nonces {
        nonces.check(claims.claim("nonce"))?;
    }
    if !seen_jtis.first_use(jti, lifetime.exp, now) {
        return Err(KIND.replayed());
    }
    let jkt = ec_thumbprint(&jwk).ok_or_else(|| KIND.invalid("jwk"))?;
    Ok(VerifiedProof { jkt })
}

/// Exactly one `DPoP` header, readable as text.
fn single_proof_header(headers: &HeaderMap) -> Result<&str, Rejection> {
    let mut values = headers.get_all("dpop").iter();
    let first = values.next().ok_or_else(Rejection::missing_proof)?;
    if values.next().is_some() {
        return Err(KIND.malformed());
    }
    let proof = first.to_str().map_err(|_| KIND.malformed())?.trim();
    if proof.is_empty() {
        return Err(Rejection::missing_proof());
    }
    Ok(proof)
}

/// The header's `jwk`: an EC P-256 public key, and nothing private.
fn embedded_public_key(value: Option<&serde_json::Value>) -> Result<Jwk, Rejection> {
    let object = match value {
        None => return Err(KIND.missing("jwk")),
        Some(serde_json::Value::Object(object)) => object,
        Some(_) => return Err(KIND.invalid("jwk")),
    };
    if PRIVATE_KEY_MEMBERS
        .iter()
        .any(|member| object.contains_key(*member))
    {
        return Err(KIND.invalid("jwk"));
    }
    let jwk = Jwk::from_map(object.clone()).map_err(|_| KIND.invalid("jwk"))?;
    if jwk.key_type() != "EC" || jwk.curve() != Some("P-256") {
        return Err(KIND.invalid("jwk"));
    }
    Ok(jwk)
}
