//! A bare hyper-util reverse proxy: the floor of myinfo-proxy's own HTTP stack, for the load
//! benchmark's side-by-side rows. It does what the proxy cannot avoid doing and nothing else:
//! accepts with hyper-util's auto server (HTTP/1.1 and h2c, `TCP_NODELAY`), reads the request
//! body into `Bytes` (the proxy buffers it so that retries can replay it), forwards over
//! hyper-util's pooled legacy client to one upstream, and buffers the answer (the proxy reads
//! error bodies). Same tokio runtime as `myinfo-proxy serve` (current-thread when its affinity
//! mask has one CPU, else multi-threaded with one worker per CPU). No layers, no logging, no
//! metrics. The same allocator as the binary (jemalloc with the options of `.cargo/config.toml`
//! when the default `jemalloc` feature is on), so that the comparison is of the HTTP stack,
//! not of the allocator.
//!
//! Configured by environment, loopback only, bounded in time: `BARE_PROXY_LISTEN`
//! (`127.0.0.1:PORT`; unset: print a note and exit 0, so that a plain `cargo bench` passes),
//! `BARE_PROXY_UPSTREAM` (`127.0.0.1:PORT`), `BARE_PROXY_SECONDS` (exits after this long,
//! default 900). benches/load.sh starts it.

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The proxy's default cap on request bodies.
const MAX_BODY: usize = 64 * 1024;

fn loopback(name: &str) -> Option<SocketAddr> {
    let value = std::env::var(name).ok()?;
    let addr: SocketAddr = value
        .parse()
        .unwrap_or_else(|_| panic!("{name} must be an IP:PORT such as 127.0.0.1:18483"));
    assert!(addr.ip().is_loopback(), "{name}: loopback only");
    Some(addr)
}

fn main() {
    let Some(listen) = loopback("BARE_PROXY_LISTEN") else {
        println!(
            "bare_proxy: BARE_PROXY_LISTEN is not set; nothing to serve (benches/load.sh sets it)"
        );
        return;
    };
    let upstream = loopback("BARE_PROXY_UPSTREAM").expect("BARE_PROXY_UPSTREAM must be set");
    let seconds: u64 = std::env::var("BARE_PROXY_SECONDS").ok().map_or(900, |v| {
        v.parse().expect("BARE_PROXY_SECONDS: whole seconds")
    });

    // The same runtime as `myinfo-proxy serve`: current-thread with one core to use,
    // multi-thread (one worker per core) with more.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let runtime = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
    .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let base = format!("http://{upstream}");
        let server = auto::Builder::new(TokioExecutor::new());
        let deadline = tokio::time::sleep(Duration::from_secs(seconds));
        tokio::pin!(deadline);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut deadline => return,
            };
            let _ = stream.set_nodelay(true);
            let (client, base, server) = (client.clone(), base.clone(), server.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (client, base) = (client.clone(), base.clone());
                    async move { Ok::<_, Infallible>(forward(&client, &base, req).await) }
                });
                let _ = server.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}

async fn forward(client: &HttpClient, base: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{base}{path}").parse::<Uri>() else {
        return status(StatusCode::BAD_REQUEST);
    };
    parts.uri = uri;
    let upstream = Request::from_parts(parts, Full::new(body.to_bytes()));
    let Ok(answer) = client.request(upstream).await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let (parts, body) = answer.into_parts();
    match body.collect().await {
        Ok(body) => Response::from_parts(parts, Full::new(body.to_bytes())),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}
