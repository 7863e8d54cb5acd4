//! One quota for all replicas: each attempt reserves its permit in Redis with one script call
//! (GCRA on Redis `TIME`, the route's and the global bucket checked before either is consumed),
//! and gets back how long to wait, so replicas queue instead of polling. Upstream throttles are
//! shared: a 429 at one replica pauses the route at all of them and lowers its rate for all.
//!
//! While Redis is unreachable (its circuit open) each replica falls back to an in-process
//! limiter at `1 / fallback_replicas` of the quota, so that together they stay within it.

use super::RedisClient;
use crate::config::{Quota, RateLimitSettings};
use crate::error::{ProblemCode, ProxyError, UpstreamIds};
use crate::layer::RouteLimiter;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::time::Instant;

static RESERVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&[include_str!("aimd.lua"), include_str!("quota.lua")].concat())
});
static THROTTLE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&[include_str!("aimd.lua"), include_str!("throttle.lua")].concat())
});

/// As in the in-process limiter: halve on a throttle, never below this, pause at most this.
const DECREASE: f64 = 0.5;
const MIN_RATE: f64 = 0.05;
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// The global quota, shared by every route's limiter of one process (build it once).
#[derive(Debug, Clone)]
pub struct SharedGlobalQuota {
    quota: Quota,
    fallback: Arc<RouteLimiter>,
}

impl SharedGlobalQuota {
    /// The global `quota` (`rate_limit.global`); its fallback keeps to this replica's share.
    pub fn new(client: &RedisClient, quota: Quota) -> Self {
        let share = share(Some(quota), client.fallback_replicas());
        Self {
            quota,
            fallback: Arc::new(RouteLimiter::new(&RateLimitSettings {
                quota: share,
                max_wait: Duration::ZERO,
            })),
        }
    }
}

/// A route's limiter over all replicas; a drop-in for [`RouteLimiter`] (same methods, except
/// that [`SharedRouteLimiter::on_throttle`] is async: it tells the other replicas).
#[derive(Debug)]
pub struct SharedRouteLimiter {
    client: RedisClient,
    quota: Option<Quota>,
    global: Option<SharedGlobalQuota>,
    keys: [String; 4],
    fallback: RouteLimiter,
    /// Throttles in a row without a normal answer between them (backoff without Retry-After).
    throttles: AtomicU32,
    last_throttle: Mutex<Option<UpstreamIds>>,
    /// The route's rate at the last reservation (f64 bits), for [`Self::effective_rate`].
    rate: AtomicU64,
    /// True while the fallback limiter stands in for Redis.
    on_fallback: AtomicBool,
}

/// What one reservation said.
enum Reservation {
    Granted(Duration),
    Refused(Refusal, Duration),
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    Quota,
    Throttle,
    Global,
}

impl SharedRouteLimiter {
    /// A limiter for the route's settings; `bucket` names its state in Redis and must be the
    /// same on every replica and distinct per route (e.g. `"<upstream>.<route>"`).
    pub fn new(
        client: RedisClient,
        bucket: &str,
        settings: &RateLimitSettings,
        global: Option<SharedGlobalQuota>,
    ) -> Self {
        let quota = settings.quota;
        let fallback = RouteLimiter::new(&RateLimitSettings {
            quota: share(quota, client.fallback_replicas()),
            max_wait: settings.max_wait,
        });
        let keys = [
            client.key(&format!("q:{bucket}")),
            client.key(&format!("p:{bucket}")),
            client.key(&format!("a:{bucket}")),
            client.key("q:global"),
        ];
        Self {
            client,
            quota,
            global,
            keys,
            fallback,
            throttles: AtomicU32::new(0),
            last_throttle: Mutex::new(None),
            rate: AtomicU64::new(quota.map_or(0.0, |q| q.per_second).to_bits()),
            on_fallback: AtomicBool::new(false),
        }
    }

