//! [`RetryPolicy`]: every retry decision, apart from the plumbing that waits and replays. What
//! is retryable, how long to wait, whether the budget, the deadline and `Retry-After` allow it,
//! and the one repeat of a DPoP-nonce demand.

use crate::config::RetrySettings;
use crate::error::{BoxError, ProxyError};
use crate::layer::NonceDemand;
use crate::upstream_answer::{retry_after, ErrorBody};
use bytes::Bytes;
use http::{Response, StatusCode};
use rand::Rng;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tower::retry::budget::{Budget as _, TpsBudget};

/// Why an attempt is retried (a fixed label for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// 502 or 503.
    Unavailable,
    /// 500 or 501: one retry only.
    ServerError,
    /// An OAuth error body Singpass marks retryable.
    RetryableError,
    /// No answer came back (connect failure, connection closed).
    Transport,
}

impl RetryReason {
    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unavailable => "status_502_503",
            Self::ServerError => "status_500_501",
            Self::RetryableError => "retryable_error_body",
            Self::Transport => "transport",
        }
    }
}

/// Why retrying stopped (a fixed label for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The result is not one to retry (a success, a 4xx, a local refusal, a timeout).
    Final,
    /// `max_retries` are spent (500/501: the one retry is).
    RetriesSpent,
    /// The upstream's `Retry-After` is longer than `retry_after_cap`.
    RetryAfterTooLong,
    /// The wait would end past the request's overall deadline.
    DeadlineTooClose,
    /// The route's retry budget has nothing left.
    BudgetSpent,
}

impl Stop {
    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Final => "final",
            Self::RetriesSpent => "retries_spent",
            Self::RetryAfterTooLong => "retry_after_too_long",
            Self::DeadlineTooClose => "deadline_too_close",
            Self::BudgetSpent => "budget_spent",
        }
    }
}

/// What the policy says about one finished attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Give the app this result.
    Done(Stop),
    /// Sign and send again at once: the upstream demanded a DPoP nonce (once per request,
    /// outside `max_retries` and the budget: it is part of the protocol, not a failure).
    RepeatNow,
    /// Try again after this long.
    RetryAfter(Duration, RetryReason),
}

/// What one request's retries have used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Retries made (nonce repeats not counted).
    pub retries: u32,
    /// Whether the one nonce repeat was made.
    pub nonce_repeated: bool,
}

/// Which failures are retried and how long to wait: everything but the plumbing.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    settings: RetrySettings,
}

/// The moment a decision is made: tokio's clock (for waits and the deadline) and the wall clock
/// (for an HTTP-date `Retry-After`).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// tokio's now.
    pub instant: Instant,
    /// The wall clock's now.
    pub wall: SystemTime,
}

impl Now {
    /// Both clocks, now.
    pub fn current() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

impl RetryPolicy {
    /// The policy of a route's settings.
    pub fn new(settings: RetrySettings) -> Self {
        Self { settings }
    }

    /// Decides after an attempt finished with `result`; counts what it allows in `tally` and
    /// withdraws retries from `budget`. The request must be answered by `deadline`. `now` and
    /// `rng` are asked only for a result that may be retried (most results are final, and
    /// need neither a clock read nor a random number).
    pub fn decide<R: Rng>(
        &self,
        tally: &mut Tally,
        result: &Result<Response<Bytes>, BoxError>,
        budget: &TpsBudget,
        deadline: Instant,
        now: impl FnOnce() -> Now,
        rng: impl FnOnce() -> R,
    ) -> Decision {
        let s = &self.settings;
        if let Ok(res) = result {
            if res.extensions().get::<NonceDemand>().is_some() && !tally.nonce_repeated {
                tally.nonce_repeated = true;
                return Decision::RepeatNow;
            }
        }
        let reason = match result {
            Ok(res) => match reason_for_answer(res) {
                Some(r) => r,
                None => return Decision::Done(Stop::Final),
            },
            Err(e) if is_transport_failure(e) => RetryReason::Transport,
            Err(_) => return Decision::Done(Stop::Final),
        };
        let done = tally.retries >= s.max_retries
            || (reason == RetryReason::ServerError && tally.retries >= 1);
        if done {
            return Decision::Done(Stop::RetriesSpent);
        }
        let now = now();
        let mut delay = self.backoff(tally.retries, &mut rng());
        if reason == RetryReason::ServerError {
            // "Retry once after a delay": at least the full first backoff step.
            delay = delay.max(s.base_delay);
        }
        if let Some(asked) = result
            .as_ref()
            .ok()
            .and_then(|res| retry_after(res.headers(), now.wall))
        {
            if asked > s.retry_after_cap {
                return Decision::Done(Stop::RetryAfterTooLong);
            }
            delay = delay.max(asked);
        }
        if now.instant + delay >= deadline {
            return Decision::Done(Stop::DeadlineTooClose);
        }
        if !budget.withdraw() {
            return Decision::Done(Stop::BudgetSpent);
        }
        tally.retries += 1;
        Decision::RetryAfter(delay, reason)
    }

    /// Exponential backoff with full jitter: uniform in [0, min(max_delay, base * 2^n)].
    pub fn backoff(&self, retries_done: u32, rng: &mut impl Rng) -> Duration {
        let s = &self.settings;
        let ceiling = s
            .base_delay
            .saturating_mul(1u32 << retries_done.min(20))
            .min(s.max_delay);
        ceiling.mul_f64(rng.gen_range(0.0..=1.0))
    }
}

fn reason_for_answer(res: &Response<Bytes>) -> Option<RetryReason> {
    match res.status() {
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE => Some(RetryReason::Unavailable),
        s if s.is_success() || s.is_redirection() || s.is_informational() => None,
        StatusCode::TOO_MANY_REQUESTS => None,
        s => {
            if ErrorBody::of(res).is_retryable_oauth() {
                Some(RetryReason::RetryableError)
            } else if s == StatusCode::INTERNAL_SERVER_ERROR || s == StatusCode::NOT_IMPLEMENTED {
                Some(RetryReason::ServerError)
            } else {
                None
            }
        }
    }
}

/// A failure where no answer came back: hyper could not connect, or the connection closed
/// before an answer. A timed-out attempt is not one (the upstream may still be working on it).
fn is_transport_failure(err: &BoxError) -> bool {
    if err.is::<ProxyError>() || err.is::<tower::timeout::error::Elapsed>() {
        return false;
    }
    crate::upstream::transport_failure(err).is_some()
}
