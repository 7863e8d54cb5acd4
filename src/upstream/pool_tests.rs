//! The upstream pool against real local servers: connections reused, a closed one replaced, an
//! idle one dropped after the idle timeout, and HTTP/2 by ALPN over TLS, multiplexed.

use super::{tls_config, upstream_client};
use crate::config::{Roots, TlsConfig};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt as _;

/// A test upstream: its address, the connections it accepted, and one message per connection
/// that ended.
type Upstream = (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
);

/// Accepts on a free loopback port, counting connections, and serves each with `serve`.
async fn counting_server<F, Fut>(serve: F) -> Upstream
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let (ended_tx, ended) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let (serving, ended_tx) = (serve(stream), ended_tx.clone());
            tokio::spawn(async move {
                serving.await;
                let _ = ended_tx.send(());
            });
        }
    });
    (addr, accepted, ended)
}

/// An HTTP/1.1 server that answers 200 "ok"; with `keep_alive` false it closes each
/// connection after one answer.
async fn http1_upstream(keep_alive: bool) -> Upstream {
    counting_server(move |stream| async move {
        let answer = hyper::service::service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .keep_alive(keep_alive)
            .serve_connection(TokioIo::new(stream), answer)
            .await;
    })
    .await
}

fn client() -> super::UpstreamClient {
    let tls = tls_config(&TlsConfig {
        roots: Roots::Webpki,
        extra_ca_file: None,
    })
    .unwrap();
    upstream_client(tls, Duration::from_secs(3), 1 << 20)
}

async fn get(client: &super::UpstreamClient, url: String) -> Response<Bytes> {
    client
        .clone()
        .oneshot(Request::get(url).body(Bytes::new()).unwrap())
        .await
        .expect("an answer")
}

#[tokio::test]
async fn http1_requests_one_after_another_share_one_connection() {
    let (addr, accepted, _) = http1_upstream(true).await;
    let client = client();
    for _ in 0..5 {
        let res = get(&client, format!("http://{addr}/userinfo?x=1")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closes_is_not_used_again() {
    let (addr, accepted, _) = http1_upstream(false).await;
    let client = client();
    for _ in 0..3 {
        let res = get(&client, format!("http://{addr}/token")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_dropped_after_the_idle_timeout() {
    let (addr, accepted, _) = http1_upstream(true).await;
    let client = client();
    get(&client, format!("http://{addr}/a")).await;
    tokio::time::advance(super::IDLE_TIMEOUT - Duration::from_secs(1)).await;
    get(&client, format!("http://{addr}/b")).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "reused within the idle timeout"
    );
    tokio::time::advance(super::IDLE_TIMEOUT + Duration::from_secs(1)).await;
    get(&client, format!("http://{addr}/c")).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a new connection after it"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_within_a_sweep_of_the_idle_timeout_without_requests() {
    let (addr, _, mut ended) = http1_upstream(true).await;
    let client = client();
    get(&client, format!("http://{addr}/a")).await;
    let freed = tokio::time::Instant::now();
    // No request comes; the paused clock runs on to each timer in turn.
    tokio::time::timeout(Duration::from_secs(3600), ended.recv())
        .await
        .expect("the idle connection was closed")
        .unwrap();
    let idle = freed.elapsed();
    assert!(idle >= super::IDLE_TIMEOUT, "closed after {idle:?}");
    assert!(
        idle <= super::IDLE_TIMEOUT + super::pool::SWEEP,
        "closed after {idle:?}"
    );
}

#[tokio::test]
async fn past_its_origin_cap_the_pool_keeps_no_connections_and_still_answers() {
    let (kept, kept_accepted, _) = http1_upstream(true).await;
    let (beyond, beyond_accepted, _) = http1_upstream(true).await;
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let pool = super::pool::Pool::with_max_origins(connector, super::IDLE_TIMEOUT, 1);
    for addr in [kept, beyond, kept, beyond, kept, beyond] {
        let req = Request::get(format!("http://{addr}/x"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (res, lease) = pool.send(req).await.expect("an answer");
        let body = http_body_util::BodyExt::collect(res.into_body()).await;
        assert_eq!(body.unwrap().to_bytes(), "ok");
        pool.free(lease);
    }
    assert_eq!(
        kept_accepted.load(Ordering::SeqCst),
        1,
        "the first origin's one connection"
    );
    assert_eq!(
        beyond_accepted.load(Ordering::SeqCst),
        3,
        "one per request past the cap"
    );
}

#[tokio::test]
async fn http2_by_alpn_over_tls_carries_concurrent_requests_on_one_connection() {
    // A CA and a certificate for 127.0.0.1.
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let mut server_tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
    )
    .unwrap();
    server_tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_tls));
    let (addr, accepted, _) = counting_server(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            let stream = acceptor.accept(stream).await.unwrap();
            assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            // Each answer names the request's version and path.
            let answer =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let text = format!("{:?} {}", req.version(), req.uri().path());
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), answer)
                .await;
        }
    })
    .await;

    let tls = tls_config(&TlsConfig {
        roots: Roots::Webpki,
        extra_ca_file: Some(ca_file),
    })
    .unwrap();
    let client = upstream_client(tls, Duration::from_secs(3), 1 << 20);
    let first = get(&client, format!("https://{addr}/first")).await;
    assert_eq!(first.body(), "HTTP/2.0 /first");
    let (a, b) = tokio::join!(
        get(&client, format!("https://{addr}/a")),
        get(&client, format!("https://{addr}/b"))
    );
    assert_eq!(a.body(), "HTTP/2.0 /a");
    assert_eq!(b.body(), "HTTP/2.0 /b");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn a_request_without_host_gets_the_origins_host_and_port_unless_default() {
    let host = |uri: &'static str| super::host_of(&http::Uri::from_static(uri)).unwrap();
    assert_eq!(host("https://api.example:443/token"), "api.example");
    assert_eq!(host("http://api.example:80/"), "api.example");
    assert_eq!(host("http://user@127.0.0.1:8080/x"), "127.0.0.1:8080");
    assert_eq!(host("https://[::1]:9443/x"), "[::1]:9443");
    assert!(super::host_of(&http::Uri::from_static("/no-origin")).is_none());
}
