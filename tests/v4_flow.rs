//! The Myinfo v4 flow through the proxy against the strict emulator, as an app would run it.

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use josekit::jwe::ECDH_ES_A256KW;
use josekit::jwk::Jwk;
use josekit::jws::ES256;

const SUB: &str = "a1b2c3d4-uuid";
const SCOPE: &str = "uinfin name";

/// Decrypts the person JWE with the client's enc key and verifies the inner JWS with the
/// emulator's signing key, as the app would.
fn open_person(h: &Harness, jwe: &[u8]) -> serde_json::Value {
    let enc = h.keys.private["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["use"] == "enc")
        .unwrap();
    let jwk = Jwk::from_map(enc.as_object().unwrap().clone()).unwrap();
    let decrypter = ECDH_ES_A256KW.decrypter_from_jwk(&jwk).unwrap();
    let (jws, _) =
        josekit::jwe::deserialize_compact(std::str::from_utf8(jwe).unwrap(), &decrypter).unwrap();
    let signing = h.emulator.signing_jwks();
    let verifier = ES256.verifier_from_jwk(signing.keys()[0]).unwrap();
    let (payload, _) = josekit::jws::deserialize_compact(&jws, &verifier).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

#[tokio::test]
async fn token_then_person_succeeds_with_every_proof_accepted() {
    let h = Harness::start().await;
    let token = h.token(SUB, SCOPE).await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    let access_token = token.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token.json()["token_type"], "DPoP");

    let person = h.person(SUB, &access_token, SCOPE).await;
    assert_eq!(person.status, StatusCode::OK, "{:?}", person.body);
    let data = open_person(&h, &person.body);
    assert!(data["uinfin"]["value"].is_string(), "{data}");
    assert!(data["name"]["value"].is_string(), "{data}");

    let seen = h.emulator.received();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert_eq!(
            r.status, 200,
            "emulator rejected {} {}: {:?}",
            r.method, r.path, r.rejection
        );
        assert!(r.rejection.is_none());
    }
    assert!(seen[0].assertion_jti.is_some() && seen[0].proof_jti.is_some());
    assert_ne!(seen[0].proof_jti, seen[1].proof_jti);
    // The proxy's request id went upstream and came back to the app.
    let rid = person
        .headers
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(seen[1]
        .headers
        .iter()
        .any(|(k, v)| k == "x-request-id" && v == rid));
}

#[tokio::test]
async fn second_use_of_a_v4_token_is_refused_without_calling_upstream() {
    let h = Harness::start().await;
    let access_token = h.token(SUB, SCOPE).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        h.person(SUB, &access_token, SCOPE).await.status,
        StatusCode::OK
    );

    let again = h.person(SUB, &access_token, SCOPE).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    let p = again.problem("AUTH_TOKEN_REUSED");
    assert_eq!(p["instance"], format!("/com/v4/person/{SUB}"));
    assert_eq!(
        h.received_on("/person/").len(),
        1,
        "the second use reached upstream"
    );
}

#[tokio::test]
async fn unknown_token_is_refused_locally() {
    let h = Harness::start().await;
    let res = h.person(SUB, "eyJhbGciOiJFUzI1NiJ9.e30.sig", SCOPE).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let p = res.problem("AUTH_TOKEN_UNKNOWN");
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("not issued through this proxy"));
    assert!(h.emulator.received().is_empty());

    let missing = h
        .send(
            Method::GET,
            &format!("/com/v4/person/{SUB}?scope=name"),
            &[],
            Bytes::new(),
        )
        .await;
    missing.problem("AUTH_TOKEN_MISSING");
    let basic = h
        .send(
            Method::GET,
            &format!("/com/v4/person/{SUB}?scope=name"),
            &[("authorization", "Basic dTpw")],
            Bytes::new(),
        )
        .await;
    basic.problem("AUTH_TOKEN_MISSING");
    assert!(h.emulator.received().is_empty());
}

