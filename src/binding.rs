//! Which ephemeral key belongs to which access token (the heart of the proxy).
//!
//! Tokens are never stored: entries are keyed by SHA-256 of the token. A one-time (Myinfo v4)
//! binding gives its key out once; afterwards the entry stays, without the key, as a tombstone
//! until the token would have expired, so that a second use is answered as "reused" rather
//! than "unknown".

mod redis_store;
mod seal;
mod shards;

pub use redis_store::RedisBindings;
pub use seal::{SealError, SealKeyring};

use crate::jose::EphemeralKey;
use sha2::{Digest, Sha256};
use shards::Shards;
use std::sync::Arc;
use std::time::Duration;

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

/// A boxed future of a binding-store call.
pub type BindingFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, BindingError>> + Send + 'a>>;

/// Why a binding-store call failed.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// The store could not be reached, or did not answer in time.
    #[error("the binding store is unavailable: {0}")]
    Unavailable(String),
}

/// Where token and login bindings live. The in-memory store suits a sidecar and one replica;
/// several replicas share a networked store behind this same trait. The raw token is passed so
/// that a networked store can derive a sealing key from it; the memory store keeps only its
/// [`TokenHash`].
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
    /// Where bindings live, for the detail of `AUTH_TOKEN_UNKNOWN` / `AUTH_LOGIN_UNKNOWN`: what
    /// else than "not issued here, or expired" an unknown token or login may mean.
    fn where_bindings_live(&self) -> &'static str {
        "bindings are kept in this replica's memory: with several replicas, share them through [redis]"
    }
}

/// SHA-256 of a login's `code_challenge`: logins are keyed by 32 bytes whatever the app sent,
/// so a login binding has a fixed size.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct LoginKey([u8; 32]);

impl LoginKey {
    fn of(code_challenge: &str) -> Self {
        Self(Sha256::digest(code_challenge.as_bytes()).into())
    }
}

/// The in-memory binding store, bounded in entries and bytes: each binding is a fixed-size
/// node (see `shards.rs`) plus its ephemeral key.
#[derive(Clone)]
pub struct MemoryBindings {
    tokens: Arc<Shards<TokenHash>>,
    logins: Arc<Shards<LoginKey>>,
}

impl MemoryBindings {
    /// A store holding at most `capacity` token bindings and as many logins (when full, expired
    /// bindings go first, then the oldest; each costs O(1)).
    pub fn new(capacity: u64) -> Self {
        Self {
            tokens: Arc::new(Shards::new(capacity)),
            logins: Arc::new(Shards::new(capacity)),
        }
    }
}

impl MemoryBindings {
    fn use_hash(&self, token: TokenHash) -> TokenLookup {
        self.tokens
            .with(&token, |slot| match slot.usage {
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

/// Every call finishes at once: the futures are ready when made.
impl BindingStore for MemoryBindings {
    fn bind_token<'a>(
        &'a self,
        token: &'a str,
        key: Arc<EphemeralKey>,
        usage: TokenUse,
        ttl: Duration,
    ) -> BindingFuture<'a, ()> {
        self.tokens.insert(TokenHash::of(token), key, usage, ttl);
        Box::pin(std::future::ready(Ok(())))
    }

    fn use_token<'a>(&'a self, token: &'a str) -> BindingFuture<'a, TokenLookup> {
        Box::pin(std::future::ready(Ok(self.use_hash(TokenHash::of(token)))))
    }

    fn bind_login<'a>(
        &'a self,
        code_challenge: &'a str,
        key: Arc<EphemeralKey>,
        ttl: Duration,
    ) -> BindingFuture<'a, ()> {
        let login = LoginKey::of(code_challenge);
        self.logins.insert(login, key, TokenUse::Reusable, ttl);
        Box::pin(std::future::ready(Ok(())))
    }

