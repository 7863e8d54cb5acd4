//! Test harness: the strict emulator and the proxy on 127.0.0.1:0, a plain HTTP client, PKCE.
#![allow(dead_code)]

pub mod logs;
pub mod redis_server;
pub mod replicas;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use myinfo_proxy::config::Config;
use myinfo_proxy::jose::{generate_client_jwks, sha256_b64url};
use myinfo_proxy::Proxy;
use singpass_emulator::{Emulator, EmulatorConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const CLIENT_ID: &str = "STG-TEST-CLIENT";
pub const REDIRECT: &str = "https://app.example/callback";

/// A client key set written to a temp dir.
pub struct ClientKeyFiles {
    pub dir: tempfile::TempDir,
    pub private: serde_json::Value,
    pub public: serde_json::Value,
}

impl ClientKeyFiles {
    pub fn new() -> Self {
        logs::install();
        let (private, public) = generate_client_jwks().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("private-jwks.json"), private.to_string()).unwrap();
        std::fs::write(dir.path().join("public-jwks.json"), public.to_string()).unwrap();
        Self {
            dir,
            private,
            public,
        }
    }
    pub fn private_path(&self) -> PathBuf {
        self.dir.path().join("private-jwks.json")
    }
    pub fn public_jwks(&self) -> josekit::jwk::JwkSet {
        josekit::jwk::JwkSet::from_bytes(self.public.to_string()).unwrap()
    }
    /// An emulator on a free loopback port that knows these keys.
    pub async fn emulator(&self) -> Emulator {
        Emulator::start(
            EmulatorConfig::new(CLIENT_ID, self.public_jwks()),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap()
    }
}

/// The emulator and a proxy in front of it.
pub struct Harness {
    pub keys: ClientKeyFiles,
    pub emulator: Emulator,
    pub proxy_addr: SocketAddr,
    pub proxy: Proxy,
    pub client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Harness {
    /// Proxy configured for the emulator's exact base URL.
    pub async fn start() -> Self {
        Self::start_with(|base| base.to_owned(), "").await
    }

    /// `upstream_url` maps the emulator's base URL to the one configured in the proxy;
    /// `extra` is appended to the top-level config text.
    pub async fn start_with(upstream_url: impl Fn(&str) -> String, extra: &str) -> Self {
        Self::start_from(extra, |e| {
            format!(
                "[[upstream]]\nname = \"myinfo\"\nkind = \"myinfo-v4\"\nbase_url = \"{}\"\n",
                upstream_url(&e.base_url())
            )
        })
        .await
    }

    /// A v4 proxy whose `[[upstream]]` table body (after `kind`) is `table(emulator base URL)`.
    pub async fn start_configured_v4(table: impl Fn(&str) -> String) -> Self {
        Self::start_from("", |e| {
            format!(
                "[[upstream]]\nname = \"myinfo\"\nkind = \"myinfo-v4\"\n{}",
                table(&e.base_url())
            )
        })
        .await
    }

    /// A proxy with a CIBA upstream (`/ciba`) and a FAPI upstream (`/fapi`) on the emulator;
    /// `fapi_routes` follows the FAPI upstream (e.g. `[upstream.routes.token]` tables).
    pub async fn start_fapi(extra: &str, fapi_routes: &str) -> Self {
        Self::start_from(extra, |e| {
            format!(
                "[[upstream]]\nname = \"ciba\"\nkind = \"singpass-ciba\"\nissuer = \"{}\"\n[[upstream]]\nname = \"fapi\"\nkind = \"singpass-fapi\"\nissuer = \"{}\"\n{fapi_routes}\n",
                e.ciba_issuer(),
                e.fapi_issuer()
            )
        })
        .await
    }

    /// New client keys, an emulator that knows them, and a proxy whose config is the
    /// harness's top level plus `extra`, `[keys]`, then `upstreams(&emulator)`.
    pub async fn start_from(extra: &str, upstreams: impl FnOnce(&Emulator) -> String) -> Self {
        logs::install();
        let keys = ClientKeyFiles::new();
        let emulator = keys.emulator().await;
        let text = format!(
            "listen = \"127.0.0.1:0\"\nclient_id = \"{CLIENT_ID}\"\n{extra}\n[keys]\njwks_file = \"{}\"\n{}",
            keys.private_path().display(),
            upstreams(&emulator)
        );
        Self::serve_config(keys, emulator, &text).await
    }

    /// A proxy for `emulator` whose config replaces the harness's `[keys]` table with `keys_table`.
    pub async fn start_around(emulator: Emulator, keys: ClientKeyFiles, keys_table: &str) -> Self {
        logs::install();
        let text = format!(
            "listen = \"127.0.0.1:0\"\nclient_id = \"{CLIENT_ID}\"\n{keys_table}\n[[upstream]]\nname = \"myinfo\"\nkind = \"myinfo-v4\"\nbase_url = \"{}\"\n",
            emulator.base_url()
        );
        Self::serve_config(keys, emulator, &text).await
    }

    async fn serve_config(keys: ClientKeyFiles, emulator: Emulator, text: &str) -> Self {
        let config = Config::from_toml(text, keys.dir.path()).unwrap();
        let proxy = Proxy::from_config(&config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        tokio::spawn(
            proxy
                .clone()
                .serve(listener, stopped, Duration::from_secs(5)),
        );
        // A new connection per request: tests that advance paused time past the listener's
        // idle and header timers would otherwise reuse a kept-alive connection the proxy has
        // just closed.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        Self {
            keys,
            emulator,
            proxy_addr,
            proxy,
            client,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy_addr)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .client
            .request(req.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Mints a code at the emulator and exchanges it through the proxy.
    pub async fn token(&self, sub: &str, scope: &str) -> Answer {
        let (verifier, challenge) = pkce();
        let code = self.emulator.mint_code(sub, scope, &challenge, REDIRECT);
        self.post_form("/com/v4/token", &token_form(&code, &verifier), &[])
            .await
    }

    pub async fn post_form(&self, path: &str, form: &str, headers: &[(&str, &str)]) -> Answer {
        let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.send(Method::POST, path, &all, form.to_owned()).await
    }

    pub async fn person(&self, sub: &str, token: &str, scope: &str) -> Answer {
        let auth = format!("Bearer {token}");
        let path = format!("/com/v4/person/{sub}?scope={}", scope.replace(' ', "%20"));
        self.send(
            Method::GET,
            &path,
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await
    }

    /// Requests the emulator received on a path ending in `suffix`.
    pub fn received_on(&self, suffix: &str) -> Vec<singpass_emulator::Received> {
        self.emulator
            .received()
            .into_iter()
            .filter(|r| r.path.ends_with(suffix) || r.path.contains(suffix))
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// Asserts this is a problem+json with `code` and returns it.
    pub fn problem(&self, code: &str) -> serde_json::Value {
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {:?}",
            self.body
        );
        let p = self.json();
        assert_eq!(p["title"], code, "{p}");
        assert_eq!(p["status"], self.status.as_u16(), "{p}");
        for field in ["type", "detail", "instance", "timestamp", "doc_url"] {
            assert!(p[field].is_string(), "problem lacks `{field}`: {p}");
        }
        assert!(p["context"]["request_id"].is_string(), "{p}");
        p
    }
}

/// A PKCE pair: (verifier, S256 challenge); the verifier is always 50 characters (RFC 7636).
pub fn pkce() -> (String, String) {
    let verifier = format!(
        "verifier-{:020}-{:020}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let challenge = sha256_b64url(verifier.as_bytes());
    (verifier, challenge)
}

pub fn token_form(code: &str, verifier: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("client_id", CLIENT_ID)
        .append_pair("code_verifier", verifier)
        .finish()
}

/// Every secret this harness has seen: the client's private key members, and each proof,
/// `Authorization` value, assertion, code and code verifier the emulator received; plus
/// `extra` (tokens the app held). Short values (under 12 characters) are dropped.
pub fn secrets_seen(h: &Harness, extra: Vec<String>) -> Vec<String> {
    let mut secrets = extra;
    for key in h.keys.private["keys"].as_array().unwrap() {
        secrets.push(key["d"].as_str().unwrap().to_owned());
    }
    for r in h.emulator.received() {
        for (name, value) in &r.headers {
            if name == "dpop" || name == "authorization" {
                secrets.push(value.clone());
                secrets.extend(value.split_whitespace().map(str::to_owned));
            }
        }
        for (name, value) in form_urlencoded::parse(&r.body) {
            if ["client_assertion", "code", "code_verifier"].contains(&&*name) {
                secrets.push(value.into_owned());
            }
        }
    }
    secrets.retain(|s| s.len() >= 12 && s != "DPoP");
    secrets
}

/// Asserts that none of `secrets` appears in `logs` or in the proxy's `/metrics`.
pub fn assert_no_secret_in(proxy: &Proxy, logs: &str, secrets: &[String]) {
    let metrics = proxy.metrics();
    for secret in secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret appears in the logs: {}...",
            &secret[..8]
        );
        assert!(
            !metrics.contains(secret.as_str()),
            "a secret appears in the metrics"
        );
    }
}

/// How many Redis operations of this process ended with `outcome` (`ok`, `error`, `timeout`,
/// `circuit_open`), over every operation, from the proxy's own metrics.
pub fn redis_outcomes(outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"}}");
    myinfo_proxy::metrics::render()
        .lines()
        .filter(|l| l.starts_with("myinfo_proxy_redis_operations_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
