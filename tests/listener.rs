//! The listeners of the real binary against slow clients and connection floods (loopback,
//! small configured limits): slowloris connections are closed by the header timer while normal
//! requests and `/healthz` are served; connections past the cap are closed and counted, and the
//! admin listener keeps answering.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_myinfo-proxy");

/// The binary with a passthrough route (`/pass`) to a local upstream that answers 200.
struct Proxy {
    child: Child,
    main: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                hyper_util::rt::TokioIo::new(stream),
                hyper::service::service_fn(|_| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"upstream"),
                    )))
                }),
            ));
        }
    });
    addr
}

async fn start(listener: &str) -> Proxy {
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let keygen = Command::new(BIN)
        .args(["keygen", "--out", "keys"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let config = format!(
        "listen = \"127.0.0.1:0\"\nclient_id = \"STG-1\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{listener}\n[keys]\njwks_file = \"keys/private-jwks.json\"\n[[upstream]]\nkind = \"passthrough\"\nbase_url = \"http://{upstream}\"\nlocal_prefix = \"/pass\"\n"
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", "config.toml"])
        .current_dir(dir.path())
        .env("MYINFO_PROXY_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (main, admin) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let addrs = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                let v = serde_json::from_str::<serde_json::Value>(&l).ok()?;
                let f = &v["fields"];
                Some((
                    f["listen"].as_str()?.parse().ok()?,
                    f["admin"].as_str()?.parse().ok()?,
                ))
            })
            .expect("the proxy never logged its addresses");
        std::thread::spawn(move || lines.for_each(drop));
        addrs
    })
    .await
    .unwrap();
    Proxy {
        child,
        main,
        admin,
        _dir: dir,
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// One pooled client per test, so that repeated scrapes reuse one admin connection.
fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// One request; the status and body.
async fn get(client: &Client, addr: SocketAddr, path: &str) -> (u16, String) {
    let res = client
        .request(
            http::Request::get(format!("http://{addr}{path}"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The value of one metric line in the admin listener's `/metrics`.
async fn metric(client: &Client, admin: SocketAddr, line_start: &str) -> f64 {
    let (_, text) = get(client, admin, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Reads until the server closes the connection (EOF or reset); false if it stays open for
/// `limit`, which no limit under test comes near.
async fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn slowloris_connections_are_closed_by_the_header_timer_while_others_are_served() {
    // Only the header timer (500 ms) is short; body and idle timers are a minute.
    let proxy = start("[listener.main]\nheader_read_timeout = \"500ms\"\nbody_timeout = \"60s\"\nidle_timeout = \"60s\"\nmax_connections = 300\n").await;
    let c = client();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(proxy.main).await.unwrap();
        s.write_all(b"G").await.unwrap();
        slow.push(s);
    }
    assert_eq!(
        get(&c, proxy.main, "/pass/x").await,
        (200, "upstream".to_owned())
    );
    assert_eq!(get(&c, proxy.admin, "/healthz").await.0, 200);
    for s in &mut slow {
        assert!(
            closed_by_server(s, Duration::from_secs(20)).await,
            "a slow connection stayed open"
        );
    }
    assert_eq!(
        metric(
            &c,
            proxy.admin,
            "myinfo_proxy_connections_refused_total{listener=\"main\"}"
        )
        .await,
        0.0
    );
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_and_counted_while_admin_answers() {
    let proxy = start("[listener.main]\nheader_read_timeout = \"30s\"\nidle_timeout = \"60s\"\nmax_connections = 8\n[listener.admin]\nmax_connections = 4\n").await;
    // Eight kept-alive connections, each with one answered request: the listener is full.
    let c = client();
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(proxy.main).await.unwrap();
        s.write_all(b"GET /pass/x HTTP/1.1\r\nhost: p\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        held.push(s);
    }
    for _ in 0..20 {
        let mut s = TcpStream::connect(proxy.main).await.unwrap();
        let _ = s
            .write_all(b"GET /pass/x HTTP/1.1\r\nhost: p\r\n\r\n")
            .await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut answer)).await;
        assert!(answer.is_empty(), "a connection past the cap was served");
    }
    assert_eq!(get(&c, proxy.admin, "/healthz").await.0, 200);
    assert_eq!(
        metric(
            &c,
            proxy.admin,
            "myinfo_proxy_connections_refused_total{listener=\"main\"}"
        )
        .await,
        20.0
    );
    assert_eq!(
        metric(
            &c,
            proxy.admin,
            "myinfo_proxy_open_connections{listener=\"main\"}"
        )
        .await,
        8.0
    );
    // Room again once held connections go.
    drop(held);
    let mut served = false;
    for _ in 0..1000 {
        if metric(
            &c,
            proxy.admin,
            "myinfo_proxy_open_connections{listener=\"main\"}",
        )
        .await
            < 8.0
        {
            served = get(&c, proxy.main, "/pass/y").await.0 == 200;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(served, "the listener did not take connections again");
}
