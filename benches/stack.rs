//! What the proxy's own stack costs per request, in process: a passthrough GET through every
//! layer (request id, sensitive headers, trace and metrics, catch-panic, rescue, API key, body,
//! router, retry, rate limit, error log, attempt timeout) to an upstream service that answers
//! at once, with the headers nginx sends. No socket, no HTTP parsing and no upstream client:
//! only the part of a hop that is the proxy's own code, so that a change to a layer shows here
//! without the noise of the kernel (the load benchmark, benches/load.sh, measures whole hops).
//!
//! `cargo bench --bench stack`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{header, HeaderValue, Request, Response, StatusCode};
use myinfo_proxy::error::BoxError;
use myinfo_proxy::{Config, Proxy};

/// The binary's allocator, as the proxy runs.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The answer of the load benchmark's upstream (nginx `return 200` with a JSON body).
fn answer() -> Response<Bytes> {
    let body = Bytes::from_static(br#"{"a":"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"}"#);
    let mut res = Response::new(body);
    let headers = res.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static("nginx"));
    headers.insert(
        header::DATE,
        HeaderValue::from_static("Tue, 01 Dec 2026 03:00:00 GMT"),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("190"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    res
}

/// What wrk sends.
fn request() -> Request<Bytes> {
    let mut req = Request::new(Bytes::new());
    *req.uri_mut() = http::Uri::from_static("/plain/x");
    req.headers_mut()
        .insert(header::HOST, HeaderValue::from_static("127.0.0.1:18712"));
    req
}

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let (private, _) = myinfo_proxy::jose::generate_client_jwks().expect("keys");
    std::fs::write(dir.path().join("private-jwks.json"), private.to_string()).expect("key file");
    let config = Config::from_toml(
        r#"
listen = "127.0.0.1:0"
client_id = "bench-client"
[admin]
enabled = false
[keys]
jwks_file = "private-jwks.json"
[rate_limit]
enabled = false
[[upstream]]
name = "plain"
kind = "passthrough"
base_url = "http://127.0.0.1:18711"
local_prefix = "/plain"
"#,
        dir.path(),
    )
    .expect("the bench config");
    let upstream = tower::service_fn(|_: Request<Bytes>| async { Ok::<_, BoxError>(answer()) });
    let proxy = rt.block_on(async {
        Proxy::builder(&config)
            .upstream(upstream)
            .build()
            .expect("the proxy")
    });
    let first = rt.block_on(proxy.call_buffered(request()));
    assert_eq!(first.status(), StatusCode::OK, "the route answers");
    c.bench_function("passthrough GET through the stack", |b| {
        b.iter(|| rt.block_on(proxy.call_buffered(request())))
    });
}

criterion_group!(benches, stack);
criterion_main!(benches);
