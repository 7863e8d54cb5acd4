//! Inject: adds what Singpass demands to each attempt (client assertion, DPoP proof,
//! `Authorization: DPoP`), replacing anything the app sent, and binds issued tokens to keys.
//!
//! It sits inside retry, so every attempt is signed afresh (new `jti`, new `iat`), while the
//! ephemeral key, kept in the request's [`RequestContext`], stays the same for all attempts.

use crate::binding::{BindingStore, TokenHash, TokenLookup, TokenUse};
use crate::error::{BoxError, ProblemCode, ProxyError};
use crate::jose::{
    client_assertion as sign_assertion, dpop_proof as sign_proof, unix_seconds, AssertionClaims,
    ClientKeys, EphemeralKey, EphemeralKeyPool, ProofClaims, CLIENT_ASSERTION_TYPE,
};
use crate::route::{RequestContext, RouteKind};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

static DPOP: HeaderName = HeaderName::from_static("dpop");
const FORM: &str = "application/x-www-form-urlencoded";

/// Everything the inject layer signs with.
pub struct Signing {
    /// The client id (`iss`/`sub` of assertions; the `client_id` form field).
    pub client_id: String,
    /// The client's long-lived keys.
    pub keys: Arc<ClientKeys>,
    /// Where ephemeral DPoP keys come from.
    pub pool: EphemeralKeyPool,
    /// Token -> key bindings.
    pub bindings: Arc<dyn BindingStore>,
    /// `exp` - `iat` of client assertions.
    pub assertion_lifetime: Duration,
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
            let Some(ctx) = req.extensions().get::<RequestContext>().cloned() else {
                return inner.call(req).await.map_err(Into::into);
            };
            let now = SystemTime::now();
            match ctx.route.kind {
                RouteKind::V4Token => {
                    let key = transaction_key(&ctx, &signing)?;
                    let req = sign_v4_token(req, &ctx, &key, &signing, now)?;
                    let res = inner.call(req).await.map_err(Into::into)?;
                    if res.status().is_success() {
                        bind_issued_token(&res, key, &ctx, &signing, now);
                    }
                    Ok(res)
                }
                RouteKind::V4Person => {
                    let req = sign_v4_person(req, &ctx, &signing, now)?;
                    inner.call(req).await.map_err(Into::into)
                }
            }
        })
    }
}

/// The transaction's ephemeral key: the one an earlier attempt used, or a fresh one.
fn transaction_key(
    ctx: &RequestContext,
    signing: &Signing,
) -> Result<Arc<EphemeralKey>, ProxyError> {
    if let Some(key) = ctx.key.get() {
        return Ok(key.clone());
    }
    let fresh = Arc::new(signing.pool.take().map_err(internal)?);
    Ok(ctx.key.get_or_init(|| fresh).clone())
}

fn sign_v4_token(
    req: Request<Bytes>,
    ctx: &RequestContext,
    key: &EphemeralKey,
    signing: &Signing,
    now: SystemTime,
) -> Result<Request<Bytes>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    require_form(&parts.headers)?;
    let mut form = form_urlencoded::Serializer::new(String::with_capacity(body.len() + 1024));
    let mut has_client_id = false;
    for (name, value) in form_urlencoded::parse(&body) {
        match &*name {
            // Whatever the app signed itself is replaced, never forwarded.
            "client_assertion" | "client_assertion_type" => continue,
            "client_id" if value != signing.client_id => {
                return Err(ProxyError::new(
                    ProblemCode::ValidationInvalidParameter,
                    format!(
                        "client_id `{value}` is not the client_id this proxy signs for ({})",
                        signing.client_id
                    ),
                ));
            }
            "client_id" => has_client_id = true,
            _ => {}
        }
        form.append_pair(&name, &value);
    }
    if !has_client_id {
        form.append_pair("client_id", &signing.client_id);
    }
    let mut rng = rand::thread_rng();
    let assertion = client_assertion(
        signing.keys.signing(),
        AssertionClaims {
            client_id: &signing.client_id,
            aud: &ctx.htu,
            jkt: Some(key.jkt()),
            lifetime: signing.assertion_lifetime,
        },
        now,
        &mut rng,
    )
    .map_err(internal)?;
    form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
    form.append_pair("client_assertion", &assertion);

    let proof = dpop_proof(
        key,
        ProofClaims {
            htm: "POST",
            htu: &ctx.htu,
            access_token: None,
            nonce: None,
        },
        now,
        &mut rng,
    )
    .map_err(internal)?;
    parts.headers.remove(header::AUTHORIZATION);
    set_sensitive(&mut parts.headers, DPOP.clone(), &proof)?;
    Ok(Request::from_parts(parts, Bytes::from(form.finish())))
}

