//! One quota, throttles and DPoP nonces shared by several replicas, against a real
//! redis-server. Rate checks need Redis TIME, so they run on the wall clock: kept short, and
//! they assert counts, never durations.

mod common;

use bytes::Bytes;
use common::redis_server::RedisServer;
use common::replicas::most_in_window;
use myinfo_proxy::config::{Quota, RateLimitSettings};
use myinfo_proxy::error::{ProblemCode, UpstreamIds};
use myinfo_proxy::shared::{RedisClient, SharedGlobalQuota, SharedNonces, SharedRouteLimiter};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

fn client(redis: &RedisServer, replicas: u32) -> RedisClient {
    RedisClient::connect(&redis.url(), "p", Duration::from_millis(100), replicas).unwrap()
}

fn settings(per_second: f64, burst: u32) -> RateLimitSettings {
    RateLimitSettings {
        quota: Some(Quota { per_second, burst }),
        max_wait: Duration::from_millis(250),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_at_three_times_the_quota_never_exceed_it_together() {
    common::logs::install();
    let redis = RedisServer::start();
    let (per_second, burst) = (10.0, 2);
    let replicas: Vec<Arc<SharedRouteLimiter>> = (0..3)
        .map(|_| {
            Arc::new(SharedRouteLimiter::new(
                client(&redis, 3),
                "v4.person",
                &settings(per_second, burst),
                None,
            ))
        })
        .collect();
    let grants = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let run_for = Duration::from_secs(3);
    let mut drivers = Vec::new();
    for limiter in &replicas {
        // Each replica gets 30 requests a second (3x the whole quota) for 3 s: 90 requests.
        let (limiter, grants, refused) = (limiter.clone(), grants.clone(), refused.clone());
        drivers.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            for _ in 0..90 {
                tick.tick().await;
                let (limiter, grants, refused) = (limiter.clone(), grants.clone(), refused.clone());
                calls.push(tokio::spawn(async move {
                    let give_up = Instant::now() + Duration::from_millis(250);
                    match limiter.acquire(give_up, "v4_person").await {
                        Ok(()) => grants.lock().unwrap().push(Instant::now()),
                        Err(e) => {
                            assert_eq!(e.code, ProblemCode::ResourceRateLimited, "{e}");
                            *refused.lock().unwrap() += 1;
                        }
                    }
                }));
            }
            for c in calls {
                c.await.unwrap();
            }
        }));
    }
    for d in drivers {
        d.await.unwrap();
    }
    let mut grants = grants.lock().unwrap().clone();
    grants.sort();
    let refused = *refused.lock().unwrap();
    assert_eq!(grants.len() + refused, 270);
    eprintln!(
        "{} granted, {refused} refused; most in 1 s: {}",
        grants.len(),
        most_in_window(&grants, Duration::from_secs(1))
    );
    let in_one_second = most_in_window(&grants, Duration::from_secs(1));
    assert!(
        in_one_second <= burst as usize + 10,
        "{in_one_second} grants in one second"
    );
    let span = *grants.last().unwrap() - grants[0];
    let bound = burst as f64 + per_second * span.as_secs_f64();
    assert!(
        grants.len() as f64 <= bound,
        "{} grants in {span:?}",
        grants.len()
    );
    // The quota is used, not just refused: about 10/s for the 3 s the load lasts.
    assert!(
        grants.len() >= 20,
        "only {} grants in {run_for:?}",
        grants.len()
    );
    assert!(
        refused >= 150,
        "only {refused} of 270 refused at 3x the quota"
    );
}

