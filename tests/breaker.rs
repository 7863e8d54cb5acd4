//! Fail fast: with the upstream dead, once its circuit opens the app's requests are answered
//! 503 at once with `Retry-After` and no upstream attempt; the upstream then sees only the
//! half-open probe.

mod common;

use bytes::Bytes;
use common::logs::capture;
use common::*;
use http::{Method, StatusCode};

#[tokio::test(start_paused = true)]
async fn a_dead_upstream_opens_the_circuit_and_then_only_probes_reach_it() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (logs, _guard) = capture();
    let h = Harness::start_with(
        move |_| format!("http://127.0.0.1:{port}/com/v4"),
        "[timeouts]\nattempt = \"2s\"\noverall = \"5s\"\n[breaker]\nfailures = 5\nopen_for = \"1h\"\nmax_open_for = \"1h\"",
    )
    .await;
    let token = || {
        h.send(
            Method::POST,
            "/com/v4/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from_static(b"code=some-code-0123456789"),
        )
    };
    let attempts = || logs.with_target("myinfo_proxy::upstream_error").len();
    let said = |start: &str| {
        logs.events()
            .iter()
            .filter(|e| e.field("message").is_some_and(|m| m.starts_with(start)))
            .count()
    };

    for _ in 0..5 {
        token().await.problem("PROVIDER_UNREACHABLE");
    }
    let before = attempts();
    assert!(before >= 5, "every request tried the upstream");

    for _ in 0..100 {
        let res = token().await;
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
        let p = res.problem("PROVIDER_UNAVAILABLE");
        assert!(p["detail"].as_str().unwrap().contains("breaker"), "{p}");
        let after: u64 = res.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&after), "Retry-After: {after}");
    }
    assert_eq!(
        attempts(),
        before,
        "no upstream attempt while the circuit is open"
    );
    assert_eq!(
        said("upstream circuit opened"),
        1,
        "logged once per transition"
    );

    // After open_for, one probe goes through; the upstream is still dead, so it reopens.
    tokio::time::advance(std::time::Duration::from_secs(3600)).await;
    token().await.problem("PROVIDER_UNREACHABLE");
    assert!(attempts() > before, "the probe reached the upstream");
    let probed = attempts();
    assert_eq!(said("upstream circuit half-open"), 1);
    assert_eq!(said("upstream circuit opened"), 2);
    for _ in 0..10 {
        token().await.problem("PROVIDER_UNAVAILABLE");
    }
    assert_eq!(attempts(), probed, "only the probe reached the upstream");
}

#[tokio::test]
async fn client_errors_never_open_the_circuit() {
    let h = Harness::start_with(|b| b.to_owned(), "[breaker]\nfailures = 2").await;
    for _ in 0..20 {
        // An unknown code: the emulator answers 400 invalid_grant.
        let res = h
            .post_form("/com/v4/token", &token_form("no-such-code", "v"), &[])
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{:?}", res.body);
    }
    let ok = h.token("S1234567A", "name").await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
}
