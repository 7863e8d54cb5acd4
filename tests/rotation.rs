//! Key rotation without restart: the key file changes while requests flow, and the proxy signs
//! with the new key from the next reload on (and keeps good keys when the file breaks).

mod common;

use common::*;
use http::StatusCode;
use singpass_emulator::{Emulator, EmulatorConfig};
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn keys_rotate_without_restart_while_requests_flow() {
    let old = ClientKeyFiles::new();
    let new = ClientKeyFiles::new();
    // Singpass knows both public sets during a rotation (the JWKS publishes old and new).
    let mut both = old.public_jwks();
    for k in new.public_jwks().keys() {
        both.push_key(k.clone());
    }
    let emulator = Emulator::start(
        EmulatorConfig::new(CLIENT_ID, both),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let key_file = old.dir.path().join("live-jwks.json");
    std::fs::copy(old.private_path(), &key_file).unwrap();
    let h = Harness::start_around(
        emulator,
        old,
        &format!(
            "[keys]\njwks_file = \"{}\"\nreload_interval = \"1s\"",
            key_file.display()
        ),
    )
    .await;
    let old_kid = h.proxy.signing_kid();
    let new_kid = new.private["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["use"] == "sig")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut failures = 0;
    for round in 0..30 {
        if round == 10 {
            // Kubernetes-style: write aside, then rename over the mounted file.
            let tmp = key_file.with_extension("tmp");
            std::fs::write(&tmp, new.private.to_string()).unwrap();
            std::fs::rename(&tmp, &key_file).unwrap();
        }
        if round == 20 {
            // A broken update is refused; the keys in use stay.
            std::fs::write(&key_file, "{\"keys\": [").unwrap();
        }
        let token = h.token("u-9", "name").await;
        if token.status != StatusCode::OK {
            failures += 1;
            continue;
        }
        let at = token.json()["access_token"].as_str().unwrap().to_owned();
        if h.person("u-9", &at, "name").await.status != StatusCode::OK {
            failures += 1;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(failures, 0);
    let kids: Vec<String> = h
        .emulator
        .received()
        .iter()
        .filter(|r| r.path.ends_with("/token"))
        .filter_map(|r| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            let jwt = form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "client_assertion")?
                .1
                .into_owned();
            let header = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                jwt.split('.').next()?,
            )
            .ok()?;
            serde_json::from_slice::<serde_json::Value>(&header).ok()?["kid"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(kids.first(), Some(&old_kid));
    assert_eq!(kids.last(), Some(&new_kid), "never switched to the new key");
    assert_eq!(
        h.proxy.signing_kid(),
        new_kid,
        "the broken file replaced good keys"
    );
}
