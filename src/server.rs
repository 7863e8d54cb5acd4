//! The listener: HTTP/1.1 and h2c from the app, request bodies read into capped `Bytes`,
//! hop-by-hop headers dropped, the route matched, and graceful shutdown.

use crate::admin::{Admin, Health};
use crate::binding::MemoryBindings;
use crate::config::{Config, ConfigError};
use crate::error::{problem_response, ProblemCode, ProblemContext, ProxyError};
use crate::jose::EphemeralKeyPool;
use crate::key_source::KeyStore;
use crate::layer::Signing;
use crate::route::{RequestContext, RouteMatch, RouteTable};
use crate::stack::{self, ProxyService};
use crate::upstream::{tls_config, UpstreamClient};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything needed to answer one app request.
#[derive(Clone)]
pub struct Proxy {
    routes: Arc<RouteTable>,
    keys: Arc<KeyStore>,
    health: Arc<Health>,
    jwks_on_main_listener: bool,
    api_keys: crate::inbound::ApiKeys,
    _key_watch: Arc<AbortOnDrop>,
    service: ProxyService,
    max_request_body: usize,
    doc_url: Arc<str>,
    overall: Duration,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Loads keys and trust roots and assembles the stack. Fails with the config key at fault.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let keys = Arc::new(KeyStore::load(config)?);
        let tls = tls_config(&config.tls)?;
        let upstream = UpstreamClient::new(tls, config.timeouts.connect, config.max_response_body);
        let routes = Arc::new(RouteTable::new(config, &upstream));
        // Fetch every issuer's discovery now, so the first login does not wait for it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            for discovery in routes.discoveries() {
                let discovery = discovery.clone();
                runtime.spawn(async move {
                    let _ = discovery.metadata().await;
                });
            }
        }
        let key_watch = match (
            config.key_reload_interval,
            tokio::runtime::Handle::try_current(),
        ) {
            (Some(every), Ok(_)) => keys.watch(every),
            _ => None,
        };
        let health = Arc::new(Health::new(keys.clone(), routes.discoveries().to_vec()));
        let signing = Signing {
            client_id: config.client_id.clone(),
            keys: keys.clone(),
            pool: EphemeralKeyPool::new(64),
            bindings: Arc::new(MemoryBindings::new(1_000_000)),
            assertion_lifetime: config.assertion_lifetime,
            nonces: crate::layer::NonceStore::default(),
        };
        Ok(Self {
            routes,
            keys,
            health,
            jwks_on_main_listener: config.jwks_on_main_listener,
            api_keys: crate::inbound::ApiKeys::new(&config.inbound),
            _key_watch: Arc::new(AbortOnDrop(key_watch)),
            service: stack::build(config, signing, upstream),
            max_request_body: config.max_request_body,
            doc_url: config.problem_doc_url.as_str().into(),
            overall: config.timeouts.overall,
        })
    }

    /// The admin endpoints' view of this proxy.
    pub fn admin(&self) -> Admin {
        Admin {
            health: self.health.clone(),
            keys: self.keys.clone(),
        }
    }

    /// Readiness state (turn it to draining on shutdown).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The client keys in use.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Answers one app request. Never fails: every problem becomes a problem+json answer.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if self.jwks_on_main_listener
            && req.uri().path() == "/.well-known/jwks.json"
            && req.method() == Method::GET
        {
            return crate::admin::jwks_response(&self.keys);
        }
        let started = tokio::time::Instant::now();
        let request_id = request_id(req.headers());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let forwarded = match self.api_keys.check(req.headers()) {
            Ok(()) => self.forward(req, &request_id).await,
            Err(refused) => Err(refused),
        };
        let (res, route, ctx) = match forwarded {
            Ok((res, route, ctx)) => (res, Some(route), Some(ctx)),
            Err(err) => {
                let ctx = ProblemContext {
                    instance: &path,
                    request_id: Some(&request_id),
                    doc_url: Some(&self.doc_url),
                };
                let mut res = problem_response(&err, &ctx);
                if err.code == ProblemCode::ResourceMethodNotAllowed {
                    if let Some(allow) = self.allowed_method(&path) {
                        res.headers_mut()
                            .insert(header::ALLOW, HeaderValue::from_static(allow));
                    }
                }
                (res, None, None)
            }
        };
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            parts.headers.insert(X_REQUEST_ID.clone(), v);
        }
        crate::metrics::request(
            route.unwrap_or("none"),
            parts.status.as_u16(),
            started.elapsed(),
        );
        let upstream_ids = ctx.as_ref().and_then(|c| {
            c.last_upstream_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        });
        tracing::info!(
            target: "myinfo_proxy::access",
            request_id = %request_id,
            method = %method,
            route = route.unwrap_or("none"),
            status = parts.status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            attempts = ctx.as_ref().map_or(0, |c| c.attempts.load(std::sync::atomic::Ordering::Relaxed)),
            upstream_id = upstream_ids.as_ref().and_then(|u| u.id.as_deref()).unwrap_or(""),
            trace_id = upstream_ids.as_ref().and_then(|u| u.trace_id.as_deref()).unwrap_or(""),
            "request"
        );
        Response::from_parts(parts, Full::new(body))
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        request_id: &str,
    ) -> Result<(Response<Bytes>, &'static str, RequestContext), ProxyError> {
        // HTTP/2 requests always carry :scheme and :authority; only HTTP/1 has absolute-form.
        let absolute_form = req.version() < http::Version::HTTP_2
            && (req.uri().scheme().is_some() || req.uri().authority().is_some());
        if req.method() == Method::CONNECT || absolute_form {
            return Err(ProxyError::new(
                ProblemCode::ValidationInvalidTarget,
                "myinfo-proxy is a reverse proxy, not a forward proxy: send origin-form requests (a path), not CONNECT or absolute URLs",
            ));
        }
        let RouteMatch::Found { route, destination } = self.routes.find(req.uri().path()) else {
            return Err(ProxyError::new(
                ProblemCode::ResourceNotFound,
                format!(
                    "no route for {}; see the README for the paths this proxy serves",
                    req.uri().path()
                ),
            ));
        };
        if req.method() != route.kind.method() {
            return Err(ProxyError::new(
                ProblemCode::ResourceMethodNotAllowed,
                format!("{} takes {} only", req.uri().path(), route.kind.method()),
            ));
        }
        let (mut parts, body) = req.into_parts();
        let instance = parts.uri.path().to_owned();
        let body = self.read_body(&parts.headers, body).await?;

        let target = destination.resolve().await?;
        let uri = match parts.uri.query() {
            Some(q) => format!("{}?{q}", target.url),
            None => target.url.clone(),
        };
        parts.uri = uri.parse().map_err(|_| {
            ProxyError::new(
                ProblemCode::ValidationInvalidParameter,
                "the request path or query is not a valid URI",
            )
        })?;
        parts.version = http::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        // The app's API key is for this proxy only.
        parts.headers.remove(&crate::inbound::API_KEY);
        parts.headers.remove(header::CONTENT_LENGTH);
        if let Ok(v) = HeaderValue::from_str(request_id) {
            parts.headers.insert(X_REQUEST_ID.clone(), v);
        }
        parts.extensions = http::Extensions::new();
        let ctx = RequestContext::new(
            route.clone(),
            &target,
            &instance,
            request_id,
            self.doc_url.clone(),
            self.overall,
        );
        parts.extensions.insert(ctx.clone());
        let label = route.kind.label();
        let res = self
            .service
            .clone()
            .oneshot(Request::from_parts(parts, body))
            .await;
        let res = res.unwrap_or_else(|never| match never {});
        Ok((res, label, ctx))
    }

    async fn read_body(&self, headers: &HeaderMap, body: Incoming) -> Result<Bytes, ProxyError> {
        let cap = self.max_request_body;
        let too_large = || {
            ProxyError::new(
                ProblemCode::ValidationBodyTooLarge,
                format!("the request body is larger than max_request_body ({cap} bytes)"),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return Err(too_large());
        }
        match Limited::new(body, cap).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Err(e) => Err(ProxyError::new(
                ProblemCode::ValidationInvalidParameter,
                format!("the request body could not be read: {e}"),
            )),
        }
    }

    fn allowed_method(&self, path: &str) -> Option<&'static str> {
        match self.routes.find(path) {
            RouteMatch::Found { route, .. } => {
                Some(route.kind.method().as_str()).map(|m| if m == "GET" { "GET" } else { "POST" })
            }
            RouteMatch::NotFound => None,
        }
    }
}

