//! Error log: exactly one structured event for every upstream error answer (status >= 400) and
//! every transport failure, on every attempt, with Singpass's `id` and `trace_id`, which its
//! support desk asks for. It sits inside retry, so no attempt's ids are lost. Bodies pass on
//! unchanged.

use crate::error::{error_chain, BoxError, ProxyError};
use crate::route::RequestContext;
use bytes::Bytes;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::time::Instant;

/// The tracing target of these events.
pub const TARGET: &str = "myinfo_proxy::upstream_error";

/// Builds [`ErrorLog`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorLogLayer;

impl<S> tower::Layer<S> for ErrorLogLayer {
    type Service = ErrorLog<S>;
    fn layer(&self, inner: S) -> ErrorLog<S> {
        ErrorLog { inner }
    }
}

/// Counts attempts and logs each failed one.
#[derive(Debug, Clone)]
pub struct ErrorLog<S> {
    inner: S,
}

impl<S> tower::Service<Request<Bytes>> for ErrorLog<S>
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let Some(ctx) = req.extensions().get::<RequestContext>().cloned() else {
                return inner.call(req).await.map_err(Into::into);
            };
            let method = req.method().clone();
            let attempt = ctx.attempts.fetch_add(1, Ordering::Relaxed) + 1;
            let started = Instant::now();
            let app_sent = crate::scrub::Sent::capture(&req);
            let mut result = inner.call(req).await.map_err(Into::into);
            let attempt_sent = result
                .as_mut()
                .ok()
                .and_then(|r| r.extensions_mut().remove::<crate::scrub::Sent>());
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            let route = ctx.route.kind.label();
            match &result {
                Ok(res) => crate::metrics::upstream_attempt(route, res.status().as_u16()),
                Err(e) if !is_local_decision(e) => crate::metrics::upstream_attempt(route, 0),
                Err(_) => {}
            }
            match &result {
                // A nonce demand is a protocol step, not a failure: logged once, at INFO.
                Ok(res)
                    if res
                        .extensions()
                        .get::<crate::layer::NonceDemand>()
                        .is_some() =>
                {
                    let body =
                        crate::scrub::loggable_error_body(res, &app_sent, attempt_sent.as_ref());
                    tracing::info!(
                        target: TARGET,
                        request_id = %ctx.request_id,
                        upstream = %ctx.route.upstream,
                        route,
                        method = %method,
                        status = res.status().as_u16(),
                        upstream_id = body.id.as_deref().unwrap_or(""),
                        trace_id = body.trace_id.as_deref().unwrap_or(""),
                        error = "use_dpop_nonce",
                        attempt,
                        latency_ms,
                        "upstream asked for a DPoP nonce; signing once more with it"
                    );
                }
                Ok(res) if res.status().as_u16() >= 400 => {
                    let body =
                        crate::scrub::loggable_error_body(res, &app_sent, attempt_sent.as_ref());
                    *ctx.last_upstream_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(crate::error::UpstreamIds {
                        id: body.id.clone(),
                        trace_id: body.trace_id.clone(),
                    });
                    let class = if res.status().is_server_error() {
                        "server"
                    } else {
                        "client"
                    };
                    crate::metrics::upstream_error(route, res.status().as_u16(), class);
                    tracing::warn!(
                        target: TARGET,
                        request_id = %ctx.request_id,
                        upstream = %ctx.route.upstream,
                        route,
                        method = %method,
                        status = res.status().as_u16(),
                        upstream_id = body.id.as_deref().unwrap_or(""),
                        trace_id = body.trace_id.as_deref().unwrap_or(""),
                        error = body.error.as_deref().unwrap_or(""),
                        error_description = body.error_description.as_deref().unwrap_or(""),
                        body_excerpt = body.excerpt.as_deref().unwrap_or(""),
                        attempt,
                        latency_ms,
                        "upstream error answer"
                    );
                }
                Err(e) if !is_local_decision(e) => {
                    crate::metrics::upstream_error(route, 0, error_class(e));
                    tracing::warn!(
                        target: TARGET,
                        request_id = %ctx.request_id,
                        upstream = %ctx.route.upstream,
                        route,
                        method = %method,
                        status = 0u16,
                        error_class = error_class(e),
                        error = %error_chain(e.as_ref()),
                        attempt,
                        latency_ms,
                        "upstream attempt failed without an answer"
                    );
                }
                _ => {}
            }
            result
        })
    }
}

/// The proxy's own refusals (an unknown token, say) are not upstream failures.
fn is_local_decision(err: &BoxError) -> bool {
    err.downcast_ref::<ProxyError>()
        .is_some_and(|e| !e.code.as_str().starts_with("PROVIDER_"))
}

/// A fixed label for a transport failure.
pub fn error_class(err: &BoxError) -> &'static str {
    if err.is::<tower::timeout::error::Elapsed>() {
        "timeout"
    } else if let Some(e) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
        if e.is_connect() {
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
