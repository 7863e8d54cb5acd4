//! What the FAPI issuer refuses: assertions for the wrong audience or too long a life, proofs
//! from another key, spent, late or mismatched codes, and userinfo calls that do not prove
//! possession of the token's key the way RFC 9449 asks.

use std::time::Duration;

use serde_json::Value;

use super::fapi_client::{pairs, FapiLogin};
use super::{Harness, KeyPair, SUB};

/// A token call for `code` whose assertion claims the test may alter.
async fn token_with_assertion(
    harness: &Harness,
    login: &FapiLogin,
    code: &str,
    alter: impl FnOnce(&mut Value),
) -> super::Reply {
    let mut claims = harness.issuer_assertion_claims(&harness.emulator.fapi_issuer());
    alter(&mut claims);
    let form = harness.fapi_token_form(login, code, &harness.client.assertion(&claims));
    let proof = login.key.proof(&harness.fapi_proof_claims(
        "POST",
        &harness.fapi_url("/token"),
        None,
        None,
    ));
    harness
        .post_form(&harness.fapi_url("/token"), &form, Some(&proof))
        .await
}

#[tokio::test]
async fn assertions_must_name_the_issuer_and_live_at_most_120_seconds() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();
    let code = harness.fapi_code(&login).await;
    let token_url = harness.fapi_url("/token");
    let reply = token_with_assertion(&harness, &login, &code, |claims| {
        claims["aud"] = Value::from(token_url.as_str());
    })
    .await;
    reply.assert_oauth(401, "invalid_client");
    assert_eq!(
        reply.json()["error_description"],
        "Invalid aud in client_assertion"
    );
    let reply = token_with_assertion(&harness, &login, &code, |claims| {
        let iat = claims["iat"].as_i64().expect("iat");
        claims["exp"] = Value::from(iat + 300);
    })
    .await;
    reply.assert_oauth(401, "invalid_client");
    assert_eq!(
        reply.json()["error_description"],
        "Invalid exp in client_assertion"
    );
    // Neither refusal reached the code: it still works.
    assert_eq!(
        harness.fapi_token(&login, &code, &login.key).await.status,
        200
    );

    // The same rules at PAR: not the PAR endpoint, not 300 s.
    let par_url = harness.fapi_url("/par");
    for alter in [
        Box::new(|claims: &mut Value| claims["aud"] = Value::from(par_url.as_str()))
            as Box<dyn Fn(&mut Value)>,
        Box::new(|claims: &mut Value| {
            claims["exp"] = Value::from(claims["iat"].as_i64().expect("iat") + 300)
        }),
        Box::new(|claims: &mut Value| claims["aud"] = Value::from(format!("{par_url}/"))),
    ] {
        let mut claims = harness.issuer_assertion_claims(&harness.emulator.fapi_issuer());
        alter(&mut claims);
        let form = harness.par_form(&login, &harness.client.assertion(&claims));
        let proof = login
            .key
            .proof(&harness.fapi_proof_claims("POST", &par_url, None, None));
        harness
            .post_form(&par_url, &form, Some(&proof))
            .await
            .assert_oauth(401, "invalid_client");
    }
}

#[tokio::test]
async fn a_token_proof_from_another_key_than_pars_is_refused_and_spends_the_code() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();
    let code = harness.fapi_code(&login).await;
    let reply = harness
        .fapi_token(&login, &code, &KeyPair::generate())
        .await;
    reply.assert_oauth(400, "invalid_dpop_proof");
    harness
        .fapi_token(&login, &code, &login.key)
        .await
        .assert_oauth(400, "invalid_grant");
}

#[tokio::test]
async fn a_code_works_once_and_only_with_its_verifier() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();
    let code = harness.fapi_code(&login).await;
    assert_eq!(
        harness.fapi_token(&login, &code, &login.key).await.status,
        200
    );
    harness
        .fapi_token(&login, &code, &login.key)
        .await
        .assert_oauth(400, "invalid_grant");

    let mut wrong = FapiLogin::new();
    let code = harness.fapi_code(&wrong).await;
    wrong.verifier = format!("{}x", wrong.verifier);
    let reply = harness.fapi_token(&wrong, &code, &wrong.key).await;
    reply.assert_oauth(400, "invalid_grant");
    assert_eq!(reply.json()["error_description"], "Invalid code_verifier");
}

#[tokio::test(start_paused = true)]
async fn codes_and_request_uris_last_60_seconds_on_the_tokio_clock() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();
    let code = harness.fapi_code(&login).await;
    tokio::time::advance(Duration::from_secs(61)).await;
    let reply = harness.fapi_token(&login, &code, &login.key).await;
    reply.assert_oauth(400, "invalid_grant");
    assert_eq!(
        reply.json()["error_description"],
        "Authorization code expired"
    );

    let pushed = harness.push(&login, None).await.json();
    let request_uri = pushed["request_uri"].as_str().expect("uri");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        harness.emulator.authorize_par(request_uri, SUB),
        Err("request_uri has expired".to_owned())
    );
    assert!(harness.emulator.authorize_par("urn:nope", SUB).is_err());
}

