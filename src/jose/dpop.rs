//! DPoP proofs (RFC 9449 section 4) as Singpass expects them.

use super::{random_jti, sha256_b64url, unix_seconds, EphemeralKey};
use josekit::jws::JwsHeader;
use josekit::jwt::{self, JwtPayload};
use rand::RngCore;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// `exp` - `iat` of every proof: Singpass asks for an `exp` at most 120 s after `iat`.
pub const PROOF_LIFETIME: Duration = Duration::from_secs(120);

/// What one proof is bound to.
#[derive(Clone, Copy, Debug)]
pub struct ProofClaims<'a> {
    /// The HTTP method of the upstream request.
    pub htm: &'a str,
    /// The upstream URL without query or fragment.
    pub htu: &'a str,
    /// The access token sent with the request, if any (becomes `ath`).
    pub access_token: Option<&'a str>,
    /// The server's latest `DPoP-Nonce`, if it gave one.
    pub nonce: Option<&'a str>,
}

/// `ath`: base64url(SHA-256(access token)).
pub fn access_token_hash(access_token: &str) -> String {
    sha256_b64url(access_token.as_bytes())
}

/// Signs a new DPoP proof with `key`: header `typ=dpop+jwt`, `alg=ES256`, `jwk` (public);
/// claims `jti` (128 random bits), `htm`, `htu`, `iat`, `exp` = `iat` + 120 s, and `ath` and
/// `nonce` when given.
pub fn dpop_proof(
    key: &EphemeralKey,
    claims: ProofClaims<'_>,
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Result<String, josekit::JoseError> {
    let mut header = JwsHeader::new();
    header.set_token_type("dpop+jwt");
    header.set_jwk(key.public_jwk());

    let iat = unix_seconds(now);
    let mut payload = JwtPayload::new();
    payload.set_jwt_id(random_jti(rng));
    payload.set_claim("htm", Some(Value::from(claims.htm)))?;
    payload.set_claim("htu", Some(Value::from(claims.htu)))?;
    payload.set_claim("iat", Some(Value::from(iat)))?;
    payload.set_claim("exp", Some(Value::from(iat + PROOF_LIFETIME.as_secs())))?;
    if let Some(token) = claims.access_token {
        payload.set_claim("ath", Some(Value::from(access_token_hash(token))))?;
    }
    if let Some(nonce) = claims.nonce {
        payload.set_claim("nonce", Some(Value::from(nonce)))?;
    }
    jwt::encode_with_signer(&payload, &header, key.signer())
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jws::ES256;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use sha2::Digest as _;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn verify(proof: &str, key: &EphemeralKey) -> (JwsHeader, JwtPayload) {
        let verifier = ES256.verifier_from_jwk(&key.public_jwk()).unwrap();
        let (payload, header) = jwt::decode_with_verifier(proof, &verifier).unwrap();
        (header, payload)
    }

    #[test]
    fn proof_has_every_member_singpass_checks() {
        let key = EphemeralKey::generate().unwrap();
        let claims = ProofClaims {
            htm: "POST",
            htu: "https://test.api.myinfo.gov.sg/com/v4/token",
            access_token: None,
            nonce: None,
        };
        let proof = dpop_proof(&key, claims, now(), &mut StdRng::seed_from_u64(1)).unwrap();
        let (header, payload) = verify(&proof, &key);

        assert_eq!(header.token_type(), Some("dpop+jwt"));
        assert_eq!(header.algorithm(), Some("ES256"));
        let jwk = header.jwk().unwrap();
        assert_eq!(jwk.key_type(), "EC");
        assert_eq!(jwk.curve(), Some("P-256"));
        assert!(jwk.parameter("d").is_none(), "private member leaked");
        assert_eq!(jwk.parameter("x"), key.public_jwk().parameter("x"));

        assert_eq!(payload.claim("htm"), Some(&Value::from("POST")));
        assert_eq!(
            payload.claim("htu"),
            Some(&Value::from("https://test.api.myinfo.gov.sg/com/v4/token"))
        );
        assert_eq!(payload.claim("iat"), Some(&Value::from(1_800_000_000u64)));
        assert_eq!(payload.claim("exp"), Some(&Value::from(1_800_000_120u64)));
        assert!(payload.claim("ath").is_none());
        assert!(payload.claim("nonce").is_none());
        // 128 random bits, base64url: 22 characters.
        assert_eq!(payload.jwt_id().unwrap().len(), 22);
    }

    #[test]
    fn ath_and_nonce_when_given() {
        let key = EphemeralKey::generate().unwrap();
        let claims = ProofClaims {
            htm: "GET",
            htu: "https://x.example/person/abc",
            access_token: Some("token-123"),
            nonce: Some("n-1"),
        };
        let proof = dpop_proof(&key, claims, now(), &mut StdRng::seed_from_u64(2)).unwrap();
        let (_, payload) = verify(&proof, &key);
        let expected_ath = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            sha2::Sha256::digest(b"token-123"),
        );
        assert_eq!(payload.claim("ath"), Some(&Value::from(expected_ath)));
        assert_eq!(payload.claim("nonce"), Some(&Value::from("n-1")));
        assert_eq!(payload.claim("htm"), Some(&Value::from("GET")));
    }

    #[test]
    fn each_proof_has_a_new_jti_and_a_foreign_key_does_not_verify() {
        let key = EphemeralKey::generate().unwrap();
        let other = EphemeralKey::generate().unwrap();
        let claims = ProofClaims {
            htm: "GET",
            htu: "https://x.example/r",
            access_token: None,
            nonce: None,
        };
        let mut rng = StdRng::seed_from_u64(3);
        let a = dpop_proof(&key, claims, now(), &mut rng).unwrap();
        let b = dpop_proof(&key, claims, now(), &mut rng).unwrap();
        assert_ne!(verify(&a, &key).1.jwt_id(), verify(&b, &key).1.jwt_id());
        let verifier = ES256.verifier_from_jwk(&other.public_jwk()).unwrap();
        assert!(jwt::decode_with_verifier(&a, &verifier).is_err());
    }
}
