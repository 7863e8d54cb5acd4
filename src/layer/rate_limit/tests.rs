//! The rate limiter in paused time: quotas, waits, refusals, the upstream-driven pause, and the
//! adaptive rate settling under an upstream quota.

use super::*;
use crate::config::{Config, RateLimitSettings, RouteKind};
use crate::error::{BoxError, ProxyError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt};

/// A v4 token route's quota from `[rate_limit]` settings and an optional global table.
struct Route {
    quota: Arc<LocalQuota>,
    max_wait: Duration,
}

impl Route {
    fn layer(&self) -> RateLimitLayer {
        RateLimitLayer::new(self.quota.clone(), self.max_wait)
    }
}

fn route(rate_limit: &str, global: &str) -> Route {
    let text = format!("client_id = \"c\"\n[keys]\njwks_env = \"X\"\n[rate_limit]\n{rate_limit}\n{global}\n[[upstream]]\nkind = \"myinfo-v4\"\nbase_url = \"https://u.example/com/v4\"\n");
    let config = Config::from_toml(&text, std::path::Path::new(".")).unwrap();
    let global = config
        .global_rate_limit
        .map(|q| Arc::new(GlobalLimiter::new(q)));
    let settings = &config.upstreams[0].routes[&RouteKind::V4Token].rate_limit;
    Route {
        quota: Arc::new(LocalQuota::new(RouteKind::V4Token, settings, global)),
        max_wait: settings.max_wait,
    }
}

fn request(_route: &Route) -> Request<Bytes> {
    Request::post("https://u.example/com/v4/token")
        .body(Bytes::new())
        .unwrap()
}

/// An upstream that answers 200, or what `answer` says, counting calls.
fn upstream(
    calls: Arc<AtomicU32>,
) -> impl tower::Service<Request<Bytes>, Response = Response<Bytes>, Error = BoxError, Future: Send>
       + Clone
       + Send
       + 'static {
    tower::service_fn(move |_req: Request<Bytes>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>(Response::new(Bytes::new())) }
    })
}

async fn send<S>(svc: &mut S, req: Request<Bytes>) -> Result<Response<Bytes>, BoxError>
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>, Error = BoxError>,
{
    svc.ready().await?.call(req).await
}

fn problem(err: BoxError) -> ProxyError {
    err.downcast::<ProxyError>()
        .map(|e| *e)
        .expect("a ProxyError")
}