#[tokio::test]
async fn the_route_and_the_global_bucket_are_both_checked_before_either_is_spent() {
    common::logs::install();
    let redis = RedisServer::start();
    let c = client(&redis, 1);
    let global = SharedGlobalQuota::new(
        &c,
        Quota {
            per_second: 0.1,
            burst: 2,
        },
    );
    let a = SharedRouteLimiter::new(c.clone(), "a", &settings(0.1, 1), Some(global.clone()));
    let b = SharedRouteLimiter::new(c.clone(), "b", &settings(0.1, 5), Some(global));
    let now = || Instant::now();
    a.acquire(now(), "a").await.unwrap();
    let err = a.acquire(now(), "a").await.unwrap_err();
    assert_eq!(err.code, ProblemCode::ResourceRateLimited);
    assert!(
        err.detail.contains("route a"),
        "refused by the route bucket: {}",
        err.detail
    );
    // Route a's refusal spent no global permit: b gets the second one, then the global is out.
    b.acquire(now(), "b").await.unwrap();
    let err = b.acquire(now(), "b").await.unwrap_err();
    assert!(err.detail.contains("global"), "{}", err.detail);
    assert!(err.retry_after.is_some_and(|r| r > Duration::from_secs(1)));
}

#[tokio::test]
async fn a_throttle_at_one_replica_pauses_the_route_and_lowers_its_rate_at_all() {
    common::logs::install();
    let redis = RedisServer::start();
    let replicas: Vec<SharedRouteLimiter> = (0..3)
        .map(|_| {
            SharedRouteLimiter::new(client(&redis, 3), "fapi.token", &settings(10.0, 10), None)
        })
        .collect();
    let ids = UpstreamIds {
        id: Some("err-1".into()),
        trace_id: Some("trace-1".into()),
    };
    replicas[0]
        .on_throttle(Some(Duration::from_secs(2)), ids)
        .await;
    for (i, r) in replicas.iter().enumerate() {
        let err = r
            .acquire(Instant::now() + Duration::from_millis(250), "fapi_token")
            .await
            .unwrap_err();
        assert_eq!(err.code, ProblemCode::ProviderThrottled, "replica {i}");
        let after = err.retry_after.unwrap();
        assert!(
            after > Duration::from_secs(1) && after <= Duration::from_secs(2),
            "replica {i}: {after:?}"
        );
        assert_eq!(r.effective_rate(), 5.0, "replica {i} sees the halved rate");
    }
    // More throttles within the same pause do not lower it again.
    replicas[1]
        .on_throttle(Some(Duration::from_secs(1)), UpstreamIds::default())
        .await;
    let err = replicas[2]
        .acquire(Instant::now(), "fapi_token")
        .await
        .unwrap_err();
    assert!(
        err.retry_after.unwrap() > Duration::from_secs(1),
        "the longer pause stands"
    );
    assert_eq!(replicas[2].effective_rate(), 5.0);
}

#[tokio::test]
async fn a_lowered_rate_climbs_back_with_the_time_since_the_pause_ended() {
    common::logs::install();
    let redis = RedisServer::start();
    let limiter = SharedRouteLimiter::new(client(&redis, 1), "r", &settings(10.0, 10), None);
    let mut conn = redis.connection();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut conn).unwrap();
    let now_us = secs * 1_000_000 + micros;
    // Halved to 5/s at 10/s; the pause ended 3.5 s ago: three steps of 5% of the ceiling.
    let lowered = |ago_s: f64| {
        let since = now_us - (ago_s * 1e6) as u64;
        redis::cmd("HSET")
            .arg("p:a:r")
            .arg(&["rate", "5", "ceiling", "10", "since", &since.to_string()])
            .query::<()>(&mut redis.connection())
            .unwrap();
    };
    lowered(3.5);
    limiter
        .acquire(Instant::now() + Duration::from_secs(1), "r")
        .await
        .unwrap();
    assert!(
        (limiter.effective_rate() - 6.5).abs() < 1e-9,
        "{}",
        limiter.effective_rate()
    );
    // 95% of the ceiling after 9 s, then +1% every 30 s: past the configured rate, it is back.
    lowered(100.0);
    limiter
        .acquire(Instant::now() + Duration::from_secs(1), "r")
        .await
        .unwrap();
    assert!(
        (limiter.effective_rate() - 9.5 * 1.01f64.powi(3)).abs() < 1e-3,
        "{}",
        limiter.effective_rate()
    );
    lowered(300.0);
    limiter
        .acquire(Instant::now() + Duration::from_secs(1), "r")
        .await
        .unwrap();
    assert_eq!(limiter.effective_rate(), 10.0);
}

