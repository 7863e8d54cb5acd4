//! Fault injection scripts: scripted and random faults answer with Singpass/OAuth error
//! bodies (fresh ids, verbatim `Retry-After`), delay, hang or drop, are all recorded, and
//! never spend a code, token or jti.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::{Harness, KeyPair, Reply, SCOPE};
use singpass_emulator::{EmulatorRoute, Fault, Received};

fn status(status: u16) -> Fault {
    Fault::Status {
        status,
        retry_after: None,
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// The reply's error body has exactly the Singpass/OAuth members, and the log kept its ids.
#[track_caller]
fn assert_error_body(reply: &Reply, received: &Received, error: &str) {
    let body = reply.json();
    let mut members: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["error", "error_description", "id", "trace_id"]);
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    assert_eq!(body["id"].as_str().map(str::len), Some(36));
    assert_eq!(body["trace_id"].as_str().map(str::len), Some(32));
    assert_eq!(received.error_id.as_deref(), body["id"].as_str());
    assert_eq!(received.trace_id.as_deref(), body["trace_id"].as_str());
}

#[tokio::test]
async fn scripted_503s_then_success_without_spending_the_code() {
    let harness = Harness::start().await;
    harness
        .emulator
        .script(EmulatorRoute::Token, status(503), 2);
    let key = KeyPair::generate();
    let authorization = harness.authorize();
    let mut replies = Vec::new();
    for _ in 0..3 {
        let request = harness.signed_token_request(&authorization, &key);
        replies.push(harness.send(request).await);
    }
    let statuses: Vec<u16> = replies.iter().map(|reply| reply.status).collect();
    assert_eq!(statuses, [503, 503, 200]);

    let received = harness.emulator.received();
    assert_eq!(received.len(), 3);
    for (reply, seen) in replies.iter().zip(&received).take(2) {
        assert_error_body(reply, seen, "SERVER_SIDE_ERROR");
        assert_eq!(seen.fault.as_deref(), Some("scripted: status 503"));
        assert_eq!(seen.status, 503);
    }
    let success = &received[2];
    assert_eq!(
        (success.fault.as_deref(), success.error_id.as_deref()),
        (None, None)
    );
    assert!(received
        .iter()
        .all(|seen| seen.route == Some(EmulatorRoute::Token)));
    // Every attempt's jtis were logged (read, not verified, on the faulted ones) and none
    // repeats: the emulator never saw a jti twice.
    let assertion_jtis: HashSet<_> = received.iter().map(|r| r.assertion_jti.clone()).collect();
    let proof_jtis: HashSet<_> = received.iter().map(|r| r.proof_jti.clone()).collect();
    assert_eq!((assertion_jtis.len(), proof_jtis.len()), (3, 3));
    assert!(!assertion_jtis.contains(&None) && !proof_jtis.contains(&None));

    // A faulted /person call does not spend the one-time access token either.
    let token = replies[2].json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    harness
        .emulator
        .script(EmulatorRoute::Person, status(502), 1);
    let faulted = harness.call_person(&key, &token, SCOPE).await;
    assert_eq!(faulted.status, 502);
    assert_eq!(harness.call_person(&key, &token, SCOPE).await.status, 200);
    let person_log = harness.emulator.received();
    assert_eq!(person_log[3].route, Some(EmulatorRoute::Person));
    assert!(person_log[3].proof_jti.is_some());
}

#[tokio::test]
async fn retry_after_is_sent_verbatim() {
    let harness = Harness::start().await;
    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    let faults = [
        (503, Some("120")),
        (429, Some(date)),
        (502, None),
        (503, Some("not\na header")),
    ];
    for (code, retry_after) in faults {
        let fault = Fault::Status {
            status: code,
            retry_after: retry_after.map(str::to_owned),
        };
        harness.emulator.script(EmulatorRoute::Token, fault, 1);
    }
    let mut replies = Vec::new();
    for _ in faults {
        replies.push(harness.post_token(&[], None).await);
    }
    let received = harness.emulator.received();
    let seen: Vec<(u16, Option<&str>)> = replies
        .iter()
        .map(|reply| (reply.status, header(reply, "retry-after")))
        .collect();
    assert_eq!(
        seen,
        [
            (503, Some("120")),
            (429, Some(date)),
            (502, None),
            (503, None)
        ]
    );
    assert_error_body(&replies[0], &received[0], "SERVER_SIDE_ERROR");
    assert_error_body(&replies[1], &received[1], "TOO_MANY_REQUESTS");
    assert_eq!(
        received[1].fault.as_deref(),
        Some(format!("scripted: status 429, Retry-After {date}").as_str())
    );
}

#[tokio::test]
async fn throttling_and_oauth_error_bodies_have_their_shapes() {
    let harness = Harness::start().await;
    let route = EmulatorRoute::Token;
    let throttled = Fault::TooManyRequestsBody {
        retry_after: Some("3".to_owned()),
    };
    harness.emulator.script(route, throttled, 1);
    let unavailable = Fault::OAuthError {
        status: 503,
        error: "temporarily_unavailable".to_owned(),
    };
    harness.emulator.script(route, unavailable, 1);
    let server_error = Fault::OAuthError {
        status: 500,
        error: "server_error".to_owned(),
    };
    harness.emulator.script(route, server_error, 1);
    harness.emulator.script(route, status(404), 1);

    let mut replies = Vec::new();
    for _ in 0..4 {
        replies.push(harness.post_token(&[], None).await);
    }
    let received = harness.emulator.received();
    assert_eq!(
        (replies[0].status, header(&replies[0], "retry-after")),
        (400, Some("3"))
    );
    assert_error_body(&replies[0], &received[0], "TOO_MANY_REQUESTS");
    assert_eq!(
        (replies[1].status, header(&replies[1], "retry-after")),
        (503, None)
    );
    assert_error_body(&replies[1], &received[1], "temporarily_unavailable");
    assert_eq!(replies[2].status, 500);
    assert_error_body(&replies[2], &received[2], "server_error");
    assert_eq!(replies[3].status, 404);
    assert_error_body(&replies[3], &received[3], "CLIENT_SIDE_ERROR");
    assert_eq!(
        received[1].fault.as_deref(),
        Some("scripted: oauth 503 temporarily_unavailable")
    );
    // Singpass's error description is logged like a real refusal's.
    assert!(received.iter().all(|seen| seen.rejection.is_some()));
}

/// The statuses of `n` unsigned token calls to an emulator failing 30% of them with `seed`.
async fn random_outcomes(seed: u64, n: usize) -> (Vec<u16>, Vec<Received>) {
    let harness = Harness::start().await;
    let faults = vec![
        status(502),
        status(503),
        Fault::TooManyRequestsBody { retry_after: None },
    ];
    harness
        .emulator
        .fail_randomly(EmulatorRoute::Token, 0.3, faults, seed);
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        statuses.push(harness.post_token(&[], None).await.status);
    }
    (statuses, harness.emulator.received())
}

