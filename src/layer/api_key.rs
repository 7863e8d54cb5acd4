//! Inbound auth: the app's API key, checked on the request's headers before its body is read,
//! and never forwarded. Our own layer: tower-http's `ValidateRequestHeaderLayer` answers a
//! refusal itself, past the one rescue that maps every refusal to a problem.

use crate::error::BoxError;
use crate::inbound::{ApiKeys, API_KEY};
use http::Request;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Builds [`ApiKey`].
#[derive(Debug, Clone)]
pub(crate) struct ApiKeyLayer {
    keys: ApiKeys,
}

impl ApiKeyLayer {
    /// Requires one of `keys` (none configured: every request passes).
    pub(crate) fn new(keys: ApiKeys) -> Self {
        Self { keys }
    }
}

impl<S> tower::Layer<S> for ApiKeyLayer {
    type Service = ApiKey<S>;
    fn layer(&self, inner: S) -> ApiKey<S> {
        ApiKey {
            inner,
            keys: self.keys.clone(),
        }
    }
}

/// Refuses a request without a valid `X-Api-Key`; removes the header from those it lets in.
#[derive(Debug, Clone)]
pub(crate) struct ApiKey<S> {
    inner: S,
    keys: ApiKeys,
}

impl<S, B> tower::Service<Request<B>> for ApiKey<S>
where
    S: tower::Service<Request<B>>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Err(refused) = self.keys.check(req.headers()) {
            return Box::pin(std::future::ready(Err(refused.into())));
        }
        // The app's API key is for this proxy only.
        req.headers_mut().remove(&API_KEY);
        let answer = self.inner.call(req);
        Box::pin(async move { answer.await.map_err(Into::into) })
    }
}
