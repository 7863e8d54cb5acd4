//! Retry: replays failed attempts with backoff. It sits outside inject, so every attempt is
//! signed afresh (new assertion `jti`, new proof `jti`/`iat`, same ephemeral key).
//!
//! Every decision is [`RetryPolicy`]'s; this service only waits and replays. Each attempt runs
//! in its own `attempt` span, so every event inside names it; the count and the last upstream
//! error's ids go back up in the answer's [`Outcome`].

use crate::config::RouteKind;
use crate::error::{annotate, BoxError, ProxyError, UpstreamIds};
use crate::layer::{NonceDemand, Outcome, RequestFacts};
use crate::upstream_answer::ErrorBody;
use bytes::Bytes;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::retry::budget::{Budget as _, TpsBudget};
use tracing::Instrument as _;

mod policy;
pub use policy::{Decision, Now, RetryPolicy, RetryReason, Stop, Tally};

/// Builds [`Retry`] for one route: its policy and its retry budget.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    route: RouteKind,
    policy: Arc<RetryPolicy>,
    budget: Arc<TpsBudget>,
}

impl RetryLayer {
    /// Retries attempts of `route` as `policy` decides, within `budget`.
    pub fn new(route: RouteKind, policy: RetryPolicy, budget: Arc<TpsBudget>) -> Self {
        Self {
            route,
            policy: Arc::new(policy),
            budget,
        }
    }
}

impl<S: Clone> tower::Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            shared: Arc::new(Shared {
                layer: self.clone(),
                template: std::sync::Mutex::new(inner.clone()),
            }),
            inner,
        }
    }
}

/// Replays a request while its route's [`RetryPolicy`] says so. Needs the request's
/// [`RequestFacts`] (for its deadline).
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared<S>>,
}

/// What every call of one [`Retry`] shares: its settings, and the service below as it was
/// built, which a retry clones (the first attempt is made on the ready service itself, so
/// that a request that is not retried costs one reference count, not a clone of the stack
/// below). Behind a mutex, locked only to clone it, so that `S` need not be `Sync`.
#[derive(Debug)]
struct Shared<S> {
    layer: RetryLayer,
    template: std::sync::Mutex<S>,
}

impl<S> tower::Service<Request<Bytes>> for Retry<S>
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
        let deadline = match RequestFacts::of(&req) {
            Ok(facts) => facts.deadline,
            Err(e) => return Box::pin(std::future::ready(Err(e.into()))),
        };
        let shared = self.shared.clone();
        let route = shared.layer.route.label();
        // Every request earns the budget a share of a retry; retries spend it.
        shared.layer.budget.deposit();
        // The attempt takes the app's request and a copy stays for the next one: hyper keeps
        // the sent request's header map to parse the answer into, and the original's has room
        // for the answer's headers where a copy's is exactly full.
        let mut req_next = replay(&req);
        let span = tracing::info_span!("attempt", attempt = 1);
        let first = span.in_scope(|| self.inner.call(req));
        Box::pin(async move {
            let RetryLayer { policy, budget, .. } = &shared.layer;
            let mut tally = Tally::default();
            let (mut attempts, mut last_error) = (0u32, None);
            let mut result = first.instrument(span).await.map_err(Into::into);
            loop {
                if reached_upstream(&result) {
                    attempts += 1;
                }
                if let Some(ids) = upstream_error(&result) {
                    last_error = Some(ids);
                }
                let decision = policy.decide(
                    &mut tally,
                    &result,
                    budget,
                    deadline,
                    Now::current,
                    rand::thread_rng,
                );
                match decision {
                    Decision::RepeatNow => crate::metrics::nonce_retry(route),
                    Decision::RetryAfter(delay, reason) => {
                        crate::metrics::retry(route, reason.label());
                        tracing::info!(
                            reason = reason.label(),
                            retry = tally.retries,
                            delay_ms = delay.as_millis() as u64,
                            "retrying upstream attempt"
                        );
                        tokio::time::sleep(delay).await;
                    }
                    Decision::Done(stop) => {
                        match stop {
                            Stop::DeadlineTooClose => tracing::info!(
                                stop = stop.label(),
                                "not retrying: the overall deadline is too close"
                            ),
                            Stop::BudgetSpent => tracing::warn!(
                                stop = stop.label(),
                                "not retrying: the route's retry budget is spent"
                            ),
                            _ => {}
                        }
                        let add = |o: &mut Outcome| {
                            o.attempts = attempts;
                            o.upstream = last_error;
                            o.stop = Some(stop);
                        };
                        return match result {
                            Ok(mut res) => {
                                add(res.extensions_mut().get_or_insert_default::<Outcome>());
                                Ok(res)
                            }
                            Err(e) => Err(annotate(e, add)),
                        };
                    }
                }
                // Another attempt, on a clone of the service below.
                let span = tracing::info_span!("attempt", attempt = attempts + 1);
                let mut inner = shared
                    .template
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                std::future::poll_fn(|cx| inner.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let next = replay(&req_next);
                result = inner
                    .call(std::mem::replace(&mut req_next, next))
                    .instrument(span)
                    .await
                    .map_err(Into::into);
            }
        })
    }
}

/// An answer came back, or the attempt failed past the proxy's own checks.
fn reached_upstream(result: &Result<Response<Bytes>, BoxError>) -> bool {
    match result {
        Ok(_) => true,
        Err(e) => e.downcast_ref::<ProxyError>().is_none_or(|e| !e.is_local()),
    }
}

/// The ids of an upstream error answer (a nonce demand is a protocol step, not an error).
fn upstream_error(result: &Result<Response<Bytes>, BoxError>) -> Option<UpstreamIds> {
    let res = result
        .as_ref()
        .ok()
        .filter(|r| r.status().as_u16() >= 400 && r.extensions().get::<NonceDemand>().is_none())?;
    let body = ErrorBody::of(res);
    Some(crate::scrub::checked_ids(
        body.id.as_deref(),
        body.trace_id.as_deref(),
    ))
}

/// A copy of the app's request for one more attempt: same method, target, headers, body and
/// facts (and so the same ephemeral key); inject signs it afresh.
fn replay(req: &Request<Bytes>) -> Request<Bytes> {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    copy
}

#[cfg(test)]
mod tests;