#[tokio::test(start_paused = true)]
async fn burst_goes_at_once_then_requests_wait_then_get_429_with_retry_after() {
    let route = route("per_second = 10\nburst = 2\nmax_wait = \"250ms\"", "");
    let calls = Arc::new(AtomicU32::new(0));
    let svc = route.layer().layer(upstream(calls.clone()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let mut svc = svc.clone();
        let req = request(&route);
        tasks.push(tokio::spawn(async move {
            (send(&mut svc, req).await, Instant::now())
        }));
        tokio::task::yield_now().await;
    }
    let mut ok_times = Vec::new();
    let mut refused = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (Ok(_), at) => ok_times.push(at - start),
            (Err(e), _) => refused.push(problem(e)),
        }
    }
    // 2 at once, then one every 100 ms while the wait stays within 250 ms.
    assert_eq!(ok_times.len(), 4, "{ok_times:?}");
    assert_eq!(ok_times[..2], [Duration::ZERO, Duration::ZERO]);
    assert!(ok_times[3] <= Duration::from_millis(250));
    assert_eq!(refused.len(), 2);
    for p in refused {
        assert_eq!(p.code, crate::error::ProblemCode::ResourceRateLimited);
        assert!(p.retry_after.is_some());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_would_end_past_the_requests_deadline_is_refused_at_once() {
    let route = route("per_second = 1\nburst = 1\nmax_wait = \"5s\"", "");
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = route.layer().layer(upstream(calls.clone()));
    let start = Instant::now();
    send(&mut svc, request(&route)).await.unwrap();
    // The next permit is 1 s away, within max_wait; the request has 500 ms left.
    let mut late = request(&route);
    late.extensions_mut()
        .insert(crate::layer::RequestFacts::new(
            "https://u.example/com/v4/token",
            "https://u.example/com/v4/token",
            start + Duration::from_millis(500),
        ));
    let refused = problem(send(&mut svc, late).await.unwrap_err());
    assert_eq!(refused.code, crate::error::ProblemCode::ResourceRateLimited);
    assert_eq!(Instant::now(), start, "refused without waiting");
    // With time enough, the same wait is waited.
    let mut patient = request(&route);
    patient
        .extensions_mut()
        .insert(crate::layer::RequestFacts::new(
            "https://u.example/com/v4/token",
            "https://u.example/com/v4/token",
            start + Duration::from_secs(3),
        ));
    send(&mut svc, patient).await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn global_quota_applies_across_routes() {
    let a = route(
        "per_second = 100\nburst = 100\nmax_wait = \"0s\"",
        "[rate_limit.global]\nper_second = 1\nburst = 1",
    );
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = a.layer().layer(upstream(calls.clone()));
    assert!(send(&mut svc, request(&a)).await.is_ok());
    let err = problem(send(&mut svc, request(&a)).await.unwrap_err());
    assert_eq!(err.code, crate::error::ProblemCode::ResourceRateLimited);
    assert!(err.detail.contains("global"));
}

#[tokio::test(start_paused = true)]
async fn upstream_429_pauses_the_route_until_retry_after_and_halves_its_rate() {
    let route = route("per_second = 10\nburst = 10\nmax_wait = \"250ms\"", "");
    let throttled = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = throttled.clone();
    let mut svc = route
        .layer()
        .layer(tower::service_fn(move |_req: Request<Bytes>| {
            let throttle = flag.swap(false, Ordering::SeqCst);
            async move {
                let res = if throttle {
                    Response::builder()
                        .status(429)
                        .header("retry-after", "2")
                        .body(Bytes::from_static(
                            br#"{"id":"e-1","trace_id":"t-1","error":"TOO_MANY_REQUESTS"}"#,
                        ))
                        .unwrap()
                } else {
                    Response::new(Bytes::new())
                };
                Ok::<_, BoxError>(res)
            }
        }));
    // The 429 reaches the app unchanged.
    assert_eq!(send(&mut svc, request(&route)).await.unwrap().status(), 429);
    assert_eq!(route.quota.effective_rate(), 5.0);
    // During the pause: refused locally, naming the upstream error that caused it.
    let err = problem(send(&mut svc, request(&route)).await.unwrap_err());
    assert_eq!(err.code, crate::error::ProblemCode::ProviderThrottled);
    assert_eq!(err.upstream.as_ref().unwrap().id.as_deref(), Some("e-1"));
    assert_eq!(
        err.upstream.as_ref().unwrap().trace_id.as_deref(),
        Some("t-1")
    );
    let after = err.retry_after.unwrap();
    assert!(
        after > Duration::from_millis(1500) && after <= Duration::from_secs(2),
        "{after:?}"
    );
    // After the pause, requests pass again.
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(send(&mut svc, request(&route)).await.unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_too_many_requests_body_is_a_throttle_signal_too() {
    let route = route("per_second = 10\nburst = 10", "");
    let mut svc = route
        .layer()
        .layer(tower::service_fn(|_req: Request<Bytes>| async {
            Ok::<_, BoxError>(
                Response::builder()
                    .status(400)
                    .body(Bytes::from_static(br#"{"error":"TOO_MANY_REQUESTS"}"#))
                    .unwrap(),
            )
        }));
    send(&mut svc, request(&route)).await.unwrap();
    assert_eq!(route.quota.effective_rate(), 5.0);
}

/// A sustained upstream quota of 10/s (burst 10), a proxy configured for 30/s, and an app
/// offering 50/s: the proxy must settle just under 10/s instead of oscillating around it.
#[tokio::test(start_paused = true)]
async fn settles_just_under_a_sustained_upstream_quota() {
    let route = route("per_second = 30\nburst = 30\nmax_wait = \"100ms\"", "");
    #[derive(Default)]
    struct Upstream {
        tokens: f64,
        last: Option<Instant>,
        accepted: Vec<Instant>,
        throttled: Vec<Instant>,
    }
    let state = Arc::new(std::sync::Mutex::new(Upstream {
        tokens: 10.0,
        ..Default::default()
    }));
    let s = state.clone();
    let svc = route
        .layer()
        .layer(tower::service_fn(move |_req: Request<Bytes>| {
            let mut u = s.lock().unwrap();
            let now = Instant::now();
            let refill = u.last.map_or(0.0, |l| (now - l).as_secs_f64() * 10.0);
            u.tokens = (u.tokens + refill).min(10.0);
            u.last = Some(now);
            let res = if u.tokens >= 1.0 {
                u.tokens -= 1.0;
                u.accepted.push(now);
                Response::new(Bytes::new())
            } else {
                u.throttled.push(now);
                Response::builder()
                    .status(429)
                    .header("retry-after", "1")
                    .body(Bytes::new())
                    .unwrap()
            };
            async move { Ok::<_, BoxError>(res) }
        }));
    let svc: BoxCloneService<Request<Bytes>, Response<Bytes>, BoxError> = BoxCloneService::new(svc);
    let start = Instant::now();
    let mut tasks = Vec::new();
    // 50 requests a second for 180 virtual seconds.
    for _ in 0..9000 {
        let mut svc = svc.clone();
        let req = request(&route);
        tasks.push(tokio::spawn(async move {
            let _ = send(&mut svc, req).await;
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let u = state.lock().unwrap();
    let late = |v: &Vec<Instant>| {
        v.iter()
            .filter(|t| **t - start >= Duration::from_secs(120))
            .count()
    };
    let (accepted, throttled) = (late(&u.accepted), late(&u.throttled));
    // In the last 60 s: at most a couple of probes beyond the quota, and throughput close to it.
    assert!(
        throttled <= 3,
        "{throttled} throttled in the last minute (rate now {})",
        route.quota.effective_rate()
    );
    assert!(
        accepted as f64 >= 0.85 * 10.0 * 60.0,
        "only {accepted} accepted in the last minute"
    );
    assert!(route.quota.effective_rate() < 10.5);
}

#[test]
fn settings_without_quota_never_limit() {
    let limiter = RouteLimiter::new(&RateLimitSettings {
        quota: None,
        max_wait: Duration::ZERO,
    });
    assert_eq!(limiter.effective_rate(), 0.0);
}

/// A throttle's ids reach the problems of other apps' requests: an id that echoes a JWS, or is
/// not an id at all, never does (the layer checks them even without the error log below it).
#[tokio::test(start_paused = true)]
async fn a_throttles_ids_are_checked_before_other_requests_see_them() {
    let route = route("per_second = 10\nburst = 10\nmax_wait = \"0s\"", "");
    let jws = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl";
    let body =
        format!(r#"{{"id":"{jws}","trace_id":"t 1\n<script>","error":"TOO_MANY_REQUESTS"}}"#);
    let mut svc = route
        .layer()
        .layer(tower::service_fn(move |_req: Request<Bytes>| {
            let body = body.clone();
            async move {
                Ok::<_, BoxError>(
                    Response::builder()
                        .status(429)
                        .header("retry-after", "2")
                        .body(Bytes::from(body))
                        .unwrap(),
                )
            }
        }));
    assert_eq!(send(&mut svc, request(&route)).await.unwrap().status(), 429);
    let err = problem(send(&mut svc, request(&route)).await.unwrap_err());
    assert_eq!(err.code, crate::error::ProblemCode::ProviderThrottled);
    let ids = err.upstream.expect("the throttle's ids");
    assert_eq!(ids.id.as_deref(), Some(crate::scrub::REDACTED));
    assert_eq!(ids.trace_id.as_deref(), Some(crate::scrub::INVALID_ID));
}
