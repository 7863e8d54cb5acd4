//! The binding store that several replicas share: sealed records in Redis, written with the
//! binding's TTL, a one-time token taken atomically (one script: the first caller gets the key,
//! the record becomes a tombstone until it expires, every later caller anywhere sees "reused").

use super::seal::{Record, SealKeyring};
use super::{BindingError, BindingFuture, BindingStore, TokenHash, TokenLookup, TokenUse};
use crate::jose::EphemeralKey;
use crate::shared::{RedisClient, RedisUnavailable};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

/// Looks a token's record up under each candidate name (one per seal key) and, for a one-time
/// token, leaves a tombstone in its place with the same TTL: all in one atomic step, so two
/// replicas can never both get the key. Answers `{index of the name found (0: none), value}`.
///
/// `ARGV[1]` is when the caller stops waiting (unix ms on its clock, plus a skew allowance;
/// 0: no limit). A take that Redis runs only after that (a Redis stalled with the call queued,
/// then resumed) answers -1 and takes nothing: nobody is waiting for the key any more, and the
/// token must still work when the app tries again.
static TAKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local deadline = tonumber(ARGV[1])
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then
    return {-1, ''}
  end
end
for i, name in ipairs(KEYS) do
  local v = redis.call('GET', name)
  if v then
    if string.sub(v, 1, 1) == 'o' then
      redis.call('SET', name, 'x', 'KEEPTTL')
    end
    return {i, v}
  end
end
return {0, ''}
",
    )
});

/// How far a replica's clock may be off Redis's before the late-take guard above gives up on
/// it (then the take runs without the guard, and a warning says to fix the clock).
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(1);

/// The first byte of a token record: how it may be used (authenticated with the name).
const ONCE: u8 = b'o';
const REUSABLE: u8 = b'r';
/// A one-time token's record after its use.
const TOMBSTONE: &[u8] = b"x";

/// Token and login bindings in Redis, sealed (see the `seal` module).
#[derive(Clone, Debug)]
pub struct RedisBindings {
    client: RedisClient,
    keyring: Arc<SealKeyring>,
}

impl RedisBindings {
    /// A store on `client`, sealing with `keyring`.
    pub fn new(client: RedisClient, keyring: SealKeyring) -> Self {
        Self {
            client,
            keyring: Arc::new(keyring),
        }
    }

    /// The record's full Redis keys, the sealing key's name first.
    fn names(&self, kind: Record, secret: &str) -> Vec<String> {
        self.keyring
            .names(kind, secret)
            .iter()
            .map(|n| self.client.key(n))
            .collect()
    }

    fn open_key(
        &self,
        kind: Record,
        secret: &str,
        name: &str,
        usage: Option<u8>,
        sealed: &[u8],
    ) -> Option<Arc<EphemeralKey>> {
        let aad = aad(name, usage);
        let plain = self.keyring.open(kind, secret, &aad, sealed).ok()?;
        EphemeralKey::import_secret(&plain).ok().map(Arc::new)
    }

    async fn take(
        &self,
        names: &[String],
        deadline_ms: u64,
    ) -> Result<(i64, Vec<u8>), BindingError> {
        self.client
            .run("use_token", |mut c| async move {
                let mut call = TAKE.prepare_invoke();
                for name in names {
                    call.key(name);
                }
                call.arg(deadline_ms).invoke_async(&mut c).await
            })
            .await
            .map_err(unavailable)
    }

    async fn set(
        &self,
        operation: &'static str,
        name: String,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), BindingError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return Ok(());
        }
        self.client
            .run(operation, |mut c| async move {
                redis::cmd("SET")
                    .arg(&name)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
            .map_err(unavailable)
    }
}

