//! Drives FAPI logins through a running proxy, to fill its binding store: for each login a PAR
//! (`code_challenge` = S256 of a fresh `code_verifier`) and then a token call with that verifier,
//! so the proxy binds one access token to one ephemeral key. benches/load.sh uses it for the
//! "RSS with 100,000 live bindings" row and, with one login, to get the token that the DPoP
//! row reuses.
//!
//! Configured by environment, loopback only, bounded in count and time:
//! `MYINFO_BENCH_PROXY` (`127.0.0.1:PORT`; unset: print a note and exit 0, so that a plain
//! `cargo bench` passes), `MYINFO_BENCH_LOGINS` (default 100000), `MYINFO_BENCH_CONCURRENCY`
//! (default 32), `MYINFO_BENCH_SECONDS` (time bound, default 240).
//! Prints `logins=.. ok=.. failed=.. seconds=..` and the last access token as `token=..`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const FORM: &str = "application/x-www-form-urlencoded";
const REDIRECT: &str = "https%3A%2F%2Fapp.example%2Fcallback";

struct Run {
    client: HttpClient,
    base: String,
    next: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    total: u64,
    deadline: Instant,
    last_token: Mutex<Option<String>>,
    first_error: Mutex<Option<String>>,
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

fn main() {
    let Ok(proxy) = std::env::var("MYINFO_BENCH_PROXY") else {
        println!(
            "logins: MYINFO_BENCH_PROXY is not set; nothing to drive (benches/load.sh sets it)"
        );
        return;
    };
    let addr: SocketAddr = proxy
        .parse()
        .expect("MYINFO_BENCH_PROXY must be an IP:PORT such as 127.0.0.1:18482");
    assert!(
        addr.ip().is_loopback(),
        "the login driver only talks to loopback"
    );
    let total = env_u64("MYINFO_BENCH_LOGINS", 100_000);
    let concurrency = env_u64("MYINFO_BENCH_CONCURRENCY", 32).clamp(1, 256);
    let seconds = env_u64("MYINFO_BENCH_SECONDS", 240).clamp(1, 900);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let run = Arc::new(Run {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{addr}/fapi"),
        next: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        total,
        deadline: started + Duration::from_secs(seconds),
        last_token: Mutex::new(None),
        first_error: Mutex::new(None),
    });
    runtime.block_on(async {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| tokio::spawn(worker(run.clone())))
            .collect();
        for w in workers {
            w.await.expect("worker");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let ok = run.ok.load(Ordering::Relaxed);
    let failed = run.failed.load(Ordering::Relaxed);
    println!(
        "logins={total} ok={ok} failed={failed} seconds={elapsed:.1} rate={:.0}/s timed_out={}",
        ok as f64 / elapsed,
        ok + failed < total
    );
    if let Some(e) = run.first_error.lock().unwrap().as_ref() {
        println!("first_error={e}");
    }
    if let Some(t) = run.last_token.lock().unwrap().as_ref() {
        println!("token={t}");
    }
    if ok == 0 {
        std::process::exit(1);
    }
}

async fn worker(run: Arc<Run>) {
    while Instant::now() < run.deadline {
        if run.next.fetch_add(1, Ordering::Relaxed) >= run.total {
            return;
        }
        match login(&run).await {
            Ok(token) => {
                run.ok.fetch_add(1, Ordering::Relaxed);
                *run.last_token.lock().unwrap() = Some(token);
            }
            Err(e) => {
                run.failed.fetch_add(1, Ordering::Relaxed);
                run.first_error.lock().unwrap().get_or_insert(e);
            }
        }
    }
}

/// One login: PAR with S256(verifier), then the token call with the verifier.
async fn login(run: &Run) -> Result<String, String> {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));

    let par = format!(
        "response_type=code&scope=openid&state=s&nonce=n&redirect_uri={REDIRECT}\
         &code_challenge={challenge}&code_challenge_method=S256"
    );
    let (status, _) = post(run, "par", par).await?;
    if status != StatusCode::CREATED {
        return Err(format!("PAR answered {status}"));
    }
    let token = format!(
        "grant_type=authorization_code&code=bench&redirect_uri={REDIRECT}&code_verifier={verifier}"
    );
    let (status, body) = post(run, "token", token).await?;
    if status != StatusCode::OK {
        return Err(format!(
            "token answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: String,
    }
    serde_json::from_slice::<Answer>(&body)
        .map(|a| a.access_token)
        .map_err(|e| format!("token answer: {e}"))
}

async fn post(run: &Run, path: &str, form: String) -> Result<(StatusCode, Bytes), String> {
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/{path}", run.base))
        .header(header::CONTENT_TYPE, FORM)
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| e.to_string())?;
    let res = tokio::time::timeout(Duration::from_secs(10), run.client.request(req))
        .await
        .map_err(|_| format!("{path}: no answer within 10 s"))?
        .map_err(|e| format!("{path}: {e}"))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{path} body: {e}"))?
        .to_bytes();
    Ok((status, body))
}
