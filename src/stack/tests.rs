//! The whole stack in process, over a scripted upstream, in paused time: what is decided
//! locally takes no permit; nonce demands are repeated exactly once; nonces handed out with a
//! success are used at once; a binding store outage is a 503.

use crate::binding::{BindingFuture, BindingStore, TokenLookup, TokenUse};
use crate::error::BoxError;
use crate::jose::EphemeralKey;
use crate::{Config, Proxy};
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How a scripted upstream answers: from the request and the number of calls before it.
type Script = dyn Fn(&Request<Bytes>, usize) -> Response<Bytes> + Send + Sync;

/// A scripted upstream: `answer` makes each answer from the request and the number of calls
/// made before it; every request it got is kept.
#[derive(Clone)]
struct Upstream {
    seen: Arc<Mutex<Vec<Request<Bytes>>>>,
    answer: Arc<Script>,
}

impl Upstream {
    fn new(
        answer: impl Fn(&Request<Bytes>, usize) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        Self {
            seen: Arc::default(),
            answer: Arc::new(answer),
        }
    }

    fn seen(&self) -> Vec<Request<Bytes>> {
        self.seen.lock().unwrap().clone()
    }

    fn calls_to(&self, path_end: &str) -> usize {
        self.seen()
            .iter()
            .filter(|r| r.uri().path().ends_with(path_end))
            .count()
    }

    fn service(
        &self,
    ) -> impl tower::Service<
        Request<Bytes>,
        Response = Response<Bytes>,
        Error = BoxError,
        Future: Send,
    > + Clone
           + Send
           + Sync
           + 'static {
        let this = self.clone();
        tower::service_fn(move |req: Request<Bytes>| {
            let mut seen = this.seen.lock().unwrap();
            let res = (this.answer)(&req, seen.len());
            seen.push(req);
            std::future::ready(Ok::<_, BoxError>(res))
        })
    }
}

/// A v4 token answer, or a plain 200 for anything else.
fn myinfo(req: &Request<Bytes>, n: usize) -> Response<Bytes> {
    let body = if req.uri().path().ends_with("/token") {
        format!(r#"{{"access_token":"tok-{n}","token_type":"DPoP","expires_in":1800}}"#)
    } else {
        "{}".to_owned()
    };
    Response::new(Bytes::from(body))
}

const V4: &str =
    "[[upstream]]\nkind = \"myinfo-v4\"\nbase_url = \"https://myinfo.example/com/v4\"\n";

/// A proxy for a v4 upstream with the extra config `extra`, over `upstream`.
fn proxy(extra: &str, upstream: &Upstream, bindings: Option<Arc<dyn BindingStore>>) -> Proxy {
    proxy_for(&format!("{V4}{extra}"), upstream, bindings)
}

/// A proxy for the `upstreams` tables, over `upstream`.
fn proxy_for(
    upstreams: &str,
    upstream: &Upstream,
    bindings: Option<Arc<dyn BindingStore>>,
) -> Proxy {
    let (private, _) = crate::jose::generate_client_jwks().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("private-jwks.json"), private.to_string()).unwrap();
    let text = format!(
        "client_id = \"c\"\n[keys]\njwks_file = \"private-jwks.json\"\nreload_interval = \"0s\"\n{upstreams}"
    );
    let config = Config::from_toml(&text, dir.path()).unwrap();
    let builder = Proxy::builder(&config).upstream(upstream.service());
    match bindings {
        Some(store) => builder.bindings(store),
        None => builder,
    }
    .build()
    .unwrap()
}

