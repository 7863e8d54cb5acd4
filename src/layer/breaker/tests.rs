//! The breaker against a scripted mock upstream, in paused time.

use super::*;
use crate::error::problem_response;
use crate::error::{ProblemCode, ProxyError};
use futures_util::FutureExt as _;
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

type Mock = mock::Mock<Request<Bytes>, Response<Bytes>>;
type Handle = mock::Handle<Request<Bytes>, Response<Bytes>>;

fn config(failures: u32, open_for: u64, max_open_for: u64) -> BreakerConfig {
    BreakerConfig {
        enabled: true,
        failures,
        open_for: Duration::from_secs(open_for),
        max_open_for: Duration::from_secs(max_open_for),
    }
}

fn breaker(upstream: &str, config: BreakerConfig) -> (Breaker<Mock>, Handle) {
    let (mock, handle) = mock::pair();
    (BreakerLayer::new(config, upstream).layer(mock), handle)
}

fn request() -> Request<Bytes> {
    Request::get("https://u.example/com/v4/person/S1234567A")
        .body(Bytes::new())
        .unwrap()
}

/// What the mock upstream does with one request.
enum Upstream {
    Status(u16),
    Fails(BoxError),
}

fn unreachable() -> Upstream {
    Upstream::Fails(ProxyError::new(ProblemCode::ProviderUnreachable, "refused").into())
}

/// Sends one request that the breaker lets through, and has the upstream answer it.
async fn through(
    svc: &mut Breaker<Mock>,
    handle: &mut Handle,
    req: Request<Bytes>,
    upstream: Upstream,
) -> Result<Response<Bytes>, BoxError> {
    let call = svc.ready().await.unwrap().call(req);
    let answer = async {
        let (_, send) = handle
            .next_request()
            .await
            .expect("the request went upstream");
        match upstream {
            Upstream::Status(s) => {
                let mut res = Response::new(Bytes::new());
                *res.status_mut() = http::StatusCode::from_u16(s).unwrap();
                send.send_response(res);
            }
            Upstream::Fails(e) => send.send_error(e),
        }
    };
    // In paused time an idle wait ends at once: a refused request fails here, never hangs.
    tokio::time::timeout(Duration::from_secs(3600), async {
        tokio::join!(call, answer).0
    })
    .await
    .expect("the breaker let the request through to the upstream")
}

