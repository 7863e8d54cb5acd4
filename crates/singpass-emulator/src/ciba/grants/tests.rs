//! The CIBA request records on paused tokio time: answers, the interval, holds, overlaps.

use super::*;

const HOLD: Duration = Duration::from_secs(30);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The answer of a poll that must not be held.
#[track_caller]
fn answered(poll: Poll) -> PollOutcome {
    match poll {
        Poll::Answer(outcome) => outcome,
        Poll::Hold(held) => panic!("held until {:?}", held.until()),
    }
}

/// The hold of a poll that must be held.
#[track_caller]
fn held(poll: Poll) -> HeldPoll {
    match poll {
        Poll::Hold(held) => held,
        Poll::Answer(outcome) => panic!("answered {outcome:?}"),
    }
}

#[test]
fn without_a_hold_a_request_is_pending_then_approved_once_at_the_interval() {
    let requests = CibaRequests::new(Duration::ZERO);
    let start = Instant::now();
    let id = requests.open("openid", start);
    assert_eq!(answered(requests.poll(&id, start)), PollOutcome::Pending);
    assert_eq!(
        answered(requests.poll(&id, start + secs(4))),
        PollOutcome::TooSoon
    );
    // The refused poll counted: 5 s after the first is only 1 s after it.
    assert_eq!(
        answered(requests.poll(&id, start + secs(5))),
        PollOutcome::TooSoon
    );
    assert_eq!(requests.decide(&id, Some("user-1"), start), Ok(()));
    assert!(requests.decide(&id, None, start).is_err());
    let later = start + secs(10);
    assert_eq!(
        answered(requests.poll(&id, later)),
        PollOutcome::Approved {
            sub: "user-1".into(),
            scope: "openid".into()
        }
    );
    assert_eq!(answered(requests.poll(&id, later)), PollOutcome::Redeemed);
    assert_eq!(answered(requests.poll("nope", later)), PollOutcome::Unknown);
    assert_eq!(requests.overlapping_polls(), 0);
}

#[test]
fn denied_and_expired_requests_say_so_at_once() {
    let requests = CibaRequests::new(HOLD);
    let start = Instant::now();
    let denied = requests.open("openid", start);
    assert_eq!(requests.decide(&denied, None, start), Ok(()));
    assert_eq!(answered(requests.poll(&denied, start)), PollOutcome::Denied);
    let expiring = requests.open("openid", start);
    let late = start + AUTH_REQ_LIFETIME + secs(1);
    assert_eq!(
        answered(requests.poll(&expiring, late)),
        PollOutcome::Expired
    );
    assert!(requests.decide(&expiring, Some("user-1"), late).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_pending_poll_is_held_then_answered_pending_and_the_interval_runs_from_the_answer() {
    let requests = CibaRequests::new(HOLD);
    let start = Instant::now();
    let id = requests.open("openid", start);
    let hold = held(requests.poll(&id, start));
    assert_eq!(hold.until(), start + HOLD);
    hold.wait().await;
    assert_eq!(Instant::now(), start + HOLD, "held for the whole hold");
    assert_eq!(
        requests.finish_hold(&id, Instant::now()),
        PollOutcome::Pending
    );
    // 35 s after the poll but 5 s after its answer is the earliest next poll.
    assert_eq!(
        answered(requests.poll(&id, start + HOLD + secs(4))),
        PollOutcome::TooSoon
    );
    let next = held(requests.poll(&id, start + HOLD + secs(9)));
    assert_eq!(next.until(), start + HOLD + secs(9) + HOLD);
    assert_eq!(requests.overlapping_polls(), 0);
}

#[tokio::test(start_paused = true)]
async fn approval_or_denial_answers_a_held_poll_at_once() {
    let requests = std::sync::Arc::new(CibaRequests::new(HOLD));
    let start = Instant::now();
    for (approve, expected) in [
        (
            true,
            PollOutcome::Approved {
                sub: "user-1".into(),
                scope: "openid".into(),
            },
        ),
        (false, PollOutcome::Denied),
    ] {
        let id = requests.open("openid", Instant::now());
        let hold = held(requests.poll(&id, Instant::now()));
        let until = hold.until();
        let waiting = tokio::spawn(hold.wait());
        tokio::time::sleep(secs(10)).await;
        assert!(!waiting.is_finished());
        let sub = approve.then_some("user-1");
        requests.decide(&id, sub, Instant::now()).expect("decided");
        waiting.await.expect("hold ended");
        assert!(Instant::now() < until, "answered before the hold's end");
        assert_eq!(requests.finish_hold(&id, Instant::now()), expected);
    }
    assert!(Instant::now() < start + HOLD * 2);
}

#[tokio::test(start_paused = true)]
async fn a_poll_during_a_hold_overlaps_even_when_the_client_gave_up_on_the_held_one() {
    let requests = CibaRequests::new(HOLD);
    let start = Instant::now();
    let id = requests.open("openid", start);
    // The client stops waiting after 10 s (a timeout), as the server cannot tell.
    drop(held(requests.poll(&id, start)));
    assert_eq!(
        answered(requests.poll(&id, start + secs(15))),
        PollOutcome::Overlapping
    );
    assert_eq!(
        answered(requests.poll(&id, start + secs(29))),
        PollOutcome::Overlapping
    );
    assert_eq!(requests.overlapping_polls(), 2);
    // The abandoned hold was answered at its end; the interval runs from there.
    assert_eq!(
        answered(requests.poll(&id, start + HOLD + secs(1))),
        PollOutcome::TooSoon
    );
    let later = start + HOLD + secs(6);
    requests
        .decide(&id, Some("user-1"), later)
        .expect("approved");
    assert!(matches!(
        answered(requests.poll(&id, later)),
        PollOutcome::Approved { .. }
    ));
    assert_eq!(requests.overlapping_polls(), 2);
}

#[test]
fn a_hold_never_outlives_the_request() {
    let requests = CibaRequests::new(HOLD);
    let start = Instant::now();
    let id = requests.open("openid", start);
    let late = start + AUTH_REQ_LIFETIME - secs(10);
    assert_eq!(
        held(requests.poll(&id, late)).until(),
        start + AUTH_REQ_LIFETIME
    );
    let absurd = CibaRequests::new(Duration::MAX);
    let id = absurd.open("openid", start);
    assert_eq!(
        held(absurd.poll(&id, start)).until(),
        start + AUTH_REQ_LIFETIME
    );
}
