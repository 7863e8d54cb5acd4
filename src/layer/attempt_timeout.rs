//! Attempt timeout: one upstream attempt may take `timeouts.attempt`, and never runs past the
//! request's overall deadline (its [`RequestFacts`]). An attempt that hits either ends with
//! tower's `Elapsed`, which the rescue answers as 504 `PROVIDER_TIMEOUT`, as it answers tower's
//! own timeout. tower's `TimeoutLayer` takes one fixed duration, so it cannot stop at the
//! deadline; with this one, a passthrough route, whose only waits are attempts, permits and
//! backoffs (each bounded by the deadline), needs no second timer for `timeouts.overall`.

use crate::error::BoxError;
use crate::layer::RequestFacts;
use http::Request;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::timeout::error::Elapsed;

/// Builds [`AttemptTimeout`].
#[derive(Debug, Clone, Copy)]
pub struct AttemptTimeoutLayer {
    attempt: Duration,
}

impl AttemptTimeoutLayer {
    /// Each attempt ends after `attempt`, or at its request's deadline if that comes first.
    pub fn new(attempt: Duration) -> Self {
        Self { attempt }
    }
}

impl<S> tower::Layer<S> for AttemptTimeoutLayer {
    type Service = AttemptTimeout<S>;
    fn layer(&self, inner: S) -> AttemptTimeout<S> {
        AttemptTimeout {
            inner,
            attempt: self.attempt,
        }
    }
}

/// Ends an attempt that takes longer than its timeout or runs past its request's deadline.
/// Needs the request's [`RequestFacts`].
#[derive(Debug, Clone)]
pub struct AttemptTimeout<S> {
    inner: S,
    attempt: Duration,
}

impl<S, B> tower::Service<Request<B>> for AttemptTimeout<S>
where
    S: tower::Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AttemptTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let deadline = match RequestFacts::of(&req) {
            Ok(facts) => facts.deadline,
            Err(missing) => {
                let error = Some(missing.into());
                return AttemptTimeoutFuture {
                    state: State::Refused { error },
                };
            }
        };
        let at = crate::deadline::saturating_add(Instant::now(), self.attempt).min(deadline);
        AttemptTimeoutFuture {
            state: State::Running {
                answer: self.inner.call(req),
                sleep: tokio::time::sleep_until(at),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`AttemptTimeout`] (a named future: every attempt passes here).
    pub struct AttemptTimeoutFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] answer: F, #[pin] sleep: Sleep },
        Refused { error: Option<BoxError> },
    }
}

impl<F, T, E> Future for AttemptTimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Running { answer, sleep } => {
                if let Poll::Ready(result) = answer.poll(cx) {
                    return Poll::Ready(result.map_err(Into::into));
                }
                std::task::ready!(sleep.poll(cx));
                Poll::Ready(Err(Elapsed::new().into()))
            }
            StateProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .expect("an AttemptTimeoutFuture is not polled after it is ready"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProxyError;
    use tower::{service_fn, Layer as _, ServiceExt as _};

    /// An upstream that answers after `delay`.
    fn upstream(
        delay: Duration,
    ) -> impl tower::Service<Request<()>, Response = &'static str, Error = BoxError, Future: Send> + Clone
    {
        service_fn(move |_: Request<()>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, BoxError>("answer")
        })
    }

    fn request(deadline: Instant) -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(RequestFacts::new("http://up/x", "http://up/x", deadline));
        req
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_ends_at_its_timeout_or_at_the_deadline_whichever_comes_first() {
        let layer = AttemptTimeoutLayer::new(Duration::from_secs(10));
        let started = Instant::now();
        let far = started + Duration::from_secs(60);
        // In time: the answer.
        let quick = layer.layer(upstream(Duration::from_secs(9)));
        assert_eq!(quick.oneshot(request(far)).await.unwrap(), "answer");
        // Too slow for the attempt timeout: Elapsed at 10 s.
        let started = Instant::now();
        let slow = layer.layer(upstream(Duration::from_secs(30)));
        let err = slow.clone().oneshot(request(far)).await.unwrap_err();
        assert!(err.is::<Elapsed>());
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        // The request's deadline comes first: Elapsed at the deadline.
        let started = Instant::now();
        let soon = started + Duration::from_secs(4);
        let err = slow.oneshot(request(soon)).await.unwrap_err();
        assert!(err.is::<Elapsed>());
        assert_eq!(started.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_without_facts_is_refused_not_passed_through() {
        let timed =
            AttemptTimeoutLayer::new(Duration::from_secs(10)).layer(upstream(Duration::ZERO));
        let err = timed.oneshot(Request::new(())).await.unwrap_err();
        let err = err.downcast::<ProxyError>().unwrap();
        assert!(err.detail.contains("RequestFacts"), "{}", err.detail);
    }
}
