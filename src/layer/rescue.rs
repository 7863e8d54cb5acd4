//! Rescue: every error becomes a problem+json answer, so nothing reaches hyper as `Err` (hyper
//! would answer an `Err` by dropping the connection). This is the one place errors are turned
//! into answers; the facts an error carried up ([`Outcome`]) go on in the answer's extensions.

use crate::error::{classify, outcome_of, problem_response, BoxError, ProblemContext};
use crate::layer::Outcome;
use bytes::Bytes;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::util::Oneshot;
use tower::ServiceExt as _;
use tower_http::request_id::RequestId;

/// Builds [`Rescue`].
#[derive(Debug, Clone)]
pub struct RescueLayer {
    doc_url: Arc<str>,
}

impl RescueLayer {
    /// Problems point at `doc_url` for the meaning of their codes (`problem_doc_url`).
    pub fn new(doc_url: &str) -> Self {
        Self {
            doc_url: doc_url.into(),
        }
    }
}

impl<S> tower::Layer<S> for RescueLayer {
    type Service = Rescue<S>;
    fn layer(&self, inner: S) -> Rescue<S> {
        Rescue {
            inner,
            doc_url: self.doc_url.clone(),
        }
    }
}

/// Answers every inner error with the problem the one mapping in [`crate::error`] gives it.
#[derive(Debug, Clone)]
pub struct Rescue<S> {
    inner: S,
    doc_url: Arc<str>,
}

impl<S, B> tower::Service<Request<B>> for Rescue<S>
where
    S: tower::Service<Request<B>, Response = Response<Bytes>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = RescueFuture<S, Request<B>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let asked = Asked {
            uri: req.uri().clone(),
            request_id: req.extensions().get::<RequestId>().cloned(),
            doc_url: self.doc_url.clone(),
        };
        // The inner service's readiness (and any error it has) is part of the answer's future.
        RescueFuture {
            answer: self.inner.clone().oneshot(req),
            asked: Some(asked),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Rescue`]: the inner answer, or the problem its error maps to (a named
    /// future, not a boxed one: every request passes here).
    pub struct RescueFuture<S: tower::Service<Req>, Req> {
        #[pin]
        answer: Oneshot<S, Req>,
        asked: Option<Asked>,
    }
}

/// What a problem answer names: the request's path and id, and the docs.
struct Asked {
    uri: http::Uri,
    request_id: Option<RequestId>,
    doc_url: Arc<str>,
}

impl<S, Req> Future for RescueFuture<S, Req>
where
    S: tower::Service<Req, Response = Response<Bytes>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<Bytes>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.answer.poll(cx)).map_err(Into::into);
        let asked = this.asked.take();
        Poll::Ready(Ok(result.unwrap_or_else(|err| {
            let context = ProblemContext {
                instance: asked.as_ref().map_or("", |a| a.uri.path()),
                request_id: asked
                    .as_ref()
                    .and_then(|a| a.request_id.as_ref())
                    .and_then(|id| id.header_value().to_str().ok()),
                doc_url: asked.as_ref().map(|a| &*a.doc_url),
            };
            let mut res = problem_response(&classify(&err), &context);
            if let Some(outcome) = outcome_of(&err) {
                res.extensions_mut().insert::<Outcome>(outcome.clone());
            }
            res
        })))
    }
}
