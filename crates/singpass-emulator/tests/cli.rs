//! The `singpass-emulator` binary as a developer runs it: it refuses a private JWKS, and with
//! the public one it serves the three APIs on the address it logs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use josekit::jws::ES256;

const BIN: &str = env!("CARGO_BIN_EXE_singpass-emulator");

/// A client's private and public JWKS files in `dir`.
fn write_client_jwks(dir: &std::path::Path) {
    let pair = ES256.generate_key_pair().expect("key pair");
    let set = |key: josekit::jwk::Jwk| format!(r#"{{"keys":[{key}]}}"#);
    std::fs::write(dir.join("private.json"), set(pair.to_jwk_private_key())).expect("write");
    std::fs::write(dir.join("public.json"), set(pair.to_jwk_public_key())).expect("write");
}

#[test]
fn a_private_jwks_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_client_jwks(dir.path());
    let out = Command::new(BIN)
        .args([
            "--client-id",
            "X",
            "--listen",
            "127.0.0.1:0",
            "--client-jwks",
        ])
        .arg(dir.path().join("private.json"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("give the emulator the PUBLIC JWKS"), "{err}");
}

#[tokio::test]
async fn it_serves_on_the_address_it_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_client_jwks(dir.path());
    let mut child = Command::new(BIN)
        .args([
            "--client-id",
            "X",
            "--listen",
            "127.0.0.1:0",
            "--client-jwks",
        ])
        .arg(dir.path().join("public.json"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The start-up line names the v4 base URL; stderr ends if the binary exits instead.
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let base_url = stderr.lines().map_while(Result::ok).find_map(|line| {
        let (_, rest) = line.split_once("base_url=")?;
        Some(rest.split_whitespace().next()?.to_owned())
    });
    let Some(base_url) = base_url else {
        child.kill().ok();
        panic!("no start-up line naming base_url");
    };
    let origin = base_url.trim_end_matches("/com/v4").to_owned();

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("{origin}/fapi/.well-known/openid-configuration");
    let answer = client.get(uri.parse().expect("uri")).await;
    child.kill().expect("kill");
    child.wait().expect("wait");

    let answer = answer.expect("discovery answered");
    assert_eq!(answer.status(), 200);
    let body = answer.into_body().collect().await.expect("body").to_bytes();
    let metadata: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(metadata["issuer"], format!("{origin}/fapi"));
}
