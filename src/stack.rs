//! The one place that orders the layers and says where every setting enters. Outermost first:
//!
//! ```text
//! tower-http: request id (set + propagate), sensitive headers, trace span (+ access event and
//!   metrics as the answer leaves), catch panic
//!   -> rescue -> [public JWKS] -> API key (on headers) -> read body (capped)
//!   -> router (path + method -> the route's own stack), then per route:
//!      local checks -> overall timeout -> breaker -> retry -> rate limit -> error log -> inject
//!        -> sensitive headers -> attempt timeout -> upstream
//! ```
//!
//! A passthrough route has no overall timer: its only waits (a permit, a backoff, an attempt)
//! each end by the request's deadline, so one timer per attempt enforces both timeouts.
//!
//! Rescue sits outside everything the proxy decides, so the app always gets an answer; the
//! metrics, counted by the trace layer outside rescue and catch-panic, count problem answers
//! and panics too. The API key is checked before the body is read.
//! Local checks sit outside the rate limiter, so a request the proxy refuses itself never takes
//! a permit. Inject sits inside retry, so every attempt gets a new assertion `jti` and a new
//! proof; the rate limiter sits inside retry, so every attempt that reaches Singpass counts
//! against the quota; the error log sits inside retry, so no attempt's `id`/`trace_id` is lost.

use crate::binding::BindingStore;
use crate::config::{Config, RouteKind, RoutePolicy, RouteTimeouts, Upstream};
use crate::discovery::{Discovery, JwksCache};
use crate::error::{problem_response, BoxError, ProblemCode, ProblemContext, ProxyError};
use crate::inbound::ApiKeys;
use crate::jose::EphemeralKeyPool;
use crate::key_source::KeyStore;
use crate::layer::{
    AccessLog, ApiKeyLayer, AttemptTimeoutLayer, BreakerLayer, Decrypt, ErrorLogLayer,
    GlobalLimiter, InjectLayer, LocalChecksLayer, LocalQuota, MakeRequestIds, PublicJwksLayer,
    RateLimitLayer, ReadBodyLayer, RequestSpan, RescueLayer, RetryLayer, RetryPolicy, RouteQuota,
    Signing,
};
use crate::route::{Mount, RouteEntry, RouteService, Router};
use crate::shared::SharedQuota;
use crate::upstream::UpstreamService;
use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderName, Request, Response};
use http_body_util::{Either, Full};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tower::retry::budget::TpsBudget;
use tower::timeout::TimeoutLayer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::classify::{NeverClassifyEos, ServerErrorsFailureClass};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

/// An app request's body: streamed from a connection, or already in memory (in process).
pub(crate) type AppBody = Either<crate::server::RequestBody, Full<Bytes>>;
/// An answer's body as the edge gives it (always whole in memory underneath): the one box
/// tower-http's catch-panic layer puts it in, inside the trace layer's wrapper (named, not
/// boxed a second time).
pub(crate) type AnswerBody = tower_http::trace::ResponseBody<
    tower_http::body::UnsyncBoxBody<Bytes, BoxError>,
    NeverClassifyEos<ServerErrorsFailureClass>,
    (),
    (),
    (),
>;
/// The assembled proxy: an app request in, an answer out, never an error.
pub(crate) type EdgeService = ArcService<Request<AppBody>, Response<AnswerBody>, Infallible>;

static DPOP: HeaderName = HeaderName::from_static("dpop");
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// What every route shares: the signing material, the bindings, the key pool.
pub(crate) struct Shared {
    pub(crate) signing: Arc<Signing>,
    pub(crate) bindings: Arc<dyn BindingStore>,
    pub(crate) pool: EphemeralKeyPool,
    pub(crate) keys: Arc<KeyStore>,
    /// With `[redis]`: the quotas (and bindings) every replica shares.
    pub(crate) redis: Option<Arc<crate::shared::SharedState>>,
}

