//! The routing table (local path -> upstream call) and the per-request context the layers share.

use crate::config::{Config, RoutePolicy, Upstream, UpstreamKind};
use crate::jose::EphemeralKey;
use crate::layer::rate_limit::{GlobalLimiter, RouteLimiter};
use http::Method;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::retry::budget::TpsBudget;

/// What kind of call a route makes upstream, which decides what the inject layer adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Myinfo v4 `POST /token`.
    V4Token,
    /// Myinfo v4 `GET /person/{sub}`.
    V4Person,
}

impl RouteKind {
    /// The one method this route takes.
    pub fn method(self) -> Method {
        match self {
            Self::V4Token => Method::POST,
            Self::V4Person => Method::GET,
        }
    }
    /// The `Allow` header value for this route.
    pub fn allow(self) -> &'static str {
        match self {
            Self::V4Token => "POST",
            Self::V4Person => "GET",
        }
    }
    /// A fixed label for logs and metrics (never user data).
    pub fn label(self) -> &'static str {
        match self {
            Self::V4Token => "v4_token",
            Self::V4Person => "v4_person",
        }
    }
    /// The name of this route in `[upstream.routes.<name>]`.
    pub fn config_name(self) -> &'static str {
        match self {
            Self::V4Token => "token",
            Self::V4Person => "person",
        }
    }
}

/// A matched route: which upstream, which call, and its retry and rate-limit state.
#[derive(Debug)]
pub struct Route {
    /// The upstream's configured name.
    pub upstream: Arc<str>,
    /// The call.
    pub kind: RouteKind,
    /// Longest time a token binding made on this route is kept.
    pub token_ttl_cap: Duration,
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
    pub fn new(upstream: &Upstream, kind: RouteKind, global: Option<Arc<GlobalLimiter>>) -> Self {
        let policy = upstream.policy(kind.config_name()).clone();
        let retry = &policy.retry;
        Self {
            upstream: upstream.name.as_str().into(),
            kind,
            token_ttl_cap: upstream.token_ttl_cap,
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
    /// The upstream URL without query: the DPoP `htu` and the v4 assertion `aud`.
    pub htu: Arc<str>,
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
    /// The ephemeral key of this transaction, chosen on the first attempt.
    pub key: Arc<OnceLock<Arc<EphemeralKey>>>,
}

impl RequestContext {
    /// A context for a request to `route`, made when the request arrives.
    pub fn new(
        route: Arc<Route>,
        htu: &str,
        instance: &str,
        request_id: &str,
        doc_url: Arc<str>,
        overall: Duration,
    ) -> Self {
        Self {
            route,
            htu: htu.into(),
            instance: instance.into(),
            request_id: request_id.into(),
            doc_url,
            deadline: tokio::time::Instant::now() + overall,
            attempts: Arc::new(AtomicU32::new(0)),
            key: Arc::new(OnceLock::new()),
        }
    }
}

/// Maps local paths to upstream calls.
#[derive(Debug, Clone)]
pub struct RouteTable {
    upstreams: Vec<(Upstream, Arc<Route>, Arc<Route>)>,
}

/// A lookup result.
#[derive(Debug)]
pub enum RouteMatch {
    /// A route, with the full upstream URL (no query) to call.
    Found {
        /// The route.
        route: Arc<Route>,
        /// The upstream URL without query.
        upstream_url: String,
    },
    /// No route has this path.
    NotFound,
}

impl RouteTable {
    /// The routes of every configured upstream.
    pub fn new(config: &Config) -> Self {
        let global = config
            .global_rate_limit
            .map(|q| Arc::new(GlobalLimiter::new(q)));
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let route = |kind| Arc::new(Route::new(u, kind, global.clone()));
                match u.kind {
                    UpstreamKind::MyinfoV4 => (
                        u.clone(),
                        route(RouteKind::V4Token),
                        route(RouteKind::V4Person),
                    ),
                }
            })
            .collect();
        Self { upstreams }
    }

    /// Finds the route for a request path (without query).
    pub fn find(&self, path: &str) -> RouteMatch {
        for (up, token, person) in &self.upstreams {
            let Some(rest) = path.strip_prefix(up.local_prefix.as_str()) else {
                continue;
            };
            if rest == "/token" {
                return RouteMatch::Found {
                    route: token.clone(),
                    upstream_url: format!("{}/token", up.base_url),
                };
            }
            if let Some(sub) = rest.strip_prefix("/person/") {
                if !sub.is_empty() && !sub.contains('/') {
                    return RouteMatch::Found {
                        route: person.clone(),
                        upstream_url: format!("{}/person/{sub}", up.base_url),
                    };
                }
            }
        }
        RouteMatch::NotFound
    }
}
