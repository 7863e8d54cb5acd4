//! Metrics: counts every request and its duration by route and status, as the app saw it
//! (outside rescue, so problem answers count too). The route comes up in the answer's
//! [`Outcome`]; an answer without one (refused before routing) counts as `route="none"`.

use crate::layer::Outcome;
use bytes::Bytes;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Builds [`Metrics`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metrics<S>;
    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics { inner }
    }
}

/// Records `myinfo_proxy_requests_total` and `myinfo_proxy_request_duration_seconds`.
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for Metrics<S>
where
    S: tower::Service<Request<B>, Response = Response<Bytes>>,
{
    type Response = Response<Bytes>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        MetricsFuture {
            started: tokio::time::Instant::now(),
            answer: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Metrics`]: the inner answer, counted when it comes (a named future, not
    /// a boxed one: every request passes here).
    pub struct MetricsFuture<F> {
        #[pin]
        answer: F,
        started: tokio::time::Instant,
    }
}

impl<F, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<Bytes>, E>>,
{
    type Output = Result<Response<Bytes>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.answer.poll(cx))?;
        let route = res.extensions().get::<Outcome>().and_then(|o| o.route);
        crate::metrics::request(route, res.status().as_u16(), this.started.elapsed());
        Poll::Ready(Ok(res))
    }
}
