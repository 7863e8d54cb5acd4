//! The emulator's memory: registered v4 authorization codes, the replay caches for assertion
//! and proof `jti`s and for spent access tokens, the FAPI and CIBA records, the DPoP nonces,
//! the log of everything received, and the fault plan.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::checks::nonce::DpopNonces;
use crate::ciba::grants::CibaRequests;
use crate::fapi::grants::FapiGrants;
use crate::faults::FaultPlan;
use crate::signing::EmulatorKey;
use crate::{EmulatorConfig, Received};

/// What a user consented to at `/authorize`, waiting to be exchanged once at `/token`.
#[derive(Clone, Debug)]
pub(crate) struct AuthorizationCode {
    pub(crate) sub: String,
    pub(crate) scope: String,
    pub(crate) code_challenge: String,
    pub(crate) redirect_uri: String,
}

/// Remembers identifiers until they could no longer pass the time checks anyway, so a second
/// use inside the window is caught and memory stays bounded.
#[derive(Debug, Default)]
pub(crate) struct ReplayCache {
    /// identifier -> Unix second after which it can be forgotten
    seen: Mutex<HashMap<String, i64>>,
}

impl ReplayCache {
    /// `true` the first time `id` is offered; `false` on every later offer while remembered.
    pub(crate) fn first_use(&self, id: &str, forget_after: i64, now: i64) -> bool {
        let mut seen = lock(&self.seen);
        // Skew margin: an entry is dropped only once the token it came from is past its `exp`
        // by more than the clock skew the time checks tolerate.
        seen.retain(|_, until| *until + crate::checks::jose::CLOCK_SKEW_SECS >= now);
        if seen.contains_key(id) {
            return false;
        }
        seen.insert(id.to_owned(), forget_after);
        true
    }
}

/// Everything shared by the connections of one running emulator. No `Debug`: it holds live
/// codes and, in `received`, tokens.
pub(crate) struct EmulatorState {
    pub(crate) config: EmulatorConfig,
    /// `http://HOST:PORT{base_path}`: what v4 `htu` and `aud` must name.
    pub(crate) base_url: String,
    /// `http://HOST:PORT`: the CIBA issuer, and the FAPI issuer's origin.
    pub(crate) origin: String,
    pub(crate) key: EmulatorKey,
    pub(crate) codes: Mutex<HashMap<String, AuthorizationCode>>,
    pub(crate) assertion_jtis: ReplayCache,
    pub(crate) proof_jtis: ReplayCache,
    /// `jti`s of access tokens already presented at `/person`.
    pub(crate) spent_tokens: ReplayCache,
    pub(crate) received: Mutex<Vec<Received>>,
    /// Quotas and faults to inject, per route.
    pub(crate) faults: FaultPlan,
    pub(crate) fapi: FapiGrants,
    pub(crate) ciba: CibaRequests,
    /// The FAPI issuer's DPoP nonces.
    pub(crate) nonces: DpopNonces,
    /// Whether both discovery documents answer (503 while not).
    pub(crate) discovery_available: AtomicBool,
}

impl EmulatorState {
    pub(crate) fn new(
        config: EmulatorConfig,
        origin: String,
        base_url: String,
        key: EmulatorKey,
    ) -> Self {
        let ciba = CibaRequests::new(config.ciba_hold);
        EmulatorState {
            config,
            base_url,
            origin,
            key,
            codes: Mutex::new(HashMap::new()),
            assertion_jtis: ReplayCache::default(),
            proof_jtis: ReplayCache::default(),
            spent_tokens: ReplayCache::default(),
            received: Mutex::new(Vec::new()),
            faults: FaultPlan::default(),
            fapi: FapiGrants::default(),
            ciba,
            nonces: DpopNonces::default(),
            discovery_available: AtomicBool::new(true),
        }
    }

    pub(crate) fn token_url(&self) -> String {
        format!("{}/token", self.base_url)
    }

    /// `http://HOST:PORT/fapi`: the FAPI client assertion `aud` and the id_token `iss`.
    pub(crate) fn fapi_issuer(&self) -> String {
        format!("{}{}", self.origin, crate::fapi::FAPI_PATH)
    }

    /// `{fapi issuer}{path}`, e.g. the PAR endpoint for "/par".
    pub(crate) fn fapi_url(&self, path: &str) -> String {
        format!("{}{path}", self.fapi_issuer())
    }

    pub(crate) fn register_code(&self, code: String, grant: AuthorizationCode) {
        lock(&self.codes).insert(code, grant);
    }

    /// Removes the code: whatever the outcome of the exchange, it never works again.
    pub(crate) fn take_code(&self, code: &str) -> Option<AuthorizationCode> {
        lock(&self.codes).remove(code)
    }

    pub(crate) fn record(&self, received: Received) {
        lock(&self.received).push(received);
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }
}

/// A panic while holding one of these locks cannot leave the data half-written (every critical
/// section is a single insert/remove), so a poisoned lock is simply taken over.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cache_refuses_a_second_use_and_forgets_expired_entries() {
        let cache = ReplayCache::default();
        assert!(cache.first_use("a", 100, 50));
        assert!(!cache.first_use("a", 100, 60));
        // Far past "a"'s expiry (plus skew) it is forgotten; the time checks reject it by then.
        assert!(cache.first_use("b", 1000, 500));
        assert!(cache.first_use("a", 1000, 500));
    }
}
