//! Inject: adds what Singpass demands to each attempt (client assertion, DPoP proof,
//! `Authorization: DPoP`), replacing anything the app sent; answers a server's DPoP-nonce
//! demand by signing once more with the nonce; binds issued tokens and logins to keys; and,
//! where configured, opens encrypted answers.
//!
//! It sits inside retry, so every attempt is signed afresh (new `jti`, new `iat`), while the
//! ephemeral key, kept in the request's [`RequestContext`], stays the same for all attempts.

mod answer;
mod nonce;
mod plan;
mod sign;

pub use nonce::NonceStore;

/// Marks an upstream answer that demanded a DPoP nonce it has just handed out: the retry layer
/// repeats such an attempt once, at once.
#[derive(Debug, Clone, Copy)]
pub struct NonceDemand;

use crate::binding::BindingStore;
use crate::error::BoxError;
use crate::jose::EphemeralKeyPool;
use crate::key_source::KeyStore;
use crate::route::{RequestContext, RouteKind};
use bytes::Bytes;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// Everything the inject layer signs with.
pub struct Signing {
    /// The client id (`iss`/`sub` of assertions; the `client_id` form field).
    pub client_id: String,
    /// The client's long-lived keys (swapped on rotation).
    pub keys: Arc<KeyStore>,
    /// Where ephemeral DPoP keys come from.
    pub pool: EphemeralKeyPool,
    /// Token and login -> key bindings.
    pub bindings: Arc<dyn BindingStore>,
    /// `exp` - `iat` of client assertions.
    pub assertion_lifetime: Duration,
    /// The newest DPoP nonce of each upstream origin.
    pub nonces: NonceStore,
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing")
            .field("client_id", &self.client_id)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// Builds [`Inject`].
#[derive(Debug, Clone)]
pub struct InjectLayer {
    signing: Arc<Signing>,
}

impl InjectLayer {
    /// A layer that signs with `signing`.
    pub fn new(signing: Signing) -> Self {
        Self {
            signing: Arc::new(signing),
        }
    }
}

impl<S> tower::Layer<S> for InjectLayer {
    type Service = Inject<S>;
    fn layer(&self, inner: S) -> Inject<S> {
        Inject {
            inner,
            signing: self.signing.clone(),
        }
    }
}

/// Signs each attempt for its route; requests without a [`RequestContext`] pass unchanged.
#[derive(Debug, Clone)]
pub struct Inject<S> {
    inner: S,
    signing: Arc<Signing>,
}

impl<S> tower::Service<Request<Bytes>> for Inject<S>
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let signing = self.signing.clone();
        Box::pin(async move {
            let Some(ctx) = req
                .extensions()
                .get::<RequestContext>()
                .cloned()
                .filter(|c| c.route.kind != RouteKind::Passthrough)
            else {
                return inner.call(req).await.map_err(Into::into);
            };
            let plan = plan::prepare(&req, &ctx, &signing).await?;
            let origin = nonce::origin(&ctx.htu);
            let nonce = signing.nonces.get(&origin);
            let signed = sign::attempt(
                &req,
                &ctx,
                &plan,
                &signing,
                nonce.as_deref(),
                SystemTime::now(),
            )?;
            let mut res = inner.call(signed).await.map_err(Into::into)?;
            let fresh = signing.nonces.observe(&origin, &res);
            // RFC 9449 sections 8 and 9: the server asks for a nonce it has just handed out.
            // Mark the answer; the retry layer repeats the attempt once, and the next attempt
            // picks the nonce up here (so it is rate-limited and logged like any other).
            if plan.key.is_some() && fresh && nonce::asks_for_nonce(&res) {
                res.extensions_mut().insert(NonceDemand);
                return Ok(res);
            }
            answer::finish(res, &plan, &ctx, &signing)
                .await
                .map_err(Into::into)
        })
    }
}
