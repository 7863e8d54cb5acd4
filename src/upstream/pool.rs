//! The upstream connections: hyper's own HTTP/1.1 and HTTP/2 client connections over the
//! proxy's connector, kept per origin and reused, each answer read whole before the next
//! request may use its connection.
//!
//! Why not hyper-util's legacy `Client`: for every HTTP/1 request it builds a lazy connect
//! future (cloning its connector and pool handles), hashes the pool key, and spawns a task that
//! waits for the connection to be free again before returning it to its pool. Here the request's
//! own future reads the answer whole (the layers need it buffered anyway) and hands the
//! connection back itself: no task, no extra wake-up (13% fewer instructions per passthrough
//! request; BENCHMARKS.md, "The upstream client").
//!
//! - HTTP/2 when ALPN negotiates it: one shared connection per origin, a clone per request.
//! - HTTP/1.1 otherwise: a connection per request in flight; at most [`MAX_IDLE_PER_ORIGIN`]
//!   idle ones are kept per origin, none past the idle timeout (a sweep every 10 s closes the
//!   expired ones when no request comes).
//! - A request that a reused connection could not send (the upstream had closed it meanwhile)
//!   goes out on another connection; a request that was sent is never sent again here (that is
//!   retry's decision).

use crate::error::BoxError;
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{header, HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::connect::Connection;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// Idle HTTP/1.1 connections kept per upstream origin (more are closed when freed).
const MAX_IDLE_PER_ORIGIN: usize = 64;

/// Origins the pool keeps connections for (the upstreams of the config and their issuers'
/// endpoints: a handful); a request to an origin beyond them gets a connection of its own.
const MAX_ORIGINS: usize = 256;

/// The place of an origin beyond [`MAX_ORIGINS`]: its connections are not kept.
const UNPOOLED: usize = usize::MAX;

/// How often idle connections past the idle timeout are closed when no request comes.
pub(super) const SWEEP: Duration = Duration::from_secs(10);

/// An upstream request that got no answer: no connection could be made, or the connection
/// failed before the answer was in.
#[derive(Debug, thiserror::Error)]
#[error("{}", if *.connect { "could not connect to the upstream" } else { "the upstream connection failed" })]
pub(crate) struct TransportError {
    connect: bool,
    #[source]
    source: BoxError,
}

impl TransportError {
    /// No connection could be made (TCP, TLS, or the HTTP handshake).
    pub(crate) fn is_connect(&self) -> bool {
        self.connect
    }

    fn connect(source: impl Into<BoxError>) -> Self {
        Self {
            connect: true,
            source: source.into(),
        }
    }

    fn connection(source: impl Into<BoxError>) -> Self {
        Self {
            connect: false,
            source: source.into(),
        }
    }
}

/// Connections per origin, over the connector `C` (a `tower::Service<Uri>`).
pub(crate) struct Pool<C> {
    connector: C,
    idle_timeout: Duration,
    max_origins: usize,
    origins: Mutex<Vec<(Origin, Idle)>>,
    reaper: std::sync::Once,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: Scheme,
    authority: Authority,
}

/// A pooled connection, to be checked before use.
enum Free {
    H1(http1::SendRequest<Full<Bytes>>, usize),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Free {
    /// The connection once it can take a request; None if it closed.
    async fn ready(self) -> Option<Lease> {
        match self {
            // Freed as its answer's body ended: the connection may not have seen that yet.
            Free::H1(mut sender, at) => {
                sender.ready().await.ok().map(|()| Lease::H1 { sender, at })
            }
            Free::H2(mut sender) => sender.ready().await.ok().map(|()| Lease::H2(sender)),
        }
    }
}

#[derive(Default)]
struct Idle {
    /// Most recently freed last.
    h1: Vec<(http1::SendRequest<Full<Bytes>>, Instant)>,
    h2: Option<http2::SendRequest<Full<Bytes>>>,
}

/// A connection a request goes out on (`at`: its origin's place in the pool).
pub(crate) enum Lease {
    H1 {
        sender: http1::SendRequest<Full<Bytes>>,
        at: usize,
    },
    H2(http2::SendRequest<Full<Bytes>>),
}

impl<C, R> Pool<C>
where
    C: tower::Service<Uri, Response = R> + Clone + Send + Sync + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
    R: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
{
    pub(crate) fn new(connector: C, idle_timeout: Duration) -> Arc<Self> {
        Self::with_max_origins(connector, idle_timeout, MAX_ORIGINS)
    }

    pub(super) fn with_max_origins(
        connector: C,
        idle_timeout: Duration,
        max_origins: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            connector,
            idle_timeout,
            max_origins,
            origins: Mutex::new(Vec::new()),
            reaper: std::sync::Once::new(),
        })
    }

    /// Sends `req` (an absolute URI) and gives its answer with the connection to free once the
    /// answer's body is read ([`Pool::free`]).
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), BoxError> {
        loop {
            let (at, free) = self.checkout(req.uri())?;
            let (lease, reused) = match free {
                Some(free) => match free.ready().await {
                    Some(lease) => (lease, true),
                    None => continue, // closed meanwhile: the next one
                },
                // Boxed: most requests find a connection, and need no room for a handshake.
                None => (Box::pin(self.connect(at, req.uri())).await?, false),
            };
            let unsent = match lease {
                Lease::H1 { mut sender, at } => {
                    match sender.try_send_request(to_origin_form(req)).await {
                        Ok(res) => return Ok((res, Lease::H1 { sender, at })),
                        Err(mut e) => match e.take_message() {
                            Some(back) if reused => back,
                            _ => return Err(TransportError::connection(e.into_error()).into()),
                        },
                    }
                }
                Lease::H2(mut sender) => match sender.try_send_request(req).await {
                    Ok(res) => return Ok((res, Lease::H2(sender))),
                    Err(mut e) => match e.take_message() {
                        Some(back) if reused => back,
                        _ => return Err(TransportError::connection(e.into_error()).into()),
                    },
                },
            };
            // The reused connection had closed before the request went out: another one.
            let origin = self.lock()[at].0.clone();
            req = with_origin(unsent, &origin);
        }
    }

    /// Gives back a connection whose answer was read whole.
    pub(crate) fn free(self: &Arc<Self>, lease: Lease) {
        let Lease::H1 { sender, at } = lease else {
            return; // the HTTP/2 connection stays in the pool, shared
        };
        if at == UNPOOLED || sender.is_closed() {
            return;
        }
        self.start_reaper();
        let mut origins = self.lock();
        let idle = &mut origins[at].1;
        if idle.h1.len() >= MAX_IDLE_PER_ORIGIN {
            idle.h1.remove(0);
        }
        idle.h1.push((sender, Instant::now()));
    }

    /// The place of `uri`'s origin in the pool, and a connection to it that is open and was not
    /// idle for too long, if there is one.
    fn checkout(&self, uri: &Uri) -> Result<(usize, Option<Free>), BoxError> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(
                TransportError::connect(format!("the upstream URL {uri} is not absolute")).into(),
            );
        };
        let mut origins = self.lock();
        let at = match origins
            .iter()
            .position(|(o, _)| o.scheme == *scheme && o.authority == *authority)
        {
            Some(at) => at,
            None if origins.len() >= self.max_origins => return Ok((UNPOOLED, None)),
            None => {
                let origin = Origin {
                    scheme: scheme.clone(),
                    authority: authority.clone(),
                };
                origins.push((origin, Idle::default()));
                origins.len() - 1
            }
        };
        let idle = &mut origins[at].1;
        if let Some(h2) = &idle.h2 {
            if !h2.is_closed() {
                return Ok((at, Some(Free::H2(h2.clone()))));
            }
            idle.h2 = None;
        }
        Ok((
            at,
            match idle.h1.pop() {
                Some((_, since)) if since.elapsed() >= self.idle_timeout => {
                    idle.h1.clear(); // older still, all of them
                    None
                }
                Some((sender, _)) => Some(Free::H1(sender, at)),
                None => None,
            },
        ))
    }

    /// A new connection to the origin of `uri` (absolute), at `at` in the pool.
    async fn connect(self: &Arc<Self>, at: usize, uri: &Uri) -> Result<Lease, BoxError> {
        let mut origin = http::uri::Parts::default();
        origin.scheme = uri.scheme().cloned();
        origin.authority = uri.authority().cloned();
        origin.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        let uri = Uri::from_parts(origin).map_err(TransportError::connect)?;
        let io = self
            .connector
            .clone()
            .oneshot(uri)
            .await
            .map_err(|e| TransportError::connect(e.into()))?;
        if io.connected().is_negotiated_h2() {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .handshake(io)
                .await
                .map_err(TransportError::connect)?;
            tokio::spawn(conn);
            if at != UNPOOLED {
                self.lock()[at].1.h2 = Some(sender.clone());
            }
            return Ok(Lease::H2(sender));
        }
        let (sender, conn) = http1::handshake(io)
            .await
            .map_err(TransportError::connect)?;
        tokio::spawn(conn);
        Ok(Lease::H1 { sender, at })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Origin, Idle)>> {
        self.origins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes idle connections past the idle timeout, also while no request comes; ends with
    /// the pool.
    fn start_reaper(self: &Arc<Self>) {
        self.reaper.call_once(|| {
            let pool: Weak<Self> = Arc::downgrade(self);
            let every = SWEEP.min(self.idle_timeout);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(pool) = pool.upgrade() else { return };
                    let timeout = pool.idle_timeout;
                    for (_, idle) in pool.lock().iter_mut() {
                        idle.h1
                            .retain(|(s, since)| !s.is_closed() && since.elapsed() < timeout);
                    }
                }
            });
        });
    }
}

