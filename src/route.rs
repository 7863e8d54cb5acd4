//! The routing table (local path -> upstream call) and the per-request context the layers share.

use crate::config::{Config, RoutePolicy, Upstream};
use crate::discovery::{Discovery, Endpoint, JwksCache, Metadata};
use crate::error::ProxyError;
use crate::jose::EphemeralKey;
use crate::layer::rate_limit::{GlobalLimiter, RouteLimiter};
use crate::upstream::UpstreamService;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::retry::budget::TpsBudget;

mod kind;
pub use kind::RouteKind;

/// A matched route: which upstream, which call, and its retry and rate-limit state.
#[derive(Debug)]
pub struct Route {
    /// The upstream's configured name.
    pub upstream: Arc<str>,
    /// The call.
    pub kind: RouteKind,
    /// Longest time a token binding made on this route is kept.
    pub token_ttl_cap: Duration,
    /// How long a FAPI login's key is kept after PAR.
    pub login_ttl: Duration,
    /// The issuer's discovery (FAPI and CIBA), for answers to verify against its JWKS.
    pub discovery: Option<Arc<Discovery>>,
    /// v4: Myinfo's JWKS URL, for decrypted person answers.
    pub jwks_url: Option<String>,
    /// Where the upstream's signing keys are cached (when answers are decrypted).
    pub jwks: Option<Arc<JwksCache>>,
    /// Retry and rate-limit settings.
    pub policy: RoutePolicy,
    /// The route's retry budget.
    pub budget: TpsBudget,
    /// The route's rate limiter (with the upstream-driven pause).
    pub limiter: RouteLimiter,
    /// The quota shared by all routes, if configured.
    pub global: Option<Arc<GlobalLimiter>>,
}

impl Route {
    /// A route with fresh limiter and budget state.
    pub fn new(
        upstream: &Upstream,
        kind: RouteKind,
        global: Option<Arc<GlobalLimiter>>,
        discovery: Option<Arc<Discovery>>,
        jwks: Option<Arc<JwksCache>>,
    ) -> Self {
        let policy = upstream.policy(kind.config_name()).clone();
        let retry = &policy.retry;
        Self {
            upstream: upstream.name.as_str().into(),
            kind,
            token_ttl_cap: upstream.token_ttl_cap,
            login_ttl: upstream.login_ttl,
            discovery,
            jwks_url: upstream.jwks_url.clone(),
            jwks,
            budget: TpsBudget::new(
                Duration::from_secs(10),
                retry.budget_min_per_second,
                retry.budget_percent / 100.0,
            ),
            limiter: RouteLimiter::new(&policy.rate_limit),
            global,
            policy,
        }
    }
}

/// Per app request state, shared by every attempt (retries clone the request and with it this
/// context, so that all attempts sign with the same ephemeral key).
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The matched route.
    pub route: Arc<Route>,
    /// The upstream URL without query: the DPoP `htu`.
    pub htu: Arc<str>,
    /// The client assertion's `aud`: the token URL (v4) or the issuer (FAPI, CIBA).
    pub aud: Arc<str>,
    /// The path the app called (the problem `instance`).
    pub instance: Arc<str>,
    /// The proxy's request id.
    pub request_id: Arc<str>,
    /// Where problem answers point (`problem_doc_url`).
    pub doc_url: Arc<str>,
    /// When the whole request must be answered (`timeouts.overall` after it arrived).
    pub deadline: tokio::time::Instant,
    /// Upstream attempts so far (the error log counts them).
    pub attempts: Arc<AtomicU32>,
    /// The `id`/`trace_id` of the last upstream error answer, for the access log.
    pub last_upstream_error: Arc<std::sync::Mutex<Option<crate::error::UpstreamIds>>>,
    /// The ephemeral key of this transaction, chosen on the first attempt.
    pub key: Arc<OnceLock<Arc<EphemeralKey>>>,
}

impl RequestContext {
    /// A context for a request to `route`, made when the request arrives.
    pub fn new(
        route: Arc<Route>,
        target: &Target,
        instance: &str,
        request_id: &str,
        doc_url: Arc<str>,
        overall: Duration,
    ) -> Self {
        Self {
            route,
            htu: target.url.as_str().into(),
            aud: target.aud.as_str().into(),
            instance: instance.into(),
            request_id: request_id.into(),
            doc_url,
            deadline: tokio::time::Instant::now() + overall,
            attempts: Arc::new(AtomicU32::new(0)),
            last_upstream_error: Arc::default(),
            key: Arc::new(OnceLock::new()),
        }
    }
}

/// Where one request goes: the upstream URL (without query) and the assertion audience.
#[derive(Debug, Clone)]
pub struct Target {
    /// The upstream URL without query.
    pub url: String,
    /// The client assertion `aud`.
    pub aud: String,
}

/// A route's upstream address: fixed by config (v4) or taken from discovery (FAPI, CIBA).
#[derive(Debug, Clone)]
pub enum Destination {
    /// A URL known from config; `aud` is the URL itself (v4's token URL).
    Fixed(String),
    /// An endpoint from the issuer's metadata; `aud` is the issuer.
    Discovered(Arc<Discovery>, Endpoint),
    /// A path that must not be signed or forwarded (see [`crate::path_guard`]).
    Refused(ProxyError),
}

