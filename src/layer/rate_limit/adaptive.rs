//! One route's limiter: the configured quota, lowered after upstream throttling and raised
//! again step by step (AIMD), plus the pause an upstream `Retry-After` asks for.
//!
//! After a throttle at rate `r`, the rate drops to `r/2` and the route remembers `r` as its
//! ceiling. Each quiet second the rate climbs by 5% of the ceiling up to 95% of it; only then
//! does the ceiling itself creep up (1% every 30 s) to probe whether the upstream allows more.
//! Under a sustained upstream quota this settles just below it instead of oscillating around
//! it. While lowered, bursts are 1.

use super::local::{gcra, wait_for, Gcra, TokioClock};
use crate::config::RateLimitSettings;
use crate::error::{ProblemCode, ProxyError, UpstreamIds};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const DECREASE: f64 = 0.5;
const STEP: Duration = Duration::from_secs(1);
const CLIMB_PER_STEP: f64 = 0.05;
const TARGET: f64 = 0.95;
const PROBE_EVERY: Duration = Duration::from_secs(30);
const PROBE_GROWTH: f64 = 1.01;
const MIN_RATE: f64 = 0.05;
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// A route's rate limiter. See the module docs for how it adapts.
#[derive(Debug)]
pub struct RouteLimiter {
    configured: Option<(f64, u32)>,
    clock: TokioClock,
    state: Mutex<State>,
    /// The upstream error of the last throttle, named in the problems of refused requests.
    last_throttle: Mutex<Option<UpstreamIds>>,
    /// Set with `paused_until` (under the lock), cleared once a wait finds the pause over: a
    /// route without a quota and not paused hands out permits without the lock or the clock.
    paused: AtomicBool,
    /// Whether `throttles` is above zero (written under the lock): a normal answer after a
    /// normal answer takes no lock.
    throttled: AtomicBool,
}

#[derive(Debug)]
struct State {
    /// None: no quota (the route's limit is off and it has not been throttled).
    limiter: Option<Gcra>,
    rate: f64,
    /// The rate at the last throttle while the route is lowered; None at full rate.
    ceiling: Option<f64>,
    paused_until: Option<Instant>,
    /// Throttles in a row without a normal answer between them (backoff without Retry-After).
    throttles: u32,
    last_step: Instant,
    last_probe: Instant,
}

impl RouteLimiter {
    /// A limiter for the route's settings.
    pub fn new(settings: &RateLimitSettings) -> Self {
        let clock = TokioClock::default();
        let configured = settings.quota.map(|q| (q.per_second, q.burst));
        let now = Instant::now();
        let state = State {
            limiter: configured.map(|(rate, burst)| gcra(rate, burst, &clock, false)),
            rate: configured.map_or(0.0, |(rate, _)| rate),
            ceiling: None,
            paused_until: None,
            throttles: 0,
            last_step: now,
            last_probe: now,
        };
        Self {
            configured,
            clock,
            state: Mutex::new(state),
            last_throttle: Mutex::new(None),
            paused: AtomicBool::new(false),
            throttled: AtomicBool::new(false),
        }
    }

    /// Empties the bucket: a limiter taking over from another (the shared one, while Redis is
    /// unreachable), which may just have granted its whole burst, starts from nothing. Bounded
    /// by the configured burst.
    pub(crate) fn drain(&self) {
        let s = self.lock();
        if let (Some(limiter), Some((_, burst))) = (&s.limiter, self.configured) {
            for _ in 0..=burst {
                if limiter.check().is_err() {
                    break;
                }
            }
        }
    }

    /// The current effective rate (requests per second; 0 when unlimited).
    pub fn effective_rate(&self) -> f64 {
        self.lock().rate
    }

