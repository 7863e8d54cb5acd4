//! Local checks: what the proxy decides itself, once per app request and before any permit,
//! retry or timeout: the form's fields, the access token's binding, the login's key. A request
//! refused here (an unknown or reused token, an unknown login, a bad parameter) never takes a
//! rate-limit permit and never waits. What passes is recorded in the request's
//! [`RequestFacts`]: the ephemeral key (taken once, so every attempt signs with it), the
//! token, and what a successful answer binds; the form goes on without what the proxy replaces.

use crate::binding::{BindingStore, TokenHash, TokenLookup};
use crate::config::RouteKind;
use crate::error::{BoxError, ProblemCode, ProxyError};
use crate::jose::{sha256_b64url, EphemeralKey, EphemeralKeyPool};
use crate::layer::{Bind, RequestFacts};
use bytes::Bytes;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

mod form;
use form::{presented_token, require_form, Form};

/// Builds [`LocalChecks`] for one signed route.
#[derive(Clone)]
pub struct LocalChecksLayer {
    checks: Arc<Checks>,
}

struct Checks {
    route: RouteKind,
    client_id: String,
    bindings: Arc<dyn BindingStore>,
    pool: EphemeralKeyPool,
}

impl std::fmt::Debug for LocalChecksLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChecksLayer")
            .field("route", &self.checks.route)
            .finish_non_exhaustive()
    }
}

impl LocalChecksLayer {
    /// Checks requests of `route` for the client `client_id`, looking tokens and logins up in
    /// `bindings` and taking new transaction keys from `pool`.
    pub fn new(
        route: RouteKind,
        client_id: &str,
        bindings: Arc<dyn BindingStore>,
        pool: EphemeralKeyPool,
    ) -> Self {
        Self {
            checks: Arc::new(Checks {
                route,
                client_id: client_id.to_owned(),
                bindings,
                pool,
            }),
        }
    }
}

impl<S> tower::Layer<S> for LocalChecksLayer {
    type Service = LocalChecks<S>;
    fn layer(&self, inner: S) -> LocalChecks<S> {
        LocalChecks {
            inner,
            checks: self.checks.clone(),
        }
    }
}

/// Refuses what the proxy can refuse itself; completes the request's [`RequestFacts`].
#[derive(Clone)]
pub struct LocalChecks<S> {
    inner: S,
    checks: Arc<Checks>,
}

impl<S> std::fmt::Debug for LocalChecks<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChecks")
            .field("route", &self.checks.route)
            .finish_non_exhaustive()
    }
}

impl<S> tower::Service<Request<Bytes>> for LocalChecks<S>
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

    fn call(&mut self, mut req: Request<Bytes>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let checks = self.checks.clone();
        Box::pin(async move {
            checks.check(&mut req).await?;
            inner.call(req).await.map_err(Into::into)
        })
    }
}

impl Checks {
    async fn check(&self, req: &mut Request<Bytes>) -> Result<(), ProxyError> {
        RequestFacts::of(req)?;
        let (key, token, bind) = match self.route {
            RouteKind::V4Person | RouteKind::FapiUserinfo => {
                let token = presented_token(req.headers())?;
                let key = self.resource_key(token).await?;
                (Some(key), Some(Arc::from(token)), Bind::Nothing)
            }
            RouteKind::Passthrough => (None, None, Bind::Nothing),
            route => {
                require_form(req.headers())?;
                // v4 token and PAR require client_id; the proxy knows it.
                let add_client_id = matches!(route, RouteKind::V4Token | RouteKind::FapiPar);
                let mut form = Form::parse(req.body(), &self.client_id, add_client_id)?;
                let (key, bind) = self.form_key(route, &mut form).await?;
                *req.body_mut() = form.finish();
                (key, None, bind)
            }
        };
        let facts = RequestFacts::of_mut(req)?;
        facts.key = key;
        facts.token = token;
        facts.bind = bind;
        Ok(())
    }

    /// The key a form route signs with, and what its answer binds.
    async fn form_key(
        &self,
        route: RouteKind,
        form: &mut Form,
    ) -> Result<(Option<Arc<EphemeralKey>>, Bind), ProxyError> {
        match route {
            RouteKind::V4Token => Ok((Some(self.fresh_key()?), Bind::V4Token)),
            RouteKind::FapiPar => {
                let code_challenge = form.require("code_challenge")?;
                crate::pkce::check_code_challenge(&code_challenge)?;
                match form.get("code_challenge_method") {
                    Some("S256") => {}
                    other => return Err(ProxyError::new(ProblemCode::ValidationInvalidParameter, format!("code_challenge_method must be S256 (got {other:?}): the proxy finds the login's key by S256(code_verifier)"))),
                }
                Ok((Some(self.fresh_key()?), Bind::Login { code_challenge }))
            }
            RouteKind::FapiToken => {
                if form.get("grant_type") != Some("authorization_code") {
                    return Err(ProxyError::new(
                        ProblemCode::ValidationInvalidParameter,
                        "grant_type must be authorization_code on the FAPI token route",
                    ));
                }
                let verifier = form.require("code_verifier")?;
                crate::pkce::check_code_verifier(&verifier)?;
                let code_challenge = sha256_b64url(verifier.as_bytes());
                let nonce = form.take("nonce");
                let key = self.login_key(&code_challenge).await?;
                let bind = Bind::FapiToken {
                    code_challenge,
                    nonce,
                };
                Ok((Some(key), bind))
            }
            _ => Ok((None, Bind::Nothing)),
        }
    }

    /// A new transaction key from the pool (made ahead of time, off the request path).
    fn fresh_key(&self) -> Result<Arc<EphemeralKey>, ProxyError> {
        self.pool.take().map(Arc::new).map_err(|e| {
            tracing::error!(error = %e, "no ephemeral key could be made");
            ProxyError::new(
                ProblemCode::SystemInternalError,
                "the proxy could not make a DPoP key; see its log",
            )
        })
    }

    /// The key of the login whose PAR carried S256(code_verifier).
    async fn login_key(&self, code_challenge: &str) -> Result<Arc<EphemeralKey>, ProxyError> {
        self.bindings.login_key(code_challenge).await?.ok_or_else(|| {
            ProxyError::new(
                ProblemCode::AuthLoginUnknown,
                format!("no PAR with S256(code_verifier) as its code_challenge went through this proxy, or the login expired (upstream.login_ttl): send the login's PAR through this proxy's /par route ({})", self.bindings.where_bindings_live()),
            )
        })
    }

    /// The key a resource call's token is bound to; a one-time (v4) token gives it out once.
    async fn resource_key(&self, token: &str) -> Result<Arc<EphemeralKey>, ProxyError> {
        match self.bindings.use_token(token).await? {
            TokenLookup::Key(key) => Ok(key),
            TokenLookup::Reused => {
                tracing::info!(token = %TokenHash::of(token).short(), "one-time access token presented again");
                Err(ProxyError::new(ProblemCode::AuthTokenReused, "this Myinfo v4 access token was already used; a v4 token is good for one person call: run a new authorization"))
            }
            TokenLookup::Unknown => Err(ProxyError::new(
                ProblemCode::AuthTokenUnknown,
                format!("this access token was not issued through this proxy, or its binding has expired: request the token through the proxy's token route ({})", self.bindings.where_bindings_live()),
            )),
        }
    }
}
