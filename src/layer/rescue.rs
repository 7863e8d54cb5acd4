//! Rescue: every error becomes a problem+json answer, so nothing reaches hyper as `Err` (hyper
//! would answer an `Err` by dropping the connection).

use crate::error::{classify, problem_response, BoxError, ProblemContext};
use crate::route::RequestContext;
use bytes::Bytes;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Builds [`Rescue`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RescueLayer;

impl<S> tower::Layer<S> for RescueLayer {
    type Service = Rescue<S>;
    fn layer(&self, inner: S) -> Rescue<S> {
        Rescue { inner }
    }
}

/// Answers every inner error with the problem the one mapping in [`crate::error`] gives it.
#[derive(Debug, Clone)]
pub struct Rescue<S> {
    inner: S,
}

impl<S> tower::Service<Request<Bytes>> for Rescue<S>
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is driven to readiness inside `call`, where a readiness error can
        // still be answered with a problem.
        let _ = cx;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let mut inner = self.inner.clone();
        let ctx = req.extensions().get::<RequestContext>().cloned();
        let path = req.uri().path().to_owned();
        Box::pin(async move {
            let ready: Result<(), BoxError> =
                std::future::poll_fn(|cx| inner.poll_ready(cx).map_err(Into::into)).await;
            let result = match ready {
                Ok(()) => inner.call(req).await.map_err(Into::into),
                Err(e) => Err(e),
            };
            Ok(result.unwrap_or_else(|err| {
                let problem = classify(&err);
                let ctx = ProblemContext {
                    instance: ctx.as_ref().map_or(path.as_str(), |c| &c.instance),
                    request_id: ctx.as_ref().map(|c| &*c.request_id),
                    doc_url: ctx.as_ref().map(|c| &*c.doc_url),
                };
                problem_response(&problem, &ctx)
            }))
        })
    }
}
