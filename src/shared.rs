//! State that several replicas share in Redis (or Valkey): the one client every shared store
//! goes through, with a deadline on every call and a circuit that fails fast while Redis is
//! unreachable.
//!
//! The client is the `redis` crate: the widely used, maintained Rust client, with a tokio
//! connection manager (one multiplexed connection that reconnects by itself, so that Redis can
//! come back without a restart), server-side scripts by SHA (`EVALSHA`, reloaded on
//! `NOSCRIPT`), and rustls for `rediss://` (the same TLS stack and crypto provider the proxy
//! already uses).

mod circuit;
mod nonce;
mod quota;

pub use nonce::SharedNonces;
pub use quota::{SharedGlobalQuota, SharedQuota, SharedRouteLimiter};

use crate::binding::{RedisBindings, SealKeyring};
use crate::config::{Config, ConfigError, RateLimitSettings, RedisConfig};
use circuit::{Circuit, Gate};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Everything one replica shares, built once from `[redis]`: hand `bindings` to the proxy
/// builder, make each route's limiter with [`SharedState::route_limiter`], sign with `nonces`.
#[derive(Debug, Clone)]
pub struct SharedState {
    /// The one connection of this process.
    pub client: RedisClient,
    /// Token and login bindings.
    pub bindings: Arc<RedisBindings>,
    /// DPoP nonces per upstream origin.
    pub nonces: Arc<SharedNonces>,
    /// `rate_limit.global`, shared by every route's limiter.
    pub global: Option<SharedGlobalQuota>,
}

impl SharedState {
    /// The shared state `config` asks for (None without `[redis]`). Reads the seal keys and
    /// the URL's env var, so a mistake stops start-up naming the key; connects on first use.
    /// Must be called inside a tokio runtime.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConfigError> {
        let Some(redis) = &config.redis else {
            return Ok(None);
        };
        let keyring = SealKeyring::load(&redis.seal_keys)?;
        let client = RedisClient::from_config(redis)?;
        let global = config
            .global_rate_limit
            .map(|q| SharedGlobalQuota::new(&client, q));
        Ok(Some(Self {
            bindings: Arc::new(RedisBindings::new(client.clone(), keyring)),
            nonces: Arc::new(SharedNonces::new(client.clone())),
            global,
            client,
        }))
    }

    /// The limiter of one route; `bucket` must be the same on every replica and distinct per
    /// route, e.g. `"<upstream name>.<route name>"`.
    pub fn route_limiter(&self, bucket: &str, settings: &RateLimitSettings) -> SharedRouteLimiter {
        SharedRouteLimiter::new(self.client.clone(), bucket, settings, self.global.clone())
    }
}

/// Why a shared-state call could not be made (never carries a key or a value).
#[derive(Debug, Clone, thiserror::Error)]
#[error("Redis {operation}: {reason}")]
pub struct RedisUnavailable {
    /// Which operation (a fixed word, as in the metrics).
    pub operation: &'static str,
    /// `timeout`, `circuit open`, or the client's error kind.
    pub reason: String,
}

/// One process's connection to Redis, shared by every store and limiter (clone it freely).
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    circuit: Circuit,
    fallback_replicas: u32,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// A client for `config` (the URL read from its env var when `url_env` is set). It connects
    /// on first use, so that a Redis outage at start-up does not stop the proxy. Must be called
    /// inside a tokio runtime.
    pub fn from_config(config: &RedisConfig) -> Result<Self, ConfigError> {
        let url = config.resolve_url()?;
        let key = match config.url {
            crate::config::RedisUrl::Literal(_) => "redis.url",
            crate::config::RedisUrl::Env(_) => "redis.url_env",
        };
        Self::connect(
            &url,
            &config.key_prefix,
            config.timeout,
            config.fallback_replicas,
        )
        .map_err(|e| {
            ConfigError::new(
                key,
                format!("the Redis client refused the URL ({})", e.reason),
                "use a form like \"redis://host:6379\" or \"rediss://host:6380\"",
            )
        })
    }

    /// A client for `url` whose keys start with `prefix:` and whose calls each get `timeout`;
    /// while Redis is unreachable, limiters keep to `1 / fallback_replicas` of their quota.
    pub fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
        fallback_replicas: u32,
    ) -> Result<Self, RedisUnavailable> {
        let refused = |e: redis::RedisError| RedisUnavailable {
            operation: "connect",
            reason: format!("{:?}", e.kind()),
        };
        let client = redis::Client::open(url).map_err(refused)?;
        // The manager's own deadlines are a backstop; each call gets `timeout` below. Reconnects
        // are retried a few times per failed call, and the circuit spaces out the calls.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(refused)?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                prefix: prefix.to_owned(),
                timeout,
                circuit: Circuit::new(),
                fallback_replicas: fallback_replicas.max(1),
            }),
        })
    }

    /// `<prefix>:<rest>`: every key the proxy writes.
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.inner.prefix)
    }

    /// The deadline of each call.
    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// How many replicas share the quota while Redis is away.
    pub fn fallback_replicas(&self) -> u32 {
        self.inner.fallback_replicas
    }

    /// Whether calls are failing fast (the circuit is open).
    pub fn circuit_open(&self) -> bool {
        self.inner.circuit.is_open()
    }

    /// Runs one Redis operation under the timeout and the circuit, and counts it.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        f: F,
    ) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let inner = &self.inner;
        match inner.circuit.allow() {
            Gate::Closed => {}
            Gate::Probe => self.probe().await?,
            Gate::Open => {
                crate::metrics::redis_operation(operation, "circuit_open", None);
                return Err(RedisUnavailable {
                    operation,
                    reason: "circuit open".into(),
                });
            }
        }
        self.timed(operation, f).await
    }

    /// While the circuit is open: a `PING` (which a stalled Redis may run later harmlessly)
    /// before the operation that probes.
    async fn probe(&self) -> Result<(), RedisUnavailable> {
        self.timed("probe", |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }

    /// One call under the timeout: counted, and its outcome told to the circuit.
    async fn timed<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let inner = &self.inner;
        let started = Instant::now();
        let result = tokio::time::timeout(inner.timeout, f(inner.conn.clone())).await;
        let took = Some(started.elapsed());
        let reason = match result {
            Ok(Ok(value)) => {
                crate::metrics::redis_operation(operation, "ok", took);
                inner.circuit.succeeded();
                return Ok(value);
            }
            Ok(Err(e)) => {
                crate::metrics::redis_operation(operation, "error", took);
                // The kind and code only: a server error's text could echo an argument.
                format!("{:?} ({})", e.kind(), e.code().unwrap_or("-"))
            }
            Err(_) => {
                crate::metrics::redis_operation(operation, "timeout", took);
                format!("no answer within {:?}", inner.timeout)
            }
        };
        inner.circuit.failed(&reason);
        Err(RedisUnavailable { operation, reason })
    }
}
