//! `POST /token` scripts: the happy exchange, then each thing Singpass would refuse.

use serde_json::Value;

use super::{Harness, KeyPair};

/// A token call whose proof claims and assertion claims the test may alter before signing.
async fn token_call_with(
    harness: &Harness,
    alter_proof: impl FnOnce(&mut Value),
    alter_assertion: impl FnOnce(&mut Value),
) -> super::Reply {
    let key = KeyPair::generate();
    let authorization = harness.authorize();
    let mut assertion = harness.assertion_claims(&key.thumbprint());
    alter_assertion(&mut assertion);
    let mut proof = harness.proof_claims("POST", &harness.token_url(), None);
    alter_proof(&mut proof);
    let form = harness.token_form(&authorization, &harness.client.assertion(&assertion));
    harness.post_token(&form, Some(&key.proof(&proof))).await
}

#[tokio::test]
async fn a_correct_exchange_answers_a_dpop_bound_token() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;

    let received = harness
        .emulator
        .received()
        .last()
        .cloned()
        .expect("recorded");
    assert_eq!((received.status, received.rejection), (200, None));
    assert!(received.assertion_jti.is_some() && received.proof_jti.is_some());

    // The access token is signed by the emulator, bound to the proof key, for the base URL.
    let signing_jwks = harness.emulator.signing_jwks();
    let verifier = josekit::jws::ES256
        .verifier_from_jwk(signing_jwks.keys()[0])
        .expect("verifier");
    let (claims, _) = josekit::jwt::decode_with_verifier(&token, &verifier).expect("verifies");
    assert_eq!(claims.subject(), Some(super::SUB));
    assert_eq!(
        claims.audience(),
        Some(vec![harness.emulator.base_url().as_str()])
    );
    let jkt = claims.claim("cnf").and_then(|cnf| cnf.get("jkt"));
    assert_eq!(jkt.and_then(Value::as_str), Some(key.thumbprint().as_str()));
    assert_eq!(
        claims.claim("scope").and_then(Value::as_str),
        Some(super::SCOPE)
    );
    assert!(claims.jwt_id().is_some() && claims.claim("iat").is_some());
}

#[tokio::test]
async fn token_answer_has_the_v4_fields() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let authorization = harness.authorize();
    let assertion = harness
        .client
        .assertion(&harness.assertion_claims(&key.thumbprint()));
    let proof = key.proof(&harness.proof_claims("POST", &harness.token_url(), None));
    let reply = harness
        .post_token(
            &harness.token_form(&authorization, &assertion),
            Some(&proof),
        )
        .await;
    let body = reply.json();
    assert_eq!(reply.status, 200);
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["scope"], super::SCOPE);
}

#[tokio::test]
async fn a_proof_for_another_url_is_refused() {
    let harness = Harness::start().await;
    let reply = token_call_with(
        &harness,
        |proof| proof["htu"] = Value::from("https://sandbox.api.myinfo.gov.sg/com/v4/token"),
        |_| {},
    )
    .await;
    reply.assert_rejected(401, "Invalid htu in DPoP Proof");
}

#[tokio::test]
async fn a_proof_with_a_query_in_htu_is_refused() {
    let harness = Harness::start().await;
    let htu = format!("{}?x=1", harness.token_url());
    let reply = token_call_with(&harness, |proof| proof["htu"] = Value::from(htu), |_| {}).await;
    reply.assert_rejected(401, "Invalid htu in DPoP Proof");
}

#[tokio::test]
async fn a_proof_for_another_method_is_refused() {
    let harness = Harness::start().await;
    let reply = token_call_with(&harness, |proof| proof["htm"] = Value::from("GET"), |_| {}).await;
    reply.assert_rejected(401, "Invalid htm in DPoP Proof");
}

#[tokio::test]
async fn a_reused_proof_jti_is_refused() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let proof_claims = harness.proof_claims("POST", &harness.token_url(), None);
    for attempt in 0..2 {
        // A new code and assertion each time; only the proof's jti repeats.
        let authorization = harness.authorize();
        let assertion = harness
            .client
            .assertion(&harness.assertion_claims(&key.thumbprint()));
        let reply = harness
            .post_token(
                &harness.token_form(&authorization, &assertion),
                Some(&key.proof(&proof_claims)),
            )
            .await;
        if attempt == 0 {
            assert_eq!(reply.status, 200);
        } else {
            reply.assert_rejected(401, "Duplicate DPoP Proof");
        }
    }
}

