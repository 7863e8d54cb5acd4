//! The demo's Myinfo v4 part: token (with one injected 503, retried), person, a refused second
//! use, and a burst that meets the rate limiter.

use super::report::describe;
use super::{App, CLIENT_ID, REDIRECT};
use crate::jose::sha256_b64url;
use http::Method;
use singpass_emulator::{Emulator, EmulatorRoute, Fault};

const SUB: &str = "S9812381D-uuid";
const SCOPE: &str = "uinfin name email";

pub(super) async fn flow(
    app: &App,
    emulator: &Emulator,
    private: &serde_json::Value,
) -> Result<(), String> {
    let form = token_form(emulator);
    println!("Myinfo v4");
    println!("1. The app posts its usual form: POST /com/v4/token (no assertion, no DPoP).");
    println!("   The emulator will answer the first attempt with 503, as Singpass does during incidents.");
    emulator.script(
        EmulatorRoute::Token,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    let before = emulator.received().len();
    let (status, body) = app
        .send(Method::POST, "/com/v4/token", None, Some(form))
        .await?;
    for r in &emulator.received()[before..] {
        println!("   proxy -> emulator: {}", describe(r));
    }
    println!("   the app got {status}: the 503 was retried with a fresh assertion and proof from the same key,");
    println!(
        "   and its id and trace_id went to the log as a WARN myinfo_proxy::upstream_error event"
    );
    let token = access_token(&body)?;

    println!("2. The app calls GET /com/v4/person/{SUB} with Authorization: Bearer <token>.");
    let path = format!("/com/v4/person/{SUB}?scope=uinfin%20name");
    let (status, body) = app.send(Method::GET, &path, Some(&token), None).await?;
    println!(
        "   proxy -> emulator: {}",
        describe(emulator.received().last().ok_or("nothing")?)
    );
    println!(
        "   the app got {status} and a JWE of {} bytes; opened with the client's enc key:",
        body.len()
    );
    println!(
        "   {}",
        super::report::open_person(&body, private, emulator)
            .unwrap_or_else(|e| format!("(could not open: {e})"))
    );

    println!("3. The app calls person again with the same one-time token.");
    let before = emulator.received().len();
    let (status, body) = app.send(Method::GET, &path, Some(&token), None).await?;
    let title = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .map(|v| v["title"].to_string())
        .unwrap_or_default();
    println!(
        "   the proxy answered {status} {title} itself; upstream calls: {}",
        emulator.received().len() - before
    );
    Ok(())
}

/// The app's usual token form for a fresh code the emulator minted.
fn token_form(emulator: &Emulator) -> String {
    let verifier = format!("demo-{}", sha256_b64url(&rand::random::<[u8; 16]>()));
    let code = emulator.mint_code(SUB, SCOPE, &sha256_b64url(verifier.as_bytes()), REDIRECT);
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("client_id", CLIENT_ID)
        .append_pair("code_verifier", &verifier)
        .finish()
}

fn access_token(body: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["access_token"].as_str().map(str::to_owned))
        .ok_or_else(|| "no access_token in the answer".to_owned())
}

/// Eight person calls at once, each with its own real token, against a route quota of 2/s
/// with a burst of 2. (A made-up or reused token is refused before the limiter and never takes
/// a permit, so the burst needs real tokens to meet it.)
pub(super) async fn burst(app: &App, emulator: &Emulator) -> Result<(), String> {
    let mut tokens = Vec::new();
    for _ in 0..8 {
        let (_, body) = app
            .send(
                Method::POST,
                "/com/v4/token",
                None,
                Some(token_form(emulator)),
            )
            .await?;
        tokens.push(access_token(&body)?);
    }
    // Let the route's bucket refill after steps 2 and 3 took its permits.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    println!(
        "4. A burst: the app gets 8 tokens, then fires 8 person calls at once; the route's quota is 2/s, burst 2."
    );
    let calls = tokens.iter().map(|token| {
        let path = format!("/com/v4/person/{SUB}?scope=name");
        async move { app.send(Method::GET, &path, Some(token), None).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    let mut throttled = 0;
    let mut passed = 0;
    for (status, _) in answers.into_iter().flatten() {
        if status == 429 {
            throttled += 1;
        } else {
            passed += 1;
        }
    }
    println!("   {passed} got a permit and their answer from the emulator;");
    println!("   {throttled} were refused with 429 RESOURCE_RATE_LIMITED and a Retry-After header");
    Ok(())
}