async fn token(proxy: &Proxy) -> Response<Bytes> {
    let form =
        "grant_type=authorization_code&code=c1&redirect_uri=https%3A%2F%2Fapp%2Fcb&code_verifier=v";
    let req = Request::post("/com/v4/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(form))
        .unwrap();
    proxy.call_buffered(req).await
}

async fn person(proxy: &Proxy, token: &str) -> Response<Bytes> {
    let req = Request::get("/com/v4/person/s1?scope=name")
        .header("authorization", format!("Bearer {token}"))
        .body(Bytes::new())
        .unwrap();
    proxy.call_buffered(req).await
}

fn json(res: &Response<Bytes>) -> serde_json::Value {
    serde_json::from_slice(res.body()).unwrap()
}

fn access_token(res: &Response<Bytes>) -> String {
    json(res)["access_token"].as_str().unwrap().to_owned()
}

/// The claims of the DPoP proof a request carried.
fn proof_claims(req: &Request<Bytes>) -> serde_json::Value {
    let proof = req.headers()["dpop"].to_str().unwrap();
    let payload = proof.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(start_paused = true)]
async fn local_refusals_come_before_the_rate_limiter_and_take_no_permit() {
    let upstream = Upstream::new(myinfo);
    let limit =
        "[upstream.routes.person.rate_limit]\nper_second = 1\nburst = 1\nmax_wait = \"10s\"\n";
    let proxy = proxy(limit, &upstream, None);
    let first = access_token(&token(&proxy).await);
    // The one permit of the person route's quota is spent.
    assert_eq!(person(&proxy, &first).await.status(), 200);

    let start = Instant::now();
    let reused = person(&proxy, &first).await;
    let unknown = person(&proxy, "never-issued-through-this-proxy").await;
    assert_eq!(reused.status(), 401);
    assert_eq!(json(&reused)["title"], "AUTH_TOKEN_REUSED");
    assert_eq!(unknown.status(), 401);
    assert_eq!(json(&unknown)["title"], "AUTH_TOKEN_UNKNOWN");
    assert_eq!(
        Instant::now(),
        start,
        "refused at once, without waiting for a permit"
    );

    // They took no permit: a good call now waits only for the one the first call spent.
    let second = access_token(&token(&proxy).await);
    assert_eq!(person(&proxy, &second).await.status(), 200);
    assert!(
        start.elapsed() <= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(upstream.calls_to("/person/s1"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_nonce_demand_with_a_new_nonce_every_time_gets_exactly_two_attempts() {
    // Every answer demands a nonce and hands out a new one; after a few, give up and answer
    // 200 so that a proxy that repeated without end would still finish (and fail the count).
    let upstream = Upstream::new(|_, n| {
        let status = if n < 8 { 400 } else { 200 };
        Response::builder()
            .status(status)
            .header("dpop-nonce", format!("nonce-{n}"))
            .body(Bytes::from_static(br#"{"error":"use_dpop_nonce"}"#))
            .unwrap()
    });
    let proxy = proxy("", &upstream, None);
    let res = token(&proxy).await;
    assert_eq!(res.status(), 400, "the second demand goes to the app");
    assert_eq!(upstream.seen().len(), 2);
    let nonces: Vec<_> = upstream
        .seen()
        .iter()
        .map(|r| proof_claims(r)["nonce"].clone())
        .collect();
    assert_eq!(nonces, [serde_json::Value::Null, "nonce-0".into()]);
    token(&proxy).await;
    assert_eq!(
        upstream.seen().len(),
        4,
        "two attempts per request, never more"
    );
}

#[tokio::test(start_paused = true)]
async fn a_nonce_handed_out_with_a_success_is_used_by_the_next_proof_at_once() {
    let upstream = Upstream::new(|req, n| {
        let mut res = myinfo(req, n);
        res.headers_mut()
            .insert("dpop-nonce", "from-a-success".parse().unwrap());
        res
    });
    let proxy = proxy("", &upstream, None);
    let issued = access_token(&token(&proxy).await);
    assert_eq!(person(&proxy, &issued).await.status(), 200);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "no extra round trip");
    assert_eq!(proof_claims(&seen[1])["nonce"], "from-a-success");
}

/// A store that is down.
struct Down;

impl BindingStore for Down {
    fn bind_token<'a>(
        &'a self,
        _: &'a str,
        _: Arc<EphemeralKey>,
        _: TokenUse,
        _: Duration,
    ) -> BindingFuture<'a, ()> {
        Box::pin(std::future::ready(Err(
            crate::binding::BindingError::Unavailable("connection refused".into()),
        )))
    }
    fn use_token<'a>(&'a self, _: &'a str) -> BindingFuture<'a, TokenLookup> {
        Box::pin(std::future::ready(Err(
            crate::binding::BindingError::Unavailable("connection refused".into()),
        )))
    }
    fn bind_login<'a>(
        &'a self,
        _: &'a str,
        _: Arc<EphemeralKey>,
        _: Duration,
    ) -> BindingFuture<'a, ()> {
        Box::pin(std::future::ready(Err(
            crate::binding::BindingError::Unavailable("connection refused".into()),
        )))
    }
    fn login_key<'a>(&'a self, _: &'a str) -> BindingFuture<'a, Option<Arc<EphemeralKey>>> {
        Box::pin(std::future::ready(Err(
            crate::binding::BindingError::Unavailable("connection refused".into()),
        )))
    }
    fn forget_login<'a>(&'a self, _: &'a str) -> BindingFuture<'a, ()> {
        Box::pin(std::future::ready(Err(
            crate::binding::BindingError::Unavailable("connection refused".into()),
        )))
    }
    fn live_bindings(&self) -> u64 {
        0
    }
    fn live_logins(&self) -> u64 {
        0
    }
}

#[tokio::test(start_paused = true)]
async fn a_binding_store_outage_is_a_503_to_try_again_shortly() {
    let upstream = Upstream::new(myinfo);
    let proxy = proxy("", &upstream, Some(Arc::new(Down)));
    let res = person(&proxy, "some-token").await;
    assert_eq!(res.status(), 503);
    assert_eq!(json(&res)["title"], "SYSTEM_SHARED_STATE_UNAVAILABLE");
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(upstream.seen().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_issuer_without_the_routes_endpoint_is_counted_under_the_route() {
    let upstream = Upstream::new(|_, _| {
        let metadata = r#"{"issuer":"https://id.example/fapi","token_endpoint":"https://id.example/fapi/token","jwks_uri":"https://id.example/fapi/jwks"}"#;
        Response::new(Bytes::from_static(metadata.as_bytes()))
    });
    let fapi = "[[upstream]]\nkind = \"singpass-fapi\"\nissuer = \"https://id.example/fapi\"\n";
    let proxy = proxy_for(fapi, &upstream, None);
    let par = Request::post("/fapi/par")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from_static(
            b"code_challenge=x&code_challenge_method=S256",
        ))
        .unwrap();
    let res = proxy.call_buffered(par).await;
    assert_eq!(res.status(), 502);
    assert_eq!(json(&res)["title"], "PROVIDER_UNEXPECTED_RESPONSE");
    let outcome = res.extensions().get::<crate::layer::Outcome>().unwrap();
    assert_eq!(outcome.route, Some(crate::config::RouteKind::FapiPar));
    assert!(crate::metrics::render()
        .contains(r#"myinfo_proxy_requests_total{route="fapi_par",status="502"}"#));
}