impl Destination {
    /// The URL and audience, fetching discovery if it was never fetched.
    pub async fn resolve(&self) -> Result<Target, ProxyError> {
        match self {
            Self::Fixed(url) => Ok(Target {
                url: url.clone(),
                aud: url.clone(),
            }),
            Self::Discovered(discovery, endpoint) => {
                let metadata: Arc<Metadata> = discovery.metadata().await?;
                let url = metadata.endpoint(*endpoint)?.to_owned();
                Ok(Target {
                    url,
                    aud: metadata.issuer.trim_end_matches('/').to_owned(),
                })
            }
            Self::Refused(refused) => Err(refused.clone()),
        }
    }
}

/// One upstream's routes under its local prefix.
#[derive(Debug, Clone)]
struct Mount {
    prefix: String,
    base_url: String,
    routes: Vec<Arc<Route>>,
}

/// Maps local paths to upstream calls.
#[derive(Debug, Clone)]
pub struct RouteTable {
    mounts: Vec<Mount>,
    discoveries: Vec<Arc<Discovery>>,
}

/// A lookup result.
#[derive(Debug)]
pub enum RouteMatch {
    /// A route and where it goes.
    Found {
        /// The route.
        route: Arc<Route>,
        /// Its upstream address.
        destination: Destination,
    },
    /// No route has this path.
    NotFound,
}

impl RouteTable {
    /// The routes of every configured upstream. FAPI and CIBA upstreams get a [`Discovery`]
    /// that fetches through `client`.
    pub fn new(config: &Config, client: &UpstreamService) -> Self {
        let global = config
            .global_rate_limit
            .map(|q| Arc::new(GlobalLimiter::new(q)));
        let mut discoveries = Vec::new();
        let mounts = config
            .upstreams
            .iter()
            .map(|u| {
                let discovery = (!u.kind.has_base_url()).then(|| {
                    let d = Arc::new(Discovery::new(
                        &u.base_url,
                        client.clone(),
                        u.discovery_refresh,
                        config.timeouts.attempt,
                    ));
                    discoveries.push(d.clone());
                    d
                });
                let jwks = match (&discovery, &u.jwks_url) {
                    (Some(d), _) => Some(d.jwks().clone()),
                    (None, Some(_)) => Some(Arc::new(JwksCache::new(
                        client.clone(),
                        u.discovery_refresh,
                        config.timeouts.attempt,
                    ))),
                    (None, None) => None,
                };
                let routes = RouteKind::of(u.kind)
                    .iter()
                    .map(|&kind| {
                        Arc::new(Route::new(
                            u,
                            kind,
                            global.clone(),
                            discovery.clone(),
                            jwks.clone(),
                        ))
                    })
                    .collect();
                Mount {
                    prefix: u.local_prefix.clone(),
                    base_url: u.base_url.clone(),
                    routes,
                }
            })
            .collect();
        Self {
            mounts,
            discoveries,
        }
    }

    /// Every issuer's discovery (for readiness and start-up prefetch).
    pub fn discoveries(&self) -> &[Arc<Discovery>] {
        &self.discoveries
    }

    /// `(method, local path, upstream)` of every route, for `check-config`.
    pub fn describe(&self) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        for m in &self.mounts {
            for r in &m.routes {
                let upstream = match r.kind.endpoint() {
                    None => format!("{}{}", m.base_url, r.kind.local_path()),
                    Some(e) => format!("{:?} endpoint of {} (discovery)", e, m.base_url),
                };
                out.push((
                    r.kind.allow(),
                    format!("{}{}", m.prefix, r.kind.local_path()),
                    upstream,
                ));
            }
        }
        out
    }

    /// Finds the route for a request path (without query).
    pub fn find(&self, path: &str) -> RouteMatch {
        for m in &self.mounts {
            let Some(rest) = path.strip_prefix(m.prefix.as_str()) else {
                continue;
            };
            for route in &m.routes {
                let destination = match (route.kind, &route.discovery) {
                    (RouteKind::Passthrough, _) if rest.is_empty() || rest.starts_with('/') => {
                        match crate::path_guard::normalise_passthrough(rest) {
                            Ok(rest) => Destination::Fixed(format!("{}{rest}", m.base_url)),
                            Err(refused) => Destination::Refused(refused),
                        }
                    }
                    (RouteKind::Passthrough, _) => continue,
                    (RouteKind::V4Person, _) => match rest.strip_prefix("/person/") {
                        Some(sub) if !sub.is_empty() && !sub.contains('/') => {
                            match crate::path_guard::check_segment("person `sub`", sub) {
                                Ok(()) => {
                                    Destination::Fixed(format!("{}/person/{sub}", m.base_url))
                                }
                                Err(refused) => Destination::Refused(refused),
                            }
                        }
                        _ => continue,
                    },
                    (kind, _) if rest != kind.local_path() => continue,
                    (kind, Some(discovery)) => Destination::Discovered(
                        discovery.clone(),
                        kind.endpoint().expect("discovered routes name an endpoint"),
                    ),
                    (kind, None) => {
                        Destination::Fixed(format!("{}{}", m.base_url, kind.local_path()))
                    }
                };
                return RouteMatch::Found {
                    route: route.clone(),
                    destination,
                };
            }
        }
        RouteMatch::NotFound
    }
}
