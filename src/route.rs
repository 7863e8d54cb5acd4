//! The routing table (local path -> upstream call) and the per-request context the layers share.

use crate::config::{Config, Upstream, UpstreamKind};
use crate::jose::EphemeralKey;
use http::Method;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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
}

/// A matched route: which upstream, which call.
#[derive(Debug, Clone)]
pub struct Route {
    /// The upstream's configured name.
    pub upstream: Arc<str>,
    /// The call.
    pub kind: RouteKind,
    /// Longest time a token binding made on this route is kept.
    pub token_ttl_cap: Duration,
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
    /// The ephemeral key of this transaction, chosen on the first attempt.
    pub key: Arc<OnceLock<Arc<EphemeralKey>>>,
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
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let route = |kind| {
                    Arc::new(Route {
                        upstream: u.name.as_str().into(),
                        kind,
                        token_ttl_cap: u.token_ttl_cap,
                    })
                };
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