#[tokio::test]
async fn random_failure_replays_with_its_seed_at_about_its_fraction() {
    let (first, received) = random_outcomes(42, 1000).await;
    let (again, _) = random_outcomes(42, 1000).await;
    let (other, _) = random_outcomes(43, 1000).await;
    assert_eq!(first, again, "same seed, same outcomes");
    assert_ne!(first, other, "another seed, other outcomes");

    // Unfaulted unsigned calls are refused by the endpoint itself, with 400 and no fault.
    let faulted = received.iter().filter(|seen| seen.fault.is_some()).count();
    assert!((250..=350).contains(&faulted), "{faulted} of 1000 failed");
    for code in [502, 503] {
        assert!(first.contains(&code));
    }
    assert!(received
        .iter()
        .filter_map(|seen| seen.fault.as_deref())
        .all(|fault| fault.starts_with("random: ")));
    assert!(received
        .iter()
        .any(|seen| seen.fault.as_deref() == Some("random: TOO_MANY_REQUESTS body")));
}

#[tokio::test]
async fn every_error_answer_carries_its_own_ids() {
    let harness = Harness::start().await;
    let route = EmulatorRoute::Token;
    harness.emulator.script(route, status(503), 3);
    harness
        .emulator
        .script(route, Fault::TooManyRequestsBody { retry_after: None }, 2);
    harness
        .emulator
        .fail_randomly(route, 1.0, vec![status(500)], 1);
    for _ in 0..8 {
        harness.post_token(&[], None).await;
    }
    harness.emulator.clear_faults();
    for _ in 0..2 {
        // Real refusals get ids as well.
        harness.post_token(&[], None).await;
    }
    let received = harness.emulator.received();
    assert_eq!(
        received.iter().filter(|seen| seen.fault.is_some()).count(),
        8
    );
    let ids: HashSet<_> = received.iter().filter_map(|r| r.error_id.clone()).collect();
    let trace_ids: HashSet<_> = received.iter().filter_map(|r| r.trace_id.clone()).collect();
    assert_eq!((ids.len(), trace_ids.len()), (10, 10));
}

