//! The newest DPoP nonce of each upstream origin (RFC 9449 sections 8 and 9), shared by every
//! replica: a nonce one replica learns is used by all, instead of each paying a rejected
//! attempt to learn it. Each replica keeps its own copy and refreshes it from Redis at most
//! once a second per origin, so the nonce adds no round trip to most attempts.

use super::RedisClient;
use bytes::Bytes;
use http::Response;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

static DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// How stale this replica's copy may get before it asks Redis again.
const REFRESH: Duration = Duration::from_secs(1);
/// How long a nonce is kept in Redis after it was last handed out (servers rotate them in
/// minutes; a stale one costs one rejected attempt, which brings the new one).
const KEEP: Duration = Duration::from_secs(300);

/// The newest `DPoP-Nonce` per origin (`scheme://host:port`), shared through Redis.
#[derive(Debug)]
pub struct SharedNonces {
    client: RedisClient,
    /// origin -> (nonce, when it was last read from or written to Redis). One entry per
    /// configured upstream origin: bounded by the config.
    local: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl SharedNonces {
    /// Nonces shared through `client`.
    pub fn new(client: RedisClient) -> Self {
        Self {
            client,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// The nonce to put in the next proof for `origin`, if any replica was given one.
    pub async fn get(&self, origin: &str) -> Option<String> {
        let held = self.lock().get(origin).cloned();
        if let Some((nonce, at)) = &held {
            if at.elapsed() < REFRESH {
                return nonce.clone();
            }
        }
        let key = self.client.key(&format!("n:{origin}"));
        let fetched = self
            .client
            .run("nonce_get", |mut c| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await;
        match fetched {
            Ok(nonce) => {
                // Redis forgot it (expired): keep ours, a server that still wants it says so.
                let nonce = nonce.or_else(|| held.and_then(|h| h.0));
                self.lock()
                    .insert(origin.to_owned(), (nonce.clone(), Instant::now()));
                nonce
            }
            // Redis unavailable: this replica's own copy is the best there is.
            Err(_) => held.and_then(|h| h.0),
        }
    }

    /// Keeps the nonce an answer carries (and tells the other replicas); true when it differs
    /// from the one already held.
    pub async fn observe(&self, origin: &str, res: &Response<Bytes>) -> bool {
        let Some(nonce) = res.headers().get(&DPOP_NONCE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        // Opaque, but bounded and fit for a JWT claim.
        if nonce.is_empty() || nonce.len() > 512 {
            return false;
        }
        let changed = {
            let mut map = self.lock();
            let changed = map.get(origin).and_then(|h| h.0.as_deref()) != Some(nonce);
            map.insert(origin.to_owned(), (Some(nonce.to_owned()), Instant::now()));
            changed
        };
        if changed {
            let key = self.client.key(&format!("n:{origin}"));
            let value = nonce.to_owned();
            let ms = u64::try_from(KEEP.as_millis()).unwrap_or(u64::MAX);
            let _ = self
                .client
                .run("nonce_set", |mut c| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("PX")
                        .arg(ms)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
        }
        changed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<String>, Instant)>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }
}
