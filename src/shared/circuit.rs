//! The circuit in front of Redis: after a failed call it opens for a short time, during which
//! calls fail at once instead of each waiting out the timeout; then one call probes (one per
//! `OPEN_FOR`, so that a probe whose caller gave up cannot keep the circuit shut), and its
//! success closes the circuit again. Each outage is logged once, and so is each recovery.
//!
//! A probe is a `PING` sent ahead of the caller's own operation: a Redis that is stalled
//! (SIGSTOP, a long fork, a full network buffer) runs what was queued when it resumes, and a
//! queued `PING` changes nothing, where a queued one-time-token take would spend a token
//! whose caller has already answered 503.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long the circuit stays open before one call may probe.
pub(crate) const OPEN_FOR: Duration = Duration::from_secs(1);

/// What a call may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Closed: go ahead.
    Closed,
    /// Open, and this call's turn to probe: `PING` first, then go ahead if it answered.
    Probe,
    /// Open: fail at once.
    Open,
}

#[derive(Debug)]
pub(crate) struct Circuit {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// An outage is under way (logged, gauge at 0).
    down: bool,
    /// Calls fail at once until then (the next probe's time while open).
    open_until: Option<Instant>,
}

impl Circuit {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
        }
    }

    /// Whether a call may go to Redis now.
    pub(crate) fn allow(&self) -> Gate {
        let mut s = self.lock();
        let now = Instant::now();
        match s.open_until {
            None => Gate::Closed,
            Some(until) if now >= until => {
                // This call probes; the others keep failing at once until it answers, or
                // until the next probe's turn.
                s.open_until = Some(now + OPEN_FOR);
                Gate::Probe
            }
            Some(_) => Gate::Open,
        }
    }

    /// A call succeeded: close the circuit (and say so once, when it was open).
    pub(crate) fn succeeded(&self) {
        let mut s = self.lock();
        if s.open_until.is_none() && !s.down {
            return;
        }
        let was_down = s.down;
        *s = State::default();
        drop(s);
        if was_down {
            crate::metrics::redis_available(true);
            tracing::info!(
                "Redis answers again: shared state (bindings, quota, throttles, nonces) resumed"
            );
        }
    }

    /// A call failed or timed out: open the circuit (and say so once per outage).
    pub(crate) fn failed(&self, reason: &str) {
        let mut s = self.lock();
        s.open_until = Some(Instant::now() + OPEN_FOR);
        if s.down {
            return;
        }
        s.down = true;
        drop(s);
        crate::metrics::redis_available(false);
        tracing::warn!(%reason, "Redis is unavailable: rate limits fall back to each replica's share (per_second / redis.fallback_replicas), bindings held only in Redis get 503 SYSTEM_SHARED_STATE_UNAVAILABLE, until it answers again");
    }

    /// Whether calls are failing fast right now.
    pub(crate) fn is_open(&self) -> bool {
        self.lock().open_until.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_on_failure_then_lets_one_probe_through() {
        let c = Circuit::new();
        assert_eq!(c.allow(), Gate::Closed);
        c.failed("timeout");
        assert_eq!(c.allow(), Gate::Open, "open: fail at once");
        tokio::time::advance(OPEN_FOR).await;
        assert_eq!(c.allow(), Gate::Probe, "half-open: one probe");
        assert_eq!(c.allow(), Gate::Open, "only one probe at a time");
        tokio::time::advance(OPEN_FOR).await;
        assert_eq!(
            c.allow(),
            Gate::Probe,
            "a probe whose caller gave up does not keep it shut"
        );
        c.failed("timeout");
        assert_eq!(c.allow(), Gate::Open, "the failed probe opens it again");
        tokio::time::advance(OPEN_FOR).await;
        assert_eq!(c.allow(), Gate::Probe);
        c.succeeded();
        assert_eq!(
            (c.allow(), c.allow()),
            (Gate::Closed, Gate::Closed),
            "closed again"
        );
        assert!(!c.is_open());
    }
}