#[tokio::test(start_paused = true)]
async fn an_access_token_is_reusable_for_its_lifetime_only() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();
    let tokens = harness.fapi_tokens(&login).await;
    let token = tokens["access_token"].as_str().expect("token");
    tokio::time::advance(Duration::from_secs(1799)).await;
    assert_eq!(harness.userinfo(&login.key, token).await.status, 200);
    tokio::time::advance(Duration::from_secs(2)).await;
    let reply = harness.userinfo(&login.key, token).await;
    reply.assert_oauth(401, "invalid_token");
}

#[tokio::test]
async fn userinfo_refuses_what_does_not_prove_the_tokens_key() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();
    let tokens = harness.fapi_tokens(&login).await;
    let token = tokens["access_token"].as_str().expect("token");
    let dpop = format!("DPoP {token}");

    let wrong_ath = harness
        .userinfo_with(&login.key, &dpop, token, |claims| {
            claims["ath"] = Value::from(super::sha256_b64("another token"));
        })
        .await;
    wrong_ath.assert_oauth(401, "invalid_dpop_proof");
    assert!(wrong_ath
        .challenge()
        .is_some_and(|value| value.starts_with(r#"DPoP error="invalid_dpop_proof""#)));

    harness
        .userinfo_with(&KeyPair::generate(), &dpop, token, |_| {})
        .await
        .assert_oauth(401, "invalid_dpop_proof");

    let bearer = harness
        .userinfo_with(&login.key, &format!("Bearer {token}"), token, |_| {})
        .await;
    bearer.assert_oauth(401, "invalid_token");
    assert!(bearer
        .challenge()
        .is_some_and(|value| value.starts_with(r#"DPoP error="invalid_token""#)));

    let userinfo_url = harness.fapi_url("/userinfo");
    harness
        .userinfo_with(&login.key, &dpop, token, |claims| {
            claims["htu"] = Value::from(format!("{userinfo_url}?scope=name"));
        })
        .await
        .assert_oauth(401, "invalid_dpop_proof");
    harness
        .userinfo_with(&login.key, &dpop, token, |claims| {
            claims["htm"] = Value::from("POST");
        })
        .await
        .assert_oauth(401, "invalid_dpop_proof");
    harness
        .userinfo_with(&login.key, "DPoP not-a-token", token, |_| {})
        .await
        .assert_oauth(401, "invalid_token");

    // A request with a query is refused even with a proof for exactly that URL.
    let proof =
        login
            .key
            .proof(&harness.fapi_proof_claims("GET", &userinfo_url, Some(token), None));
    harness
        .get(
            &format!("{userinfo_url}?scope=name"),
            &[("Authorization", &dpop), ("DPoP", &proof)],
        )
        .await
        .assert_oauth(400, "invalid_request");

    // None of that spent the token.
    assert_eq!(harness.userinfo(&login.key, token).await.status, 200);
}

#[tokio::test]
async fn par_refuses_incomplete_or_unbound_requests() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();
    let par_url = harness.fapi_url("/par");
    let proof = || {
        login
            .key
            .proof(&harness.fapi_proof_claims("POST", &par_url, None, None))
    };
    let with = |name: &str, value: Option<&str>| {
        let mut form: Vec<(String, String)> = harness
            .par_form(&login, &harness.fapi_assertion())
            .into_iter()
            .filter(|(field, _)| field != name)
            .collect();
        if let Some(value) = value {
            form.extend(pairs(&[(name, value)]));
        }
        form
    };

    let reply = harness
        .post_form(
            &par_url,
            &with("scope", Some("uinfin name")),
            Some(&proof()),
        )
        .await;
    reply.assert_oauth(400, "invalid_scope");
    for field in ["nonce", "state", "code_challenge", "redirect_uri"] {
        harness
            .post_form(&par_url, &with(field, None), Some(&proof()))
            .await
            .assert_oauth(400, "invalid_request");
    }
    harness
        .post_form(
            &par_url,
            &with("code_challenge_method", Some("plain")),
            Some(&proof()),
        )
        .await
        .assert_oauth(400, "invalid_request");
    harness
        .post_form(
            &par_url,
            &with("client_id", Some("someone-else")),
            Some(&proof()),
        )
        .await
        .assert_oauth(401, "invalid_client");
    // Neither a proof nor a dpop_jkt: nothing to bind the code to.
    harness
        .post_form(&par_url, &with("x", None), None)
        .await
        .assert_oauth(400, "invalid_request");
    // A proof for the token endpoint, or carrying ath, is not a PAR proof.
    let token_proof = login.key.proof(&harness.fapi_proof_claims(
        "POST",
        &harness.fapi_url("/token"),
        None,
        None,
    ));
    harness
        .post_form(&par_url, &with("x", None), Some(&token_proof))
        .await
        .assert_oauth(400, "invalid_dpop_proof");
    let with_ath =
        login
            .key
            .proof(&harness.fapi_proof_claims("POST", &par_url, Some("a-token"), None));
    harness
        .post_form(&par_url, &with("x", None), Some(&with_ath))
        .await
        .assert_oauth(400, "invalid_dpop_proof");
    // dpop_jkt naming another key than the proof's.
    let other = KeyPair::generate().thumbprint();
    harness
        .post_form(&par_url, &with("dpop_jkt", Some(&other)), Some(&proof()))
        .await
        .assert_oauth(400, "invalid_dpop_proof");
    // And the complete request passes.
    assert_eq!(
        harness
            .post_form(&par_url, &with("x", None), Some(&proof()))
            .await
            .status,
        201
    );
}
