//! Client assertions (`private_key_jwt`, RFC 7523) signed with the client's ES256 key.

use super::{random_jti, unix_seconds, SigningKey};
use josekit::jws::JwsHeader;
use josekit::jwt::{self, JwtPayload};
use rand::RngCore;
use serde_json::{json, Value};
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

/// Signs a new client assertion: header `alg=ES256`, `typ=JWT`, `kid`; claims `iss` = `sub` =
/// client_id, `aud`, `jti` (128 random bits), `iat`, `exp`, and `cnf.jkt` when given.
pub fn client_assertion(
    key: &SigningKey,
    claims: AssertionClaims<'_>,
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Result<String, josekit::JoseError> {
    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    header.set_key_id(key.kid());

    let iat = unix_seconds(now);
    let mut payload = JwtPayload::new();
    payload.set_issuer(claims.client_id);
    payload.set_subject(claims.client_id);
    payload.set_claim("aud", Some(Value::from(claims.aud)))?;
    payload.set_jwt_id(random_jti(rng));
    payload.set_claim("iat", Some(Value::from(iat)))?;
    payload.set_claim("exp", Some(Value::from(iat + claims.lifetime.as_secs())))?;
    if let Some(jkt) = claims.jkt {
        payload.set_claim("cnf", Some(json!({ "jkt": jkt })))?;
    }
    jwt::encode_with_signer(&payload, &header, key.signer())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{generate_client_jwks, ClientKeys};
    use josekit::jws::ES256;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

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
