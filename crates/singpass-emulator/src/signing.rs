//! The emulator's own ES256 key, standing in for Myinfo's and Singpass's: it signs the v4
//! access tokens it issues (and verifies them when they come back), and the person, id_token
//! and userinfo JWS inside their JWEs.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::alg::ecdsa::{EcdsaJwsSigner, EcdsaJwsVerifier};
use josekit::jws::{JwsHeader, ES256};
use josekit::jwt::JwtPayload;
use josekit::{JoseError, Value};
use rand::RngCore;

use crate::errors::Rejection;

/// A fresh random identifier: 128 bits, base64url.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The signing key of one emulator instance, generated at start.
pub(crate) struct EmulatorKey {
    signer: EcdsaJwsSigner,
    verifier: EcdsaJwsVerifier,
    public_jwk: Jwk,
}

impl fmt::Debug for EmulatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorKey")
            .field("kid", &self.public_jwk.key_id())
            .finish_non_exhaustive()
    }
}

/// What an access token grants, as read back from a token this emulator signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccessGrant {
    pub(crate) sub: String,
    pub(crate) scope: String,
    /// Thumbprint of the DPoP key the token is bound to (`cnf.jkt`).
    pub(crate) jkt: String,
    pub(crate) jti: String,
    pub(crate) exp: i64,
}

impl EmulatorKey {
    pub(crate) fn generate() -> Result<Self, JoseError> {
        let key_pair = ES256.generate_key_pair()?;
        let kid = format!("myinfo-emulator-{}", random_id());
        let mut private_jwk = key_pair.to_jwk_private_key();
        private_jwk.set_key_id(kid.clone());
        let mut public_jwk = key_pair.to_jwk_public_key();
        public_jwk.set_key_id(kid.clone());
        public_jwk.set_key_use("sig");
        public_jwk.set_algorithm("ES256");
        let signer = ES256.signer_from_jwk(&private_jwk)?;
        let mut verifier = ES256.verifier_from_jwk(&public_jwk)?;
        verifier.set_key_id(kid);
        Ok(EmulatorKey {
            signer,
            verifier,
            public_jwk,
        })
    }

    pub(crate) fn public_jwks(&self) -> JwkSet {
        let mut set = JwkSet::new();
        set.push_key(self.public_jwk.clone());
        set
    }

    /// Signs an access token bound to `grant.jkt`, issued at `now` and expiring at `grant.exp`.
    pub(crate) fn issue_access_token(
        &self,
        grant: &AccessGrant,
        audience: &str,
        now: i64,
    ) -> Result<String, JoseError> {
        let mut payload = JwtPayload::new();
        payload.set_issuer(audience);
        payload.set_subject(&grant.sub);
        payload.set_audience(vec![audience]);
        payload.set_jwt_id(&grant.jti);
        payload.set_claim("iat", Some(Value::from(now)))?;
        payload.set_claim("exp", Some(Value::from(grant.exp)))?;
        payload.set_claim("scope", Some(Value::from(grant.scope.as_str())))?;
        payload.set_claim("cnf", Some(serde_json::json!({ "jkt": grant.jkt })))?;
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        josekit::jwt::encode_with_signer(&payload, &header, &self.signer)
    }

    /// Reads back a token this emulator issued: its own signature, not expired, issued for
    /// `audience`. Anything else is "DPoP-bound access_token invalid" (403).
    pub(crate) fn verify_access_token(
        &self,
        token: &str,
        audience: &str,
        now: i64,
    ) -> Result<AccessGrant, Rejection> {
        let (payload, _header) = josekit::jwt::decode_with_verifier(token, &self.verifier)
            .map_err(|_| Rejection::invalid_access_token())?;
        let text = |name: &str| {
            payload
                .claim(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(Rejection::invalid_access_token)
        };
        let exp = payload
            .claim("exp")
            .and_then(Value::as_i64)
            .ok_or_else(Rejection::invalid_access_token)?;
        if exp <= now {
            return Err(Rejection::invalid_access_token());
        }
        if payload.audience() != Some(vec![audience]) {
            return Err(Rejection::forbidden(
                "DPoP-bound access_token aud doesn't match with requested url",
            ));
        }
        let jkt = payload
            .claim("cnf")
            .and_then(|cnf| cnf.get("jkt"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(Rejection::invalid_access_token)?;
        Ok(AccessGrant {
            sub: text("sub")?,
            scope: text("scope")?,
            jkt,
            jti: text("jti")?,
            exp,
        })
    }

    /// A JWS (`typ` JWT) over a JSON payload, with this key's `kid`: the person, id_token
    /// and userinfo inside their JWEs.
    pub(crate) fn sign_payload(&self, json: &[u8]) -> Result<String, JoseError> {
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        josekit::jws::serialize_compact(json, &header, &self.signer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(exp: i64) -> AccessGrant {
        AccessGrant {
            sub: "user-1".into(),
            scope: "uinfin name".into(),
            jkt: "thumb".into(),
            jti: random_id(),
            exp,
        }
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_grant() {
        let key = EmulatorKey::generate().expect("key");
        let now = 1_700_000_000;
        let issued = grant(now + 1800);
        let token = key
            .issue_access_token(&issued, "http://x/com/v4", now)
            .expect("token");
        assert_eq!(
            key.verify_access_token(&token, "http://x/com/v4", now),
            Ok(issued)
        );
    }

    #[test]
    fn foreign_expired_and_misdirected_tokens_are_refused() {
        let key = EmulatorKey::generate().expect("key");
        let other = EmulatorKey::generate().expect("key");
        let now = 1_700_000_000;
        let foreign = other
            .issue_access_token(&grant(now + 10), "http://x/com/v4", now)
            .expect("token");
        assert_eq!(
            key.verify_access_token(&foreign, "http://x/com/v4", now),
            Err(Rejection::invalid_access_token())
        );
        let expired = key
            .issue_access_token(&grant(now), "http://x/com/v4", now - 10)
            .expect("token");
        assert_eq!(
            key.verify_access_token(&expired, "http://x/com/v4", now),
            Err(Rejection::invalid_access_token())
        );
        let elsewhere = key
            .issue_access_token(&grant(now + 10), "http://y/com/v4", now)
            .expect("token");
        assert_eq!(
            key.verify_access_token(&elsewhere, "http://x/com/v4", now)
                .map_err(|rejection| rejection.status.as_u16()),
            Err(403)
        );
        assert!(key
            .verify_access_token("not-a-token", "http://x", now)
            .is_err());
    }
}
