//! Client assertions (`private_key_jwt`, RFC 7523) signed with the client's ES256 key.

use super::jws::{new_jti, sign_es256, B64Of16};
use super::{unix_seconds, SigningKey};
use rand::RngCore;
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// The `client_assertion_type` form value.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What one assertion says.
#[derive(Clone, Copy, Debug)]
pub struct AssertionClaims<'a> {
    /// `iss` and `sub`.
    pub client_id: &'a str,
    /// The audience: the v4 token URL, or the FAPI issuer.
    pub aud: &'a str,
    /// `cnf.jkt` (Myinfo v4 binds the assertion to the DPoP key).
    pub jkt: Option<&'a str>,
    /// `exp` - `iat`.
    pub lifetime: Duration,
}

/// The assertion header. Members in the order josekit used to write them, so that assertions
/// stay byte for byte what they were.
#[derive(Serialize)]
struct Header<'a> {
    typ: &'static str,
    kid: &'a str,
    alg: &'static str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: B64Of16,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

#[derive(Serialize)]
struct Confirmation<'a> {
    jkt: &'a str,
}

/// Signs a new client assertion: header `typ=JWT`, `kid`, `alg=ES256`; claims `iss` = `sub` =
/// client_id, `aud`, `jti` (128 random bits), `iat`, `exp`, and `cnf.jkt` when given.
pub fn client_assertion(
    key: &SigningKey,
    claims: AssertionClaims<'_>,
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Result<String, josekit::JoseError> {
    let header = Header {
        typ: "JWT",
        kid: key.kid(),
        alg: "ES256",
    };
    let iat = unix_seconds(now);
    let body = Claims {
        iss: claims.client_id,
        sub: claims.client_id,
        aud: claims.aud,
        jti: new_jti(rng),
        iat,
        exp: iat + claims.lifetime.as_secs(),
        cnf: claims.jkt.map(|jkt| Confirmation { jkt }),
    };
    let (pair, rng) = key.ring_pair();
    sign_es256(&header, &body, pair, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{generate_client_jwks, ClientKeys};
    use josekit::jws::ES256;
    use josekit::jwt;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::{json, Value};

    #[test]
    fn assertion_has_every_member_singpass_checks() {
        let (private, public) = generate_client_jwks().unwrap();
        let keys = ClientKeys::from_private_jwks(private.to_string().as_bytes()).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let claims = AssertionClaims {
            client_id: "STG-CLIENT",
            aud: "https://test.api.myinfo.gov.sg/com/v4/token",
            jkt: Some("thumb"),
            lifetime: Duration::from_secs(120),
        };
        let jwt =
            client_assertion(keys.signing(), claims, now, &mut StdRng::seed_from_u64(9)).unwrap();

        // Verify with the PUBLIC JWKS that keygen wrote, as Singpass would.
        let sig_jwk = public["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["use"] == "sig")
            .unwrap();
        let jwk = josekit::jwk::Jwk::from_map(sig_jwk.as_object().unwrap().clone()).unwrap();
        let verifier = ES256.verifier_from_jwk(&jwk).unwrap();
        let (payload, header) = jwt::decode_with_verifier(&jwt, &verifier).unwrap();

        assert_eq!(header.algorithm(), Some("ES256"));
        assert_eq!(header.token_type(), Some("JWT"));
        assert_eq!(header.key_id(), Some(keys.signing().kid()));
        assert!(header.jwk().is_none());
        assert_eq!(payload.issuer(), Some("STG-CLIENT"));
        assert_eq!(payload.subject(), Some("STG-CLIENT"));
        assert_eq!(
            payload.claim("aud"),
            Some(&Value::from("https://test.api.myinfo.gov.sg/com/v4/token"))
        );
        assert_eq!(payload.claim("iat"), Some(&Value::from(1_800_000_000u64)));
        assert_eq!(payload.claim("exp"), Some(&Value::from(1_800_000_120u64)));
        assert_eq!(payload.claim("cnf"), Some(&json!({"jkt": "thumb"})));
        assert_eq!(payload.jwt_id().unwrap().len(), 22);
    }

    /// A fixed client key (made by `generate_client_jwks` for this test only).
    const FIXED_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","d":"26oB_4db5MxxxFcCw20GmZq1mBH0MXbred873d0L3VA","x":"J4cg55wXc2e51HNbvPeTCwLRpzaxeRq652BK9_16aXw","y":"xESQA9syVGtbEwneGEcc2jalYAJ0Av1CvSqfGeaFK5M","kid":"sig-bUBXPR4BAf6fbsx-","use":"sig","alg":"ES256"},{"kty":"EC","crv":"P-256","d":"BTQFPVL6iuI_FT0xzTfQ-Xpqg8PcxB9K7Zqhwl70TAw","x":"gT71C7qONMRg8MKxVAPdF088xylwSnR2zGCHzvNUHs0","y":"dKNOV7N8jxDscPFk8qMixHZNBl77saugSJngj--45Og","kid":"enc-Kn1GU7x96dJCYko-","use":"enc","alg":"ECDH-ES+A256KW"}]}"#;

    /// The header and claims segments are byte for byte what josekit wrote for the same key,
    /// claims, time and RNG before signing moved to ring (captured from that code).
    #[test]
    fn signing_input_is_byte_for_byte_what_josekit_wrote() {
        let keys = ClientKeys::from_private_jwks(FIXED_JWKS.as_bytes()).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let claims = AssertionClaims {
            client_id: "STG-CLIENT",
            aud: "https://test.api.myinfo.gov.sg/com/v4/token",
            jkt: Some("thumb"),
            lifetime: Duration::from_secs(120),
        };
        let jwt =
            client_assertion(keys.signing(), claims, now, &mut StdRng::seed_from_u64(9)).unwrap();
        let (input, _) = jwt.rsplit_once('.').unwrap();
        assert_eq!(
            input,
            "eyJ0eXAiOiJKV1QiLCJraWQiOiJzaWctYlVCWFBSNEJBZjZmYnN4LSIsImFsZyI6IkVTMjU2In0.\
             eyJpc3MiOiJTVEctQ0xJRU5UIiwic3ViIjoiU1RHLUNMSUVOVCIsImF1ZCI6Imh0dHBzOi8vdGVzdC5hcGku\
             bXlpbmZvLmdvdi5zZy9jb20vdjQvdG9rZW4iLCJqdGkiOiJoNmwzbDBpSWphWFphN3ZPQkJ0UkNRIiwiaWF0\
             IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDAxMjAsImNuZiI6eyJqa3QiOiJ0aHVtYiJ9fQ"
        );
        // And the signature verifies with the published key.
        let verifier = ES256
            .verifier_from_jwk(keys.signing().public_jwk())
            .unwrap();
        jwt::decode_with_verifier(&jwt, &verifier).unwrap();
    }

    #[test]
    fn a_key_whose_halves_do_not_match_is_refused_at_load() {
        // `x` of the enc key in place of the sig key's: ring refuses the pair.
        let wrong = FIXED_JWKS.replacen(
            "J4cg55wXc2e51HNbvPeTCwLRpzaxeRq652BK9_16aXw",
            "gT71C7qONMRg8MKxVAPdF088xylwSnR2zGCHzvNUHs0",
            1,
        );
        let err = ClientKeys::from_private_jwks(wrong.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("sig-bUBXPR4BAf6fbsx-"), "{err}");
    }

    #[test]
    fn no_cnf_without_jkt() {
        let (private, _) = generate_client_jwks().unwrap();
        let keys = ClientKeys::from_private_jwks(private.to_string().as_bytes()).unwrap();
        let claims = AssertionClaims {
            client_id: "c",
            aud: "https://issuer.example/fapi",
            jkt: None,
            lifetime: Duration::from_secs(60),
        };
        let jwt = client_assertion(
            keys.signing(),
            claims,
            SystemTime::now(),
            &mut StdRng::seed_from_u64(1),
        )
        .unwrap();
        let verifier = ES256
            .verifier_from_jwk(keys.signing().public_jwk())
            .unwrap();
        let (payload, _) = jwt::decode_with_verifier(&jwt, &verifier).unwrap();
        assert!(payload.claim("cnf").is_none());
    }
}