#[tokio::test]
async fn drop_closes_the_connection_without_an_answer() {
    let harness = Harness::start().await;
    harness
        .emulator
        .script(EmulatorRoute::Token, Fault::Drop, 1);
    let key = KeyPair::generate();
    let authorization = harness.authorize();
    let dropped = harness
        .try_send(harness.signed_token_request(&authorization, &key))
        .await;
    assert!(dropped.is_err(), "a dropped connection is a client error");
    // The next attempt, on a new connection, still finds the code unspent.
    let retry = harness
        .send(harness.signed_token_request(&authorization, &key))
        .await;
    assert_eq!(retry.status, 200);

    let received = harness.emulator.received();
    assert_eq!(received[0].status, 0);
    assert_eq!(received[0].fault.as_deref(), Some("scripted: drop"));
    assert!(received[0].error_id.is_none() && received[0].assertion_jti.is_some());
}

#[tokio::test(start_paused = true)]
async fn delay_waits_on_the_tokio_clock_then_serves() {
    let harness = Harness::start().await;
    harness.emulator.script(
        EmulatorRoute::Token,
        Fault::Delay(Duration::from_secs(2)),
        1,
    );
    let started = Instant::now();
    harness.obtain_token(&KeyPair::generate()).await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    let received = harness.emulator.received();
    assert_eq!(received[0].status, 200);
    assert_eq!(received[0].fault.as_deref(), Some("scripted: delay 2s"));
    assert_eq!(received[0].at, started);
}

/// Lets the runtime run everything that is ready (IO included) without moving paused time.
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

type HungCall = tokio::task::JoinHandle<
    Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>,
>;

/// Sends a token call that meets a scripted Hang, and waits (without moving time) until the
/// emulator has it, so that no timeout is won merely because the request never left.
async fn hung_call(harness: &Harness) -> HungCall {
    harness
        .emulator
        .script(EmulatorRoute::Token, Fault::Hang, 1);
    let request = harness.token_request(&[], None);
    let http = harness.http.clone();
    let call = tokio::spawn(async move { http.request(request).await });
    while harness.emulator.received().is_empty() {
        tokio::task::yield_now().await;
    }
    settle().await;
    assert!(!call.is_finished(), "a hung request got an answer");
    let received = harness.emulator.received();
    assert_eq!(
        (received[0].status, received[0].fault.as_deref()),
        (0, Some("scripted: hang"))
    );
    call
}

#[tokio::test(start_paused = true)]
async fn hang_never_answers_and_does_not_block_shutdown() {
    let harness = Harness::start().await;
    let mut call = hung_call(&harness).await;
    let gave_up = tokio::time::timeout(Duration::from_secs(30), &mut call).await;
    assert!(gave_up.is_err(), "no answer within the client's timeout");

    // Shutdown is not held up by the hung request, and closes its connection.
    let Harness { emulator, .. } = harness;
    emulator.shutdown().await;
    let outcome = call.await.expect("client task");
    assert!(outcome.is_err(), "the hung connection was closed");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_emulator_closes_a_hung_connection() {
    let harness = Harness::start().await;
    let call = hung_call(&harness).await;
    let Harness { emulator, .. } = harness;
    drop(emulator);
    let outcome = call.await.expect("client task");
    assert!(outcome.is_err(), "the hung connection was closed");
}
