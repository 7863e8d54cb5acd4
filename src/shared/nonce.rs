//! The newest DPoP nonce of each upstream origin (RFC 9449 sections 8 and 9), shared by every
//! replica: a nonce one replica learns is used by all, instead of each paying a rejected
//! attempt to learn it.
//!
//! The request path reads this replica's own copy. Only the first proof for an origin waits for
//! Redis (to pick up what the other replicas learned); afterwards a copy older than a second is
//! still used at once while a background task re-reads Redis. A nonce an answer hands out that
//! differs from the copy is written to Redis before the answer goes on. So a nonce that did not
//! change costs no Redis round trip on any request.

use super::RedisClient;
use crate::layer::{NonceFuture, NonceStore};
use bytes::Bytes;
use http::Response;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

static DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// How stale this replica's copy may get before it asks Redis again (in the background).
const REFRESH: Duration = Duration::from_secs(1);
/// How long a nonce is kept in Redis after it was last written (servers rotate them in
/// minutes; a stale one costs one rejected attempt, which brings the new one).
const KEEP: Duration = Duration::from_secs(300);
/// Origins held at most: they come from the configured upstreams and their discovery
/// documents, a handful; the cap only guards against a discovery document that keeps changing.
const MAX_ORIGINS: usize = 64;

/// origin -> (nonce, when it was last read from or written to Redis).
type Copies = HashMap<String, (Option<String>, Instant)>;

/// The newest `DPoP-Nonce` per origin (`scheme://host:port`), shared through Redis. As a
/// [`NonceStore`] it is what the proxy signs with when `[redis]` is configured.
#[derive(Debug)]
pub struct SharedNonces {
    client: RedisClient,
    local: Arc<Mutex<Copies>>,
}

impl SharedNonces {
    /// Nonces shared through `client`.
    pub fn new(client: RedisClient) -> Self {
        Self {
            client,
            local: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The nonce to put in the next proof for `origin`, if any replica was given one. Waits
    /// for Redis when this replica's copy is missing or older than a second.
    pub async fn get(&self, origin: &str) -> Option<String> {
        let held = lock(&self.local).get(origin).cloned();
        match held {
            Some((nonce, at)) if at.elapsed() < REFRESH => nonce,
            held => fetch(&self.client, &self.local, origin, held.and_then(|h| h.0)).await,
        }
    }

    /// Keeps the nonce an answer carries and writes it to Redis (waiting for the write); true
    /// when it differs from the one already held.
    pub async fn observe(&self, origin: &str, res: &Response<Bytes>) -> bool {
        let Some(nonce) = res.headers().get(&DPOP_NONCE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        // Opaque, but bounded and fit for a JWT claim.
        if nonce.is_empty() || nonce.len() > 512 {
            return false;
        }
        let changed = keep(&self.local, origin, nonce);
        if changed {
            store(&self.client, origin, nonce.to_owned()).await;
        }
        changed
    }
}

impl NonceStore for SharedNonces {
    fn newest<'a>(&'a self, origin: &'a str) -> NonceFuture<'a, Option<String>> {
        let held = {
            let mut map = lock(&self.local);
            match map.get_mut(origin) {
                Some((nonce, at)) => {
                    if at.elapsed() >= REFRESH && tokio::runtime::Handle::try_current().is_ok() {
                        // Stale: use it now, re-read Redis behind. Marking it read keeps the
                        // other requests of this second from starting reads of their own.
                        *at = Instant::now();
                        let (client, local) = (self.client.clone(), self.local.clone());
                        let (origin, nonce) = (origin.to_owned(), nonce.clone());
                        tokio::spawn(async move {
                            fetch(&client, &local, &origin, nonce).await;
                        });
                    }
                    Some(nonce.clone())
                }
                None => None,
            }
        };
        match held {
            Some(nonce) => Box::pin(std::future::ready(nonce)),
            // The first proof for this origin: what the other replicas learned.
            None => Box::pin(fetch(&self.client, &self.local, origin, None)),
        }
    }

    /// A nonce that changed is written before the answer goes on (one Redis call, bounded by
    /// `redis.timeout`, on an answer that is itself a rejected attempt or a server's rotation),
    /// so that a replica the app calls next already signs with it.
    fn remember<'a>(&'a self, origin: &'a str, nonce: &'a str) -> NonceFuture<'a, ()> {
        let changed = keep(&self.local, origin, nonce);
        Box::pin(async move {
            if changed {
                store(&self.client, origin, nonce.to_owned()).await;
            }
        })
    }
}

fn lock(local: &Mutex<Copies>) -> std::sync::MutexGuard<'_, Copies> {
    local.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads `origin`'s nonce from Redis into the local copy; `held` is the copy's nonce, kept
/// when Redis has none (expired) or cannot be reached.
async fn fetch(
    client: &RedisClient,
    local: &Mutex<Copies>,
    origin: &str,
    held: Option<String>,
) -> Option<String> {
    let key = client.key(&format!("n:{origin}"));
    let fetched = client
        .run("nonce_get", |mut c| async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(&mut c)
                .await
        })
        .await;
    let nonce = match fetched {
        // Redis forgot it (expired): keep ours, a server that still wants it says so.
        Ok(nonce) => nonce.or_else(|| held.clone()),
        Err(_) => held.clone(),
    };
    let mut map = lock(local);
    match map.get_mut(origin) {
        // An answer handed out a nonce while Redis was being read: that one is newer.
        Some(entry) if entry.0 != held => entry.0.clone(),
        Some(entry) => {
            *entry = (nonce.clone(), Instant::now());
            nonce
        }
        None => {
            if map.len() < MAX_ORIGINS {
                map.insert(origin.to_owned(), (nonce.clone(), Instant::now()));
            }
            nonce
        }
    }
}

/// Keeps `nonce` as `origin`'s; true when it differs from the one held.
fn keep(local: &Mutex<Copies>, origin: &str, nonce: &str) -> bool {
    let mut map = lock(local);
    let changed = map.get(origin).and_then(|h| h.0.as_deref()) != Some(nonce);
    if map.len() < MAX_ORIGINS || map.contains_key(origin) {
        map.insert(origin.to_owned(), (Some(nonce.to_owned()), Instant::now()));
    }
    changed
}

/// Writes `origin`'s newest nonce to Redis for the other replicas. A failure is counted in the
/// metrics and otherwise ignored: this replica keeps its copy, and the others learn the nonce
/// from the server at the cost of one rejected attempt.
async fn store(client: &RedisClient, origin: &str, nonce: String) {
    let key = client.key(&format!("n:{origin}"));
    let ms = u64::try_from(KEEP.as_millis()).unwrap_or(u64::MAX);
    let _ = client
        .run("nonce_set", |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(nonce)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await;
}
