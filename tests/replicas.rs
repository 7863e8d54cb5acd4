//! Three proxy replicas, one Redis, one strict emulator, and an app whose every request of a
//! flow goes to the next replica in turn: key bindings made at one replica work at the others,
//! a v4 token sent to two replicas at once reaches Singpass once, and after all the flows Redis
//! holds nothing readable.

mod common;

use bytes::Bytes;
use common::redis_server::RedisServer;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use myinfo_proxy::binding::SealKeyring;
use myinfo_proxy::config::Config;
use myinfo_proxy::Proxy;
use singpass_emulator::{Emulator, EmulatorConfig, EmulatorRoute};
use std::net::SocketAddr;
use std::time::Duration;

const SUB: &str = "a1b2c3d4-uuid";
const SCOPE: &str = "uinfin name";
const FAPI_SUB: &str = "f1a2b3c4-user";

struct Replicas {
    redis: RedisServer,
    emulator: Emulator,
    addrs: Vec<SocketAddr>,
    client: Client<HttpConnector, Full<Bytes>>,
    _keys: ClientKeyFiles,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Replicas {
    async fn start(n: usize) -> Self {
        common::logs::install();
        let redis = RedisServer::start();
        let keys = ClientKeyFiles::new();
        std::fs::write(
            keys.dir.path().join("seal-keys"),
            SealKeyring::generate_key(),
        )
        .unwrap();
        let emulator = Emulator::start(
            EmulatorConfig::new(CLIENT_ID, keys.public_jwks()),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let text = format!(
            "listen = \"127.0.0.1:0\"\nclient_id = \"{CLIENT_ID}\"\n[keys]\njwks_file = \"{}\"\n\
             [redis]\nurl = \"{}\"\nfallback_replicas = {n}\nseal_keys_file = \"seal-keys\"\ntimeout = \"500ms\"\n\
             [[upstream]]\nname = \"myinfo\"\nkind = \"myinfo-v4\"\nbase_url = \"{}\"\n\
             [[upstream]]\nname = \"fapi\"\nkind = \"singpass-fapi\"\nissuer = \"{}\"\n",
            keys.private_path().display(),
            redis.url(),
            emulator.base_url(),
            emulator.fapi_issuer()
        );
        let config = Config::from_toml(&text, keys.dir.path()).unwrap();
        let (mut addrs, mut stops) = (Vec::new(), Vec::new());
        for _ in 0..n {
            // Each replica its own connection, as separate pods would have.
            // With [redis] the builder shares bindings and quotas itself, as `serve` does.
            let proxy = Proxy::builder(&config).build().unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(listener.local_addr().unwrap());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            stops.push(stop);
            tokio::spawn(proxy.serve(
                listener,
                async move {
                    let _ = stopped.await;
                },
                Duration::from_secs(5),
            ));
        }
        Self {
            redis,
            emulator,
            addrs,
            client: Client::builder(TokioExecutor::new()).build_http(),
            _keys: keys,
            _stops: stops,
        }
    }

    async fn send(
        &self,
        replica: usize,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Answer {
        let addr = self.addrs[replica % self.addrs.len()];
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn form(&self, replica: usize, path: &str, form: String) -> Answer {
        let ct = [("content-type", "application/x-www-form-urlencoded")];
        self.send(replica, Method::POST, path, &ct, form).await
    }

    async fn bearer(&self, replica: usize, path: &str, token: &str) -> Answer {
        let auth = format!("Bearer {token}");
        self.send(
            replica,
            Method::GET,
            path,
            &[("authorization", &auth)],
            String::new(),
        )
        .await
    }

    /// A v4 token through `replica`: the access token.
    async fn v4_token(&self, replica: usize) -> String {
        let (verifier, challenge) = pkce();
        let code = self.emulator.mint_code(SUB, SCOPE, &challenge, REDIRECT);
        let token = self
            .form(replica, "/com/v4/token", token_form(&code, &verifier))
            .await;
        assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
        token.json()["access_token"].as_str().unwrap().to_owned()
    }

    fn accepted(&self, route: EmulatorRoute) -> usize {
        self.emulator
            .received()
            .iter()
            .filter(|r| r.route == Some(route) && r.status < 300)
            .count()
    }
}

fn par_form(challenge: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("scope", "openid uinfin name")
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-1")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("acr_values", "urn:singpass:authentication:loa:2")
        .finish()
}

fn fapi_token_form(code: &str, verifier: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_verifier", verifier)
        .finish()
}

fn person_path() -> String {
    format!("/com/v4/person/{SUB}?scope={}", SCOPE.replace(' ', "%20"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_and_fapi_flows_spread_over_three_replicas_all_succeed() {
    let r = Replicas::start(3).await;
    let mut tokens = Vec::new();
    for i in 0..300 {
        let token = r.v4_token(i).await;
        let person = r.bearer(i + 1, &person_path(), &token).await;
        assert_eq!(person.status, StatusCode::OK, "flow {i}: {:?}", person.body);
        tokens.push(token);
    }
    let mut secrets = Vec::new();
    for i in 0..100 {
        let (verifier, challenge) = pkce();
        let par = r.form(i, "/fapi/par", par_form(&challenge)).await;
        assert_eq!(par.status, StatusCode::CREATED, "login {i}: {:?}", par.body);
        let request_uri = par.json()["request_uri"].as_str().unwrap().to_owned();
        let code = r.emulator.authorize_par(&request_uri, FAPI_SUB).unwrap();
        let token = r
            .form(i + 1, "/fapi/token", fapi_token_form(&code, &verifier))
            .await;
        assert_eq!(token.status, StatusCode::OK, "login {i}: {:?}", token.body);
        let access = token.json()["access_token"].as_str().unwrap().to_owned();
        for hop in [2, 3] {
            let info = r.bearer(i + hop, "/fapi/userinfo", &access).await;
            assert_eq!(info.status, StatusCode::OK, "login {i}: {:?}", info.body);
        }
        secrets.extend([verifier, challenge, code, access]);
    }
    assert_eq!(r.accepted(EmulatorRoute::Person), 300);
    assert_eq!(r.accepted(EmulatorRoute::Userinfo), 200);
    // Nothing readable in Redis: no token, code, verifier or challenge in any key or value.
    secrets.extend(tokens);
    let dump = r.redis.dump();
    assert!(!dump.is_empty());
    for secret in &secrets {
        for (name, value) in &dump {
            let (name, value) = (
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value),
            );
            assert!(
                !name.contains(secret.as_str()) && !value.contains(secret.as_str()),
                "a secret in Redis"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_v4_token_sent_to_two_replicas_at_once_reaches_singpass_once() {
    let r = std::sync::Arc::new(Replicas::start(3).await);
    let (mut ok, mut reused) = (0, 0);
    for i in 0..200 {
        let token = r.v4_token(i).await;
        let calls = [i + 1, i + 2].map(|replica| {
            let (r, token) = (r.clone(), token.clone());
            tokio::spawn(async move { r.bearer(replica, &person_path(), &token).await })
        });
        for call in calls {
            let answer = call.await.unwrap();
            match answer.status {
                StatusCode::OK => ok += 1,
                StatusCode::UNAUTHORIZED => {
                    answer.problem("AUTH_TOKEN_REUSED");
                    reused += 1;
                }
                other => panic!("pair {i}: {other} {:?}", answer.body),
            }
        }
    }
    assert_eq!((ok, reused), (200, 200));
    assert_eq!(
        r.accepted(EmulatorRoute::Person),
        200,
        "each token reached the emulator once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_nonce_learned_at_one_replica_is_in_the_first_proof_of_the_others() {
    let r = Replicas::start(3).await;
    r.emulator.require_dpop_nonce(true);
    // Replica 0 learns the nonce: its PAR is refused once (use_dpop_nonce) and repeated.
    let (verifier, challenge) = pkce();
    let par = r.form(0, "/fapi/par", par_form(&challenge)).await;
    assert_eq!(par.status, StatusCode::CREATED, "{:?}", par.body);
    let request_uri = par.json()["request_uri"].as_str().unwrap().to_owned();
    let code = r.emulator.authorize_par(&request_uri, FAPI_SUB).unwrap();
    // Replicas 1 and 2 have never called Singpass: their first proofs carry that nonce.
    let token = r
        .form(1, "/fapi/token", fapi_token_form(&code, &verifier))
        .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    let access = token.json()["access_token"].as_str().unwrap().to_owned();
    let info = r.bearer(2, "/fapi/userinfo", &access).await;
    assert_eq!(info.status, StatusCode::OK, "{:?}", info.body);
    let received = r.emulator.received();
    let attempts = |route| received.iter().filter(|x| x.route == Some(route)).count();
    assert_eq!(
        (
            attempts(EmulatorRoute::Par),
            attempts(EmulatorRoute::FapiToken),
            attempts(EmulatorRoute::Userinfo)
        ),
        (2, 1, 1),
        "only replica 0's first PAR lacked the nonce"
    );
    let refused: Vec<_> = received.iter().filter(|x| x.status >= 400).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].route, Some(EmulatorRoute::Par));
}
