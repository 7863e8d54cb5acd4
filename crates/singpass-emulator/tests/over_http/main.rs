//! A small test-only Myinfo client that signs its own assertions and proofs with josekit
//! (independently of the proxy), and a harness that drives a live emulator over HTTP (or in
//! process, through its tower service: `in_process.rs`). Its FAPI 2.0 and CIBA side is in
//! `fapi_client.rs`.

mod ciba_checks;
mod ciba_holds;
mod fapi_client;
mod fapi_faults;
mod fapi_flow;
mod fapi_nonce;
mod fapi_rejections;
mod fapi_robustness;
mod fault_checks;
mod in_process;
mod person_checks;
mod quota_checks;
mod robustness;
mod token_checks;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use josekit::jwe::ECDH_ES_A256KW;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{JwsHeader, ES256};
use josekit::jwt::JwtPayload;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use singpass_emulator::{Emulator, EmulatorConfig, EmulatorService};

pub(crate) const CLIENT_ID: &str = "STG2-MYINFO-SELF-TEST";
pub(crate) const SUB: &str = "b4d7e0a1-7c6f-4c38-9f2e-3a1d5c8b9e01";
pub(crate) const SCOPE: &str = "uinfin name sex dob email mobileno";
pub(crate) const REDIRECT_URI: &str = "https://app.example/callback";

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .expect("clock after 1970")
}

pub(crate) fn random_jti() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

pub(crate) fn sha256_b64(input: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()))
}

fn sign_jwt(claims: &Value, header: &JwsHeader, private_key: &Jwk) -> String {
    let payload = JwtPayload::from_map(claims.as_object().cloned().expect("claims are an object"))
        .expect("well-typed claims");
    let signer = ES256.signer_from_jwk(private_key).expect("ES256 key");
    josekit::jwt::encode_with_signer(&payload, header, &signer).expect("signed")
}

/// A P-256 key pair, private and public halves as JWKs.
#[derive(Clone)]
pub(crate) struct KeyPair {
    pub(crate) private: Jwk,
    pub(crate) public: Jwk,
}

impl KeyPair {
    pub(crate) fn generate() -> Self {
        let pair = ES256.generate_key_pair().expect("key pair");
        KeyPair {
            private: pair.to_jwk_private_key(),
            public: pair.to_jwk_public_key(),
        }
    }

    /// RFC 7638 by hand, so the test does not trust the emulator's own implementation.
    pub(crate) fn thumbprint(&self) -> String {
        let member = |name: &str| {
            self.public
                .parameter(name)
                .and_then(Value::as_str)
                .expect("member")
        };
        let canonical = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            member("crv"),
            member("x"),
            member("y")
        );
        sha256_b64(&canonical)
    }

    /// A DPoP proof carrying this key's public half.
    pub(crate) fn proof(&self, claims: &Value) -> String {
        let mut header = JwsHeader::new();
        header.set_token_type("dpop+jwt");
        header.set_jwk(self.public.clone());
        sign_jwt(claims, &header, &self.private)
    }
}

/// The registered client: a signing key and an encryption key, both with kids.
pub(crate) struct TestClient {
    pub(crate) sig: KeyPair,
    pub(crate) enc_private: Jwk,
    enc_public: Jwk,
}

impl TestClient {
    fn new() -> Self {
        let mut sig = KeyPair::generate();
        for jwk in [&mut sig.private, &mut sig.public] {
            jwk.set_key_id("client-sig-1");
            jwk.set_key_use("sig");
            jwk.set_algorithm("ES256");
        }
        let enc = ECDH_ES_A256KW
            .generate_ec_key_pair(EcCurve::P256)
            .expect("enc key pair");
        let mut enc_private = enc.to_jwk_private_key();
        let mut enc_public = enc.to_jwk_public_key();
        for jwk in [&mut enc_private, &mut enc_public] {
            jwk.set_key_id("client-enc-1");
            jwk.set_key_use("enc");
            jwk.set_algorithm("ECDH-ES+A256KW");
        }
        TestClient {
            sig,
            enc_private,
            enc_public,
        }
    }

    fn public_jwks(&self) -> JwkSet {
        let mut jwks = JwkSet::new();
        jwks.push_key(self.sig.public.clone());
        jwks.push_key(self.enc_public.clone());
        jwks
    }

    /// An assertion signed by `key`, naming `kid` in its header.
    pub(crate) fn assertion_signed_by(&self, key: &Jwk, kid: &str, claims: &Value) -> String {
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(kid);
        sign_jwt(claims, &header, key)
    }

    pub(crate) fn assertion(&self, claims: &Value) -> String {
        self.assertion_signed_by(&self.sig.private, "client-sig-1", claims)
    }
}

/// One code waiting to be exchanged, with its PKCE verifier.
pub(crate) struct Authorization {
    pub(crate) code: String,
    pub(crate) verifier: String,
}

/// What came back over HTTP.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// Asserts a Singpass-shaped refusal with this status and description.
    #[track_caller]
    pub(crate) fn assert_rejected(&self, status: u16, description: &str) {
        let body = self.json();
        assert_eq!(
            (self.status, body["error_description"].as_str()),
            (status, Some(description)),
            "body: {body}"
        );
    }
}

/// A live emulator, the client registered with it, and an HTTP client.
pub(crate) struct Harness {
    pub(crate) client: TestClient,
    pub(crate) emulator: Emulator,
    http: Client<HttpConnector, Full<Bytes>>,
    /// Set for an emulator in process: requests go to its service, not over `http`.
    service: Option<EmulatorService>,
}

