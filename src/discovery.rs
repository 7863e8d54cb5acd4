//! FAPI discovery: the issuer's openid-configuration and its JWKS, cached (moka) and refreshed
//! about hourly. A failed refresh keeps the last good copy (and says so in the log); only
//! before the first success does a request fail for want of metadata.

use crate::error::{BoxError, ProblemCode, ProxyError};
use crate::upstream::UpstreamService;
use bytes::Bytes;
use http::{Request, Response};
use moka::sync::Cache;
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// The endpoints the proxy takes from discovery.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct Metadata {
    /// The issuer (the FAPI client assertion `aud`).
    pub issuer: String,
    /// PAR (RFC 9126).
    pub pushed_authorization_request_endpoint: Option<String>,
    /// Where the browser goes (not proxied; logged for the app's convenience).
    pub authorization_endpoint: Option<String>,
    /// The token endpoint.
    pub token_endpoint: String,
    /// Userinfo (Myinfo v5).
    pub userinfo_endpoint: Option<String>,
    /// The issuer's signing keys.
    pub jwks_uri: String,
    /// CIBA's backchannel authentication endpoint.
    pub backchannel_authentication_endpoint: Option<String>,
}

/// An endpoint a route needs from the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `pushed_authorization_request_endpoint`
    Par,
    /// `token_endpoint`
    Token,
    /// `userinfo_endpoint`
    Userinfo,
    /// `backchannel_authentication_endpoint`
    BackchannelAuthentication,
}

impl Metadata {
    /// The URL of `endpoint`, or a problem naming the missing member.
    pub(crate) fn endpoint(&self, endpoint: Endpoint) -> Result<&str, ProxyError> {
        let (value, name) = match endpoint {
            Endpoint::Par => (
                self.pushed_authorization_request_endpoint.as_deref(),
                "pushed_authorization_request_endpoint",
            ),
            Endpoint::Token => (Some(self.token_endpoint.as_str()), "token_endpoint"),
            Endpoint::Userinfo => (self.userinfo_endpoint.as_deref(), "userinfo_endpoint"),
            Endpoint::BackchannelAuthentication => (
                self.backchannel_authentication_endpoint.as_deref(),
                "backchannel_authentication_endpoint",
            ),
        };
        value.ok_or_else(|| {
            ProxyError::new(
                ProblemCode::ProviderUnexpectedResponse,
                format!("the issuer's discovery document has no {name}"),
            )
        })
    }
}

#[derive(Clone)]
struct Fetched<T> {
    value: Arc<T>,
    at: Instant,
}

/// Fetches and caches one issuer's metadata and JWKS.
pub(crate) struct Discovery {
    issuer: String,
    client: UpstreamService,
    refresh_after: Duration,
    timeout: Duration,
    metadata: Cache<(), Fetched<Metadata>>,
    jwks: Arc<JwksCache>,
    refreshing: AtomicBool,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// JWKS refetches (for an unknown `kid`) happen at most this often.
const JWKS_MIN_INTERVAL: Duration = Duration::from_secs(30);

impl Discovery {
    /// Discovery for `issuer`, refreshed every `refresh_after`, each fetch bounded by `timeout`.
    pub(crate) fn new(
        issuer: &str,
        client: UpstreamService,
        refresh_after: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            refresh_after,
            timeout,
            metadata: Cache::new(1),
            jwks: Arc::new(JwksCache::new(client.clone(), refresh_after, timeout)),
            client,
            refreshing: AtomicBool::new(false),
        }
    }

    /// The configured issuer.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The cache of the issuer's JWKS (its `jwks_uri` comes from the metadata).
    pub(crate) fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    /// True once metadata has been fetched at least once (for readiness).
    pub(crate) fn is_ready(&self) -> bool {
        self.metadata.contains_key(&())
    }

    /// The metadata: the cached copy (refreshed in the background when stale), or a fetch now
    /// when there has never been one.
    pub(crate) async fn metadata(self: &Arc<Self>) -> Result<Arc<Metadata>, ProxyError> {
        if let Some(cached) = self.metadata.get(&()) {
            if cached.at.elapsed() >= self.refresh_after
                && !self.refreshing.swap(true, Ordering::AcqRel)
            {
                let this = self.clone();
                tokio::spawn(async move {
                    let _ = this.refresh().await;
                    this.refreshing.store(false, Ordering::Release);
                });
            }
            return Ok(cached.value);
        }
        self.refresh().await
    }

