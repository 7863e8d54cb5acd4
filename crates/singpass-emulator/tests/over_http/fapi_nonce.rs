//! DPoP nonces (RFC 9449 sections 8 and 9) and discovery availability: a proof without the
//! current nonce is refused with the nonce to use, the same request with it passes, a rotated
//! nonce stays good for one more round, and discovery answers 503 while switched off.

use super::fapi_client::FapiLogin;
use super::Harness;

#[tokio::test]
async fn nonce_mode_refuses_proofs_without_the_nonce_and_hands_it_out() {
    let harness = Harness::start().await;
    harness.emulator.require_dpop_nonce(true);
    let login = FapiLogin::new();
    let par_url = harness.fapi_url("/par");
    let form = harness.par_form(&login, &harness.fapi_assertion());

    let proof = login
        .key
        .proof(&harness.fapi_proof_claims("POST", &par_url, None, None));
    let refused = harness.post_form(&par_url, &form, Some(&proof)).await;
    refused.assert_oauth(400, "use_dpop_nonce");
    let nonce = refused.dpop_nonce().expect("DPoP-Nonce").to_owned();

    // The same form (same assertion) with a new proof carrying the nonce.
    let proof = login
        .key
        .proof(&harness.fapi_proof_claims("POST", &par_url, None, Some(&nonce)));
    let pushed = harness.post_form(&par_url, &form, Some(&proof)).await;
    assert_eq!(pushed.status, 201, "{:?}", pushed.body);
    assert_eq!(pushed.dpop_nonce(), Some(nonce.as_str()));
    let request_uri = pushed.json()["request_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    let code = harness
        .emulator
        .authorize_par(&request_uri, super::SUB)
        .expect("code");

    // Token: the same dance.
    let token_url = harness.fapi_url("/token");
    let form = harness.fapi_token_form(&login, &code, &harness.fapi_assertion());
    let proof = login
        .key
        .proof(&harness.fapi_proof_claims("POST", &token_url, None, None));
    harness
        .post_form(&token_url, &form, Some(&proof))
        .await
        .assert_oauth(400, "use_dpop_nonce");
    let stale =
        login
            .key
            .proof(&harness.fapi_proof_claims("POST", &token_url, None, Some("stale")));
    harness
        .post_form(&token_url, &form, Some(&stale))
        .await
        .assert_oauth(400, "use_dpop_nonce");
    let proof = login
        .key
        .proof(&harness.fapi_proof_claims("POST", &token_url, None, Some(&nonce)));
    let reply = harness.post_form(&token_url, &form, Some(&proof)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let token = reply.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();

    // Userinfo: 401 with a challenge, then success.
    let userinfo_url = harness.fapi_url("/userinfo");
    let dpop = format!("DPoP {token}");
    let refused = harness.userinfo(&login.key, &token).await;
    refused.assert_oauth(401, "use_dpop_nonce");
    assert!(refused
        .challenge()
        .is_some_and(|value| value.starts_with(r#"DPoP error="use_dpop_nonce""#)));
    assert_eq!(refused.dpop_nonce(), Some(nonce.as_str()));
    let proof = login.key.proof(&harness.fapi_proof_claims(
        "GET",
        &userinfo_url,
        Some(&token),
        Some(&nonce),
    ));
    let reply = harness
        .get(&userinfo_url, &[("Authorization", &dpop), ("DPoP", &proof)])
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    // After a rotation the previous nonce is still good; the next rotation retires it.
    harness.emulator.rotate_dpop_nonce();
    let with_nonce = |nonce: &str| {
        login
            .key
            .proof(&harness.fapi_proof_claims("GET", &userinfo_url, Some(&token), Some(nonce)))
    };
    let reply = harness
        .get(
            &userinfo_url,
            &[("Authorization", &dpop), ("DPoP", &with_nonce(&nonce))],
        )
        .await;
    assert_eq!(reply.status, 200);
    let rotated = reply.dpop_nonce().expect("nonce").to_owned();
    assert_ne!(rotated, nonce);
    harness.emulator.rotate_dpop_nonce();
    let reply = harness
        .get(
            &userinfo_url,
            &[("Authorization", &dpop), ("DPoP", &with_nonce(&nonce))],
        )
        .await;
    reply.assert_oauth(401, "use_dpop_nonce");

    // Off again: no nonce needed, none handed out; v4 and CIBA never hand one out.
    harness.emulator.require_dpop_nonce(false);
    let reply = harness.userinfo(&login.key, &token).await;
    assert_eq!((reply.status, reply.dpop_nonce()), (200, None));
}

#[tokio::test]
async fn only_fapi_answers_carry_the_nonce() {
    let harness = Harness::start().await;
    harness.emulator.require_dpop_nonce(true);
    let origin = harness.emulator.ciba_issuer();
    let fapi = harness
        .get(&harness.fapi_url("/.well-known/openid-configuration"), &[])
        .await;
    assert!(fapi.dpop_nonce().is_some());
    for path in ["/.well-known/openid-configuration", "/com/v4/jwks"] {
        let reply = harness.get(&format!("{origin}{path}"), &[]).await;
        assert_eq!((reply.status, reply.dpop_nonce()), (200, None), "{path}");
    }
    // v4 ignores nonces entirely: its flow works unchanged.
    let key = super::KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    assert_eq!(
        harness.call_person(&key, &token, "uinfin").await.status,
        200
    );
}

#[tokio::test]
async fn discovery_answers_503_while_unavailable() {
    let harness = Harness::start().await;
    let urls = [
        harness.fapi_url("/.well-known/openid-configuration"),
        format!(
            "{}/.well-known/openid-configuration",
            harness.emulator.ciba_issuer()
        ),
    ];
    harness.emulator.set_discovery_available(false);
    for url in &urls {
        harness
            .get(url, &[])
            .await
            .assert_oauth(503, "temporarily_unavailable");
    }
    // The JWKS is still served.
    assert_eq!(
        harness.get(&harness.fapi_url("/jwks"), &[]).await.status,
        200
    );
    harness.emulator.set_discovery_available(true);
    for url in &urls {
        assert_eq!(harness.get(url, &[]).await.status, 200);
    }
}
