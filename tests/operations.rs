//! Operating the proxy: admin endpoints, graceful drain on SIGTERM, and no secret in any log
//! line or metric (key rotation is in `rotation.rs`).

mod common;

use bytes::Bytes;
use common::logs::capture;
use common::*;
use http::{Method, StatusCode};
use myinfo_proxy::Proxy;
use singpass_emulator::{EmulatorRoute, Fault};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_myinfo-proxy");

fn admin_get(admin: &Proxy, path: &str) -> (StatusCode, String, http::HeaderMap) {
    let res = admin.admin(&http::Request::get(path).body(()).unwrap());
    let status = res.status();
    let headers = res.headers().clone();
    let body = futures_body(res);
    (status, body, headers)
}

fn futures_body(res: http::Response<http_body_util::Full<Bytes>>) -> String {
    use http_body_util::BodyExt;
    let bytes = futures_executor(res.into_body().collect())
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Full bodies are ready at once; no runtime needed to read them.
fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a Full body was not ready"),
    }
}

#[tokio::test]
async fn admin_endpoints_report_health_metrics_and_public_keys() {
    let h = Harness::start().await;
    let token = h.token("u-1", "name").await;
    assert_eq!(token.status, StatusCode::OK);
    let admin = &h.proxy;

    assert_eq!(admin_get(admin, "/healthz").0, StatusCode::OK);
    assert_eq!(admin_get(admin, "/readyz").0, StatusCode::OK);

    let (status, metrics, headers) = admin_get(admin, "/metrics");
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    for name in [
        "myinfo_proxy_requests_total",
        "myinfo_proxy_request_duration_seconds",
        "myinfo_proxy_upstream_attempts_total",
        "myinfo_proxy_signatures_total",
        "myinfo_proxy_signing_duration_seconds",
        "myinfo_proxy_key_bindings",
    ] {
        assert!(metrics.contains(name), "no {name} in /metrics");
    }
    assert!(
        metrics.contains(r#"myinfo_proxy_requests_total{route="v4_token",status="200"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"myinfo_proxy_signatures_total{kind="dpop_proof"}"#));
    assert!(
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .all(|l| l.starts_with("myinfo_proxy_")),
        "a metric without the prefix"
    );

    let (status, jwks, headers) = admin_get(admin, "/.well-known/jwks.json");
    assert_eq!(status, StatusCode::OK);
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let jwks: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(jwks, h.keys.public);
    assert!(!jwks.to_string().contains("\"d\""));

    h.proxy.start_draining();
    let (status, body, _) = admin_get(admin, "/readyz");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("draining"));
    assert_eq!(
        admin_get(admin, "/healthz").0,
        StatusCode::OK,
        "alive while draining"
    );
}

#[tokio::test]
async fn jwks_can_be_served_on_the_main_listener() {
    let h = Harness::start_with(|b| b.to_owned(), "[admin]\njwks_on_main_listener = true").await;
    let res = h
        .send(Method::GET, "/.well-known/jwks.json", &[], Bytes::new())
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), h.keys.public);
    // Without the option it is just an unknown path.
    let plain = Harness::start().await;
    plain
        .send(Method::GET, "/.well-known/jwks.json", &[], Bytes::new())
        .await
        .problem("RESOURCE_NOT_FOUND");
}

/// A real upstream stand-in that holds its answer until the test releases it.
async fn held_upstream() -> (
    String,
    tokio::sync::mpsc::Receiver<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/com/v4", listener.local_addr().unwrap());
    let (arrived_tx, arrived) = tokio::sync::mpsc::channel(1);
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let mut seen = Vec::new();
        // Read until the whole form body is in (the proxy sends Content-Length).
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(split) = text.find("\r\n\r\n") {
                let len: usize = text[..split]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if seen.len() >= split + 4 + len {
                    break;
                }
            }
        }
        arrived_tx.send(()).await.unwrap();
        let _ = released.await;
        let body = r#"{"access_token":"held","token_type":"DPoP","expires_in":60}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(answer.as_bytes()).await.unwrap();
    });
    (url, arrived, release)
}

/// Starts the binary; returns the child, the proxy address and the admin address.
fn spawn_proxy(config: &std::path::Path) -> (std::process::Child, String, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("MYINFO_PROXY_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let (addr, admin) = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).ok()?;
            Some((
                v["fields"]["listen"].as_str()?.to_owned(),
                v["fields"]["admin"].as_str()?.to_owned(),
            ))
        })
        .expect("the proxy never logged its addresses");
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr, admin)
}

