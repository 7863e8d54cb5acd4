//! The router: a request's path and method -> its route's own stack. Unknown paths, wrong
//! methods and forward-proxy targets are errors like any other (the one rescue maps them, the
//! trace layer's answer hook counts them). For a matched route it resolves the upstream URL (from
//! config, or from the issuer's discovery), makes the request that goes upstream
//! ([`forward`]), and records the route on the request's span and in the answer's
//! [`Outcome`].

use crate::config::{Config, RouteKind};
use crate::discovery::{Discovery, Endpoint, Metadata};
use crate::error::{annotate, BoxError, ProblemCode, ProxyError};
use crate::layer::Outcome;
use crate::proxy::RouteLine;
use bytes::Bytes;
use http::{Method, Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::ServiceExt as _;

mod forward;
mod hop_by_hop;
use forward::{prepare_fixed, query_room, upstream_request};
use hop_by_hop::strip_hop_by_hop;

/// One route's stack: the app's request (its URI already the upstream URL) in, the answer out.
pub(crate) type RouteService = crate::stack::ArcService<Request<Bytes>, Response<Bytes>, BoxError>;

/// A route and the stack that serves it.
pub(crate) struct RouteEntry {
    kind: RouteKind,
    discovery: Option<Arc<Discovery>>,
    /// Everything for one app request must be done within this (the deadline in its facts).
    overall: Duration,
    stack: RouteService,
}

impl RouteEntry {
    /// `kind`'s `stack`; FAPI and CIBA routes find their URL in `discovery`.
    pub(crate) fn new(
        kind: RouteKind,
        discovery: Option<Arc<Discovery>>,
        overall: Duration,
        stack: RouteService,
    ) -> Self {
        Self {
            kind,
            discovery,
            overall,
            stack,
        }
    }
}

/// One upstream's routes under its local prefix.
pub(crate) struct Mount {
    prefix: String,
    base_url: String,
    /// The `Host` of requests to `base_url`, made once (see [`forward::host_header`]).
    host: Option<http::HeaderValue>,
    routes: Vec<RouteEntry>,
}

impl Mount {
    /// The routes of the upstream at `base_url`, under the local `prefix`.
    pub(crate) fn new(prefix: &str, base_url: &str, routes: Vec<RouteEntry>) -> Self {
        Self {
            prefix: prefix.to_owned(),
            base_url: base_url.to_owned(),
            host: forward::host_header(base_url),
            routes,
        }
    }
}

/// Dispatches each request to its route's stack.
#[derive(Clone)]
pub(crate) struct Router {
    mounts: Arc<[Mount]>,
}

impl Router {
    /// A router over these upstreams' routes.
    pub(crate) fn new(mounts: Vec<Mount>) -> Self {
        Self {
            mounts: mounts.into(),
        }
    }

    /// The route for a request path (without query), and where it goes (a URL from config is
    /// made with `room` bytes to spare, for the query).
    fn find(&self, path: &str, room: usize) -> Option<(&RouteEntry, Destination)> {
        let url = |parts: &[&str]| {
            let mut url =
                String::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + room);
            parts.iter().for_each(|p| url.push_str(p));
            url
        };
        for m in self.mounts.iter() {
            let Some(rest) = path.strip_prefix(m.prefix.as_str()) else {
                continue;
            };
            for route in &m.routes {
                let destination = match (route.kind, &route.discovery, endpoint(route.kind)) {
                    (RouteKind::Passthrough, _, _) if rest.is_empty() || rest.starts_with('/') => {
                        match crate::path_guard::normalise_passthrough(rest) {
                            Ok(rest) => {
                                Destination::Fixed(url(&[&m.base_url, &rest]), m.host.clone())
                            }
                            Err(refused) => Destination::Refused(refused),
                        }
                    }
                    (RouteKind::Passthrough, _, _) => continue,
                    (RouteKind::V4Person, _, _) => match rest.strip_prefix("/person/") {
                        Some(sub) if !sub.is_empty() && !sub.contains('/') => {
                            match crate::path_guard::check_segment("person `sub`", sub) {
                                Ok(()) => Destination::Fixed(
                                    url(&[&m.base_url, "/person/", sub]),
                                    m.host.clone(),
                                ),
                                Err(refused) => Destination::Refused(refused),
                            }
                        }
                        _ => continue,
                    },
                    (kind, _, _) if rest != kind.local_path() => continue,
                    (_, Some(discovery), Some(endpoint)) => {
                        Destination::Discovered(discovery.clone(), endpoint)
                    }
                    (kind, _, _) => {
                        Destination::Fixed(url(&[&m.base_url, kind.local_path()]), m.host.clone())
                    }
                };
                return Some((route, destination));
            }
        }
        None
    }

    /// The route's stack and the request for it, or the refusal (and the route it concerns).
    fn route(&self, req: &Request<Bytes>) -> Result<Routed<'_>, (Option<RouteKind>, ProxyError)> {
        // HTTP/2 requests always carry :scheme and :authority; only HTTP/1 has absolute-form.
        let absolute_form = req.version() < http::Version::HTTP_2
            && (req.uri().scheme().is_some() || req.uri().authority().is_some());
        if req.method() == Method::CONNECT || absolute_form {
            return Err((None, ProxyError::new(
                ProblemCode::ValidationInvalidTarget,
                "myinfo-proxy is a reverse proxy, not a forward proxy: send origin-form requests (a path), not CONNECT or absolute URLs",
            )));
        }
        let path = req.uri().path();
        let Some((route, destination)) = self.find(path, query_room(req.uri())) else {
            tracing::Span::current().record("route", "none");
            return Err((
                None,
                ProxyError::new(
                    ProblemCode::ResourceNotFound,
                    format!("no route for {path}; see the README for the paths this proxy serves"),
                ),
            ));
        };
        // The `request` span is an INFO span: nothing to record in when INFO is off.
        if tracing::level_enabled!(tracing::Level::INFO) {
            tracing::Span::current().record("route", route.kind.label());
        }
        if !route.kind.takes(req.method()) {
            let refused = ProxyError::new(
                ProblemCode::ResourceMethodNotAllowed,
                format!("{path} takes {} only", route.kind.method()),
            );
            return Err((Some(route.kind), refused.with_allow(route.kind.allow())));
        }
        Ok(Routed {
            kind: route.kind,
            deadline: crate::deadline::saturating_add(tokio::time::Instant::now(), route.overall),
            stack: &route.stack,
            destination,
        })
    }
}