impl Harness {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(adjust: impl FnOnce(&mut EmulatorConfig)) -> Self {
        let client = TestClient::new();
        let mut config = EmulatorConfig::new(CLIENT_ID, client.public_jwks());
        adjust(&mut config);
        let emulator = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("emulator starts");
        Harness {
            client,
            emulator,
            http: Client::builder(TokioExecutor::new()).build_http(),
            service: None,
        }
    }

    /// A harness whose emulator runs in process on `in_process::ORIGIN`, with no socket.
    pub(crate) fn in_process_with(adjust: impl FnOnce(&mut EmulatorConfig)) -> Self {
        let client = TestClient::new();
        let mut config = EmulatorConfig::new(CLIENT_ID, client.public_jwks());
        adjust(&mut config);
        let emulator = Emulator::in_process(config, in_process::ORIGIN).expect("emulator");
        Harness {
            client,
            service: Some(emulator.service()),
            emulator,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub(crate) fn token_url(&self) -> String {
        format!("{}/token", self.emulator.base_url())
    }

    pub(crate) fn person_url(&self, sub: &str) -> String {
        format!("{}/person/{sub}", self.emulator.base_url())
    }

    pub(crate) fn authorize(&self) -> Authorization {
        let verifier = format!("{}{}", random_jti(), random_jti());
        let code = self
            .emulator
            .mint_code(SUB, SCOPE, &sha256_b64(&verifier), REDIRECT_URI);
        Authorization { code, verifier }
    }

    /// Claims of a valid assertion bound to the DPoP key with thumbprint `jkt`.
    pub(crate) fn assertion_claims(&self, jkt: &str) -> Value {
        let now = unix_now();
        json!({
            "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": self.token_url(),
            "iat": now, "exp": now + 120, "jti": random_jti(), "cnf": {"jkt": jkt},
        })
    }

    /// Claims of a valid proof for `htm` `htu`, with `ath` for `access_token` if given.
    pub(crate) fn proof_claims(&self, htm: &str, htu: &str, access_token: Option<&str>) -> Value {
        let now = unix_now();
        let mut claims = json!({
            "htm": htm, "htu": htu, "iat": now, "exp": now + 120, "jti": random_jti(),
        });
        if let Some(token) = access_token {
            claims["ath"] = Value::from(sha256_b64(token));
        }
        claims
    }

    pub(crate) fn token_form(
        &self,
        authorization: &Authorization,
        assertion: &str,
    ) -> Vec<(String, String)> {
        [
            ("grant_type", "authorization_code"),
            ("code", authorization.code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", CLIENT_ID),
            ("code_verifier", authorization.verifier.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }

    pub(crate) async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        self.try_send(request).await.expect("emulator answers")
    }

    /// Sends `request`; `Err` when no answer came (the connection failed or was closed).
    pub(crate) async fn try_send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        if let Some(service) = &self.service {
            return in_process::send(service.clone(), request).await;
        }
        let response = self.http.request(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub(crate) fn token_request(
        &self,
        form: &[(String, String)],
        proof: Option<&str>,
    ) -> Request<Full<Bytes>> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.token_url())
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        request.body(Full::new(Bytes::from(body))).expect("request")
    }

    pub(crate) async fn post_token(&self, form: &[(String, String)], proof: Option<&str>) -> Reply {
        self.send(self.token_request(form, proof)).await
    }

    /// A correctly signed token request for `authorization`, with fresh assertion and proof
    /// `jti`s from `key`.
    pub(crate) fn signed_token_request(
        &self,
        authorization: &Authorization,
        key: &KeyPair,
    ) -> Request<Full<Bytes>> {
        let assertion = self
            .client
            .assertion(&self.assertion_claims(&key.thumbprint()));
        let proof = key.proof(&self.proof_claims("POST", &self.token_url(), None));
        self.token_request(&self.token_form(authorization, &assertion), Some(&proof))
    }

    /// `GET /person/{sub}?{query}` with `Authorization: {authorization}` and `DPoP: {proof}`.
    pub(crate) async fn get_person(
        &self,
        sub: &str,
        query: &str,
        authorization: Option<&str>,
        proof: Option<&str>,
    ) -> Reply {
        let mut request = Request::builder().uri(format!("{}?{query}", self.person_url(sub)));
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        self.send(request.body(Full::new(Bytes::new())).expect("request"))
            .await
    }

    /// A valid token call with `key` as the DPoP key; returns the access token.
    pub(crate) async fn obtain_token(&self, key: &KeyPair) -> String {
        let authorization = self.authorize();
        let assertion = self
            .client
            .assertion(&self.assertion_claims(&key.thumbprint()));
        let proof = key.proof(&self.proof_claims("POST", &self.token_url(), None));
        let reply = self
            .post_token(&self.token_form(&authorization, &assertion), Some(&proof))
            .await;
        assert_eq!(reply.status, 200, "token call: {:?}", reply.body);
        reply.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A valid person call for `SUB` with `key`; returns the reply.
    pub(crate) async fn call_person(&self, key: &KeyPair, token: &str, scope: &str) -> Reply {
        let proof = key.proof(&self.proof_claims("GET", &self.person_url(SUB), Some(token)));
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("scope", scope)
            .finish();
        self.get_person(SUB, &query, Some(&format!("DPoP {token}")), Some(&proof))
            .await
    }
}
