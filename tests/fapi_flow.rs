//! Singpass FAPI 2.0 through the proxy against the strict emulator: a whole login, key
//! continuity, decryption on and off, DPoP nonces, unknown logins, discovery outages (CIBA is in
//! `ciba.rs`).

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use singpass_emulator::{EmulatorRoute, Fault};

const SUB: &str = "f1a2b3c4-user";

struct Login {
    verifier: String,
    code: String,
    nonce: String,
}

/// PARs through the proxy and has the emulator's user consent: returns what the app holds.
async fn par_and_consent(h: &Harness) -> Login {
    let (verifier, challenge) = pkce();
    let nonce = format!("n-{}", rand::random::<u32>());
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("scope", "openid uinfin name")
        .append_pair("state", "st-1")
        .append_pair("nonce", &nonce)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("acr_values", "urn:singpass:authentication:loa:2")
        .finish();
    let par = h.post_form("/fapi/par", &form, &[]).await;
    assert_eq!(par.status, StatusCode::CREATED, "{:?}", par.body);
    let request_uri = par.json()["request_uri"].as_str().unwrap().to_owned();
    let code = h.emulator.authorize_par(&request_uri, SUB).unwrap();
    Login {
        verifier,
        code,
        nonce,
    }
}

fn fapi_token_form(login: &Login) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &login.code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_verifier", &login.verifier)
        .finish()
}

async fn userinfo(h: &Harness, token: &str) -> Answer {
    h.send(
        Method::GET,
        "/fapi/userinfo",
        &[("authorization", &format!("Bearer {token}"))],
        Bytes::new(),
    )
    .await
}

fn accepted(h: &Harness, route: EmulatorRoute) -> usize {
    h.emulator
        .received()
        .iter()
        .filter(|r| r.route == Some(route) && r.status < 300)
        .count()
}

#[tokio::test]
async fn a_whole_login_par_token_userinfo_passes_every_check() {
    let h = Harness::start_fapi("", "").await;
    let login = par_and_consent(&h).await;
    let token = h
        .post_form("/fapi/token", &fapi_token_form(&login), &[])
        .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    let answer = token.json();
    assert_eq!(answer["token_type"], "DPoP");
    // Decryption is off by default: the id_token is the upstream's JWE, untouched.
    assert_eq!(answer["id_token"].as_str().unwrap().split('.').count(), 5);
    assert!(answer.get("id_token_claims").is_none());
    let access_token = answer["access_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let info = userinfo(&h, &access_token).await;
        assert_eq!(info.status, StatusCode::OK, "{:?}", info.body);
        assert_eq!(
            std::str::from_utf8(&info.body).unwrap().split('.').count(),
            5,
            "JWE passes through"
        );
    }
    assert_eq!(accepted(&h, EmulatorRoute::Par), 1);
    assert_eq!(accepted(&h, EmulatorRoute::FapiToken), 1);
    assert_eq!(
        accepted(&h, EmulatorRoute::Userinfo),
        2,
        "FAPI tokens may be used again"
    );
    assert!(
        h.emulator.received().iter().all(|r| r.rejection.is_none()),
        "{:#?}",
        h.emulator.received()
    );
}

#[tokio::test]
async fn decryption_returns_verified_claims_and_plain_userinfo() {
    let h = Harness::start_fapi(
        "",
        "[upstream.routes.token]\ndecrypt = true\n[upstream.routes.userinfo]\ndecrypt = true",
    )
    .await;
    let login = par_and_consent(&h).await;
    let form = format!("{}&nonce={}", fapi_token_form(&login), login.nonce);
    let token = h.post_form("/fapi/token", &form, &[]).await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    let answer = token.json();
    let claims = &answer["id_token_claims"];
    assert_eq!(claims["sub"], SUB);
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["iss"], h.emulator.fapi_issuer());
    assert_eq!(claims["nonce"], login.nonce.as_str());
    // The app's `nonce` field is the proxy's, not Singpass's.
    let sent = h
        .emulator
        .received()
        .into_iter()
        .find(|r| r.route == Some(EmulatorRoute::FapiToken))
        .unwrap();
    assert!(!String::from_utf8_lossy(&sent.body).contains("nonce="));

    let info = userinfo(&h, answer["access_token"].as_str().unwrap()).await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(info.content_type(), "application/json");
    let json = info.json();
    assert_eq!(json["sub"], SUB);
    assert!(json["person_info"].is_object(), "{json}");
}

#[tokio::test]
async fn a_wrong_id_token_nonce_is_refused_not_half_opened() {
    let h = Harness::start_fapi("", "[upstream.routes.token]\ndecrypt = true").await;
    let login = par_and_consent(&h).await;
    let form = format!("{}&nonce=not-the-login-nonce", fapi_token_form(&login));
    let res = h.post_form("/fapi/token", &form, &[]).await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY);
    let p = res.problem("PROVIDER_UNEXPECTED_RESPONSE");
    assert!(p["detail"].as_str().unwrap().contains("nonce"));
    assert!(!String::from_utf8_lossy(&res.body).contains("access_token"));
}