/// Stops the key watcher when the last clone of the proxy goes.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// The app's `x-request-id` when it is short printable ASCII; otherwise a new random one.
fn request_id(headers: &HeaderMap) -> String {
    let given = headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()));
    match given {
        Some(v) => v.to_owned(),
        None => {
            use rand::RngCore as _;
            let mut b = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut b);
            b.iter().map(|x| format!("{x:02x}")).collect()
        }
    }
}

/// Drops the RFC 9110 section 7.6.1 connection-specific headers and any the `Connection`
/// header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// Serves `proxy` on `listener` until `shutdown` resolves, then stops accepting and gives
/// in-flight requests up to `drain` to finish.
pub async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    serve_with(
        listener,
        move |req| {
            let proxy = proxy.clone();
            async move { proxy.handle(req).await }
        },
        shutdown,
        drain,
    )
    .await
}

/// Serves `proxy` over TLS (mTLS when the acceptor requires client certificates).
pub async fn serve_tls(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    proxy: Proxy,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    run(
        listener,
        Some(tls),
        move |req| {
            let proxy = proxy.clone();
            async move { proxy.handle(req).await }
        },
        shutdown,
        drain,
    )
    .await
}

/// Serves any handler (the proxy, the admin endpoints) with HTTP/1.1 and h2c, until `shutdown`
/// resolves; then stops accepting and waits up to `drain` for in-flight requests.
pub async fn serve_with<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    run(listener, None, handler, shutdown, drain).await
}

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn run<H, F>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: H,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let service = hyper::service::service_fn(move |req| {
                    let answer = handler(req);
                    async move { Ok::<_, std::convert::Infallible>(answer.await) }
                });
                let watcher = graceful.watcher();
                let builder = builder.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let result = match tls {
                        None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await,
                        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await,
                            Ok(Err(e)) => {
                                tracing::info!(%peer, error = %e, "TLS handshake refused");
                                return;
                            }
                            Err(_) => return,
                        },
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_s = drain.as_secs(),
            "drain deadline passed with requests still in flight"
        );
    }
    Ok(())
}
