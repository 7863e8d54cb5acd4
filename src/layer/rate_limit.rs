//! Rate limit: a permit from the route's quota before every upstream attempt (this layer sits
//! inside retry, so retries count too), and the upstream's throttle signals (429, or a
//! `TOO_MANY_REQUESTS` body) fed back to the quota, which pauses the route and lowers its rate.
//!
//! The quota is behind [`RouteQuota`], so that a quota shared by several replicas can replace
//! the local one ([`LocalQuota`]) without touching this layer.

use crate::error::{BoxError, ProxyError, UpstreamIds};
use crate::layer::RequestFacts;
use crate::upstream_answer::{error_body, is_throttle, retry_after};
use bytes::Bytes;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

mod adaptive;
mod local;
pub use adaptive::RouteLimiter;
pub use local::{GlobalLimiter, LocalQuota};

/// The future of [`RouteQuota::acquire`].
pub type QuotaFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ProxyError>> + Send + 'a>>;

/// The future of [`RouteQuota::on_throttle`].
pub type ThrottleFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A route's quota: where permits come from and where throttle signals go.
pub trait RouteQuota: Send + Sync + 'static {
    /// Takes a permit if one is free at once, without a future (false: call `acquire`, which
    /// must then not find this call's permit taken). Most requests find one; the default never
    /// does.
    fn try_acquire(&self) -> bool {
        false
    }
    /// Waits for a permit until `give_up_at`; past it, refuses with a 429 problem.
    fn acquire(&self, give_up_at: Instant) -> QuotaFuture<'_>;
    /// The upstream throttled an attempt: pause for `retry_after` (or a backoff) and slow down.
    /// `ids` name the upstream error, for the problems of the requests refused meanwhile. The
    /// throttle's answer goes back to the app once this is done, so a quota shared by replicas
    /// has paused all of them by then.
    fn on_throttle(&self, retry_after: Option<Duration>, ids: UpstreamIds) -> ThrottleFuture<'_>;
    /// The upstream answered an attempt without throttling it.
    fn on_answer(&self);
}

/// Builds [`RateLimit`] around one route's quota.
#[derive(Clone)]
pub struct RateLimitLayer {
    quota: Arc<dyn RouteQuota>,
    max_wait: Duration,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// Permits from `quota`; an attempt waits at most `max_wait` for one (and not past its
    /// request's deadline, when it carries [`RequestFacts`]), then gets a 429 problem.
    pub fn new(quota: Arc<dyn RouteQuota>, max_wait: Duration) -> Self {
        Self { quota, max_wait }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// Waits for (or refuses) a permit before each attempt, and feeds throttle signals back.
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S> tower::Service<Request<Bytes>> for RateLimit<S>
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
        let RateLimitLayer { quota, max_wait } = self.layer.clone();
        Box::pin(async move {
            if !quota.try_acquire() {
                // At most `max_wait`, and never past the request's deadline (a passthrough
                // route has no overall timer that would cut a longer wait).
                let mut give_up_at = crate::deadline::saturating_add(Instant::now(), max_wait);
                if let Some(facts) = req.extensions().get::<RequestFacts>() {
                    give_up_at = give_up_at.min(facts.deadline);
                }
                quota.acquire(give_up_at).await?;
            }
            let mut res = inner.call(req).await.map_err(Into::into)?;
            // Below 400 there is no error body to read (and no throttle signal).
            if res.status().as_u16() < 400 {
                quota.on_answer();
                return Ok(res);
            }
            let body = error_body(&mut res).clone();
            if is_throttle(&res, &body) {
                let after = retry_after(res.headers(), SystemTime::now());
                // The ids reach the problems of other requests paused by this throttle.
                let ids = crate::scrub::checked_ids(body.id.as_deref(), body.trace_id.as_deref());
                quota.on_throttle(after, ids).await;
            } else {
                quota.on_answer();
            }
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests;