/// The edge and every issuer's discovery (for readiness and the start-up fetch).
pub(crate) struct Built {
    pub(crate) edge: EdgeService,
    pub(crate) discoveries: Vec<Arc<Discovery>>,
}

/// What the route stacks call at the bottom: the upstream client, of its own type (no box and
/// no reference-counted call per attempt for the built-in client).
pub(crate) trait Client:
    tower::Service<
        Request<Bytes>,
        Response = Response<Bytes>,
        Error = BoxError,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<C> Client for C where
    C: tower::Service<
            Request<Bytes>,
            Response = Response<Bytes>,
            Error = BoxError,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// The whole proxy for `config`, calling upstreams through `client`.
pub(crate) fn build<C: Client>(config: &Config, shared: &Shared, client: C) -> Built {
    let (router, discoveries) = router(config, shared, &client);
    let doc_url: Arc<str> = config.problem_doc_url.as_str().into();
    let jwks = config
        .jwks_on_main_listener
        .then(|| PublicJwksLayer::new(shared.keys.clone()));
    let edge = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestIds))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            DPOP.clone(),
            X_API_KEY.clone(),
            COOKIE,
        ]))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(RequestSpan)
                .on_request(())
                .on_response(AccessLog)
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .layer(CatchPanicLayer::custom(move |panic| {
            panicked(panic, &doc_url)
        }))
        // tower-http's layers take an `http_body::Body`; the layers below answer with `Bytes`.
        .map_response(|res: Response<Bytes>| res.map(Full::new))
        .layer(RescueLayer::new(&config.problem_doc_url))
        .option_layer(jwks)
        .layer(ApiKeyLayer::new(ApiKeys::new(&config.inbound)))
        .layer(ReadBodyLayer::new(config.max_request_body))
        .service(router);
    Built {
        edge: ArcService::new(edge),
        discoveries,
    }
}

/// A panic inside a request: logged, and answered like any internal error.
fn panicked(panic: Box<dyn std::any::Any + Send>, doc_url: &str) -> Response<Full<Bytes>> {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %what, "a request panicked inside the proxy");
    let err = ProxyError::new(
        ProblemCode::SystemInternalError,
        "an internal error occurred; see the proxy's log",
    );
    let context = ProblemContext {
        doc_url: Some(doc_url),
        ..ProblemContext::default()
    };
    problem_response(&err, &context).map(Full::new)
}

/// The router over one stack per route of every upstream.
fn router<C: Client>(
    config: &Config,
    shared: &Shared,
    client: &C,
) -> (Router, Vec<Arc<Discovery>>) {
    // Discovery and JWKS fetches go through the same client, type-erased (they are rare).
    let erased = UpstreamService::new(client.clone());
    // Discovery and JWKS fetches use the file-level attempt timeout; each route its own.
    let timeouts = config.timeouts;
    let global = config
        .global_rate_limit
        .map(|q| Arc::new(GlobalLimiter::new(q)));
    let mut discoveries = Vec::new();
    let mut mounts = Vec::new();
    for u in &config.upstreams {
        let discovery = (!u.kind.has_base_url()).then(|| {
            let d = Arc::new(Discovery::new(
                &u.base_url,
                erased.clone(),
                u.discovery_refresh,
                timeouts.attempt,
            ));
            discoveries.push(d.clone());
            d
        });
        let jwks_cache = Arc::new(JwksCache::new(
            erased.clone(),
            u.discovery_refresh,
            timeouts.attempt,
        ));
        // One circuit per upstream, shared by its routes' stacks.
        let breaker = config
            .breaker
            .enabled
            .then(|| BreakerLayer::new(config.breaker, &u.name));
        let routes = u
            .routes
            .iter()
            .map(|(&kind, policy)| {
                let decrypt = policy.decrypt.then(|| match (&discovery, &u.jwks_url) {
                    (Some(d), _) => Some(Decrypt::discovered(d.clone())),
                    (None, Some(url)) => Some(Decrypt::at(url.clone(), jwks_cache.clone())),
                    (None, None) => None,
                });
                let route = Route {
                    kind,
                    policy,
                    upstream: u,
                    timeouts: policy.timeouts,
                    breaker: breaker.clone(),
                    global: global.clone(),
                    decrypt: decrypt.flatten(),
                };
                let stack = route_stack(config, shared, route, client.clone());
                RouteEntry::new(kind, discovery.clone(), policy.timeouts.overall, stack)
            })
            .collect();
        mounts.push(Mount::new(&u.local_prefix, &u.base_url, routes));
    }
    (Router::new(mounts), discoveries)
}

