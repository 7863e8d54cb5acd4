//! Redis stopped (SIGSTOP) mid-load under three real proxies, then resumed: every app request
//! is answered (never a hang), upstream attempts keep to each replica's fallback share of the
//! quota, `/readyz` stays ready, each proxy logs the outage once, and the bindings made before
//! work again afterwards. Real Redis runs on the wall clock: the test controls how long Redis
//! is stopped and asserts outcomes and counts, never durations.

mod common;

use common::replicas::*;
use common::*;
use http::StatusCode;
use singpass_emulator::EmulatorRoute;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long Redis stays stopped: longer than the load below, and than `redis.timeout` plus
/// the 1 s clock allowance of the one-time-token take (a take queued in the stopped Redis
/// must be refused when it finally runs).
const STOPPED: Duration = Duration::from_secs(10);
/// Calls of each kind per replica while Redis is stopped, one every `EVERY`: until shortly
/// before it resumes, so that some calls are sent within that allowance of the resumption.
const CALLS: usize = 98;
const EVERY: Duration = Duration::from_millis(100);
/// The token route's quota over all replicas, and so each replica's fallback share (3/s,
/// burst 1) with `fallback_replicas = 3`.
const PER_SECOND: f64 = 9.0;
const REPLICAS: usize = 3;

/// An answer within the proxy's own deadlines: a hang fails the test instead of stalling it.
async fn answered<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the proxy answered")
}

/// Calls `person` with `token` at `replica` as an app honouring `Retry-After` would, a few
/// times at most; the last answer.
async fn person_retrying(r: &Replicas, replica: usize, token: &str) -> Answer {
    let path = person_path();
    honouring_retry_after(|| answered(r.bearer(replica, &path, token))).await
}

fn gauge() -> Option<String> {
    myinfo_proxy::metrics::render()
        .lines()
        .find(|l| l.starts_with("myinfo_proxy_redis_available "))
        .map(str::to_owned)
}

// One thread: the log capture sees every proxy's events.
#[tokio::test]
async fn redis_stopped_mid_load_then_resumed() {
    let (logs, _guard) = common::logs::capture();
    let r = Arc::new(
        Replicas::start_with(
            REPLICAS,
            "timeout = \"200ms\"",
            &format!(
                "[upstream.routes.token.rate_limit]\nper_second = {PER_SECOND}\nburst = 3\nmax_wait = \"1s\"\n"
            ),
        )
        .await,
    );
    // Bindings made before the outage, at each replica.
    let mut tokens = Vec::new();
    for i in 0..2 * REPLICAS {
        tokens.push(r.v4_token(i).await);
    }
    assert_eq!(gauge().as_deref(), Some("myinfo_proxy_redis_available 1"));

    r.redis.pause();
    let stopped_at = Instant::now();
    let mut calls = Vec::new();
    // At each replica, one every EVERY whatever the answers: a person call with one of the
    // tokens bound before the outage (each presented several times), and half a tick later a
    // token call. The person calls come first so that the circuit's once-a-second probes fall
    // on one-time-token takes, the riskiest call to leave queued in a stopped Redis.
    let mut tick = tokio::time::interval(EVERY);
    for k in 0..CALLS {
        tick.tick().await;
        for replica in 0..REPLICAS {
            let app = r.clone();
            calls.push(tokio::spawn(async move {
                tokio::time::sleep(EVERY / 2).await;
                let (verifier, challenge) = pkce();
                let code = app.emulator.mint_code(SUB, SCOPE, &challenge, REDIRECT);
                let form = token_form(&code, &verifier);
                (
                    "token",
                    answered(app.form(replica, "/com/v4/token", form)).await,
                )
            }));
            let (app, token) = (r.clone(), tokens[(k + replica) % tokens.len()].clone());
            calls.push(tokio::spawn(async move {
                (
                    "person",
                    answered(app.bearer(replica, &person_path(), &token)).await,
                )
            }));
        }
    }
    // Mid-outage: still ready (an outage of Redis must not empty the Service), gauge at 0.
    for replica in 0..REPLICAS {
        assert_eq!(r.readyz(replica), StatusCode::OK, "replica {replica}");
    }
    assert_eq!(gauge().as_deref(), Some("myinfo_proxy_redis_available 0"));
    let mut tally = std::collections::BTreeMap::new();
    for call in calls {
        let (kind, answer) = call.await.unwrap();
        let code = match answer.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer.headers["retry-after"], "1");
                answer.problem("SYSTEM_SHARED_STATE_UNAVAILABLE")
            }
            StatusCode::TOO_MANY_REQUESTS if kind == "token" => {
                answer.problem("RESOURCE_RATE_LIMITED")
            }
            other => panic!("{kind}: {other} {:?}", answer.body),
        }["title"]
            .as_str()
            .unwrap()
            .to_owned();
        *tally.entry((kind, code)).or_insert(0) += 1;
    }
    eprintln!("answers during the outage: {tally:?}");
    assert_eq!(
        tally.values().sum::<usize>(),
        2 * CALLS * REPLICAS,
        "none lost"
    );
    assert_eq!(
        tally.get(&("person", "SYSTEM_SHARED_STATE_UNAVAILABLE".to_owned())),
        Some(&(CALLS * REPLICAS)),
        "no key handed out while Redis was stopped"
    );
    tokio::time::sleep_until(stopped_at + STOPPED).await;
    r.redis.resume();
    let resumed_at = Instant::now();

    // Upstream attempts while Redis was stopped: each replica within its fallback share (3/s,
    // burst 1), so all three within the quota's own bound, burst + per_second x W = 3 + 9 W.
    let during: Vec<_> = arrivals(&r.emulator, EmulatorRoute::Token)
        .into_iter()
        .filter(|t| *t >= stopped_at && *t <= resumed_at)
        .collect();
    let share = PER_SECOND / REPLICAS as f64;
    let bound = |w: Duration| REPLICAS as f64 * (1.0 + share * w.as_secs_f64());
    let in_one_second = most_in_window(&during, Duration::from_secs(1));
    eprintln!(
        "{} token attempts upstream while stopped, at most {in_one_second} in 1 s",
        during.len()
    );
    assert!(
        in_one_second as f64 <= bound(Duration::from_secs(1)),
        "{in_one_second} in 1 s"
    );
    assert!(
        during.len() as f64 <= bound(resumed_at - stopped_at),
        "{} attempts while stopped",
        during.len()
    );
    assert!(
        during.len() >= REPLICAS,
        "the fallback lets each replica's share through"
    );

    // Back: the bindings made before the outage work, at yet another replica.
    for (i, token) in tokens.iter().enumerate() {
        let answer = person_retrying(&r, i + 2, token).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "token {i}: {:?}",
            answer.body
        );
    }
    assert_eq!(gauge().as_deref(), Some("myinfo_proxy_redis_available 1"));
    // And new logins work without a restart.
    let token = r.v4_token(0).await;
    assert_eq!(
        r.bearer(1, &person_path(), &token).await.status,
        StatusCode::OK
    );

    let lines = |start: &str| {
        logs.events()
            .iter()
            .filter(|e| e.field("message").is_some_and(|m| m.starts_with(start)))
            .count()
    };
    assert_eq!(
        (lines("Redis is unavailable"), lines("Redis answers again")),
        (REPLICAS, REPLICAS),
        "one line per proxy and outage, not per request"
    );
    let warnings = logs
        .events()
        .iter()
        .filter(|e| e.level == tracing::Level::WARN)
        .count();
    assert_eq!(warnings, REPLICAS, "no other warning per request");
}
