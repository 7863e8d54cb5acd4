//! Malformed input gets a Singpass-shaped 4xx (never a panic or a dropped connection), the
//! error body has Singpass's fields, routing answers 404/405, everything is recorded, and the
//! browserless `/authorize` completes a flow.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

use super::{Harness, KeyPair, CLIENT_ID, REDIRECT_URI};

pub(crate) const GARBAGE: [&str; 9] = [
    "",
    "not-a-jwt",
    "a.b.c",
    "a.b.c.d.e",
    "....",
    "eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjoxfQ.e30.AA",
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwiY3J2IjoiUC0yNTYiLCJ4IjoiQUEiLCJ5IjoiQUEifX0.e30.AA",
    "\u{00e9}\u{00e9}",
];

#[tokio::test]
async fn garbage_proofs_and_assertions_get_4xx_answers() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    for garbage in GARBAGE {
        let authorization = harness.authorize();
        let assertion = harness
            .client
            .assertion(&harness.assertion_claims(&key.thumbprint()));
        let reply = harness
            .post_token(
                &harness.token_form(&authorization, &assertion),
                Some(garbage),
            )
            .await;
        assert!(
            (400..500).contains(&reply.status),
            "{garbage}: {}",
            reply.status
        );

        let proof = key.proof(&harness.proof_claims("POST", &harness.token_url(), None));
        let reply = harness
            .post_token(&harness.token_form(&authorization, garbage), Some(&proof))
            .await;
        assert!((400..500).contains(&reply.status), "{garbage}");

        let reply = harness
            .get_person(
                "x",
                "scope=uinfin",
                Some(&format!("DPoP {garbage}")),
                Some(garbage),
            )
            .await;
        assert!((400..500).contains(&reply.status), "{garbage}");
    }
}

#[tokio::test]
async fn errors_carry_singpass_fields() {
    let harness = Harness::start().await;
    let reply = harness.post_token(&[], None).await;
    assert_eq!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body = reply.json();
    assert_eq!(body["error"], "CLIENT_SIDE_ERROR");
    assert_eq!(body["id"].as_str().map(str::len), Some(36));
    assert_eq!(body["trace_id"].as_str().map(str::len), Some(32));
    let again = harness.post_token(&[], None).await.json();
    assert_ne!(body["id"], again["id"], "a fresh id per error");
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused() {
    let harness = Harness::start().await;
    let base = harness.emulator.base_url();
    let request = |method: Method, url: String| {
        Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let reply = harness
        .send(request(Method::GET, format!("{base}/nope")))
        .await;
    reply.assert_rejected(404, "Not found.");
    let reply = harness
        .send(request(Method::GET, format!("{base}/token")))
        .await;
    assert_eq!(reply.status, 405);
    let reply = harness
        .send(request(Method::DELETE, format!("{base}/person/x")))
        .await;
    assert_eq!(reply.status, 405);
}

#[tokio::test]
async fn every_request_is_recorded_in_order() {
    let harness = Harness::start().await;
    let key = KeyPair::generate();
    let authorization = harness.authorize();
    let assertion = harness
        .client
        .assertion(&harness.assertion_claims(&key.thumbprint()));
    let form = harness.token_form(&authorization, &assertion);
    let mut wrong = harness.proof_claims("POST", &harness.token_url(), None);
    wrong["htm"] = "PUT".into();
    harness.post_token(&form, Some(&key.proof(&wrong))).await;
    harness.post_token(&[], None).await;

    let received = harness.emulator.received();
    assert_eq!(received.len(), 2);
    let first = &received[0];
    assert_eq!((first.method.as_str(), first.status), ("POST", 401));
    assert_eq!(first.path, "/com/v4/token");
    assert_eq!(
        first.rejection.as_deref(),
        Some("Invalid htm in DPoP Proof")
    );
    assert_eq!(first.proof_jti.as_deref(), wrong["jti"].as_str());
    assert!(first.headers.iter().any(|(name, _)| name == "dpop"));
    assert!(!first.body.is_empty());
    assert_eq!(
        received[1].rejection.as_deref(),
        Some("No body found for POST request")
    );
}

#[tokio::test]
async fn browserless_authorize_redirects_with_a_usable_code() {
    let harness = Harness::start().await;
    let verifier = format!("{}{}", super::random_jti(), super::random_jti());
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "uinfin name")
        .append_pair("response_type", "code")
        .append_pair("code_challenge", &super::sha256_b64(&verifier))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "s-1")
        .finish();
    let url = format!("{}/authorize?{query}", harness.emulator.base_url());
    let request = Request::builder()
        .uri(url)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = harness.send(request).await;
    assert_eq!(reply.status, 302);
    let location = reply
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location");
    let (target, answer) = location.split_once('?').expect("query");
    assert_eq!(target, REDIRECT_URI);
    let answer: std::collections::HashMap<_, _> =
        form_urlencoded::parse(answer.as_bytes()).collect();
    assert_eq!(answer.get("state").map(|s| s.as_ref()), Some("s-1"));
    let code = answer.get("code").expect("code").to_string();

    let key = KeyPair::generate();
    let authorization = super::Authorization { code, verifier };
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
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["scope"], "uinfin name");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let harness = Harness::start().await;
    let addr = harness.emulator.local_addr();
    harness.emulator.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
