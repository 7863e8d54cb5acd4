//! Reads the app's request body into `Bytes`, capped at `max_request_body`, so that retry can
//! replay it. Our own layer: tower-http's `RequestBodyLimitLayer` answers an over-long
//! `Content-Length` with its own 413, past the one rescue that maps every refusal to a
//! problem; here it is a `VALIDATION_BODY_TOO_LARGE` error like any other.

use crate::error::{BoxError, ProblemCode, ProxyError};
use bytes::Bytes;
use futures_util::future::{Either, MapErr, TryFutureExt as _};
use http::{header, Request};
use http_body_util::{BodyExt, Limited};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Builds [`ReadBody`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBodyLayer {
    cap: usize,
}

impl ReadBodyLayer {
    /// Bodies over `cap` bytes are refused with 413.
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap }
    }
}

impl<S> tower::Layer<S> for ReadBodyLayer {
    type Service = ReadBody<S>;
    fn layer(&self, inner: S) -> ReadBody<S> {
        ReadBody {
            inner,
            cap: self.cap,
        }
    }
}

/// Turns a streamed request body into buffered `Bytes` for the layers inside.
#[derive(Debug, Clone)]
pub(crate) struct ReadBody<S> {
    inner: S,
    cap: usize,
}

impl<S, B> tower::Service<Request<B>> for ReadBody<S>
where
    S: tower::Service<Request<Bytes>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    // A request without a body goes straight to the inner future (named, not boxed).
    type Future = Either<
        MapErr<S::Future, fn(S::Error) -> BoxError>,
        Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.body().is_end_stream() && !declared_too_large(req.headers(), self.cap) {
            let req = req.map(|_| Bytes::new());
            // Called now, as readiness allows (no clone of the stack below).
            return Either::Left(self.inner.call(req).map_err(Into::into as fn(_) -> _));
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cap = self.cap;
        Either::Right(Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = read(&parts.headers, body, cap).await?;
            inner
                .call(Request::from_parts(parts, body))
                .await
                .map_err(Into::into)
        }))
    }
}

async fn read<B>(headers: &http::HeaderMap, body: B, cap: usize) -> Result<Bytes, ProxyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let too_large = || {
        ProxyError::new(
            ProblemCode::ValidationBodyTooLarge,
            format!("the request body is larger than max_request_body ({cap} bytes)"),
        )
    };
    if declared_too_large(headers, cap) {
        return Err(too_large());
    }
    match Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ProxyError::new(
            ProblemCode::ValidationInvalidParameter,
            format!("the request body could not be read: {e}"),
        )),
    }
}

/// The request's `Content-Length` is over the cap.
fn declared_too_large(headers: &http::HeaderMap, cap: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > cap as u64)
}
