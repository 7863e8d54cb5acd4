//! Short-lived server-side records keyed by a random identifier (pushed requests, FAPI codes
//! and access tokens, CIBA requests), with expiry on the tokio clock so that paused-time tests
//! can walk past a window without waiting.
//!
//! An expired record is kept a while longer ([`FORGET_AFTER_EXPIRY`]) so that a late use can
//! be told apart from an unknown identifier, then forgotten, keeping memory bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::state::lock;

/// How long past its expiry a record is still recognised as expired.
const FORGET_AFTER_EXPIRY: Duration = Duration::from_secs(600);

/// `now + lifetime`, or as far ahead as the clock can go for an absurd lifetime.
fn deadline(now: Instant, lifetime: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
    now.checked_add(lifetime)
        .or_else(|| now.checked_add(YEAR))
        .unwrap_or(now)
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lookup<T> {
    Unknown,
    Expired,
    Live(T),
}

#[derive(Debug)]
struct Entry<T> {
    value: T,
    expires_at: Instant,
}

/// Records that are live until their `expires_at` (inclusive).
#[derive(Debug)]
pub(crate) struct Expiring<T> {
    entries: Mutex<HashMap<String, Entry<T>>>,
}

impl<T> Default for Expiring<T> {
    fn default() -> Self {
        Expiring {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Expiring<T> {
    /// Remembers `value` under `id`, live for `lifetime` from `now`.
    pub(crate) fn insert(&self, id: String, value: T, lifetime: Duration, now: Instant) {
        let expires_at = deadline(now, lifetime);
        let mut entries = lock(&self.entries);
        entries.retain(|_, entry| {
            entry
                .expires_at
                .checked_add(FORGET_AFTER_EXPIRY)
                .is_none_or(|forget_at| forget_at >= now)
        });
        entries.insert(id, Entry { value, expires_at });
    }

    /// Removes the record whatever it holds: a single-use identifier never works twice.
    pub(crate) fn take(&self, id: &str, now: Instant) -> Lookup<T> {
        match lock(&self.entries).remove(id) {
            None => Lookup::Unknown,
            Some(entry) if now > entry.expires_at => Lookup::Expired,
            Some(entry) => Lookup::Live(entry.value),
        }
    }

    /// Runs `change` on a live record; `Unknown`/`Expired` otherwise. An expired record is
    /// left for later lookups to find expired.
    pub(crate) fn update<R>(
        &self,
        id: &str,
        now: Instant,
        change: impl FnOnce(&mut T) -> R,
    ) -> Lookup<R> {
        match lock(&self.entries).get_mut(id) {
            None => Lookup::Unknown,
            Some(entry) if now > entry.expires_at => Lookup::Expired,
            Some(entry) => Lookup::Live(change(&mut entry.value)),
        }
    }
}

impl<T: Clone> Expiring<T> {
    /// A copy of a live record, leaving it in place (reusable access tokens).
    pub(crate) fn get(&self, id: &str, now: Instant) -> Lookup<T> {
        self.update(id, now, |value| value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_live_until_expiry_then_read_expired_then_are_forgotten() {
        let records = Expiring::default();
        let start = Instant::now();
        let window = Duration::from_secs(60);
        records.insert("a".into(), 1, window, start);
        assert_eq!(records.get("a", start + window), Lookup::Live(1));
        assert_eq!(
            records.get("a", start + window + Duration::from_secs(1)),
            Lookup::Expired
        );
        assert_eq!(records.update("a", start, |n| *n += 1), Lookup::Live(()));
        assert_eq!(records.take("a", start), Lookup::Live(2));
        assert_eq!(records.take("a", start), Lookup::Unknown);

        records.insert("b".into(), 3, window, start);
        let much_later = start + window + FORGET_AFTER_EXPIRY + Duration::from_secs(1);
        records.insert("c".into(), 4, window, much_later);
        assert_eq!(records.get("b", much_later), Lookup::Unknown);
        assert_eq!(records.get("c", much_later), Lookup::Live(4));
    }
}
