//! The proxy as one service: an app request in (by local path), an answer out. The server
//! hands it every HTTP request; a library user calls it in process. Everything between is the
//! stack that [`crate::stack`] builds.

use crate::admin::{Admin, Health};
use crate::config::{Config, ConfigError};
use crate::key_source::KeyStore;
use crate::stack::{AnswerBody, EdgeService};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Either, Full};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::ServiceExt as _;

mod builder;

pub use builder::ProxyBuilder;

/// Everything needed to answer app requests: keys, readiness, and the assembled stack.
#[derive(Clone)]
pub struct Proxy {
    keys: Arc<KeyStore>,
    health: Arc<Health>,
    _key_watch: Arc<AbortOnDrop>,
    edge: EdgeService,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A builder for a proxy from `config`.
    pub fn builder(config: &Config) -> ProxyBuilder<'_> {
        ProxyBuilder {
            config,
            upstream: None,
            bindings: None,
        }
    }

    /// The proxy `config` describes, with the built-in HTTP client and binding store.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// The admin endpoints' view of this proxy.
    pub fn admin(&self) -> Admin {
        Admin {
            health: self.health.clone(),
            keys: self.keys.clone(),
        }
    }

    /// Readiness state (turn it to draining on shutdown).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The client keys in use.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Answers one HTTP request from the app, reading its body only once its headers passed.
    /// Never fails: every problem is a problem+json answer.
    pub async fn handle(&self, req: Request<crate::server::RequestBody>) -> Response<Full<Bytes>> {
        let res = self.answer(req.map(Either::Left)).await;
        let (parts, body) = res.into_parts();
        Response::from_parts(parts, Full::new(body))
    }

    /// Answers one app request whose body is already read; its URI is the local path (and
    /// query) the app calls, e.g. `/com/v4/token`. Never fails.
    pub async fn call_buffered(&self, req: Request<Bytes>) -> Response<Bytes> {
        self.answer(req.map(|body| Either::Right(Full::new(body))))
            .await
    }

    async fn answer(&self, req: Request<crate::stack::AppBody>) -> Response<Bytes> {
        let res = self
            .edge
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = res.into_parts();
        Response::from_parts(parts, whole(body).await)
    }
}

/// An answer's body, which the stack already holds whole in memory.
async fn whole(body: AnswerBody) -> Bytes {
    match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::error!(error = %e, "an answer's body could not be read");
            Bytes::new()
        }
    }
}

/// The proxy as a tower service: app requests (by local path) in, answers out, never an error.
impl tower::Service<Request<Bytes>> for Proxy {
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let proxy = self.clone();
        Box::pin(async move { Ok(proxy.call_buffered(req).await) })
    }
}

/// Stops the key watcher when the last clone of the proxy goes.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}
