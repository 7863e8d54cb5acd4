//! The client's public JWKS on the main listener (`admin.jwks_on_main_listener`), before the
//! API-key check: Singpass fetches it without a key.

use crate::key_source::KeyStore;
use bytes::Bytes;
use http::{Method, Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

const PATH: &str = "/.well-known/jwks.json";

/// Builds [`PublicJwks`].
#[derive(Debug, Clone)]
pub(crate) struct PublicJwksLayer {
    keys: Arc<KeyStore>,
}

impl PublicJwksLayer {
    /// Serves the public halves of `keys`.
    pub(crate) fn new(keys: Arc<KeyStore>) -> Self {
        Self { keys }
    }
}

impl<S> tower::Layer<S> for PublicJwksLayer {
    type Service = PublicJwks<S>;
    fn layer(&self, inner: S) -> PublicJwks<S> {
        PublicJwks {
            inner,
            keys: self.keys.clone(),
        }
    }
}

/// Answers `GET /.well-known/jwks.json`; passes everything else on.
#[derive(Debug, Clone)]
pub(crate) struct PublicJwks<S> {
    inner: S,
    keys: Arc<KeyStore>,
}

impl<S, B> tower::Service<Request<B>> for PublicJwks<S>
where
    S: tower::Service<Request<B>, Response = Response<Bytes>>,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Bytes>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.uri().path() == PATH && req.method() == Method::GET {
            let res = crate::admin::jwks_response(&self.keys);
            return Box::pin(std::future::ready(Ok(res)));
        }
        Box::pin(self.inner.call(req))
    }
}