#[tokio::test]
async fn a_dpop_nonce_learned_at_one_replica_is_used_by_all() {
    common::logs::install();
    let redis = RedisServer::start();
    let (a, b) = (
        SharedNonces::new(client(&redis, 2)),
        SharedNonces::new(client(&redis, 2)),
    );
    let origin = "https://id.example:443";
    assert_eq!(b.get(origin).await, None);
    let res = http::Response::builder()
        .status(400)
        .header("dpop-nonce", "nonce-1")
        .body(Bytes::new())
        .unwrap();
    assert!(a.observe(origin, &res).await, "news");
    assert!(!a.observe(origin, &res).await, "the same nonce is not news");
    let fresh = SharedNonces::new(client(&redis, 2));
    assert_eq!(fresh.get(origin).await.as_deref(), Some("nonce-1"));
    assert_eq!(fresh.get("https://other:443").await, None);
}

#[tokio::test]
async fn while_redis_is_stopped_each_replica_keeps_to_its_share_and_logs_once() {
    let (logs, _guard) = common::logs::capture();
    let redis = RedisServer::start();
    let c = client(&redis, 4);
    // 8/s burst 4 over 4 replicas: each keeps to 2/s, burst 1, while Redis is away.
    let limiter = SharedRouteLimiter::new(c.clone(), "v4.token", &settings(8.0, 4), None);
    limiter.acquire(Instant::now(), "v4_token").await.unwrap();
    redis.pause();
    let (mut granted, mut refused) = (0, 0);
    let timeouts_before = common::redis_outcomes("timeout");
    let started = Instant::now();
    for _ in 0..40 {
        match limiter.acquire(Instant::now(), "v4_token").await {
            Ok(()) => granted += 1,
            Err(e) => {
                assert_eq!(e.code, ProblemCode::ResourceRateLimited);
                refused += 1;
            }
        }
    }
    let took = started.elapsed();
    assert!(c.circuit_open(), "the first timeout opened the circuit");
    // The fallback: 2/s, starting empty (Redis may have granted the whole burst just before),
    // so no more than 2/s for as long as the loop took (about the one 100 ms timeout: none).
    let share = 2.0 * took.as_secs_f64();
    assert!(granted as f64 <= share, "{granted} granted in {took:?}");
    assert_eq!(granted + refused, 40);
    // A caller that may wait gets the fallback's next permit.
    limiter
        .acquire(Instant::now() + Duration::from_secs(2), "v4_token")
        .await
        .expect("the fallback grants 2/s");
    // Fail fast: after the first timeout opened the circuit, the calls did not wait for Redis
    // (at most a probe or two of a half-open circuit timed out too; other tests of this file
    // never stop their Redis).
    let timeouts = common::redis_outcomes("timeout") - timeouts_before;
    assert!(
        (1..=3).contains(&timeouts),
        "{timeouts} of 40 calls waited for the timeout"
    );
    redis.resume();
    let mut back = false;
    for _ in 0..100 {
        let _ = limiter
            .acquire(Instant::now() + Duration::from_millis(200), "v4_token")
            .await;
        if !c.circuit_open() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the circuit closes again without a restart");
    let count = |start: &str| {
        logs.events()
            .iter()
            .filter(|e| e.field("message").is_some_and(|m| m.starts_with(start)))
            .count()
    };
    assert_eq!(
        count("Redis is unavailable"),
        1,
        "one line per outage, not per request"
    );
    assert_eq!(count("Redis answers again"), 1);
    let metrics = myinfo_proxy::metrics::render();
    assert!(
        metrics.contains(
            "myinfo_proxy_redis_operations_total{operation=\"quota\",outcome=\"circuit_open\"}"
        ),
        "circuit_open counted"
    );
    assert!(metrics.contains("myinfo_proxy_redis_available 1"));
}
