//! Retry: replays failed attempts with backoff. It sits outside inject, so every attempt is
//! signed afresh (new assertion `jti`, new proof `jti`/`iat`, same ephemeral key).
//!
//! The decisions live in [`RetryPolicy`]; the service below only replays and waits.

use crate::config::RetrySettings;
use crate::error::{BoxError, ProxyError};
use crate::layer::NonceDemand;
use crate::route::RequestContext;
use crate::upstream_answer::{retry_after, ErrorBody};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use rand::Rng;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tower::retry::budget::Budget as _;

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

/// What the policy says about one finished attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Give the app this result.
    Done,
    /// Try again after this long.
    RetryAfter(Duration, RetryReason),
}

/// Which failures are retried and how long to wait: everything but the plumbing.
#[derive(Debug, Clone)]
pub struct RetryPolicy<'a> {
    /// The route's settings.
    pub settings: &'a RetrySettings,
}

impl RetryPolicy<'_> {
    /// Decides after attempt number `retries_done + 1` finished with `result`.
    pub fn decide(
        &self,
        result: &Result<Response<Bytes>, BoxError>,
        retries_done: u32,
        now: SystemTime,
        rng: &mut impl Rng,
    ) -> Decision {
        let s = self.settings;
        if retries_done >= s.max_retries {
            return Decision::Done;
        }
        let reason = match result {
            Ok(res) => match Self::reason_for_answer(res) {
                Some(r) => r,
                None => return Decision::Done,
            },
            Err(e) if is_transport_failure(e) => RetryReason::Transport,
            Err(_) => return Decision::Done,
        };
        if reason == RetryReason::ServerError && retries_done >= 1 {
            return Decision::Done;
        }
        let mut delay = self.backoff(retries_done, rng);
        if reason == RetryReason::ServerError {
            // "Retry once after a delay": at least the full first backoff step.
            delay = delay.max(s.base_delay);
        }
        if let Ok(res) = result {
            if let Some(asked) = retry_after(res.headers(), now) {
                if asked > s.retry_after_cap {
                    return Decision::Done;
                }
                delay = delay.max(asked);
            }
        }
        Decision::RetryAfter(delay, reason)
    }

    fn reason_for_answer(res: &Response<Bytes>) -> Option<RetryReason> {
        match res.status() {
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE => {
                Some(RetryReason::Unavailable)
            }
            s if s.is_success() || s.is_redirection() || s.is_informational() => None,
            StatusCode::TOO_MANY_REQUESTS => None,
            s => {
                let body = ErrorBody::parse(res.body());
                if body.is_retryable_oauth() {
                    Some(RetryReason::RetryableError)
                } else if s == StatusCode::INTERNAL_SERVER_ERROR || s == StatusCode::NOT_IMPLEMENTED
                {
                    Some(RetryReason::ServerError)
                } else {
                    None
                }
            }
        }
    }

    /// Exponential backoff with full jitter: uniform in [0, min(max_delay, base * 2^n)].
    pub fn backoff(&self, retries_done: u32, rng: &mut impl Rng) -> Duration {
        let s = self.settings;
        let ceiling = s
            .base_delay
            .saturating_mul(1u32 << retries_done.min(20))
            .min(s.max_delay);
        ceiling.mul_f64(rng.gen_range(0.0..=1.0))
    }
}

/// A failure where no answer came back: hyper could not connect, or the connection closed
/// before an answer. A timed-out attempt is not one (the upstream may still be working on it).
fn is_transport_failure(err: &BoxError) -> bool {
    if err.is::<ProxyError>() || err.is::<tower::timeout::error::Elapsed>() {
        return false;
    }
    err.is::<hyper_util::client::legacy::Error>()
}

/// Builds [`Retry`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryLayer;

impl<S> tower::Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry { inner }
    }
}

/// Replays a request while the route's [`RetryPolicy`], its budget and the request's overall
/// deadline allow.
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let Some(ctx) = req.extensions().get::<RequestContext>().cloned() else {
                return inner.call(req).await.map_err(Into::into);
            };
            let route = &ctx.route;
            let policy = RetryPolicy {
                settings: &route.policy.retry,
            };
            route.budget.deposit();
            let mut retries = 0;
            let mut nonce_retried = false;
            loop {
                std::future::poll_fn(|cx| inner.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let result = inner.call(replay(&req)).await.map_err(Into::into);
                // A DPoP-nonce demand is repeated once, at once, outside max_retries and the
                // budget: it is part of the protocol, not a failure.
                if let Ok(res) = &result {
                    if res.extensions().get::<NonceDemand>().is_some() && !nonce_retried {
                        nonce_retried = true;
                        crate::metrics::nonce_retry(route.kind.label());
                        continue;
                    }
                }
                let decision =
                    policy.decide(&result, retries, SystemTime::now(), &mut rand::thread_rng());
                let Decision::RetryAfter(delay, reason) = decision else {
                    return result;
                };
                if crate::deadline::saturating_add(Instant::now(), delay) >= ctx.deadline {
                    tracing::info!(request_id = %ctx.request_id, route = route.kind.label(), reason = reason.label(), "not retrying: the overall deadline is too close");
                    return result;
                }
                if !route.budget.withdraw() {
                    tracing::warn!(request_id = %ctx.request_id, route = route.kind.label(), reason = reason.label(), "not retrying: the route's retry budget is spent");
                    return result;
                }
                retries += 1;
                crate::metrics::retry(route.kind.label(), reason.label());
                tracing::info!(request_id = %ctx.request_id, route = route.kind.label(), reason = reason.label(), retry = retries, delay_ms = delay.as_millis() as u64, "retrying upstream attempt");
                tokio::time::sleep(delay).await;
            }
        })
    }
}

/// A copy of the app's request for one more attempt: same method, target, headers, body and
/// context (and so the same ephemeral key); inject signs it afresh.
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
