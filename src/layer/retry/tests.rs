//! Retry against a scripted mock upstream, in paused time.

use super::*;
use crate::config::{Config, RetrySettings};
use crate::jose::EphemeralKey;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_test::mock;

/// A v4 token route's retry layer (its budget shared by every request sent through it), the
/// overall timeout of its requests, and the transaction key every attempt must carry.
struct Ctx {
    layer: RetryLayer,
    overall: Duration,
    key: Arc<EphemeralKey>,
}

fn settings(extra: &str) -> RetrySettings {
    let text = format!("client_id = \"c\"\n[keys]\njwks_env = \"X\"\n[retry]\n{extra}\n[[upstream]]\nkind = \"myinfo-v4\"\nbase_url = \"https://u.example/com/v4\"\n");
    let config = Config::from_toml(&text, std::path::Path::new(".")).unwrap();
    config.upstreams[0].routes[&RouteKind::V4Token]
        .retry
        .clone()
}

fn context(extra: &str, overall: Duration) -> Ctx {
    let s = settings(extra);
    let budget = Arc::new(TpsBudget::new(
        Duration::from_secs(10),
        s.budget_min_per_second,
        s.budget_percent / 100.0,
    ));
    Ctx {
        layer: RetryLayer::new(RouteKind::V4Token, RetryPolicy::new(s), budget),
        overall,
        key: Arc::new(EphemeralKey::generate().unwrap()),
    }
}

fn request(ctx: &Ctx) -> Request<Bytes> {
    let url = "https://u.example/com/v4/token";
    let mut facts = RequestFacts::new(url, url, Instant::now() + ctx.overall);
    facts.key = Some(ctx.key.clone());
    let mut req = Request::post(url)
        .body(Bytes::from_static(b"code=abc"))
        .unwrap();
    req.extensions_mut().insert(facts);
    req
}

fn answer(status: u16, body: &'static str, retry_after: Option<&str>) -> Response<Bytes> {
    let mut res = Response::builder().status(status);
    if let Some(after) = retry_after {
        res = res.header("retry-after", after);
    }
    res.body(Bytes::from_static(body.as_bytes())).unwrap()
}

type Handle = mock::Handle<Request<Bytes>, Response<Bytes>>;

/// Runs one request through Retry over a mock; `script` answers each attempt in turn.
async fn run(
    ctx: &Ctx,
    script: Vec<Response<Bytes>>,
) -> (
    Result<Response<Bytes>, BoxError>,
    Vec<(Instant, Request<Bytes>)>,
) {
    let (service, mut handle): (_, Handle) = mock::pair();
    let mut retry = ctx.layer.clone().layer(service);
    let req = request(ctx);
    let call = tokio::spawn(async move { retry.ready().await.unwrap().call(req).await });
    let mut seen = Vec::new();
    for res in script {
        let Some((req, send)) = handle.next_request().await else {
            break;
        };
        seen.push((Instant::now(), req));
        send.send_response(res);
        tokio::task::yield_now().await;
        if call.is_finished() {
            break;
        }
    }
    (call.await.unwrap(), seen)
}

use tower::Layer as _;

