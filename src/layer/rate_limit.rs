//! Rate limit: each route's quota (GCRA, governor) and an optional global one, checked for
//! every upstream attempt (this layer sits inside retry). An upstream throttle signal (429, or
//! a `TOO_MANY_REQUESTS` body) pauses the route until `Retry-After` and lowers its rate
//! (multiplicative decrease, gradual recovery), so that it settles just under the upstream's
//! real quota.

use crate::config::Quota;
use crate::error::{BoxError, ProblemCode, ProxyError, UpstreamIds};
use crate::route::RequestContext;
use crate::upstream_answer::{is_throttle, retry_after, ErrorBody};
use bytes::Bytes;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use http::{Request, Response};
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

mod adaptive;
pub use adaptive::RouteLimiter;

/// governor's clock on tokio's time, so that paused-time tests drive the limiter too.
#[derive(Debug, Clone)]
pub struct TokioClock {
    origin: Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

type Gcra = governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// A GCRA limiter for `rate` per second with `burst`, starting full or (when `drained`) empty.
fn gcra(rate: f64, burst: u32, clock: &TokioClock, drained: bool) -> Gcra {
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let burst = NonZeroU32::new(burst.max(1)).expect("at least 1");
    let quota = governor::Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(burst);
    let limiter = Gcra::direct_with_clock(quota, clock.clone());
    if drained {
        let _ = limiter.check_n(burst);
    }
    limiter
}

/// How long until `limiter` grants a permit (zero: granted now).
fn wait_for(limiter: &Gcra, clock: &TokioClock) -> Duration {
    match limiter.check() {
        Ok(()) => Duration::ZERO,
        Err(not_until) => not_until
            .wait_time_from(clock.now())
            .max(Duration::from_micros(1)),
    }
}

/// The quota over all routes together.
#[derive(Debug)]
pub struct GlobalLimiter {
    clock: TokioClock,
    limiter: Gcra,
}

impl GlobalLimiter {
    /// A limiter for `quota`.
    pub fn new(quota: Quota) -> Self {
        let clock = TokioClock::default();
        Self {
            limiter: gcra(quota.per_second, quota.burst, &clock, false),
            clock,
        }
    }
    fn wait(&self) -> Duration {
        wait_for(&self.limiter, &self.clock)
    }
}

/// Builds [`RateLimit`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimitLayer;

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit { inner }
    }
}

/// Waits for (or refuses) a permit before each attempt, and feeds throttle signals back.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
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
        Box::pin(async move {
            let Some(ctx) = req.extensions().get::<RequestContext>().cloned() else {
                return inner.call(req).await.map_err(Into::into);
            };
            let route = &ctx.route;
            let started = Instant::now();
            let max_wait = route.policy.rate_limit.max_wait;
            route
                .limiter
                .acquire(started + max_wait, route.kind.label())
                .await?;
            if let Some(global) = &route.global {
                acquire_global(global, started + max_wait, route.kind.label()).await?;
            }
            let res = inner.call(req).await.map_err(Into::into)?;
            if res.status().is_client_error() || res.status().is_server_error() {
                let body = ErrorBody::parse(res.body());
                if is_throttle(&res, &body) {
                    let after = retry_after(res.headers(), SystemTime::now());
                    let ids = UpstreamIds {
                        id: body.id,
                        trace_id: body.trace_id,
                    };
                    route.limiter.on_throttle(after, ids);
                    crate::metrics::rate_limit_pause(route.kind.label());
                    return Ok(res);
                }
            }
            route.limiter.on_answer();
            Ok(res)
        })
    }
}

async fn acquire_global(
    global: &GlobalLimiter,
    give_up_at: Instant,
    route: &str,
) -> Result<(), ProxyError> {
    loop {
        let wait = global.wait();
        if wait.is_zero() {
            return Ok(());
        }
        if crate::deadline::saturating_add(Instant::now(), wait) > give_up_at {
            crate::metrics::rate_limit_refusal(route, "global");
            return Err(ProxyError::new(
                ProblemCode::ResourceRateLimited,
                "the proxy's global quota (rate_limit.global) is exhausted",
            )
            .with_retry_after(wait));
        }
        tokio::time::sleep(wait).await;
    }
}

/// Shared by the limiter and its tests: the upstream ids of the throttle that caused a pause.
type LastThrottle = Mutex<Option<UpstreamIds>>;

#[cfg(test)]
mod tests;