    /// The route's current rate over all replicas (requests per second; 0 when unlimited), as
    /// of this replica's last reservation.
    pub fn effective_rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    /// Waits for a permit until `give_up_at`; past it, refuses with a 429 problem. One Redis
    /// round trip; the fallback limiter while Redis is unreachable.
    pub async fn acquire(&self, give_up_at: Instant, route: &str) -> Result<(), ProxyError> {
        let max_wait = give_up_at.saturating_duration_since(Instant::now());
        let reserved = self.reserve(max_wait).await;
        if reserved.is_ok() {
            self.on_fallback.store(false, Ordering::Relaxed);
        } else if !self.on_fallback.swap(true, Ordering::Relaxed) {
            // Redis may have granted the whole burst just before it went away: the fallback
            // starts empty, so that a window spanning the switch still keeps to the quota.
            self.fallback.drain();
            if let Some(global) = &self.global {
                global.fallback.drain();
            }
        }
        match reserved {
            Ok(Reservation::Granted(wait)) => {
                if !wait.is_zero() {
                    crate::metrics::rate_limit_wait(route);
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
            Ok(Reservation::Refused(why, wait)) => {
                Err(self.refusal(why, route).with_retry_after(wait))
            }
            Err(_) => {
                if let Some(global) = &self.global {
                    global.fallback.acquire(give_up_at, route).await?;
                }
                self.fallback.acquire(give_up_at, route).await
            }
        }
    }

    /// An upstream throttle signal: pause the route on every replica for `retry_after` (or a
    /// backoff) and lower its shared rate. The local fallback learns it too.
    pub async fn on_throttle(&self, retry_after: Option<Duration>, ids: UpstreamIds) {
        *self.last_throttle.lock().unwrap_or_else(|p| p.into_inner()) = Some(ids.clone());
        self.fallback.on_throttle(retry_after, ids);
        let n = self.throttles.fetch_add(1, Ordering::Relaxed).min(6);
        let pause = retry_after
            .unwrap_or(Duration::from_secs(1 << n))
            .min(MAX_PAUSE)
            .max(Duration::from_millis(1));
        let keys = [self.keys[1].clone(), self.keys[2].clone()];
        let configured = self.quota.map_or(0.0, |q| q.per_second);
        let told = self
            .client
            .run("throttle", |mut c| async move {
                THROTTLE
                    .key(&keys[0])
                    .key(&keys[1])
                    .arg(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX))
                    .arg(configured)
                    .arg(DECREASE)
                    .arg(MIN_RATE)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        if told.is_err() {
            tracing::debug!(
                "an upstream throttle could not be shared (Redis unavailable): paused here only"
            );
        }
    }

    /// A normal (non-throttle) upstream answer.
    pub fn on_answer(&self) {
        self.throttles.store(0, Ordering::Relaxed);
        self.fallback.on_answer();
    }

    async fn reserve(&self, max_wait: Duration) -> Result<Reservation, super::RedisUnavailable> {
        let route = self.quota.map_or((0.0, 0), |q| (q.per_second, q.burst));
        let global = self
            .global
            .as_ref()
            .map_or((0.0, 0), |g| (g.quota.per_second, g.quota.burst));
        let keys = &self.keys[..if self.global.is_some() { 4 } else { 3 }];
        let max_us = u64::try_from(max_wait.as_micros()).unwrap_or(u64::MAX);
        let (code, wait_us, milli): (i64, i64, i64) = self
            .client
            .run("quota", |mut c| async move {
                let mut call = RESERVE.prepare_invoke();
                for k in keys {
                    call.key(k);
                }
                call.arg(route.0)
                    .arg(route.1)
                    .arg(global.0)
                    .arg(global.1)
                    .arg(max_us)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if self.quota.is_some() {
            self.rate
                .store((milli as f64 / 1000.0).to_bits(), Ordering::Relaxed);
        }
        let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0));
        Ok(match code {
            0 => Reservation::Granted(wait),
            2 => Reservation::Refused(Refusal::Throttle, wait),
            3 => Reservation::Refused(Refusal::Global, wait),
            _ => Reservation::Refused(Refusal::Quota, wait),
        })
    }

    fn refusal(&self, why: Refusal, route: &str) -> ProxyError {
        match why {
            Refusal::Quota => {
                crate::metrics::rate_limit_refusal(route, "quota");
                ProxyError::new(
                    ProblemCode::ResourceRateLimited,
                    format!("the proxy's quota for route {route} is exhausted (rate_limit, shared by all replicas)"),
                )
            }
            Refusal::Global => {
                crate::metrics::rate_limit_refusal(route, "global");
                ProxyError::new(
                    ProblemCode::ResourceRateLimited,
                    "the proxy's global quota (rate_limit.global, shared by all replicas) is exhausted",
                )
            }
            Refusal::Throttle => {
                crate::metrics::rate_limit_refusal(route, "upstream_throttle");
                let ids = self
                    .last_throttle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                ProxyError::new(
                    ProblemCode::ProviderThrottled,
                    format!("the upstream throttled route {route}; the proxy (all replicas) is holding its requests back"),
                )
                .with_upstream(ids)
            }
        }
    }
}

/// One replica's share of a quota while Redis is unreachable: the rate divided by the number of
/// replicas, and the burst too (at least 1 each).
fn share(quota: Option<Quota>, replicas: u32) -> Option<Quota> {
    quota.map(|q| Quota {
        per_second: q.per_second / f64::from(replicas.max(1)),
        burst: (q.burst / replicas.max(1)).max(1),
    })
}

/// A [`SharedRouteLimiter`] as the rate-limit layer's [`RouteQuota`](crate::layer::RouteQuota).
#[derive(Debug, Clone)]
pub struct SharedQuota {
    limiter: Arc<SharedRouteLimiter>,
    route: &'static str,
}

impl SharedQuota {
    /// The quota of the route labelled `route` (in metrics and problems).
    pub fn new(limiter: SharedRouteLimiter, route: &'static str) -> Self {
        Self {
            limiter: Arc::new(limiter),
            route,
        }
    }
}

impl crate::layer::RouteQuota for SharedQuota {
    fn acquire(&self, give_up_at: Instant) -> crate::layer::QuotaFuture<'_> {
        Box::pin(self.limiter.acquire(give_up_at, self.route))
    }

    fn on_throttle(
        &self,
        retry_after: Option<Duration>,
        ids: UpstreamIds,
    ) -> crate::layer::ThrottleFuture<'_> {
        // The pause is in Redis before the answer that carried the throttle goes back to the
        // app (one call, bounded by redis.timeout): the app's next request, at any replica,
        // is held back.
        crate::metrics::rate_limit_pause(self.route);
        Box::pin(self.limiter.on_throttle(retry_after, ids))
    }

    fn on_answer(&self) {
        self.limiter.on_answer();
    }
}
