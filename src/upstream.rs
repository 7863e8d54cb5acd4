//! The upstream HTTP client: pooled HTTP/1.1 and HTTP/2 over rustls, and the adapter that lets
//! the layers work on buffered bodies over any HTTP client. Knows nothing about auth.

use crate::config::{ConfigError, Roots, TlsConfig};
use crate::error::{BoxError, ProblemCode, ProxyError};
use crate::whole_body::WholeBody;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::{Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// What the layers call at the bottom of the stack: a buffered request in, a buffered answer
/// out (so that retry can replay requests and the layers can read error bodies).
pub(crate) type UpstreamService =
    crate::stack::ArcService<Request<Bytes>, Response<Bytes>, BoxError>;

mod connect;
#[cfg(test)]
mod connect_tests;
mod pool;
#[cfg(test)]
mod pool_tests;

#[cfg(test)]
use connect::ConnectTimedOut;
pub(crate) use connect::ConnectTimeout;
use pool::Pool;
pub(crate) use pool::{host_of, TransportError};

/// The proxy's default upstream: hyper's client connections over rustls, pooled per origin
/// ([`pool`]), each answer read whole.
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    pool: Arc<Pool<Connector>>,
    max_response_body: usize,
}

type Connector = ConnectTimeout<HttpsConnector<HttpConnector>>;

impl tower::Service<Request<Bytes>> for UpstreamClient {
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Always ready: a request waits for its connection inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let (pool, cap) = (self.pool.clone(), self.max_response_body);
        Box::pin(async move {
            let (res, lease) = pool.send(outgoing(req)).await?;
            let (parts, body) = res.into_parts();
            let bytes = WholeBody::new(Limited::new(body, cap))
                .await
                .map_err(|e| unreadable(e, cap))?;
            // Only now is the connection free for another request.
            pool.free(lease);
            Ok(Response::from_parts(parts, bytes))
        })
    }
}

/// Builds the default upstream client with the given trust roots and connect timeout (TCP
/// connect and TLS handshake together), capping answers at `max_response_body` bytes.
pub(crate) fn upstream_client(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
    max_response_body: usize,
) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // Per address, so that a black-holed address leaves time for the next one; the whole
    // connect, TLS included, is bounded by ConnectTimeout below.
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let connector = ConnectTimeout::new(https, connect_timeout);
    UpstreamClient {
        pool: Pool::new(connector, IDLE_TIMEOUT),
        max_response_body,
    }
}

/// Whether `err` is a failure of the upstream connection, from this client or from hyper-util's
/// in a stack of your own: `Some(true)` when no connection could be made, `Some(false)` when
/// the connection failed before the answer was in, `None` for anything else.
pub(crate) fn transport_failure(err: &BoxError) -> Option<bool> {
    if let Some(e) = err.downcast_ref::<TransportError>() {
        return Some(e.is_connect());
    }
    err.downcast_ref::<hyper_util::client::legacy::Error>()
        .map(hyper_util::client::legacy::Error::is_connect)
}

/// How long an idle upstream connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The request as it goes out: its body whole, with its length (a GET without a body has none).
fn outgoing(req: Request<Bytes>) -> Request<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    if !body.is_empty() || parts.method == http::Method::POST {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    Request::from_parts(parts, Full::new(body))
}

/// An answer's body that could not be read whole: too large, or the connection failed.
fn unreadable(e: BoxError, cap: usize) -> ProxyError {
    if e.is::<http_body_util::LengthLimitError>() {
        ProxyError::new(
            ProblemCode::ProviderResponseTooLarge,
            format!("the upstream answer is larger than max_response_body ({cap} bytes)"),
        )
    } else {
        ProxyError::new(
            ProblemCode::ProviderUnreachable,
            format!("the upstream connection failed while its answer was read: {e}"),
        )
    }
}

/// Builds [`BufferBodies`].
#[derive(Debug, Clone, Copy)]
pub struct BufferBodiesLayer {
    max_response_body: usize,
}

impl BufferBodiesLayer {
    /// Answers larger than `max_response_body` bytes become a 502 problem.
    pub fn new(max_response_body: usize) -> Self {
        Self { max_response_body }
    }
}

impl<S> tower::Layer<S> for BufferBodiesLayer {
    type Service = BufferBodies<S>;
    fn layer(&self, inner: S) -> BufferBodies<S> {
        BufferBodies {
            inner,
            max_response_body: self.max_response_body,
        }
    }
}

/// Adapts any HTTP client service (`Request<Full<Bytes>>` in, `Response<impl Body>` out, such
/// as hyper-util's legacy client) to buffered `Request<Bytes>` / `Response<Bytes>`.
#[derive(Clone)]
pub struct BufferBodies<S> {
    inner: S,
    max_response_body: usize,
}

impl<S> std::fmt::Debug for BufferBodies<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferBodies")
            .field("max_response_body", &self.max_response_body)
            .finish_non_exhaustive()
    }
}

impl<S, B> tower::Service<Request<Bytes>> for BufferBodies<S>
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = BufferBodiesFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        // Called now, as readiness allows (no clone of the client per attempt).
        BufferBodiesFuture {
            state: Buffering::Answer {
                answer: self.inner.call(outgoing(req)),
            },
            cap: self.max_response_body,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`BufferBodies`]: the client's answer, then its body read whole (a named
    /// future, not a boxed one: every attempt passes here).
    pub struct BufferBodiesFuture<S, B>
    where
        S: tower::Service<Request<Full<Bytes>>>,
        B: hyper::body::Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        state: Buffering<S, B>,
        cap: usize,
    }
}

pin_project_lite::pin_project! {
    #[project = BufferingProj]
    enum Buffering<S, B>
    where
        S: tower::Service<Request<Full<Bytes>>>,
        B: hyper::body::Body,
        B::Error: Into<BoxError>,
    {
        Answer { #[pin] answer: S::Future },
        Body { #[pin] body: WholeBody<Limited<B>>, parts: Option<http::response::Parts> },
    }
}

impl<S, B> Future for BufferBodiesFuture<S, B>
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Bytes>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                BufferingProj::Answer { answer } => {
                    let res = std::task::ready!(answer.poll(cx)).map_err(Into::into)?;
                    let (parts, body) = res.into_parts();
                    this.state.set(Buffering::Body {
                        body: WholeBody::new(Limited::new(body, *this.cap)),
                        parts: Some(parts),
                    });
                }
                BufferingProj::Body { body, parts } => {
                    let cap = *this.cap;
                    let bytes = std::task::ready!(body.poll(cx)).map_err(|e| unreadable(e, cap))?;
                    let parts = parts
                        .take()
                        .expect("an answer's head is taken once, with its body");
                    return Poll::Ready(Ok(Response::from_parts(parts, bytes)));
                }
            }
        }
    }
}

/// Builds the rustls client config from the configured roots and optional extra CA file.
pub(crate) fn tls_config(cfg: &TlsConfig) -> Result<rustls::ClientConfig, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    if matches!(cfg.roots, Roots::Webpki | Roots::Both) {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if matches!(cfg.roots, Roots::System | Roots::Both) {
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            return Err(ConfigError::new(
                "tls.roots",
                "the system trust store has no usable certificates",
                "install ca-certificates, or use roots = \"webpki\"",
            ));
        }
    }
    if let Some(path) = &cfg.extra_ca_file {
        let bad = |problem: String| {
            ConfigError::new(
                "tls.extra_ca_file",
                problem,
                "point it at a readable PEM file of CA certificates",
            )
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(bad(format!("{} holds no certificate", path.display())));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("tls", e.to_string(), "report this as a bug"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