#[tokio::test]
async fn the_code_is_bound_to_its_logins_key() {
    let h = Harness::start_fapi("", "").await;
    let a = par_and_consent(&h).await;
    let b = par_and_consent(&h).await;
    // Login A's verifier picks A's key; B's code is bound to B's key: the emulator refuses.
    let crossed = Login {
        verifier: a.verifier.clone(),
        code: b.code.clone(),
        nonce: String::new(),
    };
    let res = h
        .post_form("/fapi/token", &fapi_token_form(&crossed), &[])
        .await;
    assert!(res.status.is_client_error(), "{}", res.status);
    assert_ne!(
        res.content_type(),
        "application/problem+json",
        "the upstream's refusal passes through"
    );
    let refused = h
        .emulator
        .received()
        .into_iter()
        .filter(|r| r.route == Some(EmulatorRoute::FapiToken))
        .last()
        .unwrap();
    assert!(refused.rejection.is_some());
    // A's own code still works with A's key.
    let ok = h.post_form("/fapi/token", &fapi_token_form(&a), &[]).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
}

#[tokio::test]
async fn a_token_call_whose_par_did_not_go_through_the_proxy_is_refused_locally() {
    let h = Harness::start_fapi("", "").await;
    let (verifier, _) = pkce();
    let login = Login {
        verifier,
        code: "some-code".into(),
        nonce: String::new(),
    };
    let res = h
        .post_form("/fapi/token", &fapi_token_form(&login), &[])
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let p = res.problem("AUTH_LOGIN_UNKNOWN");
    assert!(p["detail"].as_str().unwrap().contains("PAR"));
    assert_eq!(
        h.emulator
            .received()
            .iter()
            .filter(|r| r.route == Some(EmulatorRoute::FapiToken))
            .count(),
        0
    );

    let unknown = userinfo(&h, "never-issued").await;
    unknown.problem("AUTH_TOKEN_UNKNOWN");
    let no_challenge = h
        .post_form("/fapi/par", "response_type=code&scope=openid", &[])
        .await;
    no_challenge.problem("VALIDATION_MISSING_PARAMETER");
}

#[tokio::test]
async fn dpop_nonces_are_learned_and_used_once_asked_for() {
    let (logs, _guard) = common::logs::capture();
    let h = Harness::start_fapi("", "").await;
    h.emulator.require_dpop_nonce(true);
    let login = par_and_consent(&h).await;
    let pars: Vec<_> = h
        .emulator
        .received()
        .into_iter()
        .filter(|r| r.route == Some(EmulatorRoute::Par))
        .collect();
    assert_eq!(
        pars.len(),
        2,
        "one use_dpop_nonce answer, then one retry with the nonce"
    );
    assert!(pars[0].rejection.is_some() && pars[1].rejection.is_none());
    // The nonce is known now: the token call needs one attempt.
    let token = h
        .post_form("/fapi/token", &fapi_token_form(&login), &[])
        .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    assert_eq!(
        h.emulator
            .received()
            .iter()
            .filter(|r| r.route == Some(EmulatorRoute::FapiToken))
            .count(),
        1
    );
    // The resource server rotates its nonce: 401 use_dpop_nonce, one retry, success.
    h.emulator.rotate_dpop_nonce();
    h.emulator.rotate_dpop_nonce();
    let info = userinfo(&h, token.json()["access_token"].as_str().unwrap()).await;
    assert_eq!(info.status, StatusCode::OK, "{:?}", info.body);
    let calls = h
        .emulator
        .received()
        .into_iter()
        .filter(|r| r.route == Some(EmulatorRoute::Userinfo))
        .count();
    assert!(calls <= 2, "never more than one nonce retry");
    // Each demand went through the error log once (at INFO), and was counted.
    let demands: Vec<_> = logs
        .with_target("myinfo_proxy::upstream_error")
        .into_iter()
        .filter(|e| e.field("error") == Some("use_dpop_nonce"))
        .collect();
    assert_eq!(demands.len(), pars.len() - 1 + calls - 1, "{demands:#?}");
    assert!(demands.iter().all(|e| e.level == tracing::Level::INFO));
    assert!(h
        .proxy
        .metrics()
        .contains("myinfo_proxy_dpop_nonce_retries_total{route=\"fapi_par\"}"));
}

#[tokio::test]
async fn a_server_that_keeps_asking_for_a_nonce_gets_exactly_one_retry() {
    let h = Harness::start_fapi("", "").await;
    // Each answer demands a nonce the proof cannot have had: the proxy must not loop.
    h.emulator.script(
        EmulatorRoute::Par,
        Fault::OAuthError {
            status: 400,
            error: "use_dpop_nonce".into(),
        },
        5,
    );
    let (_, challenge) = pkce();
    let form = format!("response_type=code&scope=openid&state=s&nonce=n&redirect_uri={REDIRECT}&code_challenge={challenge}&code_challenge_method=S256");
    let res = h.post_form("/fapi/par", &form, &[]).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let pars = h
        .emulator
        .received()
        .into_iter()
        .filter(|r| r.route == Some(EmulatorRoute::Par))
        .count();
    assert!(pars <= 2, "{pars} PAR attempts");
}

