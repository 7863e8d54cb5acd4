//! Whole FAPI 2.0 logins against the emulator: discovery, PAR with DPoP (or `dpop_jkt`), the
//! user's consent, token, userinfo (twice); the id_token and userinfo open with the client's
//! enc key and verify against the published JWKS with the right claims.

use serde_json::Value;

use super::fapi_client::{FapiLogin, FAPI_SCOPE};
use super::{Harness, CLIENT_ID, REDIRECT_URI, SUB};

#[tokio::test]
async fn a_whole_login_succeeds_and_its_answers_open_and_verify() {
    let harness = Harness::start().await;
    let issuer = harness.emulator.fapi_issuer();
    let origin = format!("http://{}", harness.emulator.local_addr());
    assert_eq!(issuer, format!("{origin}/fapi"));
    assert_eq!(harness.emulator.ciba_issuer(), origin);

    let discovery = harness
        .get(&format!("{issuer}/.well-known/openid-configuration"), &[])
        .await;
    assert_eq!(discovery.status, 200);
    let metadata = discovery.json();
    assert_eq!(metadata["issuer"], issuer.as_str());
    for (member, path) in [
        ("pushed_authorization_request_endpoint", "/par"),
        ("authorization_endpoint", "/auth"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
    ] {
        assert_eq!(metadata[member], format!("{issuer}{path}"), "{member}");
    }
    assert_eq!(metadata["dpop_signing_alg_values_supported"][0], "ES256");
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"][0],
        "private_key_jwt"
    );
    assert_eq!(
        metadata["id_token_encryption_enc_values_supported"][0],
        "A256CBC-HS512"
    );

    let login = FapiLogin::new();
    let pushed = harness.push(&login, None).await;
    assert_eq!(pushed.status, 201, "{:?}", pushed.body);
    let pushed = pushed.json();
    assert_eq!(pushed["expires_in"], 60);
    let request_uri = pushed["request_uri"].as_str().expect("request_uri");
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let code = harness
        .emulator
        .authorize_par(request_uri, SUB)
        .expect("consent");
    assert!(harness.emulator.authorize_par(request_uri, SUB).is_err());

    let reply = harness.fapi_token(&login, &code, &login.key).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let tokens = reply.json();
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(tokens["expires_in"], 1800);
    assert_eq!(tokens["scope"], FAPI_SCOPE);
    let access_token = tokens["access_token"].as_str().expect("access_token");

    let id_token = harness
        .open(tokens["id_token"].as_str().expect("id_token"))
        .await;
    assert_eq!(id_token.jwe_header.algorithm(), Some("ECDH-ES+A256KW"));
    assert_eq!(
        id_token.jwe_header.content_encryption(),
        Some("A256CBC-HS512")
    );
    assert_eq!(id_token.jwe_header.key_id(), Some("client-enc-1"));
    assert_eq!(id_token.jwe_header.content_type(), Some("JWT"));
    assert_eq!(id_token.jws_header.algorithm(), Some("ES256"));
    assert_eq!(id_token.jws_header.token_type(), Some("JWT"));
    let claims = &id_token.claims;
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["sub"], SUB);
    assert_eq!(claims["nonce"], login.nonce.as_str());
    assert_eq!(claims["sub_attributes"]["identity_number"], "S9812381D");
    let iat = claims["iat"].as_i64().expect("iat");
    assert_eq!(claims["exp"].as_i64(), Some(iat + 600));
    assert!(claims["amr"].is_array() && claims["acr"].is_string());

    // The access token is reusable within its lifetime.
    for _ in 0..2 {
        let reply = harness.userinfo(&login.key, access_token).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let content_type = reply.headers.get("content-type").map(|v| v.as_bytes());
        assert_eq!(content_type, Some(&b"application/jwt"[..]));
        let userinfo = harness
            .open(std::str::from_utf8(&reply.body).expect("text"))
            .await;
        assert_eq!(
            userinfo.jwe_header.content_encryption(),
            Some("A256CBC-HS512")
        );
        let claims = &userinfo.claims;
        assert_eq!(
            (&claims["iss"], &claims["aud"], &claims["sub"]),
            (
                &Value::from(issuer.as_str()),
                &Value::from(CLIENT_ID),
                &Value::from(SUB)
            )
        );
        assert!(claims["iat"].is_i64());
        let person = &claims["person_info"];
        assert_eq!(person["uinfin"]["value"], "S9812381D");
        assert_eq!(person["name"]["value"], "TAN XIAO HUI");
        assert_eq!(person["dob"]["value"], "1998-06-06");
        assert!(person.get("email").is_none(), "only the granted scope");
    }

    let received = harness.emulator.received();
    let routes: Vec<_> = received.iter().map(|seen| seen.route).collect();
    use singpass_emulator::EmulatorRoute::*;
    assert!(routes.starts_with(&[Some(Discovery), Some(Par), Some(FapiToken), Some(Jwks)]));
    assert!(received
        .iter()
        .all(|seen| (200..300).contains(&seen.status)));
}

