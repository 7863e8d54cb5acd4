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
    S: tower::Service<Request<B>, Response = Response<Bytes>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is driven to readiness inside `call`, where a readiness error can
        // still be answered with a problem.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut inner = self.inner.clone();
        let doc_url = self.doc_url.clone();
        // Kept for a problem answer; both clones share their bytes with the request's.
        let uri = req.uri().clone();
        let request_id = req.extensions().get::<RequestId>().cloned();
        Box::pin(async move {
            let ready: Result<(), BoxError> =
                std::future::poll_fn(|cx| inner.poll_ready(cx).map_err(Into::into)).await;
            let result = match ready {
                Ok(()) => inner.call(req).await.map_err(Into::into),
                Err(e) => Err(e),
            };
            Ok(result.unwrap_or_else(|err| {
                let context = ProblemContext {
                    instance: uri.path(),
                    request_id: request_id
                        .as_ref()
                        .and_then(|id| id.header_value().to_str().ok()),
                    doc_url: Some(&doc_url),
                };
                let mut res = problem_response(&classify(&err), &context);
                if let Some(outcome) = outcome_of(&err) {
                    res.extensions_mut().insert::<Outcome>(outcome.clone());
                }
                res
            }))
        })
    }
}
