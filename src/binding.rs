//! Which ephemeral key belongs to which access token (the heart of the proxy).
//!
//! Tokens are never stored: entries are keyed by SHA-256 of the token. A one-time (Myinfo v4)
//! binding gives its key out once; afterwards the entry stays, without the key, as a tombstone
//! until the token would have expired, so that a second use is answered as "reused" rather
//! than "unknown".

use crate::jose::EphemeralKey;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod redis_store;
mod seal;

pub use redis_store::RedisBindings;
pub use seal::{SealError, SealKeyring};

/// What a [`BindingStore`] call returns: boxed so that the trait stays object-safe.
pub type BindingFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, BindingError>> + Send + 'a>>;

/// Why a binding could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// The shared store did not answer in time, failed, or its circuit is open.
    #[error("the binding store is unavailable: {0}")]
    Unavailable(String),
}

impl From<BindingError> for crate::error::ProxyError {
    fn from(e: BindingError) -> Self {
        crate::error::ProxyError::new(
            crate::error::ProblemCode::SystemSharedStateUnavailable,
            format!("{e}; the key binding could not be read or written, try again shortly"),
        )
        .with_retry_after(Duration::from_secs(1))
    }
}

/// SHA-256 of an access token: the only form in which the proxy remembers a token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
    /// The first 12 hex digits, for correlating log lines without revealing the token.
    pub fn short(&self) -> String {
        self.0[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}..)", self.short())
    }
}

/// How often a bound token may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// Myinfo v4: one resource call, then never again.
    Once,
    /// FAPI 2.0: any number of calls until it expires.
    Reusable,
}

/// What the store knows about a presented token.
#[derive(Debug, Clone)]
pub enum TokenLookup {
    /// The key to sign the resource call with.
    Key(Arc<EphemeralKey>),
    /// A one-time token that has been used already.
    Reused,
    /// Never issued through this proxy, or expired.
    Unknown,
}

/// Where token bindings live. The in-memory store suits a sidecar and one replica; several
/// replicas share a [`RedisBindings`] behind this same trait.
pub trait BindingStore: Send + Sync + 'static {
    /// Binds `token` to `key` for `ttl`.
    fn bind_token<'a>(
        &'a self,
        token: &'a str,
        key: Arc<EphemeralKey>,
        usage: TokenUse,
        ttl: Duration,
    ) -> BindingFuture<'a, ()>;
    /// Looks a token up; a `Once` token's key is handed out only the first time.
    fn use_token<'a>(&'a self, token: &'a str) -> BindingFuture<'a, TokenLookup>;
    /// Binds a FAPI login (its PAR's `code_challenge`) to the key made for it, for `ttl`.
    fn bind_login<'a>(
        &'a self,
        code_challenge: &'a str,
        key: Arc<EphemeralKey>,
        ttl: Duration,
    ) -> BindingFuture<'a, ()>;
    /// The key of the login whose PAR carried `code_challenge`.
    fn login_key<'a>(
        &'a self,
        code_challenge: &'a str,
    ) -> BindingFuture<'a, Option<Arc<EphemeralKey>>>;
    /// Forgets a login once its code has been exchanged.
    fn forget_login<'a>(&'a self, code_challenge: &'a str) -> BindingFuture<'a, ()>;
    /// How many token bindings are live (approximate; for metrics).
    fn live_bindings(&self) -> u64;
    /// How many login bindings are live (approximate; for metrics).
    fn live_logins(&self) -> u64;
}

/// One binding: the key (gone once a one-time token was used), how often it may be used, and
/// until when.
struct Slot {
    key: Option<Arc<EphemeralKey>>,
    usage: TokenUse,
    expires: Instant,
}

/// Shards of plain hash maps: about 90 bytes per binding, where a moka entry with per-entry
/// expiry costs about 500. Expired slots are dropped when met, by a sweep of a shard every
/// `SWEEP_EVERY` inserts into it, and when a full shard needs room (then the slot that expires
/// soonest goes too).
struct Shards<K> {
    shards: Box<[Mutex<Shard<K>>]>,
    per_shard: usize,
    live: AtomicU64,
}

struct Shard<K> {
    map: HashMap<K, Slot>,
    inserts: u32,
}

const SHARDS: usize = 16;
const SWEEP_EVERY: u32 = 1024;