fn sign_v4_person(
    req: Request<Bytes>,
    ctx: &RequestContext,
    signing: &Signing,
    now: SystemTime,
) -> Result<Request<Bytes>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let token = presented_token(&parts.headers)?.to_owned();
    let key = match ctx.key.get() {
        Some(key) => key.clone(),
        None => {
            let hash = TokenHash::of(&token);
            match signing.bindings.use_token(hash) {
                TokenLookup::Key(key) => ctx.key.get_or_init(|| key).clone(),
                TokenLookup::Reused => {
                    tracing::info!(token = %hash.short(), "one-time access token presented again");
                    return Err(ProxyError::new(
                        ProblemCode::AuthTokenReused,
                        "this Myinfo v4 access token was already used; a v4 token is good for one person call: run a new authorization",
                    ));
                }
                TokenLookup::Unknown => {
                    return Err(ProxyError::new(
                        ProblemCode::AuthTokenUnknown,
                        "this access token was not issued through this proxy, or its binding has expired; request the token through the proxy's /token route",
                    ));
                }
            }
        }
    };
    let proof = dpop_proof(
        &key,
        ProofClaims {
            htm: "GET",
            htu: &ctx.htu,
            access_token: Some(&token),
            nonce: None,
        },
        now,
        &mut rand::thread_rng(),
    )
    .map_err(internal)?;
    set_sensitive(
        &mut parts.headers,
        header::AUTHORIZATION,
        &format!("DPoP {token}"),
    )?;
    set_sensitive(&mut parts.headers, DPOP.clone(), &proof)?;
    Ok(Request::from_parts(parts, body))
}

/// The token from `Authorization: Bearer <t>` or `Authorization: DPoP <t>`.
fn presented_token(headers: &HeaderMap) -> Result<&str, ProxyError> {
    let missing = |detail: &str| ProxyError::new(ProblemCode::AuthTokenMissing, detail);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            missing("send the access token as `Authorization: Bearer <token>` (or `DPoP <token>`)")
        })?
        .to_str()
        .map_err(|_| missing("the Authorization header is not ASCII"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop"))
        || token.is_empty()
    {
        return Err(missing(
            "the Authorization header must be `Bearer <token>` or `DPoP <token>`",
        ));
    }
    Ok(token)
}

fn require_form(headers: &HeaderMap) -> Result<(), ProxyError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(FORM));
    if ok {
        Ok(())
    } else {
        Err(ProxyError::new(
            ProblemCode::ValidationUnsupportedMediaType,
            format!("this route takes a form body: send Content-Type: {FORM}"),
        ))
    }
}

/// Records which key an issued token belongs to, for as long as the token can live.
fn bind_issued_token(
    res: &Response<Bytes>,
    key: Arc<EphemeralKey>,
    ctx: &RequestContext,
    signing: &Signing,
    now: SystemTime,
) {
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        access_token: String,
        expires_in: Option<u64>,
    }
    let Ok(answer) = serde_json::from_slice::<TokenAnswer>(res.body()) else {
        tracing::warn!(
            route = ctx.route.kind.label(),
            "a 2xx token answer without an access_token: nothing to bind"
        );
        return;
    };
    let cap = ctx.route.token_ttl_cap;
    let lifetime = jwt_exp(&answer.access_token)
        .map(|exp| Duration::from_secs(exp.saturating_sub(unix_seconds(now))))
        .or(answer.expires_in.map(Duration::from_secs))
        .map_or(cap, |d| d.min(cap));
    let hash = TokenHash::of(&answer.access_token);
    tracing::debug!(token = %hash.short(), jkt = key.jkt(), ttl_s = lifetime.as_secs(), "bound access token to ephemeral key");
    signing
        .bindings
        .bind_token(hash, key, TokenUse::Once, lifetime);
}

/// The `exp` claim of a JWS access token, read without verifying it (Singpass verifies it;
/// the proxy only needs to know how long to remember the binding).
fn jwt_exp(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()
}

fn set_sensitive(headers: &mut HeaderMap, name: HeaderName, value: &str) -> Result<(), ProxyError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        ProxyError::new(
            ProblemCode::ValidationInvalidParameter,
            format!("the value for {name} contains characters not allowed in a header"),
        )
    })?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

/// Signs a client assertion, counting it and its time.
fn client_assertion(
    key: &crate::jose::SigningKey,
    claims: AssertionClaims<'_>,
    now: SystemTime,
    rng: &mut dyn rand::RngCore,
) -> Result<String, josekit::JoseError> {
    let started = std::time::Instant::now();
    let jwt = sign_assertion(key, claims, now, rng);
    crate::metrics::signed("client_assertion", started.elapsed());
    jwt
}

/// Signs a DPoP proof, counting it and its time.
fn dpop_proof(
    key: &EphemeralKey,
    claims: ProofClaims<'_>,
    now: SystemTime,
    rng: &mut dyn rand::RngCore,
) -> Result<String, josekit::JoseError> {
    let started = std::time::Instant::now();
    let jwt = sign_proof(key, claims, now, rng);
    crate::metrics::signed("dpop_proof", started.elapsed());
    jwt
}

fn internal(err: impl std::fmt::Display) -> ProxyError {
    tracing::error!(error = %err, "signing failed");
    ProxyError::new(
        ProblemCode::SystemInternalError,
        "the proxy could not sign the request; see its log",
    )
}
