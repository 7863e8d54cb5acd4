//! The local quota: each route's GCRA limiter (governor, on tokio's clock) and an optional
//! global one over all routes, in this process's memory.

use super::{QuotaFuture, RouteLimiter, RouteQuota, ThrottleFuture};
use crate::config::{Quota, RateLimitSettings, RouteKind};
use crate::error::{ProblemCode, ProxyError, UpstreamIds};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// governor's clock on tokio's time, so that paused-time tests drive the limiter too.
#[derive(Debug, Clone)]
pub(super) struct TokioClock {
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

pub(super) type Gcra =
    governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// A GCRA limiter for `rate` per second with `burst`, starting full or (when `drained`) empty.
pub(super) fn gcra(rate: f64, burst: u32, clock: &TokioClock, drained: bool) -> Gcra {
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let quota = governor::Quota::with_period(period)
        .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    let limiter = Gcra::direct_with_clock(quota, clock.clone());
    if drained {
        let _ = limiter.check_n(burst);
    }
    limiter
}

/// How long until `limiter` grants a permit (zero: granted now).
pub(super) fn wait_for(limiter: &Gcra, clock: &TokioClock) -> Duration {
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

    async fn acquire(&self, give_up_at: Instant, route: &str) -> Result<(), ProxyError> {
        loop {
            let wait = wait_for(&self.limiter, &self.clock);
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
}

/// One route's quota in this process: its adaptive limiter, then the global one.
#[derive(Debug)]
pub struct LocalQuota {
    route: RouteKind,
    limiter: RouteLimiter,
    global: Option<Arc<GlobalLimiter>>,
}

impl LocalQuota {
    /// The quota of `route` with its settings, and the global quota if there is one.
    pub fn new(
        route: RouteKind,
        settings: &RateLimitSettings,
        global: Option<Arc<GlobalLimiter>>,
    ) -> Self {
        Self {
            route,
            limiter: RouteLimiter::new(settings),
            global,
        }
    }

    /// The route's current effective rate (requests per second; 0 when unlimited).
    pub fn effective_rate(&self) -> f64 {
        self.limiter.effective_rate()
    }
}

impl RouteQuota for LocalQuota {
    fn try_acquire(&self) -> bool {
        // With a global quota too, a route permit taken here would be taken again by `acquire`
        // if the global one made the request wait: that case always goes through `acquire`.
        self.global.is_none() && self.limiter.try_acquire()
    }

    fn acquire(&self, give_up_at: Instant) -> QuotaFuture<'_> {
        Box::pin(async move {
            let route = self.route.label();
            self.limiter.acquire(give_up_at, route).await?;
            if let Some(global) = &self.global {
                global.acquire(give_up_at, route).await?;
            }
            Ok(())
        })
    }

    fn on_throttle(&self, retry_after: Option<Duration>, ids: UpstreamIds) -> ThrottleFuture<'_> {
        self.limiter.on_throttle(retry_after, ids);
        crate::metrics::rate_limit_pause(self.route.label());
        Box::pin(std::future::ready(()))
    }

    fn on_answer(&self) {
        self.limiter.on_answer();
    }
}
