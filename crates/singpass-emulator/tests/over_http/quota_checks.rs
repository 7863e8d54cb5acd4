//! Quota scripts on paused tokio time: the burst, then the sustained rate; 429 with a
//! TOO_MANY_REQUESTS body and `Retry-After`; refusals recorded and spending nothing.

use std::time::Duration;

use tokio::time::Instant;

use super::{Harness, KeyPair, Reply};
use singpass_emulator::{EmulatorRoute, Fault};

/// A correctly signed exchange of a fresh code.
async fn exchange(harness: &Harness) -> Reply {
    let authorization = harness.authorize();
    let request = harness.signed_token_request(&authorization, &KeyPair::generate());
    harness.send(request).await
}

#[tokio::test(start_paused = true)]
async fn a_quota_admits_its_burst_then_its_rate() {
    let harness = Harness::start().await;
    harness
        .emulator
        .set_quota(EmulatorRoute::Token, 10.0, 2, true);
    let start = Instant::now();

    let mut replies = Vec::new();
    for _ in 0..30 {
        replies.push(exchange(&harness).await);
    }
    let admitted = replies.iter().filter(|reply| reply.status == 200).count();
    assert_eq!(admitted, 2, "the burst, and no more");
    for refused in replies.iter().filter(|reply| reply.status != 200) {
        assert_eq!(refused.status, 429);
        let retry_after = refused.headers.get("retry-after").map(|v| v.as_bytes());
        assert_eq!(retry_after, Some(&b"1"[..]), "0.1 s, rounded up");
        let body = refused.json();
        assert_eq!(body["error"], "TOO_MANY_REQUESTS");
        assert!(body["id"].is_string() && body["trace_id"].is_string());
    }

    // Over the next second, one request every 100 ms gets through: 10 of 30.
    let mut later = 0;
    for _ in 0..10 {
        tokio::time::advance(Duration::from_millis(100)).await;
        for _ in 0..3 {
            later += usize::from(exchange(&harness).await.status == 200);
        }
    }
    assert_eq!(later, 10);

    // Every request was recorded, refused ones as 429 with the quota named.
    let received = harness.emulator.received();
    assert_eq!(received.len(), 60);
    let refused: Vec<_> = received.iter().filter(|seen| seen.status == 429).collect();
    assert_eq!(refused.len(), 48);
    assert!(refused.iter().all(|seen| {
        seen.fault.as_deref() == Some("quota: over 10/s, burst 2")
            && seen.error_id.is_some()
            && seen.assertion_jti.is_some()
    }));
    // `at` is on the tokio clock: windowed counting works on paused time.
    let first_window = received
        .iter()
        .filter(|seen| seen.at < start + Duration::from_millis(500))
        .count();
    assert_eq!(first_window, 30 + 4 * 3);
}

#[tokio::test(start_paused = true)]
async fn refusals_spend_no_code_and_no_scripted_fault() {
    let harness = Harness::start().await;
    let route = EmulatorRoute::Token;
    harness.emulator.set_quota(route, 1.0, 1, false);
    let unavailable = Fault::Status {
        status: 503,
        retry_after: None,
    };
    harness.emulator.script(route, unavailable, 2);
    let key = KeyPair::generate();
    let authorization = harness.authorize();
    let mut statuses = Vec::new();
    for step in 0..5 {
        if step > 0 {
            tokio::time::advance(Duration::from_millis(600)).await;
        }
        let reply = harness
            .send(harness.signed_token_request(&authorization, &key))
            .await;
        if reply.status == 429 {
            assert!(reply.headers.get("retry-after").is_none());
        }
        statuses.push(reply.status);
    }
    // t=0 admitted (scripted 503), 0.6 s refused, 1.2 s admitted (the second 503),
    // 1.8 s refused, 2.4 s admitted and served with the same code.
    assert_eq!(statuses, [503, 429, 503, 429, 200]);

    harness.emulator.clear_faults();
    for _ in 0..5 {
        assert_eq!(exchange(&harness).await.status, 200);
    }
}

#[tokio::test(start_paused = true)]
async fn quotas_are_per_route() {
    let harness = Harness::start().await;
    harness
        .emulator
        .set_quota(EmulatorRoute::Person, 1.0, 0, true);
    let key = KeyPair::generate();
    for _ in 0..3 {
        let token = harness.obtain_token(&key).await;
        let reply = harness.call_person(&key, &token, "uinfin").await;
        assert_eq!(reply.status, 429);
        assert_eq!(
            reply.headers.get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }
}