impl<K: Hash + Eq + Clone> Shards<K> {
    fn new(capacity: u64) -> Self {
        let per_shard = (capacity as usize).div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        inserts: 0,
                    })
                })
                .collect(),
            per_shard,
            live: AtomicU64::new(0),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> std::sync::MutexGuard<'_, Shard<K>> {
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, key: K, slot: Slot) {
        let now = Instant::now();
        let mut shard = self.shard(&key);
        shard.inserts = shard.inserts.wrapping_add(1);
        if shard.inserts % SWEEP_EVERY == 0 || shard.map.len() >= self.per_shard {
            self.sweep(&mut shard, now);
        }
        if shard.map.len() >= self.per_shard {
            let soonest = shard
                .map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone());
            if let Some(k) = soonest {
                shard.map.remove(&k);
                self.live.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if shard.map.insert(key, slot).is_none() {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn sweep(&self, shard: &mut Shard<K>, now: Instant) {
        let before = shard.map.len();
        shard.map.retain(|_, s| s.expires > now);
        self.live
            .fetch_sub((before - shard.map.len()) as u64, Ordering::Relaxed);
    }

    fn remove<Q: Hash + Eq + ?Sized>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
    {
        if self.shard(key).map.remove(key).is_some() {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Runs `f` on the live slot for `key`, if there is one.
    fn with<Q: Hash + Eq + ?Sized, T>(&self, key: &Q, f: impl FnOnce(&mut Slot) -> T) -> Option<T>
    where
        K: std::borrow::Borrow<Q>,
    {
        let mut shard = self.shard(key);
        let slot = shard.map.get_mut(key)?;
        if slot.expires <= Instant::now() {
            return None;
        }
        Some(f(slot))
    }
}

/// The in-memory binding store, bounded in size.
#[derive(Clone)]
pub struct MemoryBindings {
    tokens: Arc<Shards<TokenHash>>,
    logins: Arc<Shards<String>>,
}

impl MemoryBindings {
    /// A store holding at most `capacity` token bindings and as many logins (when full, expired
    /// bindings go first, then those that expire soonest).
    pub fn new(capacity: u64) -> Self {
        Self {
            tokens: Arc::new(Shards::new(capacity)),
            logins: Arc::new(Shards::new(capacity)),
        }
    }
}

impl MemoryBindings {
    fn take(&self, token: &TokenHash) -> TokenLookup {
        self.tokens
            .with(token, |slot| match slot.usage {
                TokenUse::Reusable => slot
                    .key
                    .clone()
                    .map_or(TokenLookup::Unknown, TokenLookup::Key),
                TokenUse::Once => slot
                    .key
                    .take()
                    .map_or(TokenLookup::Reused, TokenLookup::Key),
            })
            .unwrap_or(TokenLookup::Unknown)
    }
}

/// The memory store never waits: every call is a ready future.
fn ready<'a, T: Send + 'a>(value: T) -> BindingFuture<'a, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl BindingStore for MemoryBindings {
    fn bind_token<'a>(
        &'a self,
        token: &'a str,
        key: Arc<EphemeralKey>,
        usage: TokenUse,
        ttl: Duration,
    ) -> BindingFuture<'a, ()> {
        let slot = Slot {
            key: Some(key),
            usage,
            expires: Instant::now() + ttl,
        };
        self.tokens.insert(TokenHash::of(token), slot);
        ready(())
    }

    fn use_token<'a>(&'a self, token: &'a str) -> BindingFuture<'a, TokenLookup> {
        ready(self.take(&TokenHash::of(token)))
    }

    fn bind_login<'a>(
        &'a self,
        code_challenge: &'a str,
        key: Arc<EphemeralKey>,
        ttl: Duration,
    ) -> BindingFuture<'a, ()> {
        let slot = Slot {
            key: Some(key),
            usage: TokenUse::Reusable,
            expires: Instant::now() + ttl,
        };
        self.logins.insert(code_challenge.to_owned(), slot);
        ready(())
    }

    fn login_key<'a>(
        &'a self,
        code_challenge: &'a str,
    ) -> BindingFuture<'a, Option<Arc<EphemeralKey>>> {
        ready(
            self.logins
                .with(code_challenge, |slot| slot.key.clone())
                .flatten(),
        )
    }

    fn forget_login<'a>(&'a self, code_challenge: &'a str) -> BindingFuture<'a, ()> {
        self.logins.remove(code_challenge);
        ready(())
    }

    fn live_bindings(&self) -> u64 {
        self.tokens.live.load(Ordering::Relaxed)
    }

    fn live_logins(&self) -> u64 {
        self.logins.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<EphemeralKey> {
        Arc::new(EphemeralKey::generate().unwrap())
    }

    async fn lookup(store: &MemoryBindings, token: &str) -> TokenLookup {
        store.use_token(token).await.unwrap()
    }

    #[tokio::test]
    async fn once_token_gives_its_key_once_then_reports_reuse() {
        let store = MemoryBindings::new(100);
        let k = key();
        let day = Duration::from_secs(60);
        store
            .bind_token("t1", k.clone(), TokenUse::Once, day)
            .await
            .unwrap();
        match lookup(&store, "t1").await {
            TokenLookup::Key(got) => assert_eq!(got.jkt(), k.jkt()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(lookup(&store, "t1").await, TokenLookup::Reused));
        assert!(matches!(lookup(&store, "t2").await, TokenLookup::Unknown));
    }

    #[tokio::test]
    async fn reusable_token_keeps_its_key() {
        let store = MemoryBindings::new(100);
        store
            .bind_token("t", key(), TokenUse::Reusable, Duration::from_secs(60))
            .await
            .unwrap();
        for _ in 0..3 {
            assert!(matches!(lookup(&store, "t").await, TokenLookup::Key(_)));
        }
    }

    #[tokio::test]
    async fn expired_binding_is_unknown() {
        let store = MemoryBindings::new(100);
        store
            .bind_token("t", key(), TokenUse::Once, Duration::ZERO)
            .await
            .unwrap();
        assert!(matches!(lookup(&store, "t").await, TokenLookup::Unknown));
    }

    #[tokio::test]
    async fn login_binding_is_found_by_its_challenge_until_forgotten() {
        let store = MemoryBindings::new(100);
        let k = key();
        let found = |c: &'static str| {
            let store = store.clone();
            async move { store.login_key(c).await.unwrap() }
        };
        store
            .bind_login("challenge-1", k.clone(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(found("challenge-1").await.unwrap().jkt(), k.jkt());
        assert_eq!(
            found("challenge-1").await.unwrap().jkt(),
            k.jkt(),
            "a retry finds it again"
        );
        assert!(found("challenge-2").await.is_none());
        store.forget_login("challenge-1").await.unwrap();
        assert!(found("challenge-1").await.is_none());
        store.bind_login("c", key(), Duration::ZERO).await.unwrap();
        assert!(found("c").await.is_none(), "expired");
    }

    #[test]
    fn debug_never_shows_the_whole_hash() {
        let text = format!("{:?}", TokenHash::of("secret-token"));
        assert_eq!(text.len(), "TokenHash(..)".len() + 12);
    }
}