    /// Fetches the metadata now; on failure keeps (and returns) the last good copy if any.
    pub(crate) async fn refresh(&self) -> Result<Arc<Metadata>, ProxyError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let fetched = self.get_json::<Metadata>(&url).await.and_then(|m| {
            if m.issuer.trim_end_matches('/') == self.issuer {
                Ok(m)
            } else {
                Err(ProxyError::new(
                    ProblemCode::ProviderUnexpectedResponse,
                    format!(
                        "discovery names issuer `{}`, not the configured `{}`",
                        m.issuer, self.issuer
                    ),
                ))
            }
        });
        match fetched {
            Ok(m) => {
                let value = Arc::new(m);
                self.metadata.insert(
                    (),
                    Fetched {
                        value: value.clone(),
                        at: Instant::now(),
                    },
                );
                // The app sends the browser to the authorization endpoint: say where it is.
                tracing::info!(
                    issuer = %self.issuer,
                    authorization_endpoint = value.authorization_endpoint.as_deref().unwrap_or(""),
                    outcome = "ok",
                    "fetched discovery document"
                );
                crate::metrics::discovery_fetch("ok");
                Ok(value)
            }
            Err(e) => {
                crate::metrics::discovery_fetch("error");
                match self.metadata.get(&()) {
                    Some(last) => {
                        tracing::warn!(issuer = %self.issuer, error = %e.detail, age_s = last.at.elapsed().as_secs(), "discovery refresh failed; keeping the last good copy");
                        // Try again after a short while rather than a whole refresh period.
                        self.metadata.insert(
                            (),
                            Fetched {
                                value: last.value.clone(),
                                // Back-dated so that it is due again in a minute;
                                // checked, since the clock may not reach that far back.
                                at: Instant::now()
                                    .checked_sub(
                                        self.refresh_after.saturating_sub(Duration::from_secs(60)),
                                    )
                                    .unwrap_or_else(Instant::now),
                            },
                        );
                        Ok(last.value)
                    }
                    None => {
                        tracing::warn!(issuer = %self.issuer, error = %e.detail, "discovery failed and there is no earlier copy");
                        Err(e)
                    }
                }
            }
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, ProxyError> {
        let body = get_bytes(&self.client, url, self.timeout).await?;
        serde_json::from_slice(&body).map_err(|e| {
            ProxyError::new(
                ProblemCode::ProviderUnexpectedResponse,
                format!("{url} did not answer with the expected JSON: {e}"),
            )
        })
    }
}

/// An upstream JWKS by URL, cached and refreshed like discovery. A refetch for an unknown
/// `kid` happens at most every 30 s, so a flood of forged kids cannot hammer the upstream.
pub(crate) struct JwksCache {
    client: UpstreamService,
    refresh_after: Duration,
    timeout: Duration,
    sets: Cache<String, Fetched<josekit::jwk::JwkSet>>,
    last_refetch: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").finish_non_exhaustive()
    }
}

impl JwksCache {
    /// A cache fetching through `client`.
    pub(crate) fn new(client: UpstreamService, refresh_after: Duration, timeout: Duration) -> Self {
        Self {
            client,
            refresh_after,
            timeout,
            sets: Cache::new(8),
            last_refetch: std::sync::Mutex::new(None),
        }
    }

    /// The JWKS at `uri`; `refetch` asks for a fresh copy (after an unknown `kid`).
    pub(crate) async fn get(
        &self,
        uri: &str,
        refetch: bool,
    ) -> Result<Arc<josekit::jwk::JwkSet>, ProxyError> {
        let cached = self.sets.get(uri);
        if let Some(c) = &cached {
            let stale = c.at.elapsed() >= self.refresh_after;
            let refetch_allowed = refetch && {
                let mut last = self.last_refetch.lock().unwrap_or_else(|p| p.into_inner());
                let ok = last.is_none_or(|t| t.elapsed() >= JWKS_MIN_INTERVAL);
                if ok {
                    *last = Some(Instant::now());
                }
                ok
            };
            if !stale && !refetch_allowed {
                return Ok(c.value.clone());
            }
        }
        let parsed = get_bytes(&self.client, uri, self.timeout)
            .await
            .and_then(|b| {
                josekit::jwk::JwkSet::from_bytes(&b).map_err(|e| {
                    ProxyError::new(
                        ProblemCode::ProviderUnexpectedResponse,
                        format!("the upstream JWKS at {uri} does not parse: {e}"),
                    )
                })
            });
        match (parsed, cached) {
            (Ok(set), _) => {
                crate::metrics::jwks_fetch("ok");
                let value = Arc::new(set);
                self.sets.insert(
                    uri.to_owned(),
                    Fetched {
                        value: value.clone(),
                        at: Instant::now(),
                    },
                );
                Ok(value)
            }
            (Err(e), Some(c)) => {
                crate::metrics::jwks_fetch("error");
                tracing::warn!(jwks_uri = uri, error = %e.detail, "JWKS refresh failed; keeping the last good copy");
                Ok(c.value)
            }
            (Err(e), None) => {
                crate::metrics::jwks_fetch("error");
                Err(e)
            }
        }
    }
}

async fn get_bytes(
    client: &UpstreamService,
    url: &str,
    timeout: Duration,
) -> Result<Bytes, ProxyError> {
    let unreachable = |detail: String| ProxyError::new(ProblemCode::ProviderUnreachable, detail);
    let req = Request::get(url)
        .body(Bytes::new())
        .map_err(|e| unreachable(format!("{url}: {e}")))?;
    let call = client.clone().oneshot(req);
    let res: Response<Bytes> = match tokio::time::timeout(timeout, call).await {
        Err(_) => {
            return Err(ProxyError::new(
                ProblemCode::ProviderTimeout,
                format!("{url} did not answer in time"),
            ))
        }
        Ok(Err(e)) => return Err(unreachable(format!("{url}: {}", describe(&e)))),
        Ok(Ok(res)) => res,
    };
    if !res.status().is_success() {
        return Err(unreachable(format!("{url} answered {}", res.status())));
    }
    Ok(res.into_body())
}

fn describe(e: &BoxError) -> String {
    crate::error::error_chain(e.as_ref())
}