impl tower::Service<Request<Bytes>> for Router {
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = RouterFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each route's stack is driven to readiness when a request is dispatched to it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let Routed {
            kind,
            deadline,
            stack,
            destination,
        } = match self.route(&req) {
            Ok(routed) => routed,
            Err((kind, e)) => {
                return RouterFuture {
                    answer: Box::pin(std::future::ready(Err(e.into()))),
                    kind,
                }
            }
        };
        let answer: BoxFuture = match destination {
            // A URL from config: the request is ready now, and the route's future is the answer.
            Destination::Fixed(url, host) => match prepare_fixed(req, url, host, deadline) {
                Ok(req) => stack.call_shared(req),
                Err(e) => Box::pin(std::future::ready(Err(unresolved(e)))),
            },
            destination => {
                let stack = stack.clone();
                Box::pin(async move {
                    match upstream_request(req, destination, deadline).await {
                        Ok(req) => stack.oneshot(req).await,
                        Err(e) => Err(unresolved(e)),
                    }
                })
            }
        };
        RouterFuture {
            answer,
            kind: Some(kind),
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

/// The future of [`Router`]: the route's answer, its hop-by-hop headers dropped, and the route
/// recorded in its [`Outcome`] (or in the error's).
pub(crate) struct RouterFuture {
    answer: BoxFuture,
    /// None: refused before a route was found.
    kind: Option<RouteKind>,
}

impl Future for RouterFuture {
    type Output = Result<Response<Bytes>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = std::task::ready!(self.answer.as_mut().poll(cx));
        let Some(kind) = self.kind else {
            return Poll::Ready(result);
        };
        Poll::Ready(match result {
            Ok(mut res) => {
                strip_hop_by_hop(res.headers_mut());
                res.extensions_mut()
                    .get_or_insert_default::<Outcome>()
                    .route = Some(kind);
                Ok(res)
            }
            Err(e) => Err(annotate(e, |o| o.route = Some(kind))),
        })
    }
}

