//! What the CIBA issuer remembers about each backchannel authentication request: its scope,
//! the user's decision (pending until a test approves or denies it), and when its latest poll
//! was (or, while one is held, will be) answered. Expiry (120 s), the hold of a pending poll
//! and the poll interval (5 s) run on the tokio clock.
//!
//! Like Singpass ("wait for at least 30s for a response"), a poll that finds the request
//! pending is held until the user answers or the hold ends. A second poll that arrives while
//! one is held overlaps it: it is counted and refused, never held too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::expiring::{Expiring, Lookup};
use crate::signing::random_id;

/// How long an `auth_req_id` may be polled (its `expires_in`).
pub(crate) const AUTH_REQ_LIFETIME: Duration = Duration::from_secs(120);

/// The least time between the answer to one poll of an `auth_req_id` and the next poll (its
/// `interval`).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Where the user is with the request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Decision {
    Pending,
    Approved {
        sub: String,
    },
    Denied,
    /// Tokens were issued; the `auth_req_id` never works again.
    Redeemed,
}

#[derive(Debug)]
struct CibaRequest {
    scope: String,
    decision: Decision,
    expires_at: Instant,
    /// When the latest poll was answered; for a held poll, when its hold ends (it stays so if
    /// the client gives up on the poll: the server does not know, and holds on).
    answered_at: Option<Instant>,
    /// Turns true when the user answers, waking a held poll.
    answered: watch::Sender<bool>,
}

/// What one poll finds, answered at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PollOutcome {
    Unknown,
    Expired,
    /// Already redeemed by an earlier poll.
    Redeemed,
    /// Sooner than [`POLL_INTERVAL`] after the previous answer.
    TooSoon,
    /// Another poll of this `auth_req_id` is still being held.
    Overlapping,
    Pending,
    Denied,
    /// The user approved: tokens for `sub` and `scope`, issued once.
    Approved {
        sub: String,
        scope: String,
    },
}

/// What a poll gets: an answer now, or a hold.
#[derive(Debug)]
pub(crate) enum Poll {
    Answer(PollOutcome),
    /// Pending: wait with [`HeldPoll::wait`], then answer with [`CibaRequests::finish_hold`].
    Hold(HeldPoll),
}

/// A pending poll being held until the user answers or `until`.
#[derive(Debug)]
pub(crate) struct HeldPoll {
    until: Instant,
    answered: watch::Receiver<bool>,
}

impl HeldPoll {
    /// When the hold ends unless the user answers sooner.
    #[cfg(test)]
    pub(crate) fn until(&self) -> Instant {
        self.until
    }

    /// Returns when the user answers or the hold ends, whichever comes first.
    pub(crate) async fn wait(mut self) {
        // An Err (the request was forgotten) ends the hold as well.
        let _ =
            tokio::time::timeout_at(self.until, self.answered.wait_for(|answered| *answered)).await;
    }
}

/// The CIBA requests of one emulator.
#[derive(Debug)]
pub(crate) struct CibaRequests {
    requests: Expiring<CibaRequest>,
    /// How long a pending poll is held.
    hold: Duration,
    overlapping_polls: AtomicU64,
}

impl CibaRequests {
    /// No requests yet; pending polls are held for `hold`.
    pub(crate) fn new(hold: Duration) -> Self {
        CibaRequests {
            requests: Expiring::default(),
            hold,
            overlapping_polls: AtomicU64::new(0),
        }
    }

    /// Opens a request for `scope`, pending; returns its `auth_req_id`.
    pub(crate) fn open(&self, scope: &str, now: Instant) -> String {
        let auth_req_id = random_id();
        let request = CibaRequest {
            scope: scope.to_owned(),
            decision: Decision::Pending,
            expires_at: now + AUTH_REQ_LIFETIME,
            answered_at: None,
            answered: watch::Sender::new(false),
        };
        self.requests
            .insert(auth_req_id.clone(), request, AUTH_REQ_LIFETIME, now);
        auth_req_id
    }