/// What one route's stack is built from.
struct Route<'a> {
    kind: RouteKind,
    policy: &'a RoutePolicy,
    upstream: &'a Upstream,
    timeouts: RouteTimeouts,
    breaker: Option<BreakerLayer>,
    global: Option<Arc<GlobalLimiter>>,
    decrypt: Option<Decrypt>,
}

/// One route's stack, from its own settings. A passthrough route has no local checks, no
/// signing and no overall timer (see the module docs); everything else is the same for every
/// route.
fn route_stack<C: Client>(
    config: &Config,
    shared: &Shared,
    route: Route<'_>,
    client: C,
) -> RouteService {
    let Route {
        kind,
        policy,
        upstream,
        timeouts,
        breaker,
        global,
        decrypt,
    } = route;
    let signed = kind != RouteKind::Passthrough;
    let retry = &policy.retry;
    let budget = Arc::new(TpsBudget::new(
        Duration::from_secs(10),
        retry.budget_min_per_second,
        retry.budget_percent / 100.0,
    ));
    let quota: Arc<dyn RouteQuota> = match &shared.redis {
        // The same bucket name on every replica: one quota for all of them.
        Some(redis) => Arc::new(SharedQuota::new(
            redis.route_limiter(
                &format!("{}.{}", upstream.name, kind.config_name()),
                &policy.rate_limit,
            ),
            kind.label(),
        )),
        None => Arc::new(LocalQuota::new(kind, &policy.rate_limit, global)),
    };
    let checks = signed.then(|| {
        let (bindings, pool) = (shared.bindings.clone(), shared.pool.clone());
        LocalChecksLayer::new(kind, &config.client_id, bindings, pool)
    });
    let inject = signed.then(|| {
        let layer = InjectLayer::new(shared.signing.clone(), kind)
            .binding_ttls(upstream.token_ttl_cap, upstream.login_ttl);
        match decrypt {
            Some(decrypt) => layer.decrypt(decrypt),
            None => layer,
        }
    });
    // tower's TimeoutLayer, whose `Elapsed` the rescue answers as 504 PROVIDER_TIMEOUT;
    // tower-http's answers 408 itself, which is wrong for a gateway. Signing may wait (nonces
    // and bindings in Redis, the provider's JWKS), so a signed route keeps the overall timer.
    let overall = signed.then(|| TimeoutLayer::new(timeouts.overall));
    let stack = ServiceBuilder::new()
        .option_layer(checks)
        .option_layer(overall)
        .option_layer(breaker)
        .layer(RetryLayer::new(
            kind,
            RetryPolicy::new(retry.clone()),
            budget,
        ))
        .layer(RateLimitLayer::new(quota, policy.rate_limit.max_wait))
        .layer(ErrorLogLayer::new(kind, &upstream.name))
        .option_layer(inject)
        // What inject added (the proof, `Authorization: DPoP`) is as secret as what the app sent.
        // A passthrough route adds nothing: the edge marked what the app sent.
        .option_layer(
            signed.then(|| SetSensitiveRequestHeadersLayer::new([AUTHORIZATION, DPOP.clone()])),
        )
        .layer(AttemptTimeoutLayer::new(timeouts.attempt))
        .service(client);
    ArcService::new(stack)
}

mod arc_service;
pub(crate) use arc_service::ArcService;

#[cfg(test)]
mod tests;
