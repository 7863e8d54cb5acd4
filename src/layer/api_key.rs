//! Inbound auth: the app's API key, checked on the request's headers before its body is read,
//! and never forwarded. Our own layer: tower-http's `ValidateRequestHeaderLayer` answers a
//! refusal itself, past the one rescue that maps every refusal to a problem.

use crate::error::BoxError;
use crate::inbound::{ApiKeys, API_KEY};
use futures_util::future::{Either, MapErr, TryFutureExt as _};
use http::Request;
use std::future::Ready;
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
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    // Named, not boxed: the check is synchronous, so the future is the inner one (or a refusal).
    type Future =
        Either<Ready<Result<S::Response, BoxError>>, MapErr<S::Future, fn(S::Error) -> BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Err(refused) = self.keys.check(req.headers()) {
            return Either::Left(std::future::ready(Err(refused.into())));
        }
        req.headers_mut().remove(&API_KEY);
        Either::Right(
            self.inner
                .call(req)
                .map_err(Into::into as fn(S::Error) -> BoxError),
        )
    }
}