    /// The user answers a pending request: approves as `sub`, or denies (`None`). A held poll
    /// is answered at once.
    pub(crate) fn decide(
        &self,
        auth_req_id: &str,
        approved_as: Option<&str>,
        now: Instant,
    ) -> Result<(), String> {
        let outcome = self.requests.update(auth_req_id, now, |request| {
            if request.decision != Decision::Pending {
                return Err("auth_req_id was already answered".to_owned());
            }
            request.decision = match approved_as {
                Some(sub) => Decision::Approved {
                    sub: sub.to_owned(),
                },
                None => Decision::Denied,
            };
            request.answered.send_replace(true);
            Ok(())
        });
        match outcome {
            Lookup::Live(result) => result,
            Lookup::Expired => Err("auth_req_id has expired".to_owned()),
            Lookup::Unknown => Err("auth_req_id is unknown".to_owned()),
        }
    }

    /// One poll arriving at `now`. A poll that finds the request live counts for the
    /// interval, even one refused as too soon (a client must wait the interval after every
    /// answer); an overlapping one does not (the held poll's answer will).
    pub(crate) fn poll(&self, auth_req_id: &str, now: Instant) -> Poll {
        let outcome = self.requests.update(auth_req_id, now, |request| {
            if request.decision == Decision::Redeemed {
                return Poll::Answer(PollOutcome::Redeemed);
            }
            if request
                .answered_at
                .is_some_and(|answered_at| now < answered_at)
            {
                self.overlapping_polls.fetch_add(1, Ordering::Relaxed);
                return Poll::Answer(PollOutcome::Overlapping);
            }
            let too_soon = request
                .answered_at
                .is_some_and(|last| now.saturating_duration_since(last) < POLL_INTERVAL);
            request.answered_at = Some(now);
            if too_soon {
                return Poll::Answer(PollOutcome::TooSoon);
            }
            if request.decision == Decision::Pending && !self.hold.is_zero() {
                let until = now
                    .checked_add(self.hold)
                    .map_or(request.expires_at, |end| end.min(request.expires_at));
                request.answered_at = Some(until);
                return Poll::Hold(HeldPoll {
                    until,
                    answered: request.answered.subscribe(),
                });
            }
            Poll::Answer(answer(request))
        });
        match outcome {
            Lookup::Live(poll) => poll,
            Lookup::Expired => Poll::Answer(PollOutcome::Expired),
            Lookup::Unknown => Poll::Answer(PollOutcome::Unknown),
        }
    }

    /// Answers a held poll at `now` (the user's answer or the end of the hold).
    pub(crate) fn finish_hold(&self, auth_req_id: &str, now: Instant) -> PollOutcome {
        let outcome = self.requests.update(auth_req_id, now, |request| {
            request.answered_at = Some(now);
            answer(request)
        });
        match outcome {
            Lookup::Live(outcome) => outcome,
            Lookup::Expired => PollOutcome::Expired,
            Lookup::Unknown => PollOutcome::Unknown,
        }
    }

    /// Polls that arrived while another poll of the same `auth_req_id` was held.
    pub(crate) fn overlapping_polls(&self) -> u64 {
        self.overlapping_polls.load(Ordering::Relaxed)
    }
}

/// The answer a poll gets now; redeems an approved request.
fn answer(request: &mut CibaRequest) -> PollOutcome {
    match std::mem::replace(&mut request.decision, Decision::Redeemed) {
        Decision::Approved { sub } => PollOutcome::Approved {
            sub,
            scope: request.scope.clone(),
        },
        Decision::Redeemed => PollOutcome::Redeemed,
        unanswered_or_denied => {
            let outcome = if unanswered_or_denied == Decision::Denied {
                PollOutcome::Denied
            } else {
                PollOutcome::Pending
            };
            request.decision = unanswered_or_denied;
            outcome
        }
    }
}

#[cfg(test)]
mod tests;