    fn login_key<'a>(
        &'a self,
        code_challenge: &'a str,
    ) -> BindingFuture<'a, Option<Arc<EphemeralKey>>> {
        let key = self
            .logins
            .with(&LoginKey::of(code_challenge), |slot| slot.key.clone())
            .flatten();
        Box::pin(std::future::ready(Ok(key)))
    }

    fn forget_login<'a>(&'a self, code_challenge: &'a str) -> BindingFuture<'a, ()> {
        self.logins.remove(&LoginKey::of(code_challenge));
        Box::pin(std::future::ready(Ok(())))
    }

    fn live_bindings(&self) -> u64 {
        self.tokens.live()
    }

    fn live_logins(&self) -> u64 {
        self.logins.live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<EphemeralKey> {
        Arc::new(EphemeralKey::generate().unwrap())
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn once_token_gives_its_key_once_then_reports_reuse() {
        let store = MemoryBindings::new(100);
        let k = key();
        store
            .bind_token("t1", k.clone(), TokenUse::Once, MINUTE)
            .await
            .unwrap();
        match store.use_token("t1").await.unwrap() {
            TokenLookup::Key(got) => assert_eq!(got.jkt(), k.jkt()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.use_token("t1").await.unwrap(),
            TokenLookup::Reused
        ));
        assert!(matches!(
            store.use_token("t2").await.unwrap(),
            TokenLookup::Unknown
        ));
    }

    #[tokio::test]
    async fn reusable_token_keeps_its_key() {
        let store = MemoryBindings::new(100);
        store
            .bind_token("t", key(), TokenUse::Reusable, MINUTE)
            .await
            .unwrap();
        for _ in 0..3 {
            assert!(matches!(
                store.use_token("t").await.unwrap(),
                TokenLookup::Key(_)
            ));
        }
    }

    #[tokio::test]
    async fn expired_binding_is_unknown() {
        let store = MemoryBindings::new(100);
        store
            .bind_token("t", key(), TokenUse::Once, Duration::ZERO)
            .await
            .unwrap();
        assert!(matches!(
            store.use_token("t").await.unwrap(),
            TokenLookup::Unknown
        ));
    }

    #[tokio::test]
    async fn login_binding_is_found_by_its_challenge_until_forgotten() {
        let store = MemoryBindings::new(100);
        let k = key();
        store
            .bind_login("challenge-1", k.clone(), MINUTE)
            .await
            .unwrap();
        let found = || async { store.login_key("challenge-1").await.unwrap() };
        assert_eq!(found().await.unwrap().jkt(), k.jkt());
        assert_eq!(
            found().await.unwrap().jkt(),
            k.jkt(),
            "a retry finds it again"
        );
        assert!(store.login_key("challenge-2").await.unwrap().is_none());
        store.forget_login("challenge-1").await.unwrap();
        assert!(found().await.is_none());
        store.bind_login("c", key(), Duration::ZERO).await.unwrap();
        assert!(store.login_key("c").await.unwrap().is_none(), "expired");
    }

    #[tokio::test]
    async fn a_login_costs_the_same_whatever_the_length_of_its_challenge() {
        // What the store keeps per login is a 32-byte digest, never the app's string.
        assert_eq!(std::mem::size_of::<LoginKey>(), 32);
        let store = MemoryBindings::new(100);
        let huge = "A".repeat(60_000);
        let k = key();
        store.bind_login(&huge, k.clone(), MINUTE).await.unwrap();
        assert_eq!(
            store.login_key(&huge).await.unwrap().unwrap().jkt(),
            k.jkt()
        );
        assert!(store.login_key(&huge[1..]).await.unwrap().is_none());
        store
            .bind_token("t", key(), TokenUse::Once, Duration::MAX)
            .await
            .unwrap();
        assert!(
            matches!(store.use_token("t").await.unwrap(), TokenLookup::Key(_)),
            "an absurd lifetime saturates instead of overflowing"
        );
    }

    #[test]
    fn debug_never_shows_the_whole_hash() {
        let text = format!("{:?}", TokenHash::of("secret-token"));
        assert_eq!(text.len(), "TokenHash(..)".len() + 12);
    }
}
