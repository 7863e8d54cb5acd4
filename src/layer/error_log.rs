//! Error log: exactly one structured event for every upstream error answer (status >= 400) and
//! every transport failure, on every attempt, with Singpass's `id` and `trace_id`, which its
//! support desk asks for. It sits inside retry, so no attempt's ids are lost. Bodies pass on
//! unchanged.
//!
//! The request id, method, route and attempt number come from the spans the event is in (the
//! request's and the attempt's), so the events do not repeat them.

use crate::config::RouteKind;
use crate::error::{error_chain, BoxError, ProxyError};
use crate::layer::NonceDemand;
use crate::scrub::{loggable_error_body, Sent};
use crate::upstream_answer::error_body;
use bytes::Bytes;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;

/// The tracing target of these events.
pub(crate) const TARGET: &str = "myinfo_proxy::upstream_error";

/// Builds [`ErrorLog`] for one route of one upstream.
#[derive(Debug, Clone)]
pub struct ErrorLogLayer {
    route: RouteKind,
    upstream: Arc<str>,
}

impl ErrorLogLayer {
    /// Logs and counts the failed attempts of `route` on the upstream named `upstream`.
    pub fn new(route: RouteKind, upstream: &str) -> Self {
        Self {
            route,
            upstream: upstream.into(),
        }
    }
}

impl<S> tower::Layer<S> for ErrorLogLayer {
    type Service = ErrorLog<S>;
    fn layer(&self, inner: S) -> ErrorLog<S> {
        ErrorLog {
            inner,
            layer: self.clone(),
        }
    }
}

/// Counts every attempt and logs each failed one.
#[derive(Debug, Clone)]
pub struct ErrorLog<S> {
    inner: S,
    layer: ErrorLogLayer,
}

impl<S> tower::Service<Request<Bytes>> for ErrorLog<S>
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = ErrorLogFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let started = Instant::now();
        let app_sent = Sent::capture(&req);
        // Called now, as readiness allows (no clone of the service below per attempt).
        ErrorLogFuture {
            answer: self.inner.call(req),
            attempt: Some(Attempt {
                started,
                app_sent,
                layer: self.layer.clone(),
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`ErrorLog`]: the inner answer, logged when it comes (a named future, not
    /// a boxed one: every attempt passes here).
    pub struct ErrorLogFuture<S: tower::Service<Request<Bytes>>> {
        #[pin]
        answer: S::Future,
        attempt: Option<Attempt>,
    }
}

/// What the log of one attempt needs besides its result.
struct Attempt {
    started: Instant,
    app_sent: Sent,
    layer: ErrorLogLayer,
}

impl<S> Future for ErrorLogFuture<S>
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<Bytes>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = std::task::ready!(this.answer.poll(cx)).map_err(Into::into);
        if let Some(attempt) = this.attempt.take() {
            attempt.log(&mut result);
        }
        Poll::Ready(result)
    }
}

impl Attempt {
    /// Counts the attempt; logs it (and scrubs its error fields) if it failed.
    fn log(self, result: &mut Result<Response<Bytes>, BoxError>) {
        let Attempt {
            started,
            app_sent,
            layer: ErrorLogLayer { route, upstream },
        } = self;
        let latency_ms = || started.elapsed().as_secs_f64() * 1000.0;
        let kind = route;
        let route = route.label();
        match result {
            Ok(res) => {
                let status = res.status().as_u16();
                crate::metrics::upstream_attempt(kind, status);
                let demand = res.extensions().get::<NonceDemand>().is_some();
                // Every secret of this attempt is redacted from the fields before they are
                // logged, and the layers above (retry, rate limit, access log) get the same
                // scrubbed fields; the body itself passes on byte for byte.
                let attempt_sent = res.extensions_mut().remove::<Sent>();
                if status < 400 && !demand {
                    // A plain answer: no error fields to read, log or scrub.
                    return;
                }
                if status >= 400 {
                    let scrubbed = loggable_error_body(res, &app_sent, attempt_sent.as_ref());
                    res.extensions_mut().insert(scrubbed);
                }
                let body = error_body(res);
                if demand {
                    // A nonce demand is a protocol step, not a failure: logged once, at INFO.
                    tracing::info!(
                        target: TARGET,
                        %upstream,
                        status,
                        upstream_id = body.id.as_deref().unwrap_or(""),
                        trace_id = body.trace_id.as_deref().unwrap_or(""),
                        error = "use_dpop_nonce",
                        latency_ms = latency_ms(),
                        "upstream asked for a DPoP nonce; signing once more with it"
                    );
                } else if status >= 400 {
                    let class = if status >= 500 { "server" } else { "client" };
                    crate::metrics::upstream_error(route, status, class);
                    tracing::warn!(
                        target: TARGET,
                        %upstream,
                        status,
                        upstream_id = body.id.as_deref().unwrap_or(""),
                        trace_id = body.trace_id.as_deref().unwrap_or(""),
                        error = body.error.as_deref().unwrap_or(""),
                        error_description = body.error_description.as_deref().unwrap_or(""),
                        body_excerpt = body.excerpt.as_deref().unwrap_or(""),
                        latency_ms = latency_ms(),
                        "upstream error answer"
                    );
                }
            }
            Err(e) if !is_local_decision(e) => {
                crate::metrics::upstream_attempt(kind, 0);
                crate::metrics::upstream_error(route, 0, error_class(e));
                tracing::warn!(
                    target: TARGET,
                    %upstream,
                    status = 0u16,
                    error_class = error_class(e),
                    error = %error_chain(e.as_ref()),
                    latency_ms = latency_ms(),
                    "upstream attempt failed without an answer"
                );
            }
            Err(_) => {}
        }
    }
}

/// The proxy's own refusals (an unknown token, say) are not upstream failures.
fn is_local_decision(err: &BoxError) -> bool {
    err.downcast_ref::<ProxyError>()
        .is_some_and(ProxyError::is_local)
}

/// A fixed label for a transport failure.
fn error_class(err: &BoxError) -> &'static str {
    if err.is::<tower::timeout::error::Elapsed>() {
        "timeout"
    } else if let Some(connect) = crate::upstream::transport_failure(err) {
        if connect {
            "connect"
        } else {
            "connection"
        }
    } else if err.is::<ProxyError>() {
        "answer"
    } else {
        "other"
    }
}