#[tokio::test(start_paused = true)]
async fn discovery_down_keeps_the_cached_copy() {
    let h = Harness::start_fapi("", "").await;
    par_and_consent(&h).await;
    h.emulator.set_discovery_available(false);
    // Well past the hourly refresh: the refresh fails, the last good copy serves.
    tokio::time::advance(std::time::Duration::from_secs(2 * 3600)).await;
    par_and_consent(&h).await;
    par_and_consent(&h).await;
    let discoveries = h
        .emulator
        .received()
        .into_iter()
        .filter(|r| r.route == Some(EmulatorRoute::Discovery))
        .collect::<Vec<_>>();
    assert!(
        discoveries.iter().any(|r| r.status == 503),
        "the refresh was never tried"
    );

    // A proxy that never had a copy cannot serve FAPI routes: a clear 5xx problem.
    let fresh = Harness::start_fapi("", "").await;
    fresh.emulator.set_discovery_available(false);
    let (_, challenge) = pkce();
    let res = fresh
        .post_form(
            "/fapi/par",
            &format!("code_challenge={challenge}&code_challenge_method=S256"),
            &[],
        )
        .await;
    assert!(res.status.is_server_error(), "{}", res.status);
    assert_eq!(res.content_type(), "application/problem+json");
}

#[tokio::test]
async fn no_fapi_secret_reaches_the_logs_or_the_metrics() {
    let (logs, _guard) = common::logs::capture();
    let h = Harness::start_fapi(
        "",
        "[upstream.routes.token]\ndecrypt = true\n[upstream.routes.userinfo]\ndecrypt = true",
    )
    .await;
    h.emulator.require_dpop_nonce(true);
    h.emulator.script(
        EmulatorRoute::FapiToken,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    let login = par_and_consent(&h).await;
    let token = h
        .post_form("/fapi/token", &fapi_token_form(&login), &[])
        .await;
    assert_eq!(token.status, StatusCode::OK);
    let access_token = token.json()["access_token"].as_str().unwrap().to_owned();
    let id_token = token.json()["id_token"].as_str().unwrap().to_owned();
    userinfo(&h, &access_token).await;
    userinfo(&h, "wrong-token-abcdefghijkl").await;
    let reused = h
        .post_form("/fapi/token", &fapi_token_form(&login), &[])
        .await;
    assert!(reused.status.is_client_error());

    let secrets = secrets_seen(
        &h,
        vec![
            access_token,
            id_token,
            login.verifier.clone(),
            login.code.clone(),
        ],
    );
    let text = logs.all_text();
    assert!(text.contains("myinfo_proxy::access"));
    assert_no_secret_in(&h.proxy, &text, &secrets);
}

#[tokio::test]
async fn a_par_whose_code_challenge_is_not_s256_is_refused_before_it_is_sent() {
    let h = Harness::start_fapi("", "").await;
    let (_, challenge) = pkce();
    for bad in [
        "A".repeat(60 * 1024),
        challenge[..42].to_owned(),
        format!("{}+", &challenge[..42]),
    ] {
        let form = format!("response_type=code&scope=openid&state=s&nonce=n&redirect_uri={REDIRECT}&code_challenge={bad}&code_challenge_method=S256");
        let res = h.post_form("/fapi/par", &form, &[]).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{:?}", res.body);
        let p = res.problem("VALIDATION_INVALID_PARAMETER");
        assert!(
            p["detail"].as_str().unwrap().starts_with("code_challenge "),
            "{p}"
        );
    }
    assert_eq!(
        h.emulator
            .received()
            .iter()
            .filter(|r| r.route == Some(EmulatorRoute::Par))
            .count(),
        0,
        "no PAR reached Singpass"
    );
}

#[tokio::test]
async fn a_token_call_whose_code_verifier_is_out_of_bounds_is_refused_before_any_lookup() {
    let h = Harness::start_fapi("", "").await;
    let login = par_and_consent(&h).await;
    for bad in [
        "short".to_owned(),
        "v".repeat(129),
        format!("{} x", login.verifier),
    ] {
        let form = fapi_token_form(&Login {
            verifier: bad,
            code: login.code.clone(),
            nonce: login.nonce.clone(),
        });
        let res = h.post_form("/fapi/token", &form, &[]).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{:?}", res.body);
        let p = res.problem("VALIDATION_INVALID_PARAMETER");
        assert!(
            p["detail"].as_str().unwrap().starts_with("code_verifier "),
            "{p}"
        );
    }
    assert_eq!(accepted(&h, EmulatorRoute::Token), 0);
    // The login is still there for the real verifier.
    let token = h
        .post_form("/fapi/token", &fapi_token_form(&login), &[])
        .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
}
