//! Malformed input at the FAPI and CIBA endpoints gets an OAuth-shaped 4xx, never a panic or
//! a dropped connection; wrong methods and unknown paths are 405 and 404.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;

use super::fapi_client::{pairs, FapiLogin, JWT_BEARER};
use super::robustness::GARBAGE;
use super::{Harness, CLIENT_ID};

#[tokio::test]
async fn garbage_anywhere_gets_a_4xx() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();
    let issuer = harness.emulator.ciba_issuer();
    let par_url = harness.fapi_url("/par");
    let token_url = harness.fapi_url("/token");
    let userinfo_url = harness.fapi_url("/userinfo");
    let tokens = harness.fapi_tokens(&login).await;
    let token = tokens["access_token"].as_str().expect("token");
    for garbage in GARBAGE {
        let mut replies = Vec::new();
        let form = harness.par_form(&login, &harness.fapi_assertion());
        replies.push(harness.post_form(&par_url, &form, Some(garbage)).await);
        let form = harness.par_form(&login, garbage);
        let proof = login
            .key
            .proof(&harness.fapi_proof_claims("POST", &par_url, None, None));
        replies.push(harness.post_form(&par_url, &form, Some(&proof)).await);
        let mut form = harness.par_form(&login, &harness.fapi_assertion());
        form.extend(pairs(&[("dpop_jkt", garbage)]));
        replies.push(harness.post_form(&par_url, &form, None).await);

        let form = harness.fapi_token_form(&login, garbage, &harness.fapi_assertion());
        replies.push(harness.post_form(&token_url, &form, Some(garbage)).await);
        let form = harness.fapi_token_form(&login, "code", garbage);
        let proof = login
            .key
            .proof(&harness.fapi_proof_claims("POST", &token_url, None, None));
        replies.push(harness.post_form(&token_url, &form, Some(&proof)).await);

        let authorization = format!("DPoP {garbage}");
        replies.push(
            harness
                .get(
                    &userinfo_url,
                    &[("Authorization", &authorization), ("DPoP", garbage)],
                )
                .await,
        );
        let authorization = format!("DPoP {token}");
        replies.push(
            harness
                .get(
                    &userinfo_url,
                    &[("Authorization", &authorization), ("DPoP", garbage)],
                )
                .await,
        );
        replies.push(
            harness
                .get(&userinfo_url, &[("Authorization", garbage)])
                .await,
        );

        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", CLIENT_ID)
            .append_pair("request_uri", garbage)
            .finish();
        replies.push(
            harness
                .get(&harness.fapi_url(&format!("/auth?{query}")), &[])
                .await,
        );

        let form = pairs(&[
            ("login_hint", "x"),
            ("scope", "openid"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", garbage),
        ]);
        replies.push(
            harness
                .post_form(&format!("{issuer}/bc-auth"), &form, None)
                .await,
        );
        let form = harness.ciba_form(
            &issuer,
            &[
                ("grant_type", "urn:openid:params:grant-type:ciba"),
                ("auth_req_id", garbage),
            ],
        );
        replies.push(
            harness
                .post_form(&format!("{issuer}/token"), &form, None)
                .await,
        );

        for (index, reply) in replies.iter().enumerate() {
            assert!(
                (400..500).contains(&reply.status),
                "{garbage:?} #{index}: {} {:?}",
                reply.status,
                reply.body
            );
            assert!(reply.json()["error"].is_string());
        }
    }
}

#[tokio::test]
async fn bodies_methods_and_paths_are_checked() {
    let harness = Harness::start().await;
    let origin = harness.emulator.ciba_issuer();
    let request = |method: Method, path: &str, content_type: &str, body: &'static str| {
        Request::builder()
            .method(method)
            .uri(format!("{origin}{path}"))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("request")
    };
    for path in ["/fapi/par", "/fapi/token", "/bc-auth", "/token"] {
        let reply = harness
            .send(request(Method::POST, path, "application/json", "{}"))
            .await;
        reply.assert_oauth(400, "invalid_request");
        let reply = harness
            .send(request(Method::GET, path, "text/plain", ""))
            .await;
        assert_eq!(reply.status, 405, "{path}");
    }
    for path in [
        "/fapi/userinfo",
        "/fapi/jwks",
        "/fapi/.well-known/openid-configuration",
        "/jwks",
    ] {
        let reply = harness
            .send(request(Method::POST, path, "text/plain", ""))
            .await;
        assert_eq!(reply.status, 405, "{path}");
    }
    for path in [
        "/fapi",
        "/fapi/",
        "/fapi/nope",
        "/bc-auth/x",
        "/.well-known/jwks",
    ] {
        let reply = harness
            .send(request(Method::GET, path, "text/plain", ""))
            .await;
        assert_eq!(reply.status, 404, "{path}");
    }
    let received = harness.emulator.received();
    assert!(received.iter().all(|seen| seen.rejection.is_some()));
    assert!(received
        .iter()
        .filter(|seen| seen.status == 404)
        .all(|seen| seen.route.is_none()));
}
