//! The proxy as one service: an app request in (by local path), the route matched, the
//! request id kept or made, the stack of layers called, one access event out. The server
//! feeds it HTTP requests; a library user can call it in process.

use crate::admin::{Admin, Health};
use crate::config::{Config, ConfigError};
use crate::error::{problem_response, ProblemCode, ProblemContext, ProxyError};
use crate::key_source::KeyStore;
use crate::route::{RequestContext, RouteMatch, RouteTable};
use crate::server::AppBody;
use crate::stack::ProxyService;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::ServiceExt as _;

mod builder;

pub use builder::ProxyBuilder;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Ephemeral keys kept ready by the background generator.
const KEY_POOL: usize = 64;
/// Bindings the in-memory store holds at most.
const BINDINGS: u64 = 1_000_000;

/// Everything needed to answer app requests: routes, keys, and the assembled stack.
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
    /// A builder for a proxy from `config`.
    pub fn builder(config: &Config) -> ProxyBuilder<'_> {
        ProxyBuilder {
            config,
            upstream: None,
            bindings: None,
        }
    }

    /// The proxy `config` describes, with the built-in HTTP client and binding store.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Self::builder(config).build()
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

    /// Answers one HTTP request from the app: reads its body (up to `max_request_body`), then
    /// as [`Proxy::call_buffered`]. Never fails: every problem is a problem+json answer.
    pub async fn handle(&self, req: Request<impl AppBody>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let res = match read_body(&parts.headers, body, self.max_request_body).await {
            Ok(body) => self.call_buffered(Request::from_parts(parts, body)).await,
            Err(e) => {
                let started = tokio::time::Instant::now();
                let request_id = request_id(&parts.headers);
                self.finish(
                    started,
                    &request_id,
                    &parts.method,
                    parts.uri.path(),
                    Err(e),
                )
            }
        };
        res.map(Full::new)
    }

    /// Answers one app request whose body is already read; its URI is the local path (and
    /// query) the app calls, e.g. `/com/v4/token`. Never fails.
    pub async fn call_buffered(&self, req: Request<Bytes>) -> Response<Bytes> {
        let started = tokio::time::Instant::now();
        if self.jwks_on_main_listener
            && req.uri().path() == "/.well-known/jwks.json"
            && req.method() == Method::GET
        {
            let (parts, body) = crate::admin::jwks_response(&self.keys).into_parts();
            let body = futures_util::FutureExt::now_or_never(body.collect())
                .and_then(Result::ok)
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Response::from_parts(parts, body);
        }
        let request_id = request_id(req.headers());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let forwarded = match self.api_keys.check(req.headers()) {
            Ok(()) => self.forward(req, &request_id).await,
            Err(refused) => Err(refused),
        };
        self.finish(started, &request_id, &method, &path, forwarded)
    }

    /// The answer to the app, the access event, and (for requests refused before the stack)
    /// the request metrics.
    fn finish(
        &self,
        started: tokio::time::Instant,
        request_id: &str,
        method: &Method,
        path: &str,
        forwarded: Result<(Response<Bytes>, RequestContext), ProxyError>,
    ) -> Response<Bytes> {
        let (res, ctx) = match forwarded {
            Ok((res, ctx)) => (res, Some(ctx)),
            Err(err) => {
                let problem = ProblemContext {
                    instance: path,
                    request_id: Some(request_id),
                    doc_url: Some(&self.doc_url),
                };
                let mut res = problem_response(&err, &problem);
                if err.code == ProblemCode::ResourceMethodNotAllowed {
                    if let RouteMatch::Found { route, .. } = self.routes.find(path) {
                        res.headers_mut()
                            .insert(header::ALLOW, HeaderValue::from_static(route.kind.allow()));
                    }
                }
                crate::metrics::request("none", res.status().as_u16(), started.elapsed());
                (res, None)
            }
        };
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Ok(v) = HeaderValue::from_str(request_id) {
            parts.headers.insert(X_REQUEST_ID.clone(), v);
        }
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
            route = ctx.as_ref().map_or("none", |c| c.route.kind.label()),
            status = parts.status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            attempts = ctx.as_ref().map_or(0, |c| c.attempts.load(std::sync::atomic::Ordering::Relaxed)),
            upstream_id = upstream_ids.as_ref().and_then(|u| u.id.as_deref()).unwrap_or(""),
            trace_id = upstream_ids.as_ref().and_then(|u| u.trace_id.as_deref()).unwrap_or(""),
            "request"
        );
        Response::from_parts(parts, body)
    }

    async fn forward(
        &self,
        req: Request<Bytes>,
        request_id: &str,
    ) -> Result<(Response<Bytes>, RequestContext), ProxyError> {
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
        if !route.kind.takes(req.method()) {
            return Err(ProxyError::new(
                ProblemCode::ResourceMethodNotAllowed,
                format!("{} takes {} only", req.uri().path(), route.kind.method()),
            ));
        }
        let (mut parts, body) = req.into_parts();
        let instance = parts.uri.path().to_owned();
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
        let ctx = RequestContext::new(
            route.clone(),
            &target,
            &instance,
            request_id,
            self.doc_url.clone(),
            self.overall,
        );
        parts.extensions = http::Extensions::new();
        parts.extensions.insert(ctx.clone());
        let res = self
            .service
            .clone()
            .oneshot(Request::from_parts(parts, body))
            .await;
        Ok((res.unwrap_or_else(|never| match never {}), ctx))
    }
}

/// The proxy as a tower service: app requests (by local path) in, answers out, never an error.
impl tower::Service<Request<Bytes>> for Proxy {
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let proxy = self.clone();
        Box::pin(async move { Ok(proxy.call_buffered(req).await) })
    }
}

async fn read_body(
    headers: &HeaderMap,
    body: impl AppBody,
    cap: usize,
) -> Result<Bytes, ProxyError> {
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