    /// Waits for a permit until `give_up_at`; past it, refuses with a 429 problem.
    pub async fn acquire(&self, give_up_at: Instant, route: &str) -> Result<(), ProxyError> {
        loop {
            let (wait, lowered) = self.wait();
            if wait.is_zero() {
                return Ok(());
            }
            if crate::deadline::saturating_add(Instant::now(), wait) > give_up_at {
                let reason = if lowered {
                    "upstream_throttle"
                } else {
                    "quota"
                };
                crate::metrics::rate_limit_refusal(route, reason);
                let err = if lowered {
                    let ids = self
                        .last_throttle
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    ProxyError::new(ProblemCode::ProviderThrottled, format!("the upstream throttled route {route}; the proxy is holding its requests back"))
                        .with_upstream(ids)
                } else {
                    ProxyError::new(
                        ProblemCode::ResourceRateLimited,
                        format!("the proxy's quota for route {route} is exhausted (rate_limit)"),
                    )
                };
                return Err(err.with_retry_after(wait));
            }
            crate::metrics::rate_limit_wait(route);
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a permit if one is free now (what [`Self::acquire`] does without waiting).
    pub fn try_acquire(&self) -> bool {
        // No quota (the route's limit is off) and no pause: nothing to count.
        if self.configured.is_none() && !self.paused.load(Ordering::Acquire) {
            return true;
        }
        self.wait().0.is_zero()
    }

    /// How long until a permit (zero: one was taken), and whether the rate is lowered.
    fn wait(&self) -> (Duration, bool) {
        let mut s = self.lock();
        let now = Instant::now();
        self.recover(&mut s, now);
        if s.paused_until.is_some_and(|until| until <= now) {
            s.paused_until = None;
            self.paused.store(false, Ordering::Release);
        }
        match s.paused_until {
            Some(until) => (until - now, true),
            None => (
                s.limiter
                    .as_ref()
                    .map_or(Duration::ZERO, |l| wait_for(l, &self.clock)),
                s.ceiling.is_some(),
            ),
        }
    }

    /// An upstream throttle signal: pause for `retry_after` (or a backoff) and lower the rate.
    pub fn on_throttle(&self, retry_after: Option<Duration>, ids: UpstreamIds) {
        *self.last_throttle.lock().unwrap_or_else(|p| p.into_inner()) = Some(ids);
        let mut s = self.lock();
        let now = Instant::now();
        s.throttles = s.throttles.saturating_add(1);
        let backoff = Duration::from_secs(1 << (s.throttles - 1).min(6));
        let pause = retry_after.unwrap_or(backoff).min(MAX_PAUSE);
        s.paused_until = Some(s.paused_until.map_or(now + pause, |p| p.max(now + pause)));
        self.paused.store(true, Ordering::Release);
        self.throttled.store(true, Ordering::Release);
        if let Some((_, _)) = self.configured {
            // Several attempts in flight may all come back throttled: lower once per pause.
            if s.ceiling.is_some() && s.last_step > now {
                return;
            }
            s.ceiling = Some(s.rate);
            s.rate = (s.rate * DECREASE).max(MIN_RATE);
            s.limiter = Some(gcra(s.rate, 1, &self.clock, true));
            // Recovery starts after the pause.
            s.last_step = now + pause;
            s.last_probe = now + pause;
        }
    }

    /// A normal (non-throttle) upstream answer.
    pub fn on_answer(&self) {
        if self.throttled.load(Ordering::Acquire) {
            let mut s = self.lock();
            s.throttles = 0;
            self.throttled.store(false, Ordering::Release);
        }
    }

    fn recover(&self, s: &mut State, now: Instant) {
        let (Some(ceiling), Some((configured, burst))) = (s.ceiling, self.configured) else {
            return;
        };
        if now < s.last_step + STEP {
            return;
        }
        let steps = ((now - s.last_step).as_secs_f64() / STEP.as_secs_f64()).floor();
        s.last_step += STEP.mul_f64(steps);
        let target = ceiling * TARGET;
        let mut rate = (s.rate + steps * CLIMB_PER_STEP * ceiling).min(target);
        let mut ceiling = ceiling;
        if rate >= target && now >= s.last_probe + PROBE_EVERY {
            s.last_probe = now;
            ceiling *= PROBE_GROWTH;
            rate = ceiling * TARGET;
        }
        if rate >= configured {
            s.ceiling = None;
            s.rate = configured;
            s.limiter = Some(gcra(configured, burst, &self.clock, true));
        } else if rate > s.rate {
            s.ceiling = Some(ceiling);
            s.rate = rate;
            s.limiter = Some(gcra(rate, 1, &self.clock, true));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