/// The route's upstream URL could not be made.
fn unresolved(e: ProxyError) -> BoxError {
    tracing::warn!(error = %e, "could not resolve the route's upstream URL");
    e.into()
}

/// A request's route, the moment its answer is due, and where it goes.
struct Routed<'a> {
    kind: RouteKind,
    deadline: tokio::time::Instant,
    stack: &'a RouteService,
    destination: Destination,
}

/// Where one request goes: the upstream URL (without query) and the assertion audience.
struct Target {
    url: Arc<str>,
    aud: Arc<str>,
}

impl Target {
    /// A URL known from config; `aud` is the URL itself (v4's token URL).
    fn fixed(url: String) -> Self {
        let url: Arc<str> = url.into();
        Self {
            aud: url.clone(),
            url,
        }
    }
}

/// A route's upstream address: fixed by config (v4) or taken from discovery (FAPI, CIBA).
enum Destination {
    /// A URL known from config, and its `Host`; `aud` is the URL itself (v4's token URL).
    Fixed(String, Option<http::HeaderValue>),
    /// An endpoint from the issuer's metadata; `aud` is the issuer.
    Discovered(Arc<Discovery>, Endpoint),
    /// A path that must not be signed or forwarded (see [`crate::path_guard`]).
    Refused(ProxyError),
}

impl Destination {
    /// The URL and audience, fetching discovery if it was never fetched.
    async fn resolve(self) -> Result<Target, ProxyError> {
        match self {
            Self::Fixed(url, _) => Ok(Target::fixed(url)),
            Self::Discovered(discovery, endpoint) => {
                let metadata: Arc<Metadata> = discovery.metadata().await?;
                let url = metadata.endpoint(endpoint)?.into();
                Ok(Target {
                    url,
                    aud: metadata.issuer.trim_end_matches('/').into(),
                })
            }
            Self::Refused(refused) => Err(refused),
        }
    }
}

/// The discovery endpoint a route calls (None: its URL comes from config).
pub(crate) fn endpoint(kind: RouteKind) -> Option<Endpoint> {
    match kind {
        RouteKind::V4Token | RouteKind::V4Person | RouteKind::Passthrough => None,
        RouteKind::FapiPar => Some(Endpoint::Par),
        RouteKind::FapiToken | RouteKind::CibaToken => Some(Endpoint::Token),
        RouteKind::FapiUserinfo => Some(Endpoint::Userinfo),
        RouteKind::CibaAuth => Some(Endpoint::BackchannelAuthentication),
    }
}

/// Every configured route, for `check-config`.
pub(crate) fn describe(config: &Config) -> Vec<RouteLine> {
    let mut out = Vec::new();
    for u in &config.upstreams {
        for &kind in u.routes.keys() {
            let upstream = match endpoint(kind) {
                None => format!("{}{}", u.base_url, kind.local_path()),
                Some(e) => format!("{:?} endpoint of {} (discovery)", e, u.base_url),
            };
            let method = kind.allow();
            let local = format!("{}{}", u.local_prefix, kind.local_path());
            out.push(RouteLine {
                method,
                local,
                upstream,
            });
        }
    }
    out
}