/// HTTP/1.1 wants the path alone in the request line, and a `Host` (which the router sets for
/// a URL from config; here for the others: the host, and the port unless it is the default).
fn to_origin_form(mut req: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    if !req.headers().contains_key(header::HOST) {
        if let Some(host) = host_of(req.uri()) {
            req.headers_mut().insert(header::HOST, host);
        }
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| http::uri::PathAndQuery::from_static("/"), Clone::clone);
    *req.uri_mut() = Uri::from(path);
    req
}

/// A request in origin form made absolute again (to go out on another connection).
fn with_origin(mut req: Request<Full<Bytes>>, origin: &Origin) -> Request<Full<Bytes>> {
    if req.uri().scheme().is_none() {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(origin.scheme.clone());
        parts.authority = Some(origin.authority.clone());
        parts.path_and_query = req.uri().path_and_query().cloned();
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// The `Host` of requests to `uri`: its host, and its port unless it is the scheme's default
/// (never user info). None for a URI without an http or https origin.
pub(crate) fn host_of(uri: &Uri) -> Option<HeaderValue> {
    let authority = uri.authority()?;
    let default_port = match uri.scheme_str()? {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    match authority.port_u16() {
        Some(port) if port != default_port => {
            HeaderValue::from_str(&format!("{}:{port}", authority.host())).ok()
        }
        _ => HeaderValue::from_str(authority.host()).ok(),
    }
}
