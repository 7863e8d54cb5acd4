//! The edge over a real socket: the API key is checked on the headers, before the body is read;
//! a panic inside a request still gets an answer (a 500 problem), not a dropped connection.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use myinfo_proxy::error::BoxError;
use myinfo_proxy::{Config, Proxy};
use sha2::Digest;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A proxy over `upstream`, served on 127.0.0.1:0 until the returned sender drops.
async fn serve_proxy<S>(
    extra: &str,
    upstream: S,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tempfile::TempDir,
)
where
    S: tower::Service<Request<Bytes>, Response = Response<Bytes>, Error = BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let (private, _) = myinfo_proxy::jose::generate_client_jwks().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("private-jwks.json"), private.to_string()).unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\nclient_id = \"c\"\n{extra}\n[keys]\njwks_file = \"private-jwks.json\"\n\
         [[upstream]]\nkind = \"myinfo-v4\"\nbase_url = \"https://myinfo.example/com/v4\"\n"
    );
    let config = Config::from_toml(&text, dir.path()).unwrap();
    let proxy = Proxy::builder(&config).upstream(upstream).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    tokio::spawn(proxy.serve(listener, shutdown, Duration::from_secs(1)));
    (addr, stop, dir)
}

fn never_called(
) -> impl tower::Service<Request<Bytes>, Response = Response<Bytes>, Error = BoxError, Future: Send>
       + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_: Request<Bytes>| async { panic!("the upstream was called") })
}

#[tokio::test]
async fn a_request_without_a_valid_api_key_gets_401_before_its_body_is_read() {
    let hash = hex::encode(sha2::Sha256::digest(b"app-key-1"));
    let (addr, _stop, _dir) = serve_proxy(
        &format!("[inbound]\napi_key_sha256 = [\"{hash}\"]"),
        never_called(),
    )
    .await;
    // Headers announcing a 60 KB body (under max_request_body), and no body at all: a server
    // that read the body before the key would wait for it, and never answer.
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = "POST /com/v4/token HTTP/1.1\r\nhost: proxy\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 61440\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("no answer while the body was still outstanding");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
}

#[tokio::test]
async fn a_panic_inside_a_request_is_answered_with_a_500_problem() {
    let (addr, _stop, _dir) = serve_proxy("", never_called()).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::post(format!("http://{addr}/com/v4/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-request-id", "panic-1")
        .body(Full::new(Bytes::from_static(
            b"grant_type=authorization_code&code=c",
        )))
        .unwrap();
    let res = client
        .request(req)
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["x-request-id"], "panic-1");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["title"], "SYSTEM_INTERNAL_ERROR");
    // The connection serves the next request.
    let again = Request::get(format!("http://{addr}/nowhere"))
        .body(Full::default())
        .unwrap();
    assert_eq!(
        client.request(again).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}
