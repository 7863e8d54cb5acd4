//! What the CIBA issuer remembers about each backchannel authentication request: its scope,
//! the user's decision (pending until a test approves or denies it), and when the client last
//! polled. Expiry (120 s) and the poll interval (5 s) run on the tokio clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::expiring::{Expiring, Lookup};
use crate::signing::random_id;

/// How long an `auth_req_id` may be polled (its `expires_in`).
pub(crate) const AUTH_REQ_LIFETIME: Duration = Duration::from_secs(120);

/// The least time between two polls of one `auth_req_id` (its `interval`).
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
    last_poll: Option<Instant>,
}

/// What one poll finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PollOutcome {
    Unknown,
    Expired,
    /// Already redeemed by an earlier poll.
    Redeemed,
    /// Sooner than [`POLL_INTERVAL`] after the previous poll.
    TooSoon,
    Pending,
    Denied,
    /// The user approved: tokens for `sub` and `scope`, issued once.
    Approved {
        sub: String,
        scope: String,
    },
}

/// The CIBA requests of one emulator.
#[derive(Debug, Default)]
pub(crate) struct CibaRequests {
    requests: Expiring<CibaRequest>,
}

impl CibaRequests {
    /// Opens a request for `scope`, pending; returns its `auth_req_id`.
    pub(crate) fn open(&self, scope: &str, now: Instant) -> String {
        let auth_req_id = random_id();
        let request = CibaRequest {
            scope: scope.to_owned(),
            decision: Decision::Pending,
            last_poll: None,
        };
        self.requests
            .insert(auth_req_id.clone(), request, AUTH_REQ_LIFETIME, now);
        auth_req_id
    }

    /// The user answers a pending request: approves as `sub`, or denies (`None`).
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
            Ok(())
        });
        match outcome {
            Lookup::Live(result) => result,
            Lookup::Expired => Err("auth_req_id has expired".to_owned()),
            Lookup::Unknown => Err("auth_req_id is unknown".to_owned()),
        }
    }

    /// One poll at `now`. A poll that finds the request live counts for the interval, even
    /// one refused as too soon (a client must wait the interval after every poll).
    pub(crate) fn poll(&self, auth_req_id: &str, now: Instant) -> PollOutcome {
        let outcome = self.requests.update(auth_req_id, now, |request| {
            if request.decision == Decision::Redeemed {
                return PollOutcome::Redeemed;
            }
            let too_soon = request
                .last_poll
                .is_some_and(|last| now.saturating_duration_since(last) < POLL_INTERVAL);
            request.last_poll = Some(now);
            if too_soon {
                return PollOutcome::TooSoon;
            }
            match std::mem::replace(&mut request.decision, Decision::Redeemed) {
                Decision::Approved { sub } => PollOutcome::Approved {
                    sub,
                    scope: request.scope.clone(),
                },
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
        });
        match outcome {
            Lookup::Live(outcome) => outcome,
            Lookup::Expired => PollOutcome::Expired,
            Lookup::Unknown => PollOutcome::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_pending_then_approved_once_at_the_interval() {
        let requests = CibaRequests::default();
        let start = Instant::now();
        let id = requests.open("openid", start);
        assert_eq!(requests.poll(&id, start), PollOutcome::Pending);
        assert_eq!(
            requests.poll(&id, start + Duration::from_secs(4)),
            PollOutcome::TooSoon
        );
        // The refused poll counted: 5 s after the first is only 1 s after it.
        assert_eq!(
            requests.poll(&id, start + Duration::from_secs(5)),
            PollOutcome::TooSoon
        );
        assert_eq!(requests.decide(&id, Some("user-1"), start), Ok(()));
        assert!(requests.decide(&id, None, start).is_err());
        let later = start + Duration::from_secs(10);
        assert_eq!(
            requests.poll(&id, later),
            PollOutcome::Approved {
                sub: "user-1".into(),
                scope: "openid".into()
            }
        );
        assert_eq!(requests.poll(&id, later), PollOutcome::Redeemed);
        assert_eq!(requests.poll("nope", later), PollOutcome::Unknown);
    }

    #[test]
    fn denied_and_expired_requests_say_so() {
        let requests = CibaRequests::default();
        let start = Instant::now();
        let denied = requests.open("openid", start);
        assert_eq!(requests.decide(&denied, None, start), Ok(()));
        assert_eq!(requests.poll(&denied, start), PollOutcome::Denied);
        let expiring = requests.open("openid", start);
        let late = start + AUTH_REQ_LIFETIME + Duration::from_secs(1);
        assert_eq!(requests.poll(&expiring, late), PollOutcome::Expired);
        assert!(requests.decide(&expiring, Some("user-1"), late).is_err());
    }
}