/// The associated data: the record's whole Redis key, and for tokens the usage byte too.
fn aad(name: &str, usage: Option<u8>) -> Vec<u8> {
    let mut aad = name.as_bytes().to_vec();
    aad.extend(usage);
    aad
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unavailable(e: RedisUnavailable) -> BindingError {
    BindingError::Unavailable(e.to_string())
}

impl BindingStore for RedisBindings {
    fn bind_token<'a>(
        &'a self,
        token: &'a str,
        key: Arc<EphemeralKey>,
        usage: TokenUse,
        ttl: Duration,
    ) -> BindingFuture<'a, ()> {
        Box::pin(async move {
            let name = self.names(Record::Token, token).swap_remove(0);
            let usage = match usage {
                TokenUse::Once => ONCE,
                TokenUse::Reusable => REUSABLE,
            };
            let sealed = self.keyring.seal(
                Record::Token,
                token,
                &aad(&name, Some(usage)),
                &key.export_secret(),
            );
            let mut value = Vec::with_capacity(1 + sealed.len());
            value.push(usage);
            value.extend_from_slice(&sealed);
            self.set("bind_token", name, value, ttl).await
        })
    }

    fn use_token<'a>(&'a self, token: &'a str) -> BindingFuture<'a, TokenLookup> {
        Box::pin(async move {
            let names = self.names(Record::Token, token);
            let deadline = SystemTime::now() + self.client.timeout() + CLOCK_SKEW_ALLOWANCE;
            let mut found = self.take(&names, unix_ms(deadline)).await?;
            if found.0 < 0 {
                // Redis answered in time, so the deadline was not really past: clocks disagree.
                tracing::warn!("this replica's clock is more than 1 s off Redis's: fix its time sync (NTP); one-time tokens are taken without the stall guard meanwhile");
                found = self.take(&names, 0).await?;
            }
            let (index, value) = found;
            let Some(name) = usize::try_from(index)
                .ok()
                .and_then(|i| names.get(i.checked_sub(1)?))
            else {
                return Ok(TokenLookup::Unknown);
            };
            if value == TOMBSTONE {
                return Ok(TokenLookup::Reused);
            }
            let opened = value.split_first().and_then(|(usage, sealed)| {
                self.open_key(Record::Token, token, name, Some(*usage), sealed)
            });
            match opened {
                Some(key) => Ok(TokenLookup::Key(key)),
                None => {
                    // Not sealed by any key of the ring (a key removed too early), altered, or
                    // moved here from another name.
                    tracing::warn!(token = %TokenHash::of(token).short(), "a token's record in Redis does not open with the seal keys: treated as unknown");
                    Ok(TokenLookup::Unknown)
                }
            }
        })
    }

    fn bind_login<'a>(
        &'a self,
        code_challenge: &'a str,
        key: Arc<EphemeralKey>,
        ttl: Duration,
    ) -> BindingFuture<'a, ()> {
        Box::pin(async move {
            let name = self.names(Record::Login, code_challenge).swap_remove(0);
            let sealed = self.keyring.seal(
                Record::Login,
                code_challenge,
                &aad(&name, None),
                &key.export_secret(),
            );
            self.set("bind_login", name, sealed, ttl).await
        })
    }

    fn login_key<'a>(
        &'a self,
        code_challenge: &'a str,
    ) -> BindingFuture<'a, Option<Arc<EphemeralKey>>> {
        Box::pin(async move {
            let names = self.names(Record::Login, code_challenge);
            let keys = names.clone();
            let found: Vec<Option<Vec<u8>>> = self
                .client
                .run("login_key", |mut c| async move {
                    redis::cmd("MGET").arg(&keys).query_async(&mut c).await
                })
                .await
                .map_err(unavailable)?;
            Ok(names.iter().zip(found).find_map(|(name, value)| {
                self.open_key(Record::Login, code_challenge, name, None, &value?)
            }))
        })
    }

    fn forget_login<'a>(&'a self, code_challenge: &'a str) -> BindingFuture<'a, ()> {
        Box::pin(async move {
            let names = self.names(Record::Login, code_challenge);
            self.client
                .run("forget_login", |mut c| async move {
                    redis::cmd("DEL")
                        .arg(&names)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await
                .map_err(unavailable)
        })
    }

    /// The bindings live in Redis, shared by every replica, and expire there by their TTL: no
    /// replica sees them come and go, and counting them by prefix would take a SCAN of the
    /// whole keyspace (DBSIZE counts every key of the database). So 0, as documented with the
    /// `myinfo_proxy_key_bindings` metric: watch the binds made
    /// (`myinfo_proxy_redis_operations_total{operation="bind_token"}`) and Redis's own key
    /// counts (`INFO keyspace`) instead.
    fn live_bindings(&self) -> u64 {
        0
    }

    fn live_logins(&self) -> u64 {
        0
    }

    fn where_bindings_live(&self) -> &'static str {
        "bindings are kept in Redis, shared by every replica: a Redis that restarted empty, was flushed or evicted keys (maxmemory-policy) has lost them, and the app must run a new authorization"
    }
}
