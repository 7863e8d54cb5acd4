//! Rescue: every error becomes a problem+json answer, so nothing reaches hyper as `Err` (hyper
//! would answer an `Err` by dropping the connection). This is the one place errors are turned
//! into answers; the facts an error carried up ([`Outcome`]) go on in the answer's extensions.

use crate::error::{classify, outcome_of, problem_response, BoxError, ProblemContext};
use crate::layer::Outcome;
use bytes::Bytes;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
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
            unready: None,
        }
    }
}

/// Answers every inner error with the problem the one mapping in [`crate::error`] gives it.
#[derive(Debug)]
pub struct Rescue<S> {
    inner: S,
    doc_url: Arc<str>,
    /// The inner service's readiness error, answered by the next call.
    unready: Option<BoxError>,
}

impl<S: Clone> Clone for Rescue<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            doc_url: self.doc_url.clone(),
            unready: None,
        }
    }
}

impl<S, B> tower::Service<Request<B>> for Rescue<S>
where
    S: tower::Service<Request<B>, Response = Response<Bytes>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = RescueFuture<S, Request<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Ready when the inner service is, or has failed: its error becomes the next answer.
        if self.unready.is_none() {
            if let Err(e) = std::task::ready!(self.inner.poll_ready(cx)) {
                self.unready = Some(e.into());
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let asked = Asked {
            uri: req.uri().clone(),
            request_id: req.extensions().get::<RequestId>().cloned(),
            doc_url: self.doc_url.clone(),
        };
        // Called now, as readiness allows (no clone of the stack below).
        let answer = match self.unready.take() {
            None => Answer::Called {
                answer: self.inner.call(req),
            },
            Some(e) => Answer::Unready { error: Some(e) },
        };
        RescueFuture {
            answer,
            asked: Some(asked),
            _req: PhantomData,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Rescue`]: the inner answer, or the problem its error maps to (a named
    /// future, not a boxed one: every request passes here).
    pub struct RescueFuture<S: tower::Service<Req>, Req> {
        #[pin]
        answer: Answer<S::Future>,
        asked: Option<Asked>,
        _req: PhantomData<fn(Req)>,
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, or its readiness error.
    #[project = AnswerProj]
    enum Answer<F> {
        Called { #[pin] answer: F },
        Unready { error: Option<BoxError> },
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
        let result = match this.answer.project() {
            AnswerProj::Called { answer } => std::task::ready!(answer.poll(cx)).map_err(Into::into),
            AnswerProj::Unready { error } => Err(error
                .take()
                .unwrap_or_else(|| "the rescue future was polled after it completed".into())),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ProblemCode, ProxyError};
    use tower::{Layer as _, ServiceExt as _};

    /// A service that fails its readiness check once, then answers 200.
    #[derive(Clone)]
    struct FailsFirst {
        failed: bool,
    }

    impl tower::Service<Request<()>> for FailsFirst {
        type Response = Response<Bytes>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Response<Bytes>, BoxError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            if !std::mem::replace(&mut self.failed, true) {
                let e = ProxyError::new(ProblemCode::ProviderUnavailable, "not ready");
                return Poll::Ready(Err(e.into()));
            }
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            std::future::ready(Ok(Response::new(Bytes::from_static(b"ok"))))
        }
    }

    #[tokio::test]
    async fn a_readiness_error_is_the_next_answer_and_the_service_is_asked_again_after() {
        let mut svc =
            RescueLayer::new("https://docs.example/problems").layer(FailsFirst { failed: false });
        let refused = (&mut svc).oneshot(Request::new(())).await.unwrap();
        assert_eq!(refused.status(), ProblemCode::ProviderUnavailable.status());
        let body: serde_json::Value = serde_json::from_slice(refused.body()).unwrap();
        assert_eq!(body["title"], "PROVIDER_UNAVAILABLE", "{body}");
        let answered = (&mut svc).oneshot(Request::new(())).await.unwrap();
        assert_eq!(answered.body(), "ok");
    }
}