#[tokio::test(start_paused = true)]
async fn retries_502_and_503_then_succeeds_replaying_the_same_request() {
    let ctx = context("", Duration::from_secs(30));
    let (res, seen) = run(
        &ctx,
        vec![
            answer(502, "", None),
            answer(503, "", None),
            answer(200, "ok", None),
        ],
    )
    .await;
    assert_eq!(res.unwrap().status(), 200);
    assert_eq!(seen.len(), 3);
    for (_, req) in &seen {
        assert_eq!(req.body(), &Bytes::from_static(b"code=abc"));
        let facts = req.extensions().get::<RequestFacts>().unwrap();
        // Same transaction state on every attempt, so inject signs with the same key.
        assert!(Arc::ptr_eq(facts.key.as_ref().unwrap(), &ctx.key));
    }
    // Full jitter below 100 ms, then below 200 ms.
    assert!(seen[1].0 - seen[0].0 <= Duration::from_millis(100));
    assert!(seen[2].0 - seen[1].0 <= Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_retries_with_the_last_answer() {
    let ctx = context("max_retries = 2", Duration::from_secs(30));
    let script = (0..5)
        .map(|_| answer(503, "{\"id\":\"x\"}", None))
        .collect();
    let (res, seen) = run(&ctx, script).await;
    assert_eq!(res.unwrap().status(), 503);
    assert_eq!(seen.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn status_500_gets_exactly_one_retry_after_at_least_the_base_delay() {
    let ctx = context("", Duration::from_secs(30));
    let (res, seen) = run(
        &ctx,
        vec![
            answer(500, "", None),
            answer(500, "", None),
            answer(200, "", None),
        ],
    )
    .await;
    assert_eq!(res.unwrap().status(), 500);
    assert_eq!(seen.len(), 2);
    assert!(seen[1].0 - seen[0].0 >= Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn other_4xx_and_429_are_never_retried() {
    for status in [400, 401, 403, 404, 429] {
        let ctx = context("", Duration::from_secs(30));
        let (res, seen) = run(
            &ctx,
            vec![
                answer(status, "{\"error\":\"CLIENT_SIDE_ERROR\"}", Some("1")),
                answer(200, "", None),
            ],
        )
        .await;
        assert_eq!(res.unwrap().status(), status);
        assert_eq!(seen.len(), 1, "status {status} was retried");
    }
}

#[tokio::test(start_paused = true)]
async fn retryable_oauth_error_bodies_are_retried() {
    for error in [
        "server_error",
        "temporarily_unavailable",
        "upstream_depedency_error",
    ] {
        let ctx = context("", Duration::from_secs(30));
        let body: &'static str = Box::leak(format!("{{\"error\":\"{error}\"}}").into_boxed_str());
        let (res, seen) = run(&ctx, vec![answer(400, body, None), answer(200, "", None)]).await;
        assert_eq!(res.unwrap().status(), 200, "{error}");
        assert_eq!(seen.len(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_in_both_forms_up_to_the_cap() {
    let ctx = context("", Duration::from_secs(30));
    let (res, seen) = run(
        &ctx,
        vec![answer(503, "", Some("3")), answer(200, "", None)],
    )
    .await;
    assert_eq!(res.unwrap().status(), 200);
    assert!(seen[1].0 - seen[0].0 >= Duration::from_secs(3));

    let date: &'static str = Box::leak(
        httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(4)).into_boxed_str(),
    );
    let ctx = context("", Duration::from_secs(30));
    let (_, seen) = run(
        &ctx,
        vec![answer(503, "", Some(date)), answer(200, "", None)],
    )
    .await;
    assert_eq!(seen.len(), 2);
    // The HTTP-date is on the wall clock, which paused tokio time does not move: allow 1 s.
    assert!(seen[1].0 - seen[0].0 >= Duration::from_secs(3));

    // Over the cap (default 5 s): the answer goes to the app at once.
    let ctx = context("", Duration::from_secs(30));
    let (res, seen) = run(
        &ctx,
        vec![answer(503, "", Some("60")), answer(200, "", None)],
    )
    .await;
    assert_eq!(res.unwrap().status(), 503);
    assert_eq!(seen.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_retry_that_would_end_past_the_overall_deadline() {
    let ctx = context("", Duration::from_secs(2));
    let (res, seen) = run(
        &ctx,
        vec![answer(503, "", Some("3")), answer(200, "", None)],
    )
    .await;
    assert_eq!(res.unwrap().status(), 503);
    assert_eq!(seen.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn budget_bounds_retries_across_requests() {
    // No floor and 0%: after the initial allowance nothing may be retried.
    let ctx = context(
        "budget_percent = 0\nbudget_min_per_second = 0",
        Duration::from_secs(30),
    );
    let mut retried = 0;
    for _ in 0..20 {
        let (_, seen) = run(&ctx, vec![answer(503, "", None), answer(200, "", None)]).await;
        retried += seen.len() - 1;
    }
    assert_eq!(retried, 0);

    // 20% of requests plus a floor of 1/s (over tower's 10 s window): 100 failing requests
    // at once may retry about 20 + 10 times, never all 100.
    let ctx = context("max_retries = 1", Duration::from_secs(30));
    let mut retried = 0;
    for _ in 0..100 {
        let (_, seen) = run(&ctx, vec![answer(503, "", None), answer(200, "", None)]).await;
        retried += seen.len() - 1;
    }
    assert!(
        (10..=40).contains(&retried),
        "{retried} retries of 100 requests"
    );
}

#[tokio::test(start_paused = true)]
async fn local_decisions_and_timeouts_are_not_retried() {
    for err in [
        Box::new(ProxyError::new(
            crate::error::ProblemCode::AuthTokenReused,
            "x",
        )) as BoxError,
        Box::new(tower::timeout::error::Elapsed::new()) as BoxError,
    ] {
        let ctx = context("", Duration::from_secs(30));
        let (service, mut handle): (_, Handle) = mock::pair();
        let mut retry = ctx.layer.clone().layer(service);
        let req = request(&ctx);
        let call = tokio::spawn(async move { retry.ready().await.unwrap().call(req).await });
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error(err);
        assert!(call.await.unwrap().is_err());
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        assert!(!matches!(next, Ok(Some(_))), "retried");
    }
}

#[test]
fn backoff_is_full_jitter_below_an_exponential_ceiling() {
    let settings = RetrySettings {
        max_retries: 3,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        retry_after_cap: Duration::from_secs(5),
        budget_percent: 20.0,
        budget_min_per_second: 1,
    };
    let policy = RetryPolicy::new(settings);
    let mut rng = StdRng::seed_from_u64(7);
    for (n, ceiling_ms) in [
        (0, 100),
        (1, 200),
        (2, 400),
        (3, 800),
        (4, 1600),
        (5, 2000),
        (12, 2000),
    ] {
        let samples: Vec<Duration> = (0..500).map(|_| policy.backoff(n, &mut rng)).collect();
        let max = samples.iter().max().unwrap();
        let min = samples.iter().min().unwrap();
        assert!(
            *max <= Duration::from_millis(ceiling_ms),
            "retry {n}: {max:?}"
        );
        assert!(
            *max >= Duration::from_millis(ceiling_ms * 9 / 10),
            "retry {n}: jitter never near the ceiling"
        );
        assert!(
            *min <= Duration::from_millis(ceiling_ms / 10),
            "retry {n}: jitter never near zero"
        );
    }
}
