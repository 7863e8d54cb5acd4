//! The proxy as one service: an app request in (by local path), an answer out. The server
//! hands it every HTTP request; a library user calls it in process. Everything between is the
//! stack that [`crate::stack`] builds.

use crate::admin::{Admin, Health};
use crate::config::{Config, ConfigError};
use crate::key_source::KeyStore;
use crate::stack::{AnswerBody, EdgeService};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;

mod builder;

pub use builder::ProxyBuilder;

/// Everything needed to answer app requests: keys, readiness, and the assembled stack.
#[derive(Clone)]
pub struct Proxy {
    keys: Arc<KeyStore>,
    health: Arc<Health>,
    _key_watch: Arc<AbortOnDrop>,
    edge: EdgeService,
    /// The main listener's TLS (and mTLS), when `inbound` configures it.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Header, body and idle timeouts and connection caps of both listeners.
    listeners: crate::config::Listeners,
    /// Where the listener's own problem answers (408) point.
    doc_url: Arc<str>,
    routes: Arc<[RouteLine]>,
}

/// One route as `check-config` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLine {
    /// The method it takes (`GET`, `POST`; a passthrough takes any).
    pub method: &'static str,
    /// The local path the app calls.
    pub local: String,
    /// Where it goes upstream.
    pub upstream: String,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("keys", &self.keys)
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

    /// Serves app requests on `listener` (over TLS when `inbound` configures it) until
    /// `shutdown` resolves; then stops accepting and gives requests in flight up to `drain`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
    ) -> std::io::Result<()> {
        let mut server =
            crate::server::Server::main(self.listeners.main).problem_doc_url(&self.doc_url);
        if let Some(tls) = self.tls.clone() {
            server = server.tls(tls);
        }
        server.serve_proxy(listener, self, shutdown, drain).await
    }

    /// Serves the admin endpoints (`/metrics`, `/healthz`, `/readyz`, the public JWKS) on
    /// `listener` until `shutdown` resolves.
    pub async fn serve_admin(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
    ) -> std::io::Result<()> {
        let admin = self.admin_view();
        let handler = move |req: Request<crate::server::RequestBody>| {
            let answer = admin.handle(&req);
            async move { answer }
        };
        crate::server::Server::admin(self.listeners.admin)
            .serve(listener, handler, shutdown, drain)
            .await
    }

    /// Answers one admin request in process (as [`Proxy::serve_admin`] would).
    pub fn admin<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        self.admin_view().handle(req)
    }

    fn admin_view(&self) -> Admin {
        Admin {
            health: self.health.clone(),
            keys: self.keys.clone(),
        }
    }

    /// Lowers the listeners' connection caps, if needed, so that both listeners and an
    /// upstream connection per main connection fit the process's open-file limit; says what it
    /// changed. (Without it the admin listener could not accept probes once the main one is
    /// full.)
    pub fn fit_open_file_limit(&mut self) -> Option<String> {
        crate::server::fit_open_file_limit(&mut self.listeners)
    }

    /// Turns readiness false (`/readyz` answers 503): call it when shutdown begins.
    pub fn start_draining(&self) {
        self.health.start_draining();
    }

    /// Every metric, in the Prometheus text format (what `/metrics` serves).
    pub fn metrics(&self) -> String {
        crate::metrics::render()
    }

    /// The kid of the client key that signs assertions now.
    pub fn signing_kid(&self) -> String {
        self.keys.current().signing().kid().to_owned()
    }

    /// The kids of the client's encryption keys.
    pub fn encryption_kids(&self) -> Vec<String> {
        let keys = self.keys.current();
        keys.encryption()
            .iter()
            .map(|k| k.kid().to_owned())
            .collect()
    }

    /// The public JWKS of every configured client key (what Singpass is given).
    pub fn public_jwks(&self) -> serde_json::Value {
        self.keys.current().public_jwks()
    }

    /// The assembled stack (what the listener calls for every request).
    pub(crate) fn edge(&self) -> &EdgeService {
        &self.edge
    }

    /// Every route: its method, the local path the app calls, and where it goes upstream.
    pub fn routes(&self) -> &[RouteLine] {
        &self.routes
    }

    /// Answers one HTTP request from the app, reading its body only once its headers passed.
    /// Never fails: every problem is a problem+json answer.
    pub async fn handle(&self, req: Request<crate::server::RequestBody>) -> Response<Full<Bytes>> {
        answer(&self.edge, req.map(Either::Left))
            .await
            .map(Full::new)
    }

    /// Answers one app request whose body is already read; its URI is the local path (and
    /// query) the app calls, e.g. `/com/v4/token`. Never fails.
    pub async fn call_buffered(&self, req: Request<Bytes>) -> Response<Bytes> {
        answer(&self.edge, req.map(|body| Either::Right(Full::new(body)))).await
    }
}

/// The edge's answer to one app request, its body read (the stack holds it whole already).
/// The future holds no borrow, so that it is `Send` for any caller.
pub(crate) fn answer(
    edge: &EdgeService,
    req: Request<crate::stack::AppBody>,
) -> impl Future<Output = Response<Bytes>> + Send + 'static {
    let answer = edge.call_shared(req);
    async move {
        let res = answer.await.unwrap_or_else(|never| match never {});
        let (parts, body) = res.into_parts();
        Response::from_parts(parts, whole(body).await)
    }
}

/// An answer's body, which the stack already holds whole in memory: its one data frame, as
/// it is.
async fn whole(body: AnswerBody) -> Bytes {
    crate::whole_body::WholeBody::new(body)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "an answer's body could not be read");
            Bytes::new()
        })
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
        let answer = answer(&self.edge, req.map(|body| Either::Right(Full::new(body))));
        Box::pin(async move { Ok(answer.await) })
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
