//! Which ephemeral key belongs to which access token (the heart of the proxy).
//!
//! Tokens are never stored: entries are keyed by SHA-256 of the token. A one-time (Myinfo v4)
//! binding gives its key out once; afterwards the entry stays, without the key, as a tombstone
//! until the token would have expired, so that a second use is answered as "reused" rather
//! than "unknown".

mod shards;

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

/// Where token bindings live. The in-memory store suits a sidecar; several egress replicas need
/// session affinity or a shared store behind this same trait.
pub trait BindingStore: Send + Sync + 'static {
    /// Binds `token` to `key` for `ttl`.
    fn bind_token(&self, token: TokenHash, key: Arc<EphemeralKey>, usage: TokenUse, ttl: Duration);
    /// Looks a token up; a `Once` token's key is handed out only the first time.
    fn use_token(&self, token: TokenHash) -> TokenLookup;
    /// How many token bindings are live (approximate; for metrics).
    fn live_bindings(&self) -> u64;
    /// Binds a FAPI login (its PAR's `code_challenge`) to the key made for it, for `ttl`.
    fn bind_login(&self, code_challenge: &str, key: Arc<EphemeralKey>, ttl: Duration);
    /// The key of the login whose PAR carried `code_challenge`.
    fn login_key(&self, code_challenge: &str) -> Option<Arc<EphemeralKey>>;
    /// Forgets a login once its code has been exchanged.
    fn forget_login(&self, code_challenge: &str);
    /// How many login bindings are live (approximate; for metrics).
    fn live_logins(&self) -> u64;
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

impl BindingStore for MemoryBindings {
    fn bind_token(&self, token: TokenHash, key: Arc<EphemeralKey>, usage: TokenUse, ttl: Duration) {
        self.tokens.insert(token, key, usage, ttl);
    }

    fn use_token(&self, token: TokenHash) -> TokenLookup {
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

    fn live_bindings(&self) -> u64 {
        self.tokens.live()
    }

    fn bind_login(&self, code_challenge: &str, key: Arc<EphemeralKey>, ttl: Duration) {
        let login = LoginKey::of(code_challenge);
        self.logins.insert(login, key, TokenUse::Reusable, ttl);
    }

    fn login_key(&self, code_challenge: &str) -> Option<Arc<EphemeralKey>> {
        self.logins
            .with(&LoginKey::of(code_challenge), |slot| slot.key.clone())
            .flatten()
    }

    fn forget_login(&self, code_challenge: &str) {
        self.logins.remove(&LoginKey::of(code_challenge));
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

    #[test]
    fn once_token_gives_its_key_once_then_reports_reuse() {
        let store = MemoryBindings::new(100);
        let k = key();
        store.bind_token(
            TokenHash::of("t1"),
            k.clone(),
            TokenUse::Once,
            Duration::from_secs(60),
        );
        match store.use_token(TokenHash::of("t1")) {
            TokenLookup::Key(got) => assert_eq!(got.jkt(), k.jkt()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.use_token(TokenHash::of("t1")),
            TokenLookup::Reused
        ));
        assert!(matches!(
            store.use_token(TokenHash::of("t2")),
            TokenLookup::Unknown
        ));
    }

    #[test]
    fn reusable_token_keeps_its_key() {
        let store = MemoryBindings::new(100);
        store.bind_token(
            TokenHash::of("t"),
            key(),
            TokenUse::Reusable,
            Duration::from_secs(60),
        );
        for _ in 0..3 {
            assert!(matches!(
                store.use_token(TokenHash::of("t")),
                TokenLookup::Key(_)
            ));
        }
    }

    #[test]
    fn expired_binding_is_unknown() {
        let store = MemoryBindings::new(100);
        store.bind_token(TokenHash::of("t"), key(), TokenUse::Once, Duration::ZERO);
        assert!(matches!(
            store.use_token(TokenHash::of("t")),
            TokenLookup::Unknown
        ));
    }

    #[test]
    fn login_binding_is_found_by_its_challenge_until_forgotten() {
        let store = MemoryBindings::new(100);
        let k = key();
        store.bind_login("challenge-1", k.clone(), Duration::from_secs(60));
        assert_eq!(store.login_key("challenge-1").unwrap().jkt(), k.jkt());
        assert_eq!(
            store.login_key("challenge-1").unwrap().jkt(),
            k.jkt(),
            "a retry finds it again"
        );
        assert!(store.login_key("challenge-2").is_none());
        store.forget_login("challenge-1");
        assert!(store.login_key("challenge-1").is_none());
        store.bind_login("c", key(), Duration::ZERO);
        assert!(store.login_key("c").is_none(), "expired");
    }

    #[test]
    fn a_login_costs_the_same_whatever_the_length_of_its_challenge() {
        // What the store keeps per login is a 32-byte digest, never the app's string.
        assert_eq!(std::mem::size_of::<LoginKey>(), 32);
        let store = MemoryBindings::new(100);
        let huge = "A".repeat(60_000);
        let k = key();
        store.bind_login(&huge, k.clone(), Duration::from_secs(60));
        assert_eq!(store.login_key(&huge).unwrap().jkt(), k.jkt());
        assert!(store.login_key(&huge[1..]).is_none());
        store.bind_token(TokenHash::of("t"), key(), TokenUse::Once, Duration::MAX);
        assert!(
            matches!(store.use_token(TokenHash::of("t")), TokenLookup::Key(_)),
            "an absurd lifetime saturates instead of overflowing"
        );
    }

    #[test]
    fn debug_never_shows_the_whole_hash() {
        let text = format!("{:?}", TokenHash::of("secret-token"));
        assert_eq!(text.len(), "TokenHash(..)".len() + 12);
    }
}
