//! The test client's FAPI 2.0 and CIBA side: one login's DPoP key, PKCE pair, state and
//! nonce; assertions for an issuer; PAR, token, userinfo and CIBA calls; opening a sealed
//! answer with the client's enc key and verifying it against the emulator's published JWKS.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use josekit::jwe::JweHeader;
use josekit::jwe::ECDH_ES_A256KW;
use josekit::jwk::JwkSet;
use josekit::jws::{JwsHeader, ES256};
use serde_json::{json, Value};

use super::{random_jti, sha256_b64, unix_now, Harness, KeyPair, Reply, CLIENT_ID, REDIRECT_URI};

pub(crate) const FAPI_SCOPE: &str = "openid uinfin name dob";
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// One FAPI login's client-side secrets: a fresh DPoP key and PKCE pair.
pub(crate) struct FapiLogin {
    pub(crate) key: KeyPair,
    pub(crate) verifier: String,
    pub(crate) state: String,
    pub(crate) nonce: String,
}

impl FapiLogin {
    pub(crate) fn new() -> Self {
        FapiLogin {
            key: KeyPair::generate(),
            verifier: format!("{}{}", random_jti(), random_jti()),
            state: random_jti(),
            nonce: random_jti(),
        }
    }
}

/// A sealed answer, opened and verified: the JWE and JWS headers and the claims.
pub(crate) struct Opened {
    pub(crate) jwe_header: JweHeader,
    pub(crate) jws_header: JwsHeader,
    pub(crate) claims: Value,
}

pub(crate) fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

