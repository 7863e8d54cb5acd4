//! [`ProxyBuilder`]: a [`Proxy`] from a [`Config`], with the built-in or your own HTTP client
//! and binding store.

use super::{AbortOnDrop, Proxy};
use crate::admin::Health;
use crate::binding::{BindingStore, MemoryBindings};
use crate::config::{Config, ConfigError};
use crate::error::BoxError;
use crate::jose::EphemeralKeyPool;
use crate::key_source::KeyStore;
use crate::layer::{MemoryNonces, NonceStore, Signing};
use crate::stack::{self, Built, Shared};
use crate::upstream::{tls_config, upstream_client, UpstreamService};
use bytes::Bytes;
use http::{Request, Response};
use std::sync::Arc;

/// Ephemeral keys kept ready by the background generator.
const KEY_POOL: usize = 64;
/// Bindings the in-memory store holds at most.
const BINDINGS: u64 = 1_000_000;

/// Assembles a [`Proxy`] from a [`Config`], optionally with your own HTTP client or binding
/// store.
pub struct ProxyBuilder<'a> {
    pub(super) config: &'a Config,
    pub(super) upstream: Option<UpstreamService>,
    pub(super) bindings: Option<Arc<dyn BindingStore>>,
}

impl std::fmt::Debug for ProxyBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBuilder").finish_non_exhaustive()
    }
}

impl<'a> ProxyBuilder<'a> {
    /// Sends upstream requests through `client` instead of the built-in hyper-util + rustls
    /// client. Wrap a plain HTTP client (such as hyper-util's legacy client) in
    /// [`BufferBodies`](crate::upstream::BufferBodies) first.
    pub fn upstream<S>(mut self, client: S) -> Self
    where
        S: tower::Service<Request<Bytes>, Response = Response<Bytes>, Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
    {
        self.upstream = Some(UpstreamService::new(client));
        self
    }

    /// Keeps key bindings in `store` instead of the built-in in-memory store.
    pub fn bindings(mut self, store: Arc<dyn BindingStore>) -> Self {
        self.bindings = Some(store);
        self
    }

    /// Loads keys, trust roots and the listener's TLS, and assembles the stack. Fails with the
    /// config key at fault. Inside a tokio runtime it also starts the key watcher and fetches
    /// discovery.
    pub fn build(self) -> Result<Proxy, ConfigError> {
        let config = self.config;
        let keys = Arc::new(KeyStore::load(config)?);
        // The built-in client keeps its type in the route stacks; one given here is erased.
        let upstream = match self.upstream {
            Some(u) => Err(u),
            None => Ok(upstream_client(
                tls_config(&config.tls)?,
                config.timeouts.connect,
                config.max_response_body,
            )),
        };
        // With [redis], bindings and quotas are shared by every replica. Without a runtime
        // (check-config, which runs where the Secrets are not mounted) nothing connects, and
        // the seal keys and the URL's env var are read only when serving.
        let redis = match (&config.redis, tokio::runtime::Handle::try_current()) {
            (Some(_), Ok(_)) => crate::shared::SharedState::from_config(config)?.map(Arc::new),
            _ => None,
        };
        let bindings = match (self.bindings, &redis) {
            (Some(own), _) => own,
            (None, Some(redis)) => redis.bindings.clone() as Arc<dyn BindingStore>,
            (None, None) => Arc::new(MemoryBindings::new(BINDINGS)),
        };
        // With [redis], a nonce one replica learns is in every replica's next proof.
        let nonces: Arc<dyn NonceStore> = match &redis {
            Some(redis) => redis.nonces.clone(),
            None => Arc::new(MemoryNonces::default()),
        };
        let signing = Signing::with_keys(config, keys.clone(), bindings.clone(), nonces);
        let signing = Arc::new(signing);
        let shared = Shared {
            signing,
            bindings,
            pool: EphemeralKeyPool::new(KEY_POOL),
            keys: keys.clone(),
            redis,
        };
        let Built { edge, discoveries } = match upstream {
            Ok(client) => stack::build(config, &shared, client),
            Err(client) => stack::build(config, &shared, client),
        };
        let runtime = tokio::runtime::Handle::try_current().ok();
        if let Some(runtime) = &runtime {
            // Fetch every issuer's discovery now, so that the first login does not wait.
            for discovery in &discoveries {
                let discovery = discovery.clone();
                runtime.spawn(async move {
                    let _ = discovery.metadata().await;
                });
            }
        }
        let key_watch = match (config.key_reload_interval, &runtime) {
            (Some(every), Some(_)) => keys.watch(every),
            _ => None,
        };
        let tls = match &config.inbound.tls {
            Some(tls) => Some(crate::inbound::tls_acceptor(tls)?),
            None => None,
        };
        Ok(Proxy {
            health: Arc::new(Health::new(keys.clone(), discoveries)),
            keys,
            _key_watch: Arc::new(AbortOnDrop(key_watch)),
            edge,
            tls,
            listeners: config.listeners,
            doc_url: config.problem_doc_url.as_str().into(),
            routes: crate::route::describe(config).into(),
        })
    }
}
