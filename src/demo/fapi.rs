//! The demo's FAPI 2.0 part: PAR, the user's consent (the emulator's, without a browser),
//! token and userinfo, all signed with one ephemeral key; answers opened by the proxy.

use super::report::describe;
use super::{App, REDIRECT};
use crate::jose::sha256_b64url;
use http::Method;
use singpass_emulator::{Emulator, EmulatorRoute};

const SUB: &str = "f4a1c0de-5b1c-4e39-9c1e-demo";

pub(super) async fn login(app: &App, emulator: &Emulator) -> Result<(), String> {
    println!("\nSingpass FAPI 2.0");
    let verifier = format!("demo-{}", sha256_b64url(&rand::random::<[u8; 16]>()));
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("scope", "openid uinfin name")
        .append_pair("state", "demo-state")
        .append_pair("nonce", "demo-nonce")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &sha256_b64url(verifier.as_bytes()))
        .append_pair("code_challenge_method", "S256")
        .finish();
    println!("5. The app PARs through the proxy: POST /fapi/par (a fresh key for this login).");
    let (status, body) = app
        .send(Method::POST, "/fapi/par", None, Some(form))
        .await?;
    println!(
        "   proxy -> emulator: {}",
        last(emulator, EmulatorRoute::Par)?
    );
    let request_uri = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["request_uri"].as_str().map(str::to_owned))
        .ok_or(format!("PAR answered {status} without a request_uri"))?;
    println!(
        "   the app got {status} with request_uri; the user logs in at the authorization endpoint"
    );
    let code = emulator.authorize_par(&request_uri, SUB)?;

    println!("6. The app exchanges the code: POST /fapi/token (the proxy finds the login's key by S256(code_verifier)).");
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_verifier", &verifier)
        .append_pair("nonce", "demo-nonce")
        .finish();
    let (status, body) = app
        .send(Method::POST, "/fapi/token", None, Some(form))
        .await?;
    println!(
        "   proxy -> emulator: {}",
        last(emulator, EmulatorRoute::FapiToken)?
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| format!("token answered {status}: not JSON"))?;
    let claims = &answer["id_token_claims"];
    println!("   the app got {status}; the proxy decrypted and verified the id_token: sub={} nonce={} iss={}", claims["sub"], claims["nonce"], claims["iss"]);
    let token = answer["access_token"].as_str().ok_or("no access_token")?;

    println!("7. The app calls GET /fapi/userinfo twice with Authorization: Bearer <token> (FAPI tokens are reusable).");
    for _ in 0..2 {
        let (status, body) = app
            .send(Method::GET, "/fapi/userinfo", Some(token), None)
            .await?;
        println!(
            "   proxy -> emulator: {}",
            last(emulator, EmulatorRoute::Userinfo)?
        );
        let info: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        println!(
            "   the app got {status}, opened: person_info = {}",
            info["person_info"]
        );
    }
    Ok(())
}

/// What the emulator received last on `route`, described.
fn last(emulator: &Emulator, route: EmulatorRoute) -> Result<String, String> {
    emulator
        .received()
        .into_iter()
        .rev()
        .find(|r| r.route == Some(route))
        .map(|r| describe(&r))
        .ok_or_else(|| format!("the emulator saw no {route:?} call"))
}
