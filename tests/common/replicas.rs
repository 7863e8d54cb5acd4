//! Several proxy replicas sharing one real redis-server, in front of one strict emulator, each
//! serving on its own loopback port as separate pods would (each its own Redis connection).

use super::redis_server::RedisServer;
use super::*;
use myinfo_proxy::binding::SealKeyring;
use singpass_emulator::EmulatorRoute;

pub const SUB: &str = "a1b2c3d4-uuid";
pub const SCOPE: &str = "uinfin name";
pub const FAPI_SUB: &str = "f1a2b3c4-user";

pub struct Replicas {
    pub redis: RedisServer,
    pub emulator: Emulator,
    pub addrs: Vec<SocketAddr>,
    /// Each replica's proxy (for `/readyz` and the metrics).
    pub proxies: Vec<Proxy>,
    client: Client<HttpConnector, Full<Bytes>>,
    _keys: ClientKeyFiles,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Replicas {
    /// `n` replicas with `fallback_replicas = n` and a Redis timeout of 500 ms.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, "timeout = \"500ms\"", "").await
    }

    /// `n` replicas; `redis` is added to the `[redis]` table (e.g. `timeout = "200ms"`) and
    /// `v4_routes` after the v4 upstream's table (e.g. `[upstream.routes.token.rate_limit]`).
    pub async fn start_with(n: usize, redis_extra: &str, v4_routes: &str) -> Self {
        super::logs::install();
        let redis = RedisServer::start();
        let keys = ClientKeyFiles::new();
        std::fs::write(
            keys.dir.path().join("seal-keys"),
            SealKeyring::generate_key(),
        )
        .unwrap();
        let emulator = keys.emulator().await;
        let text = format!(
            "listen = \"127.0.0.1:0\"\nclient_id = \"{CLIENT_ID}\"\n[keys]\njwks_file = \"{}\"\n\
             [redis]\nurl = \"{}\"\nfallback_replicas = {n}\nseal_keys_file = \"seal-keys\"\n{redis_extra}\n\
             [[upstream]]\nname = \"fapi\"\nkind = \"singpass-fapi\"\nissuer = \"{}\"\n\
             [[upstream]]\nname = \"myinfo\"\nkind = \"myinfo-v4\"\nbase_url = \"{}\"\n{v4_routes}\n",
            keys.private_path().display(),
            redis.url(),
            emulator.fapi_issuer(),
            emulator.base_url(),
        );
        let config = Config::from_toml(&text, keys.dir.path()).unwrap();
        let (mut addrs, mut stops, mut proxies) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            // Each replica its own connection, as separate pods would have.
            // With [redis] the builder shares bindings and quotas itself, as `serve` does.
            let proxy = Proxy::builder(&config).build().unwrap();
            proxies.push(proxy.clone());
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
            proxies,
            client: Client::builder(TokioExecutor::new()).build_http(),
            _keys: keys,
            _stops: stops,
        }
    }

    pub async fn send(
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

    pub async fn form(&self, replica: usize, path: &str, form: String) -> Answer {
        let ct = [("content-type", "application/x-www-form-urlencoded")];
        self.send(replica, Method::POST, path, &ct, form).await
    }

    pub async fn bearer(&self, replica: usize, path: &str, token: &str) -> Answer {
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
    pub async fn v4_token(&self, replica: usize) -> String {
        let (verifier, challenge) = pkce();
        let code = self.emulator.mint_code(SUB, SCOPE, &challenge, REDIRECT);
        let token = self
            .form(replica, "/com/v4/token", token_form(&code, &verifier))
            .await;
        assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
        token.json()["access_token"].as_str().unwrap().to_owned()
    }

    pub fn accepted(&self, route: EmulatorRoute) -> usize {
        self.emulator
            .received()
            .iter()
            .filter(|r| r.route == Some(route) && r.status < 300)
            .count()
    }
}

impl Replicas {
    /// What `replica`'s `/readyz` answers.
    pub fn readyz(&self, replica: usize) -> StatusCode {
        let req = Request::get("/readyz").body(()).unwrap();
        self.proxies[replica].admin(&req).status()
    }
}

/// The most of `times` (sorted) in any closed window of length `w`.
pub fn most_in_window(times: &[tokio::time::Instant], w: Duration) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t <= times[i] + w)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// When each attempt on `route` reached the emulator, sorted.
pub fn arrivals(emulator: &Emulator, route: EmulatorRoute) -> Vec<tokio::time::Instant> {
    let mut at: Vec<_> = emulator
        .received()
        .into_iter()
        .filter(|r| r.route == Some(route))
        .map(|r| r.at)
        .collect();
    at.sort();
    at
}

/// The v4 person call of `SUB` with `SCOPE`.
pub fn person_path() -> String {
    format!("/com/v4/person/{SUB}?scope={}", SCOPE.replace(' ', "%20"))
}

/// A FAPI PAR form for `challenge` (S256).
pub fn par_form(challenge: &str) -> String {
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

/// A FAPI token form.
pub fn fapi_token_form(code: &str, verifier: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_verifier", verifier)
        .finish()
}

/// Sends `call` again, as an app honouring `Retry-After` would, while it is answered 503 (a
/// few times at most); the last answer.
pub async fn honouring_retry_after<F, Fut>(call: F) -> Answer
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let mut answer = call().await;
    for _ in 0..5 {
        if answer.status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        answer.problem("SYSTEM_SHARED_STATE_UNAVAILABLE");
        let wait: u64 = answer.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(wait)).await;
        answer = call().await;
    }
    answer
}