#[tokio::test]
async fn a_reused_assertion_jti_is_refused() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let assertion_claims = harness.assertion_claims(&key.thumbprint());
    for attempt in 0..2 {
        let authorization = harness.authorize();
        let assertion = harness.client.assertion(&assertion_claims);
        let proof = key.proof(&harness.proof_claims("POST", &harness.token_url(), None));
        let reply = harness
            .post_token(
                &harness.token_form(&authorization, &assertion),
                Some(&proof),
            )
            .await;
        if attempt == 0 {
            assert_eq!(reply.status, 200);
        } else {
            reply.assert_rejected(400, "Duplicate client_assertion");
        }
    }
}

#[tokio::test]
async fn an_assertion_for_another_audience_is_refused() {
    let harness = Harness::start().await;
    let reply = token_call_with(
        &harness,
        |_| {},
        |assertion| {
            assertion["aud"] = Value::from("https://sandbox.api.myinfo.gov.sg/com/v4/token")
        },
    )
    .await;
    reply.assert_rejected(400, "Invalid aud in client_assertion");
}

#[tokio::test]
async fn an_assertion_from_another_client_id_is_refused() {
    let harness = Harness::start().await;
    let reply = token_call_with(
        &harness,
        |_| {},
        |assertion| assertion["sub"] = Value::from("x"),
    )
    .await;
    reply.assert_rejected(400, "Invalid sub in client_assertion");
    let reply = token_call_with(
        &harness,
        |_| {},
        |assertion| assertion["iss"] = Value::from("x"),
    )
    .await;
    reply.assert_rejected(400, "Invalid iss in client_assertion");
}

#[tokio::test]
async fn an_assertion_signed_by_an_unregistered_key_is_refused() {
    let harness = Harness::start().await;
    let stranger = KeyPair::generate();
    for kid in ["client-sig-1", "unknown-kid"] {
        let key = KeyPair::generate();
        let authorization = harness.authorize();
        let claims = harness.assertion_claims(&key.thumbprint());
        let assertion = harness
            .client
            .assertion_signed_by(&stranger.private, kid, &claims);
        let proof = key.proof(&harness.proof_claims("POST", &harness.token_url(), None));
        let reply = harness
            .post_token(
                &harness.token_form(&authorization, &assertion),
                Some(&proof),
            )
            .await;
        reply.assert_rejected(401, "Invalid JWS Verification");
    }
}

#[tokio::test]
async fn a_proof_exposing_its_private_key_is_refused() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let authorization = harness.authorize();
    let assertion = harness
        .client
        .assertion(&harness.assertion_claims(&key.thumbprint()));
    let mut header = josekit::jws::JwsHeader::new();
    header.set_token_type("dpop+jwt");
    header.set_jwk(key.private.clone());
    let claims = harness.proof_claims("POST", &harness.token_url(), None);
    let payload = josekit::jwt::JwtPayload::from_map(claims.as_object().cloned().expect("object"))
        .expect("payload");
    let signer = josekit::jws::ES256
        .signer_from_jwk(&key.private)
        .expect("signer");
    let proof = josekit::jwt::encode_with_signer(&payload, &header, &signer).expect("proof");
    let reply = harness
        .post_token(
            &harness.token_form(&authorization, &assertion),
            Some(&proof),
        )
        .await;
    reply.assert_rejected(401, "Invalid jwk in DPoP Proof");
}

#[tokio::test]
async fn stale_proofs_and_assertions_are_refused() {
    let harness = Harness::start().await;
    let five_minutes_ago = |claims: &mut Value| {
        let iat = claims["iat"].as_i64().expect("iat") - 300;
        claims["iat"] = Value::from(iat);
        claims["exp"] = Value::from(iat + 100);
    };
    let reply = token_call_with(&harness, five_minutes_ago, |_| {}).await;
    reply.assert_rejected(401, "Invalid iat in DPoP Proof");
    let reply = token_call_with(&harness, |_| {}, five_minutes_ago).await;
    reply.assert_rejected(400, "Invalid iat in client_assertion");
}