#[tokio::test]
async fn misconfigured_upstream_url_surfaces_the_upstreams_rejection_unchanged() {
    // The emulator listens on 127.0.0.1; the proxy is told "localhost", so every htu and aud it
    // signs names a URL the emulator does not consider its own.
    let h = Harness::start_with(|base| base.replace("127.0.0.1", "localhost"), "").await;
    let res = h.token(SUB, SCOPE).await;
    let seen = h.emulator.received();
    assert_eq!(seen.len(), 1);
    assert_eq!(res.status.as_u16(), seen[0].status);
    assert!(res.status.is_client_error(), "{}", res.status);
    assert_eq!(
        res.content_type(),
        "application/json",
        "the upstream's own body, not a problem"
    );
    let body = res.json();
    assert_eq!(
        body["error_description"].as_str(),
        seen[0].rejection.as_deref()
    );
    assert!(
        body["id"].is_string() && body["trace_id"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn the_apps_own_dpop_and_assertion_are_never_forwarded() {
    let h = Harness::start().await;
    let (verifier, challenge) = pkce();
    let code = h.emulator.mint_code(SUB, SCOPE, &challenge, REDIRECT);
    let form = format!(
        "{}&client_assertion=APP-SIGNED-JWT&client_assertion_type=app-type",
        token_form(&code, &verifier)
    );
    let res = h
        .post_form(
            "/com/v4/token",
            &form,
            &[("dpop", "APP-PROOF"), ("authorization", "Basic abc")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);

    let seen = &h.emulator.received()[0];
    let body = String::from_utf8_lossy(&seen.body);
    assert!(
        !body.contains("APP-SIGNED-JWT") && !body.contains("app-type"),
        "{body}"
    );
    assert_eq!(body.matches("client_assertion=").count(), 1);
    let dpop: Vec<_> = seen.headers.iter().filter(|(k, _)| k == "dpop").collect();
    assert_eq!(dpop.len(), 1);
    assert_ne!(dpop[0].1, "APP-PROOF");
    assert!(!seen.headers.iter().any(|(k, _)| k == "authorization"));

    // Same on person: the app's DPoP header is replaced by the proxy's proof.
    let access_token = res.json()["access_token"].as_str().unwrap().to_owned();
    let auth = format!("DPoP {access_token}");
    let path = format!("/com/v4/person/{SUB}?scope=name");
    let person = h
        .send(
            Method::GET,
            &path,
            &[("authorization", &auth), ("dpop", "APP-PROOF")],
            Bytes::new(),
        )
        .await;
    assert_eq!(person.status, StatusCode::OK, "{:?}", person.body);
}

#[tokio::test]
async fn client_id_other_than_the_configured_one_is_refused() {
    let h = Harness::start().await;
    let res = h
        .post_form(
            "/com/v4/token",
            "grant_type=authorization_code&code=x&client_id=SOMEONE-ELSE",
            &[],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let p = res.problem("VALIDATION_INVALID_PARAMETER");
    assert!(p["detail"].as_str().unwrap().contains("SOMEONE-ELSE"));
    let json = h
        .send(
            Method::POST,
            "/com/v4/token",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    json.problem("VALIDATION_UNSUPPORTED_MEDIA_TYPE");
    assert!(h.emulator.received().is_empty());
}

#[tokio::test]
async fn body_over_the_cap_gets_413() {
    let h = Harness::start_with(|b| b.to_owned(), "max_request_body = 1024").await;
    let big = format!("code={}", "a".repeat(2000));
    let res = h.post_form("/com/v4/token", &big, &[]).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    res.problem("VALIDATION_BODY_TOO_LARGE");
    assert!(h.emulator.received().is_empty());
}

#[tokio::test]
async fn unknown_paths_and_methods_get_problems() {
    let h = Harness::start().await;
    let res = h
        .send(Method::GET, "/com/v4/authorize", &[], Bytes::new())
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    res.problem("RESOURCE_NOT_FOUND");
    let res = h
        .send(Method::GET, "/com/v4/token", &[], Bytes::new())
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    res.problem("RESOURCE_METHOD_NOT_ALLOWED");
    assert_eq!(res.headers.get("allow").unwrap(), "POST");
    let res = h
        .send(Method::GET, "/com/v4/person/a/b", &[], Bytes::new())
        .await;
    res.problem("RESOURCE_NOT_FOUND");
    assert!(h.emulator.received().is_empty());
}

#[tokio::test]
async fn never_an_open_proxy() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start().await;
    for raw in [
        "GET http://example.com/com/v4/token HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(h.proxy_addr).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("VALIDATION_INVALID_TARGET"), "{answer}");
    }
    assert!(h.emulator.received().is_empty());
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    let h = Harness::start().await;
    let (verifier, challenge) = pkce();
    let code = h.emulator.mint_code(SUB, SCOPE, &challenge, REDIRECT);
    let res = h
        .post_form(
            "/com/v4/token",
            &token_form(&code, &verifier),
            &[
                ("connection", "x-secret-hop"),
                ("x-secret-hop", "1"),
                ("proxy-authorization", "Basic Zm9v"),
                ("x-app-header", "kept"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let seen = &h.emulator.received()[0];
    let names: Vec<&str> = seen.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !names.contains(&"x-secret-hop") && !names.contains(&"proxy-authorization"),
        "{names:?}"
    );
    assert!(names.contains(&"x-app-header"));
}

#[tokio::test]
async fn h2c_from_the_app_runs_the_flow() {
    let h = Harness::start().await;
    let h2: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let (verifier, challenge) = pkce();
    let code = h.emulator.mint_code(SUB, SCOPE, &challenge, REDIRECT);
    let req = http::Request::post(h.url("/com/v4/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(token_form(&code, &verifier).into())
        .unwrap();
    let res = h2.request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::OK);
    let req = http::Request::get(h.url("/nope"))
        .body(Default::default())
        .unwrap();
    assert_eq!(
        h2.request(req).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn person_decryption_returns_verified_plain_json() {
    let h = Harness::start_configured_v4(|base| {
        format!("base_url = \"{base}\"\njwks_url = \"{base}/jwks\"\n[upstream.routes.person]\ndecrypt = true\n")
    })
    .await;
    let access_token = h.token(SUB, SCOPE).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let person = h.person(SUB, &access_token, SCOPE).await;
    assert_eq!(person.status, StatusCode::OK, "{:?}", person.body);
    assert_eq!(person.content_type(), "application/json");
    let data = person.json();
    assert_eq!(data["sub"], SUB);
    assert!(data["uinfin"]["value"].is_string(), "{data}");
}

#[tokio::test]
async fn a_passthrough_upstream_forwards_any_path_unsigned() {
    let h = Harness::start_configured_v4(|base| {
        let root = base.trim_end_matches("/com/v4");
        format!("base_url = \"{base}\"\n[[upstream]]\nname = \"plain\"\nkind = \"passthrough\"\nbase_url = \"{root}\"\nlocal_prefix = \"/plain\"\n")
    })
    .await;
    let res = h
        .send(
            Method::GET,
            "/plain/com/v4/jwks?x=1",
            &[("authorization", "Bearer kept"), ("dpop", "kept-too")],
            Bytes::new(),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert!(res.json()["keys"].is_array());
    let seen = &h.emulator.received()[0];
    assert_eq!(seen.path, "/com/v4/jwks");
    assert_eq!(seen.query.as_deref(), Some("x=1"));
    assert!(
        seen.headers
            .iter()
            .any(|(k, v)| k == "dpop" && v == "kept-too"),
        "a passthrough adds and removes nothing"
    );
    assert!(seen
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == "Bearer kept"));
    let other = h.send(Method::GET, "/plainly", &[], Bytes::new()).await;
    other.problem("RESOURCE_NOT_FOUND");
}
