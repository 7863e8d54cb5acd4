//! CIBA long polling on paused tokio time: a pending poll is held (30 s by default, as
//! Singpass) and answered `authorization_pending` at its end, or at once when the user
//! answers; a poll that overlaps a held one is refused with `slow_down` and counted. In
//! process, so that "meanwhile" is exact; one check over a socket.

use std::time::Duration;

use tokio::time::Instant;

use super::{Harness, SUB};

const HOLD: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_secs(5);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn a_pending_poll_is_held_for_the_hold_then_answered_pending() {
    let harness = Harness::in_process_with(|_| {});
    let id = harness.auth_req_id().await;
    let started = Instant::now();
    harness
        .poll(&id)
        .await
        .assert_oauth(400, "authorization_pending");
    assert_eq!(started.elapsed(), HOLD, "held for the default 30 s");

    // The interval runs from the answer: a poll 4 s after it is too soon, one 5 s after it
    // is held again.
    tokio::time::sleep(secs(4)).await;
    harness.poll(&id).await.assert_oauth(400, "slow_down");
    tokio::time::sleep(INTERVAL).await;
    let again = Instant::now();
    harness
        .poll(&id)
        .await
        .assert_oauth(400, "authorization_pending");
    assert_eq!(again.elapsed(), HOLD);
    assert_eq!(harness.emulator.ciba_overlapping_polls(), 0);

    for (hold, expected) in [(secs(2), secs(2)), (Duration::ZERO, Duration::ZERO)] {
        let harness = Harness::in_process_with(|config| config.ciba_hold = hold);
        let id = harness.auth_req_id().await;
        let started = Instant::now();
        harness
            .poll(&id)
            .await
            .assert_oauth(400, "authorization_pending");
        assert_eq!(started.elapsed(), expected, "ciba_hold {hold:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn approval_during_a_hold_answers_the_poll_at_once_with_tokens() {
    let harness = Harness::in_process_with(|_| {});
    let id = harness.auth_req_id().await;
    let started = Instant::now();
    let user = async {
        tokio::time::sleep(secs(10)).await;
        harness.emulator.approve_ciba(&id, SUB).expect("approved");
    };
    let (reply, ()) = tokio::join!(harness.poll(&id), user);
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        started.elapsed(),
        secs(10),
        "answered when the user approved"
    );
    let tokens = reply.json();
    assert_eq!(tokens["token_type"], "Bearer");
    let id_token = harness
        .open(tokens["id_token"].as_str().expect("id_token"))
        .await;
    assert_eq!(id_token.claims["sub"], SUB);
    let polls: Vec<_> = harness
        .emulator
        .received()
        .into_iter()
        .filter(|received| received.path == "/token")
        .map(|received| (received.at, received.status))
        .collect();
    assert_eq!(
        polls,
        [(started, 200)],
        "logged as it arrived, answered 200"
    );

    // Denied during a hold: access_denied, at once too.
    let id = harness.auth_req_id().await;
    let started = Instant::now();
    let user = async {
        tokio::time::sleep(secs(3)).await;
        harness.emulator.deny_ciba(&id).expect("denied");
    };
    let (reply, ()) = tokio::join!(harness.poll(&id), user);
    reply.assert_oauth(400, "access_denied");
    assert_eq!(started.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_poll_that_overlaps_a_held_one_is_refused_and_counted() {
    let harness = Harness::in_process_with(|_| {});
    let id = harness.auth_req_id().await;
    let started = Instant::now();
    let impatient = async {
        tokio::time::sleep(secs(10)).await;
        let reply = harness.poll(&id).await;
        (reply, started.elapsed())
    };
    let (held, (overlapping, answered_after)) = tokio::join!(harness.poll(&id), impatient);
    overlapping.assert_oauth(400, "slow_down");
    assert_eq!(answered_after, secs(10), "refused at once, never held");
    // The held poll is unaffected.
    held.assert_oauth(400, "authorization_pending");
    assert_eq!(started.elapsed(), HOLD);
    assert_eq!(harness.emulator.ciba_overlapping_polls(), 1);
    let rejections: Vec<_> = harness
        .emulator
        .received()
        .into_iter()
        .filter(|received| received.path == "/token")
        .map(|received| received.rejection.unwrap_or_default())
        .collect();
    assert_eq!(rejections.len(), 2);
    assert!(rejections[0].contains("still being held"), "{rejections:?}");

    // A client that waits for each answer, then the interval, never overlaps.
    tokio::time::sleep(INTERVAL).await;
    harness.emulator.approve_ciba(&id, SUB).expect("approved");
    assert_eq!(harness.poll(&id).await.status, 200);
    assert_eq!(harness.emulator.ciba_overlapping_polls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_pending_poll_is_held_over_a_socket_too() {
    let harness = Harness::start().await;
    let id = harness.auth_req_id().await;
    let started = Instant::now();
    harness
        .poll(&id)
        .await
        .assert_oauth(400, "authorization_pending");
    assert!(started.elapsed() >= HOLD, "{:?}", started.elapsed());
}
