//! `GET /person/{sub}` scripts: the sealed answer a client can open and verify, then each
//! thing Singpass would refuse, and the single use of an access token.

use std::time::Duration;

use josekit::jwe::ECDH_ES_A256KW;
use josekit::jws::ES256;
use serde_json::Value;

use super::{Harness, KeyPair, SUB};

#[tokio::test]
async fn a_correct_flow_answers_a_jwe_the_client_can_open_and_verify() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    let reply = harness
        .call_person(&key, &token, "uinfin name mobileno")
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/jose")
    );

    let decrypter = ECDH_ES_A256KW
        .decrypter_from_jwk(&harness.client.enc_private)
        .expect("decrypter");
    let (jws, jwe_header) = josekit::jwe::deserialize_compact(
        std::str::from_utf8(&reply.body).expect("text"),
        &decrypter,
    )
    .expect("JWE opens");
    assert_eq!(jwe_header.algorithm(), Some("ECDH-ES+A256KW"));
    assert_eq!(jwe_header.content_encryption(), Some("A256GCM"));
    assert_eq!(jwe_header.key_id(), Some("client-enc-1"));

    let signing_jwks = harness.emulator.signing_jwks();
    let signing_key = signing_jwks.keys()[0];
    let verifier = ES256.verifier_from_jwk(signing_key).expect("verifier");
    let (payload, jws_header) =
        josekit::jws::deserialize_compact(&jws, &verifier).expect("JWS verifies");
    assert_eq!(jws_header.key_id(), signing_key.key_id());
    let person: Value = serde_json::from_slice(&payload).expect("person JSON");
    assert_eq!(person["uinfin"]["value"], "S9812381D");
    assert_eq!(person["name"]["value"], "TAN XIAO HUI");
    assert_eq!(person["mobileno"]["nbr"]["value"], "97399245");
    assert_eq!(person["sub"], SUB);
    assert!(person.get("email").is_none(), "only requested attributes");

    // An unknown attribute within the granted scope is simply absent.
    let other_key = KeyPair::generate();
    let token = harness.obtain_token(&other_key).await;
    let reply = harness.call_person(&other_key, &token, "uinfin").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_second_call_with_the_same_token_is_refused() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    assert_eq!(
        harness.call_person(&key, &token, "uinfin").await.status,
        200
    );
    harness
        .call_person(&key, &token, "uinfin")
        .await
        .assert_rejected(400, "Duplicated DPoP-bound access_token");
}

#[tokio::test]
async fn a_proof_from_a_key_other_than_the_tokens_is_refused() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    harness
        .call_person(&KeyPair::generate(), &token, "uinfin")
        .await
        .assert_rejected(401, "Invalid jkt in DPoP Proof");
}

#[tokio::test]
async fn a_refused_call_still_spends_the_token() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    harness
        .call_person(&KeyPair::generate(), &token, "uinfin")
        .await
        .assert_rejected(401, "Invalid jkt in DPoP Proof");
    harness
        .call_person(&key, &token, "uinfin")
        .await
        .assert_rejected(400, "Duplicated DPoP-bound access_token");
}

/// A person call with proof claims the test may alter before signing.
async fn person_call_with(harness: &Harness, alter_proof: impl FnOnce(&mut Value)) -> super::Reply {
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    let mut claims = harness.proof_claims("GET", &harness.person_url(SUB), Some(&token));
    alter_proof(&mut claims);
    harness
        .get_person(
            SUB,
            "scope=uinfin",
            Some(&format!("DPoP {token}")),
            Some(&key.proof(&claims)),
        )
        .await
}

#[tokio::test]
async fn ath_must_be_present_and_match_the_token() {
    let harness = Harness::start().await;
    person_call_with(&harness, |claims| {
        claims.as_object_mut().map(|claims| claims.remove("ath"));
    })
    .await
    .assert_rejected(401, "Missing ath in DPoP Proof");
    person_call_with(&harness, |claims| {
        claims["ath"] = Value::from(super::sha256_b64("another token"));
    })
    .await
    .assert_rejected(401, "Invalid ath in DPoP Proof");
}

#[tokio::test]
async fn person_proofs_must_name_this_request() {
    let harness = Harness::start().await;
    let with_query = format!("{}?scope=uinfin", harness.person_url(SUB));
    person_call_with(&harness, |claims| claims["htu"] = Value::from(with_query))
        .await
        .assert_rejected(401, "Invalid htu in DPoP Proof");
    person_call_with(&harness, |claims| claims["htm"] = Value::from("POST"))
        .await
        .assert_rejected(401, "Invalid htm in DPoP Proof");
}

#[tokio::test]
async fn another_users_sub_is_refused() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    let other = "0f1e2d3c-0000-4000-8000-000000000000";
    let proof = key.proof(&harness.proof_claims("GET", &harness.person_url(other), Some(&token)));
    harness
        .get_person(
            other,
            "scope=uinfin",
            Some(&format!("DPoP {token}")),
            Some(&proof),
        )
        .await
        .assert_rejected(
            403,
            "DPoP-bound access_token subject doesn't match with requested sub",
        );
}

#[tokio::test]
async fn attributes_beyond_the_granted_scope_are_refused() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    harness
        .call_person(&key, &token, "uinfin cpfbalances")
        .await
        .assert_rejected(
            403,
            "DPoP-bound access_token scope doesn't match with requested attributes",
        );
}

#[tokio::test]
async fn request_shape_problems_are_named_and_spend_nothing() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    let auth = format!("DPoP {token}");
    let proof = || key.proof(&harness.proof_claims("GET", &harness.person_url(SUB), Some(&token)));
    harness
        .get_person(SUB, "subentity=x", Some(&auth), Some(&proof()))
        .await
        .assert_rejected(400, "Missing scope from query parameters");
    harness
        .get_person(SUB, "scope=uinfin", Some(&auth), None)
        .await
        .assert_rejected(400, "Missing DPoP Proof");
    harness
        .get_person(SUB, "scope=uinfin", None, Some(&proof()))
        .await
        .assert_rejected(400, "Missing Authorization from headers");
    harness
        .get_person(
            SUB,
            "scope=uinfin",
            Some(&format!("Bearer {token}")),
            Some(&proof()),
        )
        .await
        .assert_rejected(403, "DPoP-bound access_token invalid");
    // None of the above spent the token.
    assert_eq!(
        harness.call_person(&key, &token, "uinfin").await.status,
        200
    );
}

#[tokio::test]
async fn a_token_the_emulator_did_not_issue_is_refused() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let forged = key.proof(&serde_json::json!({"sub": SUB, "scope": "uinfin"}));
    harness
        .call_person(&key, &forged, "uinfin")
        .await
        .assert_rejected(403, "DPoP-bound access_token invalid");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    // Tokens that expire the second they are issued: no waiting on the clock.
    let harness = Harness::start_with(|config| config.token_lifetime = Duration::ZERO).await;
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    harness
        .call_person(&key, &token, "uinfin")
        .await
        .assert_rejected(403, "DPoP-bound access_token invalid");
}
