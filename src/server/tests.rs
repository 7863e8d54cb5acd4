//! The connection timers, in paused time over in-memory streams: slowloris, silent and
//! half-preface connections, late bodies, idle HTTP/1 and HTTP/2 connections.

use super::connection::{drive, Shared};
use super::RequestBody;
use crate::config::ListenerLimits;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::time::Instant;

const LIMITS: ListenerLimits = ListenerLimits {
    header_read_timeout: Duration::from_secs(10),
    body_timeout: Duration::from_secs(15),
    idle_timeout: Duration::from_secs(60),
    max_connections: 16,
};

/// Reads the whole body, as the proxy does; 400 when it cannot.
async fn echo(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    match req.into_body().collect().await {
        Ok(body) => Response::new(Full::new(body.to_bytes())),
        Err(_) => {
            let mut res = Response::new(Full::new(Bytes::from_static(b"unreadable")));
            *res.status_mut() = StatusCode::BAD_REQUEST;
            res
        }
    }
}

/// A server side over an in-memory stream; the client end is returned.
fn connect(limits: ListenerLimits) -> (DuplexStream, tokio::sync::watch::Sender<bool>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared::new(echo, limits, None));
    let first_request_by = Instant::now() + limits.header_read_timeout;
    tokio::spawn(drive(server, shared, first_request_by, stopped));
    (client, stop)
}

/// Reads until the server closes; what it sent and when it closed.
async fn until_closed(client: &mut DuplexStream) -> (String, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let _ = client.read_to_end(&mut seen).await;
    (
        String::from_utf8_lossy(&seen).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(start_paused = true)]
async fn one_header_byte_then_nothing_is_closed_at_the_header_timeout() {
    for start in [&b"G"[..], b"", b"PRI * HTTP/2.0\r\n"] {
        let (mut client, _stop) = connect(LIMITS);
        client.write_all(start).await.unwrap();
        let (_, took) = until_closed(&mut client).await;
        assert_eq!(took, LIMITS.header_read_timeout, "{start:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stops_coming_gets_408_at_the_body_timeout_and_the_connection_closes() {
    let (mut client, _stop) = connect(LIMITS);
    client
        .write_all(b"POST /com/v4/token HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\ncode")
        .await
        .unwrap();
    let (answer, took) = until_closed(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("VALIDATION_BODY_TIMEOUT"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert_eq!(took, LIMITS.body_timeout);
}

#[tokio::test(start_paused = true)]
async fn a_kept_alive_http1_connection_closes_after_the_shorter_of_idle_and_header_timeouts() {
    for (idle, expected) in [(Duration::from_secs(60), 10), (Duration::from_secs(4), 4)] {
        let limits = ListenerLimits {
            idle_timeout: idle,
            ..LIMITS
        };
        let (mut client, _stop) = connect(limits);
        client
            .write_all(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = client.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        let (rest, took) = until_closed(&mut client).await;
        assert_eq!(rest, "");
        assert_eq!(took, Duration::from_secs(expected), "idle {idle:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_http2_connection_gets_goaway_after_the_idle_timeout_not_before() {
    let (client, _stop) = connect(LIMITS);
    let (mut send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(client))
            .await
            .unwrap();
    let ended = tokio::spawn(async move {
        let _ = conn.await;
        Instant::now()
    });
    let res = send
        .send_request(
            Request::post("http://x/y")
                .body(Full::new(Bytes::from_static(b"hi")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hi");
    let answered = Instant::now();
    // Well past the header timeout, the connection is still open and answers.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!ended.is_finished());
    let again = send
        .send_request(
            Request::get("http://x/z")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let idle_from = Instant::now();
    let closed_at = ended.await.unwrap();
    assert!(closed_at - answered > LIMITS.header_read_timeout);
    assert!(
        closed_at - idle_from >= LIMITS.idle_timeout,
        "{:?}",
        closed_at - idle_from
    );
    assert!(closed_at - idle_from <= LIMITS.idle_timeout + LIMITS.header_read_timeout);
}

#[tokio::test(start_paused = true)]
async fn a_request_in_flight_is_not_idle_and_shutdown_lets_it_finish() {
    let slow = |req: Request<RequestBody>| async move {
        tokio::time::sleep(Duration::from_secs(100)).await;
        echo(req).await
    };
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared::new(slow, LIMITS, None));
    tokio::spawn(drive(
        server,
        shared,
        Instant::now() + LIMITS.header_read_timeout,
        stopped,
    ));
    client
        .write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(true).unwrap();
    let (answer, took) = until_closed(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(took, Duration::from_secs(99));
}