#[tokio::test]
async fn lifetimes_longer_than_singpass_allows_are_refused() {
    let harness = Harness::start().await;
    let lifetime = |secs: i64| {
        move |claims: &mut Value| {
            claims["exp"] = Value::from(claims["iat"].as_i64().expect("iat") + secs);
        }
    };
    let reply = token_call_with(&harness, lifetime(121), |_| {}).await;
    reply.assert_rejected(401, "Invalid exp in DPoP Proof");
    let reply = token_call_with(&harness, |_| {}, lifetime(301)).await;
    reply.assert_rejected(400, "Invalid exp in client_assertion");
    let reply = token_call_with(&harness, lifetime(120), lifetime(300)).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn an_assertion_bound_to_another_key_is_refused() {
    let harness = Harness::start().await;
    let other = KeyPair::generate().thumbprint();
    let reply = token_call_with(&harness, |_| {}, |a| a["cnf"]["jkt"] = Value::from(other)).await;
    reply.assert_rejected(401, "Invalid jkt in DPoP Proof");
    let reply = token_call_with(&harness, |_| {}, |a| a["cnf"] = serde_json::json!({})).await;
    reply.assert_rejected(401, "Missing jkt in DPoP Proof");
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused_and_burns_the_code() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let mut authorization = harness.authorize();
    let right_verifier = std::mem::replace(&mut authorization.verifier, "x".repeat(43));
    for (verifier, expected) in [
        (None, "Invalid code_verifier"),
        (Some(right_verifier), "Invalid authorization code"),
    ] {
        if let Some(verifier) = verifier {
            authorization.verifier = verifier;
        }
        let assertion = harness
            .client
            .assertion(&harness.assertion_claims(&key.thumbprint()));
        let proof = key.proof(&harness.proof_claims("POST", &harness.token_url(), None));
        let reply = harness
            .post_token(
                &harness.token_form(&authorization, &assertion),
                Some(&proof),
            )
            .await;
        reply.assert_rejected(400, expected);
    }
}

#[tokio::test]
async fn a_code_works_once() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let authorization = harness.authorize();
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let assertion = harness
            .client
            .assertion(&harness.assertion_claims(&key.thumbprint()));
        let proof = key.proof(&harness.proof_claims("POST", &harness.token_url(), None));
        let reply = harness
            .post_token(
                &harness.token_form(&authorization, &assertion),
                Some(&proof),
            )
            .await;
        statuses.push(reply.status);
        if reply.status != 200 {
            reply.assert_rejected(400, "Invalid authorization code");
        }
    }
    assert_eq!(statuses, [200, 400]);
}

#[tokio::test]
async fn missing_pieces_are_named() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let authorization = harness.authorize();
    let assertion = harness
        .client
        .assertion(&harness.assertion_claims(&key.thumbprint()));
    let full = harness.token_form(&authorization, &assertion);
    let proof = key.proof(&harness.proof_claims("POST", &harness.token_url(), None));

    let without_code: Vec<_> = full
        .iter()
        .filter(|(name, _)| name != "code")
        .cloned()
        .collect();
    harness
        .post_token(&without_code, Some(&proof))
        .await
        .assert_rejected(400, "Missing code from body");
    harness
        .post_token(&full, None)
        .await
        .assert_rejected(400, "Missing DPoP Proof");
    let mut wrong_type = full.clone();
    wrong_type[5].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into();
    harness
        .post_token(&wrong_type, Some(&proof))
        .await
        .assert_rejected(400, "Invalid client_assertion_type");
    harness
        .post_token(&[], Some(&proof))
        .await
        .assert_rejected(400, "No body found for POST request");
}

#[tokio::test]
async fn a_token_proof_must_not_carry_ath() {
    let harness = Harness::start().await;
    let reply = token_call_with(&harness, |proof| proof["ath"] = Value::from("abc"), |_| {}).await;
    reply.assert_rejected(401, "Invalid ath in DPoP Proof");
}

#[tokio::test]
async fn a_proof_signed_by_a_key_other_than_its_jwk_is_refused() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let impostor = KeyPair {
        private: KeyPair::generate().private,
        public: key.public.clone(),
    };
    let authorization = harness.authorize();
    let assertion = harness
        .client
        .assertion(&harness.assertion_claims(&key.thumbprint()));
    let proof = impostor.proof(&harness.proof_claims("POST", &harness.token_url(), None));
    harness
        .post_token(
            &harness.token_form(&authorization, &assertion),
            Some(&proof),
        )
        .await
        .assert_rejected(401, "Invalid JWS Verification");
}
