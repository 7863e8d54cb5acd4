//! An upstream that echoes the request back in its error answers: none of the request's
//! secrets (code, code_verifier, client assertion, DPoP proof, access token) reaches any log
//! line, in any of the forms an echo may take, and the app still gets the body byte for byte.

mod common;

use bytes::Bytes;
use common::logs::capture;
use common::ClientKeyFiles;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use myinfo_proxy::{Config, Proxy};
use std::sync::{Arc, Mutex};

const ACCESS_TOKEN: &str = "opaque-token-5d41402abc4b2a76b9719d911017c592";
const VERIFIER: &str = "verifier-00000000000000000001-00000000000000000002";

/// What the echo upstream received and answered.
#[derive(Default)]
struct Seen {
    /// Every secret-looking value received (form fields, Authorization, DPoP).
    values: Vec<String>,
    /// The body of every error answer, as sent.
    answers: Vec<Bytes>,
}

/// Picks what to echo: the header `x-echo` names one form field or header, `x-echo-format`
/// says how (`json`, `percent`, `html`). A token call without `x-echo` gets a token.
fn echo(seen: &Mutex<Seen>, req: &http::request::Parts, body: &Bytes) -> Response<Full<Bytes>> {
    let mut items: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    for name in ["authorization", "dpop"] {
        if let Some(v) = req.headers.get(name).and_then(|v| v.to_str().ok()) {
            items.push((name.to_owned(), v.to_owned()));
        }
    }
    let mut seen = seen.lock().unwrap();
    for (name, value) in &items {
        if ![
            "grant_type",
            "redirect_uri",
            "client_id",
            "client_assertion_type",
        ]
        .contains(&&**name)
        {
            seen.values.push(value.clone());
        }
    }
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(wanted) = header("x-echo") else {
        let token =
            format!(r#"{{"access_token":"{ACCESS_TOKEN}","token_type":"DPoP","expires_in":600}}"#);
        return Response::new(Full::new(Bytes::from(token)));
    };
    let value = items
        .iter()
        .find(|(n, _)| n == wanted)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("the request had no {wanted}"));
    let answer = match header("x-echo-format").unwrap_or("json") {
        "percent" => {
            let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
            serde_json::json!({"id": encoded, "trace_id": encoded, "error": "invalid_request", "error_description": format!("bad {wanted}={encoded}")}).to_string()
        }
        "html" => format!("<html><body>rejected {wanted}: {value}</body></html>"),
        _ => serde_json::json!({
            "id": value, "trace_id": value, "error": value,
            "error_description": format!("the {wanted} {value} is not accepted"),
        })
        .to_string(),
    };
    let answer = Bytes::from(answer);
    seen.answers.push(answer.clone());
    let mut res = Response::new(Full::new(answer));
    *res.status_mut() = StatusCode::BAD_REQUEST;
    res
}

/// The echo upstream on 127.0.0.1:0; returns its base URL.
async fn echo_upstream(seen: Arc<Mutex<Seen>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/com/v4", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let seen = seen.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await?.to_bytes();
                    Ok::<_, hyper::Error>(echo(&seen, &parts, &body))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    base
}

async fn call(proxy: &Proxy, req: Request<Bytes>) -> Response<Bytes> {
    proxy.call_buffered(req).await
}

fn token_call(code: &str, echo: Option<(&str, &str)>) -> Request<Bytes> {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", common::REDIRECT)
        .append_pair("code_verifier", VERIFIER)
        .finish();
    let mut req =
        Request::post("/com/v4/token").header("content-type", "application/x-www-form-urlencoded");
    if let Some((field, format)) = echo {
        req = req.header("x-echo", field).header("x-echo-format", format);
    }
    req.body(Bytes::from(form)).unwrap()
}

#[tokio::test]
async fn an_echoing_upstream_puts_no_secret_in_any_log_line() {
    let keys = ClientKeyFiles::new();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let base = echo_upstream(seen.clone()).await;
    let text = format!(
        "client_id = \"{}\"\n[keys]\njwks_file = \"{}\"\n[[upstream]]\nname = \"echo\"\nkind = \"myinfo-v4\"\nbase_url = \"{base}\"\n",
        common::CLIENT_ID,
        keys.private_path().display()
    );
    let proxy = Proxy::from_config(&Config::from_toml(&text, keys.dir.path()).unwrap()).unwrap();
    let (logs, _guard) = capture();
    let mut app_bodies = Vec::new();

    for format in ["json", "percent", "html"] {
        for field in ["code", "code_verifier", "client_assertion", "dpop"] {
            let code = format!("code-{field}-{format}-7f3a9c1e-0b6d-4e2f-a8c5/9d1e+2f3a");
            let res = call(&proxy, token_call(&code, Some((field, format)))).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
            app_bodies.push(res.into_body());
        }
        for field in ["authorization", "dpop"] {
            // A fresh one-time token for each person call.
            let ok = call(&proxy, token_call("code-for-a-token-0123456789", None)).await;
            assert_eq!(ok.status(), StatusCode::OK, "{:?}", ok.body());
            let res = call(
                &proxy,
                Request::get("/com/v4/person/S1234567A?scope=name")
                    .header("authorization", format!("Bearer {ACCESS_TOKEN}"))
                    .header("x-echo", field)
                    .header("x-echo-format", format)
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{:?}", res.body());
            app_bodies.push(res.into_body());
        }
    }

    let seen = seen.lock().unwrap();
    assert_eq!(
        app_bodies, seen.answers,
        "the app gets every answer byte for byte"
    );
    let errors = logs.with_target("myinfo_proxy::upstream_error");
    assert_eq!(errors.len(), 18, "one event per error answer");
    assert!(
        errors
            .iter()
            .all(|e| e.fields.values().any(|v| v.contains("[redacted]"))),
        "every echo was redacted"
    );
    let all = logs.all_text();
    let mut secrets: Vec<&str> = seen.values.iter().map(String::as_str).collect();
    secrets.extend([ACCESS_TOKEN, VERIFIER]);
    assert!(
        secrets.iter().any(|s| s.starts_with("eyJ")),
        "proofs were sent"
    );
    for secret in secrets {
        let encoded: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        for form in [secret, &encoded, &secret[..secret.len().min(24)]] {
            assert!(
                !all.contains(form),
                "a secret appears in the logs: {}...",
                &form[..8]
            );
        }
    }
}
