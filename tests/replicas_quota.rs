//! One quota for three real proxies sharing Redis, as Singpass sees it: the strict emulator
//! records when each attempt arrives, and no window holds more than the README's guarantee;
//! a 429 answered to one replica holds every replica back until its `Retry-After`. Real Redis
//! runs on the wall clock: the load is short, and the test asserts counts, never durations.

mod common;

use common::replicas::*;
use common::*;
use http::StatusCode;
use singpass_emulator::{EmulatorRoute, Fault};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const REPLICAS: usize = 3;
const PER_SECOND: f64 = 10.0;
const BURST: usize = 2;
/// Each replica is sent a token call every `EVERY` (30/s, 3x the whole quota), `CALLS` times:
/// for about 10 s.
const EVERY: Duration = Duration::from_millis(33);
const CALLS: usize = 300;

async fn replicas() -> Arc<Replicas> {
    let routes =
        format!("[upstream.routes.token.rate_limit]\nper_second = {PER_SECOND}\nburst = {BURST}\n");
    Arc::new(Replicas::start_with(REPLICAS, "timeout = \"500ms\"", &routes).await)
}

/// A v4 token call with a fresh code, at `replica`.
async fn token_call(r: &Replicas, replica: usize) -> Answer {
    let (verifier, challenge) = pkce();
    let code = r.emulator.mint_code(SUB, SCOPE, &challenge, REDIRECT);
    r.form(replica, "/com/v4/token", token_form(&code, &verifier))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_proxies_at_three_times_the_quota_keep_to_it_together() {
    let r = replicas().await;
    // One call per replica first, so that the measured attempts do not include a first
    // connection's set-up (which would delay an attempt after its permit).
    for replica in 0..REPLICAS {
        let warm = token_call(&r, replica).await;
        assert_eq!(warm.status, StatusCode::OK, "{:?}", warm.body);
    }
    let warmed = r.emulator.received().len();
    let started = Instant::now();
    let mut calls = Vec::new();
    let mut tick = tokio::time::interval(EVERY);
    for _ in 0..CALLS {
        tick.tick().await;
        for replica in 0..REPLICAS {
            let r = r.clone();
            calls.push(tokio::spawn(async move { token_call(&r, replica).await }));
        }
    }
    let (mut ok, mut limited) = (0, 0);
    for call in calls {
        let answer = call.await.unwrap();
        match answer.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                answer.problem("RESOURCE_RATE_LIMITED");
                limited += 1;
            }
            other => panic!("{other} {:?}", answer.body),
        }
    }
    // The whole run: from the first call sent to the last answer.
    let span = started.elapsed();
    let mut arrived: Vec<_> = r.emulator.received()[warmed..]
        .iter()
        .filter(|x| x.route == Some(EmulatorRoute::Token))
        .map(|x| x.at)
        .collect();
    arrived.sort();
    let in_one_second = most_in_window(&arrived, Duration::from_secs(1));
    eprintln!(
        "{ok} answered 200, {limited} refused; {} attempts upstream over {span:?}, at most {in_one_second} in 1 s",
        arrived.len()
    );
    assert_eq!(
        ok,
        arrived.len(),
        "every attempt upstream was a granted call"
    );
    let bound = |w: Duration| BURST as f64 + PER_SECOND * w.as_secs_f64();
    assert!(
        in_one_second as f64 <= bound(Duration::from_secs(1)),
        "{in_one_second} attempts in 1 s"
    );
    let in_ten_seconds = most_in_window(&arrived, Duration::from_secs(10));
    assert!(
        in_ten_seconds as f64 <= bound(Duration::from_secs(10)),
        "{in_ten_seconds} attempts in 10 s"
    );
    assert!(
        arrived.len() as f64 <= bound(span),
        "{} attempts in the whole run ({span:?})",
        arrived.len()
    );
    // The quota is used, not only refused: about 10/s while the load lasts (about 100).
    assert!(ok >= 70, "only {ok} granted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_answered_to_one_proxy_holds_back_all_three_until_retry_after() {
    let r = replicas().await;
    r.emulator.script(
        EmulatorRoute::Token,
        Fault::Status {
            status: 429,
            retry_after: Some("2".into()),
        },
        1,
    );
    let throttled = token_call(&r, 0).await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        throttled.body
    );
    let after_throttle = r.emulator.received().len();
    // Within the pause, every replica holds its calls back without calling Singpass.
    for round in 0..3 {
        for replica in 0..REPLICAS {
            let answer = token_call(&r, replica).await;
            assert_eq!(
                answer.status,
                StatusCode::TOO_MANY_REQUESTS,
                "round {round}, replica {replica}: {:?}",
                answer.body
            );
            answer.problem("PROVIDER_THROTTLED");
            let wait: u64 = answer.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&wait), "Retry-After: {wait}");
        }
    }
    assert_eq!(
        r.emulator.received().len(),
        after_throttle,
        "nothing reached Singpass during the pause"
    );
    // Once Retry-After has passed, calls go through again (at the lowered rate).
    tokio::time::sleep_until(Instant::now() + Duration::from_secs(2)).await;
    let again = token_call(&r, 1).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
}
