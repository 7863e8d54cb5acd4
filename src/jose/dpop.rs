//! DPoP proofs (RFC 9449 section 4) as Singpass expects them.

use super::jws::{new_jti, sign_es256, B64Of32};
use super::{sha256_b64url, unix_seconds, EphemeralKey};
use rand::RngCore;
use serde::Serialize;
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

/// The proof header. Members in the order josekit used to write them, so that proofs stay
/// byte for byte what they were.
#[derive(Serialize)]
struct Header {
    typ: &'static str,
    jwk: PublicJwk,
    alg: &'static str,
}

/// The public P-256 key: `kty`, `crv`, `x`, `y`, nothing else.
#[derive(Serialize)]
struct PublicJwk {
    kty: &'static str,
    crv: &'static str,
    x: B64Of32,
    y: B64Of32,
}

#[derive(Serialize)]
struct Claims<'a> {
    jti: super::jws::B64Of16,
    htm: &'a str,
    htu: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<B64Of32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// Signs a new DPoP proof with `key`: header `typ=dpop+jwt`, `jwk` (public), `alg=ES256`;
/// claims `jti` (128 random bits), `htm`, `htu`, `iat`, `exp` = `iat` + 120 s, and `ath` and
/// `nonce` when given.
pub fn dpop_proof(
    key: &EphemeralKey,
    claims: ProofClaims<'_>,
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Result<String, josekit::JoseError> {
    // The uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
    let point = key.public_point();
    let header = Header {
        typ: "dpop+jwt",
        jwk: PublicJwk {
            kty: "EC",
            crv: "P-256",
            x: B64Of32::encode(&point[1..33]),
            y: B64Of32::encode(&point[33..65]),
        },
        alg: "ES256",
    };
    let iat = unix_seconds(now);
    let body = Claims {
        jti: new_jti(rng),
        htm: claims.htm,
        htu: claims.htu,
        iat,
        exp: iat + PROOF_LIFETIME.as_secs(),
        ath: claims.access_token.map(|token| {
            use sha2::Digest as _;
            B64Of32::encode(&sha2::Sha256::digest(token.as_bytes()))
        }),
        nonce: claims.nonce,
    };
    let (pair, rng) = key.ring_pair();
    sign_es256(&header, &body, pair, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jws::{JwsHeader, ES256};
    use josekit::jwt::{self, JwtPayload};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::Value;
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

    /// Header and claims are byte for byte what josekit wrote before signing moved to ring
    /// (the claims segment captured from that code for the same claims, time and RNG).
    #[test]
    fn signing_input_is_byte_for_byte_what_josekit_wrote() {
        let key = EphemeralKey::generate().unwrap();
        let claims = ProofClaims {
            htm: "GET",
            htu: "https://x.example/person/abc",
            access_token: Some("token-123"),
            nonce: Some("n-1"),
        };
        let proof = dpop_proof(&key, claims, now(), &mut StdRng::seed_from_u64(2)).unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        let jwk = key.public_jwk();
        let (x, y) = (jwk.parameter("x").unwrap(), jwk.parameter("y").unwrap());
        let header = format!(
            r#"{{"typ":"dpop+jwt","jwk":{{"kty":"EC","crv":"P-256","x":{x},"y":{y}}},"alg":"ES256"}}"#
        );
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(
            base64::Engine::decode(&b64, parts[0]).unwrap(),
            header.as_bytes()
        );
        assert_eq!(
            parts[1],
            "eyJqdGkiOiJINzdJRkxHTEhVdy1xbnpzUVFCLUJBIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly94LmV4\
             YW1wbGUvcGVyc29uL2FiYyIsImlhdCI6MTgwMDAwMDAwMCwiZXhwIjoxODAwMDAwMTIwLCJhdGgiOiJBMEdT\
             aEYzRWlkN0tLUi1mV3VDN2psUnl5WkVDQ19aTFByeHQ3Rm9kZmtjIiwibm9uY2UiOiJuLTEifQ"
        );
        verify(&proof, &key);
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