#[tokio::test]
async fn sigterm_turns_readiness_false_and_lets_the_request_in_flight_finish() {
    let keys = ClientKeyFiles::new();
    let (upstream, mut arrived, release) = held_upstream().await;
    let config = keys.dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:0\"\nclient_id = \"{CLIENT_ID}\"\ndrain_timeout = \"30s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[keys]\njwks_file = \"private-jwks.json\"\n[[upstream]]\nkind = \"myinfo-v4\"\nbase_url = \"{upstream}\"\n"),
    )
    .unwrap();
    let (mut child, addr, admin) = tokio::task::spawn_blocking(move || spawn_proxy(&config))
        .await
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let get = |url: String| {
        let client = client.clone();
        async move {
            client
                .request(http::Request::get(url).body(Default::default()).unwrap())
                .await
                .map(|r| r.status())
        }
    };
    assert_eq!(
        get(format!("http://{admin}/readyz")).await.unwrap(),
        StatusCode::OK
    );

    let slow = {
        let client = client.clone();
        let req = http::Request::post(format!("http://{addr}/com/v4/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=authorization_code&code=c".into())
            .unwrap();
        tokio::spawn(async move { client.request(req).await.map(|r| r.status()) })
    };
    arrived
        .recv()
        .await
        .expect("the request reached the upstream");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // Readiness turns false while the request is still held upstream, and the main listener
    // stops taking connections. Both follow the signal asynchronously (on a loaded machine,
    // some milliseconds later): ask until the answer changes, at most 500 times, 10 ms apart.
    let mut ready = StatusCode::OK;
    for _ in 0..500 {
        ready = get(format!("http://{admin}/readyz")).await.unwrap();
        if ready != StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);
    let mut closed = false;
    for _ in 0..500 {
        closed = tokio::net::TcpStream::connect(&addr).await.is_err()
            || get(format!("http://{addr}/com/v4/token")).await.is_err();
        if closed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(closed, "the main listener still answers new connections");

    release.send(()).unwrap();
    assert_eq!(
        slow.await.unwrap().unwrap(),
        StatusCode::OK,
        "the in-flight request was cut off"
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn no_secret_reaches_the_logs_or_the_metrics() {
    let (logs, _guard) = capture();
    let h = Harness::start().await;
    let mut app_tokens = Vec::new();
    // A success, a retried 503, a 502 that runs out of retries, a throttle, a refusal, reuse.
    for fault in [
        None,
        Some(Fault::Status {
            status: 503,
            retry_after: None,
        }),
        Some(Fault::TooManyRequestsBody {
            retry_after: Some("1".into()),
        }),
    ] {
        if let Some(f) = fault {
            h.emulator.script(EmulatorRoute::Token, f, 1);
        }
        let res = h.token("u-secret", "name").await;
        if let Some(t) = res.json().get("access_token").and_then(|t| t.as_str()) {
            app_tokens.push(t.to_owned());
        }
    }
    for t in app_tokens.clone() {
        h.person("u-secret", &t, "name").await;
        h.person("u-secret", &t, "name").await;
    }
    h.person("u-secret", "unknown-token-value-1234567890", "name")
        .await;
    h.emulator.script(
        EmulatorRoute::Person,
        Fault::Status {
            status: 502,
            retry_after: None,
        },
        9,
    );
    let (verifier, challenge) = pkce();
    let code = h
        .emulator
        .mint_code("u-secret", "name", &challenge, REDIRECT);
    let res = h
        .post_form("/com/v4/token", &token_form(&code, &verifier), &[])
        .await;
    if let Some(t) = res.json().get("access_token").and_then(|t| t.as_str()) {
        h.person("u-secret", t, "name").await;
        app_tokens.push(t.to_owned());
    }

    let secrets = secrets_seen(&h, app_tokens);
    assert!(
        secrets.len() > 10,
        "the test collected too few secrets to mean anything"
    );
    let text = logs.all_text();
    assert!(
        text.contains("myinfo_proxy::upstream_error"),
        "nothing was logged: the check would be empty"
    );
    assert_no_secret_in(&h.proxy, &text, &secrets);
}

#[tokio::test]
async fn one_access_event_per_request_with_attempts_and_upstream_ids_and_traceparent_passed_on() {
    let (logs, _guard) = capture();
    let h = Harness::start().await;
    h.emulator.script(
        EmulatorRoute::Token,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (verifier, challenge) = pkce();
    let code = h.emulator.mint_code("u-7", "name", &challenge, REDIRECT);
    let res = h
        .post_form(
            "/com/v4/token",
            &token_form(&code, &verifier),
            &[("traceparent", traceparent), ("x-request-id", "app-req-42")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers["x-request-id"], "app-req-42");
    for r in h.emulator.received() {
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "traceparent" && v == traceparent),
            "traceparent not passed on"
        );
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "x-request-id" && v == "app-req-42"));
    }
    let failed = h
        .emulator
        .received()
        .into_iter()
        .find(|r| r.status == 503)
        .unwrap();
    let access = logs.with_target("myinfo_proxy::access");
    assert_eq!(access.len(), 1, "{access:#?}");
    let e = &access[0];
    assert_eq!(e.field("request_id"), Some("app-req-42"));
    assert_eq!(e.field("route"), Some("v4_token"));
    assert_eq!(e.field("status"), Some("200"));
    assert_eq!(e.field("attempts"), Some("2"));
    assert_eq!(e.field("upstream_id"), failed.error_id.as_deref());
    assert_eq!(e.field("trace_id"), failed.trace_id.as_deref());
    assert!(e.field("latency_ms").is_some());
}
