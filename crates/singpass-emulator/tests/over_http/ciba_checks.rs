//! CIBA on the root issuer, on paused tokio time: bc-auth, `authorization_pending`,
//! `slow_down`, approval, tokens once, expiry, and client assertions that must name the root
//! issuer exactly.

use std::time::Duration;

use super::{Harness, Reply, SUB};

const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";

impl Harness {
    pub(crate) fn ciba_url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.ciba_issuer())
    }

    pub(crate) async fn bc_auth(&self) -> Reply {
        let form = self.ciba_form(
            &self.emulator.ciba_issuer(),
            &[("login_hint", "S9812381D"), ("scope", "openid")],
        );
        self.post_form(&self.ciba_url("/bc-auth"), &form, None)
            .await
    }

    pub(crate) async fn poll(&self, auth_req_id: &str) -> Reply {
        let form = self.ciba_form(
            &self.emulator.ciba_issuer(),
            &[("grant_type", CIBA_GRANT), ("auth_req_id", auth_req_id)],
        );
        self.post_form(&self.ciba_url("/token"), &form, None).await
    }

    pub(crate) async fn auth_req_id(&self) -> String {
        let reply = self.bc_auth().await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.json()["auth_req_id"]
            .as_str()
            .expect("auth_req_id")
            .to_owned()
    }
}

#[tokio::test(start_paused = true)]
async fn a_backchannel_login_is_pending_then_approved_then_redeemed_once() {
    let harness = Harness::start().await;
    let discovery = harness
        .get(&harness.ciba_url("/.well-known/openid-configuration"), &[])
        .await
        .json();
    let issuer = harness.emulator.ciba_issuer();
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(
        discovery["backchannel_authentication_endpoint"],
        format!("{issuer}/bc-auth")
    );
    assert_eq!(discovery["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(
        discovery["backchannel_token_delivery_modes_supported"][0],
        "poll"
    );
    assert!(discovery["grant_types_supported"]
        .as_array()
        .expect("list")
        .contains(&CIBA_GRANT.into()));

    let started = harness.bc_auth().await.json();
    assert_eq!(
        (started["expires_in"].as_u64(), started["interval"].as_u64()),
        (Some(120), Some(5))
    );
    let id = started["auth_req_id"].as_str().expect("id").to_owned();

    harness
        .poll(&id)
        .await
        .assert_oauth(400, "authorization_pending");
    tokio::time::advance(Duration::from_secs(2)).await;
    harness.poll(&id).await.assert_oauth(400, "slow_down");
    tokio::time::advance(Duration::from_secs(5)).await;
    harness
        .poll(&id)
        .await
        .assert_oauth(400, "authorization_pending");

    harness.emulator.approve_ciba(&id, SUB).expect("approved");
    assert!(harness.emulator.approve_ciba(&id, SUB).is_err());
    tokio::time::advance(Duration::from_secs(5)).await;
    let reply = harness.poll(&id).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let tokens = reply.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["access_token"].is_string() && tokens["expires_in"].is_u64());
    let id_token = harness
        .open(tokens["id_token"].as_str().expect("id_token"))
        .await;
    assert_eq!(
        id_token.jwe_header.content_encryption(),
        Some("A256CBC-HS512")
    );
    assert_eq!(id_token.claims["iss"], issuer.as_str());
    assert_eq!(id_token.claims["aud"], super::CLIENT_ID);
    assert_eq!(id_token.claims["sub"], SUB);

    // A second poll after success, however soon or late, is refused.
    harness.poll(&id).await.assert_oauth(400, "invalid_grant");
    tokio::time::advance(Duration::from_secs(5)).await;
    harness.poll(&id).await.assert_oauth(400, "invalid_grant");
    harness
        .poll("unknown")
        .await
        .assert_oauth(400, "invalid_grant");
}

#[tokio::test(start_paused = true)]
async fn requests_expire_and_can_be_denied() {
    let harness = Harness::start().await;
    let id = harness.auth_req_id().await;
    tokio::time::advance(Duration::from_secs(121)).await;
    harness.poll(&id).await.assert_oauth(400, "expired_token");
    assert!(harness.emulator.approve_ciba(&id, SUB).is_err());

    let id = harness.auth_req_id().await;
    harness.emulator.deny_ciba(&id).expect("denied");
    harness.poll(&id).await.assert_oauth(400, "access_denied");
}

#[tokio::test]
async fn ciba_assertions_must_name_the_root_issuer() {
    let harness = Harness::start().await;
    let wrong_audiences = [
        harness.emulator.fapi_issuer(),
        harness.ciba_url("/bc-auth"),
        format!("{}/", harness.emulator.ciba_issuer()),
    ];
    for audience in &wrong_audiences {
        let form = harness.ciba_form(audience, &[("login_hint", "x"), ("scope", "openid")]);
        harness
            .post_form(&harness.ciba_url("/bc-auth"), &form, None)
            .await
            .assert_oauth(401, "invalid_client");
    }
    let id = harness.auth_req_id().await;
    harness.emulator.approve_ciba(&id, SUB).expect("approved");
    let form = harness.ciba_form(
        &harness.ciba_url("/token"),
        &[("grant_type", CIBA_GRANT), ("auth_req_id", &id)],
    );
    harness
        .post_form(&harness.ciba_url("/token"), &form, None)
        .await
        .assert_oauth(401, "invalid_client");
    // Too long a life, then a replayed assertion.
    let mut claims = harness.issuer_assertion_claims(&harness.emulator.ciba_issuer());
    claims["exp"] = (claims["iat"].as_i64().expect("iat") + 300).into();
    let long = harness.client.assertion(&claims);
    let form = super::fapi_client::pairs(&[
        ("grant_type", CIBA_GRANT),
        ("auth_req_id", &id),
        ("client_assertion_type", super::fapi_client::JWT_BEARER),
        ("client_assertion", &long),
    ]);
    harness
        .post_form(&harness.ciba_url("/token"), &form, None)
        .await
        .assert_oauth(401, "invalid_client");
    // None of those polls reached the request: it still redeems.
    assert_eq!(harness.poll(&id).await.status, 200);
}

#[tokio::test]
async fn bc_auth_needs_openid_and_a_login_hint_and_ignores_dpop() {
    let harness = Harness::start().await;
    let issuer = harness.emulator.ciba_issuer();
    let url = harness.ciba_url("/bc-auth");
    let form = harness.ciba_form(&issuer, &[("login_hint", "x"), ("scope", "name")]);
    harness
        .post_form(&url, &form, None)
        .await
        .assert_oauth(400, "invalid_scope");
    let form = harness.ciba_form(&issuer, &[("scope", "openid")]);
    harness
        .post_form(&url, &form, None)
        .await
        .assert_oauth(400, "invalid_request");
    let form = harness.ciba_form(&issuer, &[("login_hint", "x"), ("scope", "openid")]);
    let reply = harness.post_form(&url, &form, Some("not-even-a-jwt")).await;
    assert_eq!(reply.status, 200, "a DPoP header is ignored");
    let form = harness.ciba_form(
        &issuer,
        &[("grant_type", "authorization_code"), ("auth_req_id", "x")],
    );
    harness
        .post_form(&harness.ciba_url("/token"), &form, None)
        .await
        .assert_oauth(400, "unsupported_grant_type");
}