impl Harness {
    pub(crate) fn fapi_url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.fapi_issuer())
    }

    /// Claims of a valid FAPI/CIBA assertion for `audience` (no `cnf`).
    pub(crate) fn issuer_assertion_claims(&self, audience: &str) -> Value {
        let now = unix_now();
        json!({
            "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": audience,
            "iat": now, "exp": now + 120, "jti": random_jti(),
        })
    }

    pub(crate) fn fapi_assertion(&self) -> String {
        self.client
            .assertion(&self.issuer_assertion_claims(&self.emulator.fapi_issuer()))
    }

    /// Claims of a valid proof, with `nonce` when given.
    pub(crate) fn fapi_proof_claims(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Value {
        let mut claims = self.proof_claims(htm, htu, access_token);
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::from(nonce);
        }
        claims
    }

    /// A POST of `form` to `url` with an optional `DPoP` header.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(String, String)],
        proof: Option<&str>,
    ) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        self.send(request.body(Full::new(Bytes::from(body))).expect("request"))
            .await
    }

    pub(crate) async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = Request::builder().uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Full::new(Bytes::new())).expect("request"))
            .await
    }

    /// The PAR form for `login` with `assertion`.
    pub(crate) fn par_form(&self, login: &FapiLogin, assertion: &str) -> Vec<(String, String)> {
        pairs(&[
            ("response_type", "code"),
            ("scope", FAPI_SCOPE),
            ("state", &login.state),
            ("nonce", &login.nonce),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", &sha256_b64(&login.verifier)),
            ("code_challenge_method", "S256"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
    }

    /// A PAR with a fresh assertion and a proof from the login's key (with `nonce`).
    pub(crate) async fn push(&self, login: &FapiLogin, nonce: Option<&str>) -> Reply {
        let form = self.par_form(login, &self.fapi_assertion());
        let claims = self.fapi_proof_claims("POST", &self.fapi_url("/par"), None, nonce);
        self.post_form(
            &self.fapi_url("/par"),
            &form,
            Some(&login.key.proof(&claims)),
        )
        .await
    }

    /// PAR, then the user's consent: the code.
    pub(crate) async fn fapi_code(&self, login: &FapiLogin) -> String {
        let pushed = self.push(login, None).await;
        assert_eq!(pushed.status, 201, "PAR: {:?}", pushed.body);
        let request_uri = pushed.json()["request_uri"]
            .as_str()
            .expect("request_uri")
            .to_owned();
        self.emulator
            .authorize_par(&request_uri, super::SUB)
            .expect("consent")
    }

    pub(crate) fn fapi_token_form(
        &self,
        login: &FapiLogin,
        code: &str,
        assertion: &str,
    ) -> Vec<(String, String)> {
        pairs(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &login.verifier),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
    }

    /// A token call for `code` with a fresh assertion and a proof signed by `key`.
    pub(crate) async fn fapi_token(&self, login: &FapiLogin, code: &str, key: &KeyPair) -> Reply {
        let form = self.fapi_token_form(login, code, &self.fapi_assertion());
        let claims = self.fapi_proof_claims("POST", &self.fapi_url("/token"), None, None);
        self.post_form(&self.fapi_url("/token"), &form, Some(&key.proof(&claims)))
            .await
    }

    /// A whole login up to the token answer.
    pub(crate) async fn fapi_tokens(&self, login: &FapiLogin) -> Value {
        let code = self.fapi_code(login).await;
        let reply = self.fapi_token(login, &code, &login.key).await;
        assert_eq!(reply.status, 200, "token: {:?}", reply.body);
        reply.json()
    }

    /// `GET /fapi/userinfo` with `Authorization: {authorization}` and a proof from `key`
    /// whose claims the test may alter.
    pub(crate) async fn userinfo_with(
        &self,
        key: &KeyPair,
        authorization: &str,
        token: &str,
        alter_proof: impl FnOnce(&mut Value),
    ) -> Reply {
        let mut claims =
            self.fapi_proof_claims("GET", &self.fapi_url("/userinfo"), Some(token), None);
        alter_proof(&mut claims);
        let proof = key.proof(&claims);
        self.get(
            &self.fapi_url("/userinfo"),
            &[("Authorization", authorization), ("DPoP", &proof)],
        )
        .await
    }

    pub(crate) async fn userinfo(&self, key: &KeyPair, token: &str) -> Reply {
        self.userinfo_with(key, &format!("DPoP {token}"), token, |_| {})
            .await
    }

    /// The signing keys the emulator publishes under the FAPI issuer.
    pub(crate) async fn published_jwks(&self) -> JwkSet {
        let reply = self.get(&self.fapi_url("/jwks"), &[]).await;
        assert_eq!(reply.status, 200);
        JwkSet::from_bytes(&reply.body).expect("a JWKS")
    }

    /// Decrypts `compact` with the client's enc key and verifies the JWS inside against the
    /// published JWKS (by `kid`).
    pub(crate) async fn open(&self, compact: &str) -> Opened {
        let decrypter = ECDH_ES_A256KW
            .decrypter_from_jwk(&self.client.enc_private)
            .expect("decrypter");
        let (jws, jwe_header) =
            josekit::jwe::deserialize_compact(compact, &decrypter).expect("JWE opens");
        let jws = String::from_utf8(jws).expect("text");
        let jwks = self.published_jwks().await;
        let header = josekit::jwt::decode_header(&jws).expect("header");
        let kid = header.claim("kid").and_then(Value::as_str).expect("kid");
        let key = jwks.get(kid).into_iter().next().expect("published key");
        let verifier = ES256.verifier_from_jwk(key).expect("verifier");
        let (payload, jws_header) =
            josekit::jws::deserialize_compact(&jws, &verifier).expect("JWS verifies");
        Opened {
            jwe_header,
            jws_header,
            claims: serde_json::from_slice(&payload).expect("JSON claims"),
        }
    }

    /// A CIBA form (bc-auth or poll) with a fresh assertion for `audience`.
    pub(crate) fn ciba_form(
        &self,
        audience: &str,
        fields: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let assertion = self
            .client
            .assertion(&self.issuer_assertion_claims(audience));
        let mut form = pairs(fields);
        form.extend(pairs(&[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ]));
        form
    }
}

impl Reply {
    /// Asserts an OAuth refusal: this status and `error`, with the emulator's `id` and
    /// `trace_id`.
    #[track_caller]
    pub(crate) fn assert_oauth(&self, status: u16, error: &str) {
        let body = self.json();
        assert_eq!(
            (self.status, body["error"].as_str()),
            (status, Some(error)),
            "body: {body}"
        );
        assert!(body["error_description"].is_string(), "{body}");
        assert!(
            body["id"].is_string() && body["trace_id"].is_string(),
            "{body}"
        );
    }

    /// The `WWW-Authenticate` header, if any.
    pub(crate) fn challenge(&self) -> Option<&str> {
        self.headers
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok())
    }

    pub(crate) fn dpop_nonce(&self) -> Option<&str> {
        self.headers
            .get("dpop-nonce")
            .and_then(|value| value.to_str().ok())
    }
}
