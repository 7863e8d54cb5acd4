//! Inject: adds what Singpass demands to each attempt (client assertion, DPoP proof,
//! `Authorization: DPoP`), replacing anything the app sent; marks a server's DPoP-nonce demand
//! for the retry layer to repeat once; binds issued tokens and logins to keys; and, where
//! configured, opens encrypted answers.
//!
//! It sits inside retry, so every attempt is signed afresh (new `jti`, new `iat`), while the
//! ephemeral key, chosen once by the local checks and carried in the request's
//! [`RequestFacts`], stays the same for all attempts.

mod answer;
mod nonce;
mod sign;

pub use answer::Decrypt;
pub use nonce::{MemoryNonces, NonceFuture, NonceStore};

use crate::binding::BindingStore;
use crate::config::{defaults, Config, ConfigError, RouteKind};
use crate::error::BoxError;
use crate::key_source::KeyStore;
use crate::layer::RequestFacts;
use bytes::Bytes;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// Marks an upstream answer that demanded a DPoP nonce it has just handed out: the retry
/// policy repeats such an attempt once, at once.
#[derive(Debug, Clone, Copy)]
pub struct NonceDemand;

/// What the inject layer signs with, shared by every route.
pub struct Signing {
    /// The client id (`iss`/`sub` of assertions).
    pub(crate) client_id: String,
    /// The client's long-lived keys (swapped on rotation).
    pub(crate) keys: Arc<KeyStore>,
    /// `exp` - `iat` of client assertions.
    pub(crate) assertion_lifetime: Duration,
    /// Token and login -> key bindings (written when answers come back).
    pub(crate) bindings: Arc<dyn BindingStore>,
    /// The newest DPoP nonce of each upstream origin.
    pub(crate) nonces: Arc<dyn NonceStore>,
}

impl Signing {
    /// Signs as `config`'s client with its keys (loaded now; a [`crate::Proxy`] also reloads
    /// them on rotation), binding issued tokens in `bindings` and keeping nonces in `nonces`.
    pub fn new(
        config: &Config,
        bindings: Arc<dyn BindingStore>,
        nonces: Arc<dyn NonceStore>,
    ) -> Result<Self, ConfigError> {
        let keys = Arc::new(KeyStore::load(config)?);
        Ok(Self::with_keys(config, keys, bindings, nonces))
    }

    /// Signs with `keys`, which the caller keeps current.
    pub(crate) fn with_keys(
        config: &Config,
        keys: Arc<KeyStore>,
        bindings: Arc<dyn BindingStore>,
        nonces: Arc<dyn NonceStore>,
    ) -> Self {
        Self {
            client_id: config.client_id.clone(),
            keys,
            assertion_lifetime: config.assertion_lifetime,
            bindings,
            nonces,
        }
    }
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing")
            .field("client_id", &self.client_id)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// What one route's inject layer knows about its route.
#[derive(Debug, Clone)]
struct RouteSigning {
    kind: RouteKind,
    token_ttl_cap: Duration,
    login_ttl: Duration,
    decrypt: Option<Decrypt>,
}

/// Builds [`Inject`] for one route.
#[derive(Debug, Clone)]
pub struct InjectLayer {
    signing: Arc<Signing>,
    route: Arc<RouteSigning>,
}

impl InjectLayer {
    /// Signs the attempts of a `route` call with `signing`; bindings are kept for the default
    /// lifetimes, and answers pass unopened.
    pub fn new(signing: Arc<Signing>, route: RouteKind) -> Self {
        Self {
            signing,
            route: Arc::new(RouteSigning {
                kind: route,
                token_ttl_cap: defaults::TOKEN_TTL_CAP,
                login_ttl: defaults::LOGIN_TTL,
                decrypt: None,
            }),
        }
    }

    /// Keeps token bindings at most `token_ttl_cap` and login bindings `login_ttl`.
    pub fn binding_ttls(mut self, token_ttl_cap: Duration, login_ttl: Duration) -> Self {
        let route = Arc::make_mut(&mut self.route);
        route.token_ttl_cap = token_ttl_cap;
        route.login_ttl = login_ttl;
        self
    }

    /// Opens the route's encrypted answers into JSON, verified against the upstream's keys.
    pub fn decrypt(mut self, decrypt: Decrypt) -> Self {
        Arc::make_mut(&mut self.route).decrypt = Some(decrypt);
        self
    }
}

impl<S> tower::Layer<S> for InjectLayer {
    type Service = Inject<S>;
    fn layer(&self, inner: S) -> Inject<S> {
        Inject {
            inner,
            layer: self.clone(),
        }
    }
}

/// Signs each attempt for its route. Needs the request's [`RequestFacts`]; without them it
/// answers with a problem naming them, and sends nothing.
#[derive(Debug, Clone)]
pub struct Inject<S> {
    inner: S,
    layer: InjectLayer,
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
        let InjectLayer { signing, route } = self.layer.clone();
        Box::pin(async move {
            let facts = RequestFacts::of(&req)?.clone();
            let origin = nonce::origin(&facts.htu);
            let used = signing.nonces.newest(&origin).await;
            let signed = sign::attempt(
                req,
                &facts,
                route.kind,
                &signing,
                used.as_deref(),
                SystemTime::now(),
            )?;
            // What this attempt sent (assertion, proof), so the error log can redact an echo.
            let sent = crate::scrub::Sent::capture(&signed);
            let mut res = inner.call(signed).await.map_err(Into::into)?;
            sent.attach_to_error(&mut res);
            // RFC 9449 sections 8 and 9: the newest nonce goes into every later proof, whether
            // it came with a demand or with a success.
            let fresh = nonce::handed_out(&res).map(str::to_owned);
            if let Some(fresh) = &fresh {
                signing.nonces.remember(&origin, fresh).await;
            }
            // A demand for a nonce this attempt did not have: mark it; the retry policy repeats
            // the attempt once, and the repeat picks the nonce up (rate-limited and logged like
            // any other attempt).
            let new_nonce = fresh.is_some() && fresh != used;
            if facts.key.is_some()
                && route.kind.uses_dpop()
                && new_nonce
                && nonce::asks_for_nonce(&mut res)
            {
                res.extensions_mut().insert(NonceDemand);
                return Ok(res);
            }
            answer::finish(res, &facts, &route, &signing)
                .await
                .map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests;