/// Sends one request that the breaker must answer at once without the upstream; returns the
/// `Retry-After` seconds of its problem answer.
async fn refused(svc: &mut Breaker<Mock>, handle: &mut Handle) -> u64 {
    let result = svc
        .ready()
        .await
        .unwrap()
        .call(request())
        .now_or_never()
        .expect("answered at once");
    assert!(
        handle.next_request().now_or_never().is_none(),
        "no request reached the upstream"
    );
    let err = result.expect_err("refused");
    let problem = err.downcast_ref::<ProxyError>().expect("a ProxyError");
    assert_eq!(problem.code, ProblemCode::ProviderUnavailable);
    let res = problem_response(problem, &Default::default());
    assert_eq!(res.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn metric_line(name: &str, labels: &str) -> Option<String> {
    crate::metrics::render()
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{{labels}}}")))
        .map(str::to_owned)
}

#[tokio::test(start_paused = true)]
async fn opens_after_n_failures_in_a_row_then_answers_100_requests_at_once() {
    let (mut svc, mut handle) = breaker("t-opens", config(5, 5, 60));
    for _ in 0..5 {
        let res = through(&mut svc, &mut handle, request(), Upstream::Status(502)).await;
        assert_eq!(
            res.unwrap().status(),
            502,
            "the failures themselves pass through"
        );
    }
    for _ in 0..100 {
        assert_eq!(refused(&mut svc, &mut handle).await, 5);
    }
    assert_eq!(
        metric_line("myinfo_proxy_breaker_state", "upstream=\"t-opens\"").as_deref(),
        Some("myinfo_proxy_breaker_state{upstream=\"t-opens\"} 1")
    );
    assert_eq!(
        metric_line(
            "myinfo_proxy_breaker_transitions_total",
            "to=\"open\",upstream=\"t-opens\""
        )
        .as_deref(),
        Some("myinfo_proxy_breaker_transitions_total{to=\"open\",upstream=\"t-opens\"} 1"),
        "one transition, however many requests were refused"
    );
}

#[tokio::test(start_paused = true)]
async fn transport_failures_and_timeouts_count_like_5xx() {
    let (mut svc, mut handle) = breaker("t-transport", config(4, 5, 60));
    through(&mut svc, &mut handle, request(), unreachable())
        .await
        .unwrap_err();
    let elapsed = Upstream::Fails(tower::timeout::error::Elapsed::new().into());
    through(&mut svc, &mut handle, request(), elapsed)
        .await
        .unwrap_err();
    let timeout = ProxyError::new(ProblemCode::ProviderTimeout, "slow");
    through(
        &mut svc,
        &mut handle,
        request(),
        Upstream::Fails(timeout.into()),
    )
    .await
    .unwrap_err();
    let res = through(&mut svc, &mut handle, request(), Upstream::Status(500)).await;
    assert_eq!(res.unwrap().status(), 500);
    refused(&mut svc, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_open_time_left_rounded_up() {
    let (mut svc, mut handle) = breaker("t-countdown", config(1, 5, 60));
    through(&mut svc, &mut handle, request(), Upstream::Status(503))
        .await
        .unwrap();
    assert_eq!(refused(&mut svc, &mut handle).await, 5);
    tokio::time::advance(Duration::from_millis(3500)).await;
    assert_eq!(refused(&mut svc, &mut handle).await, 2);
    tokio::time::advance(Duration::from_millis(1400)).await;
    assert_eq!(refused(&mut svc, &mut handle).await, 1);
}

#[tokio::test(start_paused = true)]
async fn one_half_open_probe_and_its_success_closes_the_circuit() {
    let (mut svc, mut handle) = breaker("t-probe", config(2, 5, 60));
    for _ in 0..2 {
        through(&mut svc, &mut handle, request(), Upstream::Status(502))
            .await
            .unwrap();
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    // The probe goes through; while it is in flight, everything else is refused.
    let probe = svc.ready().await.unwrap().call(request());
    let circuit = BreakerLayer {
        circuit: svc.circuit.clone(),
    };
    assert_eq!(circuit.circuit().phase(), Phase::HalfOpen);
    let probe = tokio::spawn(probe);
    let (_, send) = handle
        .next_request()
        .await
        .expect("the probe went upstream");
    for _ in 0..10 {
        assert_eq!(refused(&mut svc, &mut handle).await, 1);
    }
    send.send_response(Response::new(Bytes::new()));
    assert_eq!(probe.await.unwrap().unwrap().status(), 200);
    assert_eq!(circuit.circuit().phase(), Phase::Closed);
    for _ in 0..3 {
        let res = through(&mut svc, &mut handle, request(), Upstream::Status(200)).await;
        assert_eq!(res.unwrap().status(), 200);
    }
    assert!(
        metric_line("myinfo_proxy_breaker_state", "upstream=\"t-probe\"")
            .unwrap()
            .ends_with(" 0")
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_longer_up_to_the_maximum() {
    let (mut svc, mut handle) = breaker("t-backoff", config(1, 5, 12));
    through(&mut svc, &mut handle, request(), Upstream::Status(502))
        .await
        .unwrap();
    assert_eq!(refused(&mut svc, &mut handle).await, 5);
    for expected in [10, 12, 12] {
        tokio::time::advance(Duration::from_secs(13)).await;
        through(&mut svc, &mut handle, request(), unreachable())
            .await
            .unwrap_err();
        assert_eq!(refused(&mut svc, &mut handle).await, expected);
    }
    tokio::time::advance(Duration::from_secs(12)).await;
    through(&mut svc, &mut handle, request(), Upstream::Status(404))
        .await
        .unwrap();
    // Closed again, and the next opening starts from open_for.
    through(&mut svc, &mut handle, request(), Upstream::Status(502))
        .await
        .unwrap();
    assert_eq!(refused(&mut svc, &mut handle).await, 5);
}

#[tokio::test(start_paused = true)]
async fn client_errors_and_429_never_open_it_and_an_answer_resets_the_count() {
    let (mut svc, mut handle) = breaker("t-4xx", config(3, 5, 60));
    for i in 0..100 {
        let status = [400, 401, 404, 429][i % 4];
        let res = through(&mut svc, &mut handle, request(), Upstream::Status(status)).await;
        assert_eq!(res.unwrap().status(), status);
    }
    for _ in 0..5 {
        through(&mut svc, &mut handle, request(), Upstream::Status(502))
            .await
            .unwrap();
        through(&mut svc, &mut handle, request(), Upstream::Status(502))
            .await
            .unwrap();
        through(&mut svc, &mut handle, request(), Upstream::Status(429))
            .await
            .unwrap();
    }
    let layer = BreakerLayer {
        circuit: svc.circuit.clone(),
    };
    assert_eq!(layer.circuit().phase(), Phase::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_proxys_own_refusals_neither_count_nor_reset() {
    let (mut svc, mut handle) = breaker("t-local", config(3, 5, 60));
    for _ in 0..2 {
        through(&mut svc, &mut handle, request(), Upstream::Status(502))
            .await
            .unwrap();
    }
    for code in [
        ProblemCode::AuthTokenUnknown,
        ProblemCode::ResourceRateLimited,
        ProblemCode::ProviderThrottled,
    ] {
        let local = Upstream::Fails(ProxyError::new(code, "local").into());
        through(&mut svc, &mut handle, request(), local)
            .await
            .unwrap_err();
    }
    through(&mut svc, &mut handle, request(), Upstream::Status(504))
        .await
        .unwrap();
    refused(&mut svc, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_frees_the_slot_unless_its_deadline_had_passed() {
    let (mut svc, mut handle) = breaker("t-drop", config(1, 5, 60));
    through(&mut svc, &mut handle, request(), Upstream::Status(502))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    // The app went away: the probe counts as nothing, and the next request probes.
    drop(svc.ready().await.unwrap().call(request()));
    through(&mut svc, &mut handle, request(), Upstream::Status(200))
        .await
        .unwrap();

    // A probe dropped by the overall timeout, past its deadline, is a failure.
    let (mut svc, mut handle) = breaker("t-drop-deadline", config(1, 5, 60));
    through(&mut svc, &mut handle, request(), Upstream::Status(502))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    let facts = RequestFacts::new(
        "https://u.example/com/v4/person/S1234567A",
        "https://u.example/com/v4/person/S1234567A",
        Instant::now() + Duration::from_secs(2),
    );
    let mut req = request();
    req.extensions_mut().insert(facts);
    let probe = svc.ready().await.unwrap().call(req);
    // The upstream holds the probe (its answer is never sent) until the timeout drops it.
    let (timed, held) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(2), probe),
        handle.next_request()
    );
    assert!(held.is_some(), "the probe went upstream");
    assert!(timed.is_err(), "the overall timeout fired");
    assert_eq!(
        refused(&mut svc, &mut handle).await,
        10,
        "reopened for 2 x 5 s"
    );
}

#[test]
fn the_config_switch_turns_it_off() {
    let text = |breaker: &str| {
        format!("client_id = \"c\"\n[keys]\njwks_env = \"X\"\n{breaker}\n[[upstream]]\nname = \"m\"\nkind = \"myinfo-v4\"\nbase_url = \"https://u.example/com/v4\"\n")
    };
    let on = crate::Config::from_toml(&text(""), std::path::Path::new(".")).unwrap();
    assert!(on.breaker.enabled, "on by default");
    let off = crate::Config::from_toml(
        &text("[breaker]\nenabled = false"),
        std::path::Path::new("."),
    )
    .unwrap();
    assert!(!off.breaker.enabled);
}