#[tokio::test]
async fn the_signing_jwks_is_the_same_under_every_issuer() {
    let harness = Harness::start().await;
    let origin = harness.emulator.ciba_issuer();
    let expected = harness.emulator.signing_jwks().to_string();
    for path in ["/fapi/jwks", "/com/v4/jwks", "/jwks"] {
        let reply = harness.get(&format!("{origin}{path}"), &[]).await;
        assert_eq!(reply.status, 200, "{path}");
        let jwks: Value = reply.json();
        assert_eq!(
            jwks,
            serde_json::from_str::<Value>(&expected).expect("json")
        );
        let key = &jwks["keys"][0];
        assert_eq!(
            (&key["alg"], &key["use"]),
            (&Value::from("ES256"), &Value::from("sig"))
        );
        assert!(key["kid"].is_string() && key.get("d").is_none());
    }
}

#[tokio::test]
async fn par_with_dpop_jkt_binds_the_code_to_that_key() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();
    let mut form = harness.par_form(&login, &harness.fapi_assertion());
    form.push(("dpop_jkt".to_owned(), login.key.thumbprint()));
    let pushed = harness
        .post_form(&harness.fapi_url("/par"), &form, None)
        .await;
    assert_eq!(pushed.status, 201, "{:?}", pushed.body);
    let request_uri = pushed.json()["request_uri"]
        .as_str()
        .expect("uri")
        .to_owned();

    let code = harness
        .emulator
        .authorize_par(&request_uri, SUB)
        .expect("code");
    let reply = harness.fapi_token(&login, &code, &login.key).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let token = reply.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(harness.userinfo(&login.key, &token).await.status, 200);

    // A proof from another key is refused for a dpop_jkt-bound code too.
    let other = FapiLogin::new();
    let mut form = harness.par_form(&other, &harness.fapi_assertion());
    form.push(("dpop_jkt".to_owned(), other.key.thumbprint()));
    let pushed = harness
        .post_form(&harness.fapi_url("/par"), &form, None)
        .await;
    let request_uri = pushed.json()["request_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    let code = harness
        .emulator
        .authorize_par(&request_uri, SUB)
        .expect("code");
    let reply = harness.fapi_token(&other, &code, &login.key).await;
    assert_eq!(
        (reply.status, reply.json()["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
}

#[tokio::test]
async fn the_browserless_authorization_endpoint_redirects_with_code_and_state() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();
    let pushed = harness.push(&login, None).await.json();
    let request_uri = pushed["request_uri"].as_str().expect("uri");
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", CLIENT_ID)
        .append_pair("request_uri", request_uri)
        .finish();
    let url = harness.fapi_url(&format!("/auth?{query}"));
    let reply = harness.get(&url, &[]).await;
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
    assert_eq!(
        answer.get("state").map(|s| s.as_ref()),
        Some(login.state.as_str())
    );
    let code = answer.get("code").expect("code").to_string();

    // A request_uri works once.
    let again = harness.get(&url, &[]).await;
    assert_eq!(
        (again.status, again.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let reply = harness.fapi_token(&login, &code, &login.key).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id_token = harness
        .open(reply.json()["id_token"].as_str().expect("id_token"))
        .await;
    assert_eq!(id_token.claims["sub"], singpass_emulator::SAMPLE_SUB);
}
