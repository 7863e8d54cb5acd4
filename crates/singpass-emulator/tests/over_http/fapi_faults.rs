//! Faults and quotas on the FAPI and CIBA routes work as on v4's: quota, then scripted, then
//! random; every faulted request is recorded with its jtis read unverified, and spends no
//! jti, request_uri, code, access token or auth_req_id — the very same request, resent,
//! succeeds.

use http::{Method, Request};

use super::fapi_client::FapiLogin;
use super::{Harness, Reply};
use singpass_emulator::{EmulatorRoute, Fault};

fn status(status: u16) -> Fault {
    Fault::Status {
        status,
        retry_after: None,
    }
}

/// A POST with a form and an optional proof, rebuilt identically for each send.
fn form_request(
    url: &str,
    form: &[(String, String)],
    proof: Option<&str>,
) -> Request<http_body_util::Full<bytes::Bytes>> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request")
}

/// Sends the same request twice: first meets the scripted `fault`, then is served.
async fn faulted_then_served(
    harness: &Harness,
    route: EmulatorRoute,
    fault: Fault,
    request: impl Fn() -> Request<http_body_util::Full<bytes::Bytes>>,
) -> (Option<Reply>, Reply) {
    harness.emulator.script(route, fault, 1);
    let faulted = harness.try_send(request()).await.ok();
    (faulted, harness.send(request()).await)
}

#[tokio::test]
async fn faulted_fapi_calls_spend_nothing_and_are_recorded() {
    let harness = Harness::start().await;
    let login = FapiLogin::new();

    // PAR: the same assertion and proof pass after a 503.
    let par_url = harness.fapi_url("/par");
    let form = harness.par_form(&login, &harness.fapi_assertion());
    let proof = login
        .key
        .proof(&harness.fapi_proof_claims("POST", &par_url, None, None));
    let (faulted, served) = faulted_then_served(&harness, EmulatorRoute::Par, status(503), || {
        form_request(&par_url, &form, Some(&proof))
    })
    .await;
    assert_eq!(faulted.map(|reply| reply.status), Some(503));
    assert_eq!(served.status, 201, "{:?}", served.body);
    let request_uri = served.json()["request_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    let code = harness
        .emulator
        .authorize_par(&request_uri, super::SUB)
        .expect("code");

    // Token: a dropped connection, then the same code, assertion and proof work.
    let token_url = harness.fapi_url("/token");
    let form = harness.fapi_token_form(&login, &code, &harness.fapi_assertion());
    let proof = login
        .key
        .proof(&harness.fapi_proof_claims("POST", &token_url, None, None));
    let (faulted, served) =
        faulted_then_served(&harness, EmulatorRoute::FapiToken, Fault::Drop, || {
            form_request(&token_url, &form, Some(&proof))
        })
        .await;
    assert!(faulted.is_none(), "dropped without an answer");
    assert_eq!(served.status, 200, "{:?}", served.body);
    let token = served.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();

    // Userinfo: an OAuth 503, then the same proof works.
    let userinfo_url = harness.fapi_url("/userinfo");
    let proof =
        login
            .key
            .proof(&harness.fapi_proof_claims("GET", &userinfo_url, Some(&token), None));
    let unavailable = Fault::OAuthError {
        status: 503,
        error: "temporarily_unavailable".to_owned(),
    };
    let (faulted, served) =
        faulted_then_served(&harness, EmulatorRoute::Userinfo, unavailable, || {
            Request::builder()
                .uri(&userinfo_url)
                .header("Authorization", format!("DPoP {token}"))
                .header("DPoP", &proof)
                .body(http_body_util::Full::default())
                .expect("request")
        })
        .await;
    let faulted = faulted.expect("an answer");
    faulted.assert_oauth(503, "temporarily_unavailable");
    assert_eq!(served.status, 200, "{:?}", served.body);

    let received = harness.emulator.received();
    let faulted: Vec<_> = received
        .iter()
        .filter(|seen| seen.fault.is_some())
        .collect();
    let routes: Vec<_> = faulted.iter().map(|seen| seen.route).collect();
    assert_eq!(
        routes,
        [
            Some(EmulatorRoute::Par),
            Some(EmulatorRoute::FapiToken),
            Some(EmulatorRoute::Userinfo)
        ]
    );
    assert!(faulted.iter().all(|seen| seen.proof_jti.is_some()));
    assert!(faulted[..2].iter().all(|seen| seen.assertion_jti.is_some()));
    // Each faulted attempt carried the jtis its served twin then spent.
    for seen in &faulted {
        let twin = received
            .iter()
            .find(|other| other.fault.is_none() && other.proof_jti == seen.proof_jti)
            .expect("served twin");
        assert_eq!(twin.assertion_jti, seen.assertion_jti);
        assert!((200..300).contains(&twin.status));
    }
}

#[tokio::test]
async fn a_faulted_ciba_poll_spends_neither_the_request_nor_the_interval() {
    let harness = Harness::start().await;
    let issuer = harness.emulator.ciba_issuer();
    let bc_form = harness.ciba_form(&issuer, &[("login_hint", "x"), ("scope", "openid")]);
    let bc_url = format!("{issuer}/bc-auth");
    let (faulted, started) =
        faulted_then_served(&harness, EmulatorRoute::CibaAuth, status(502), || {
            form_request(&bc_url, &bc_form, None)
        })
        .await;
    assert_eq!(faulted.map(|reply| reply.status), Some(502));
    let id = started.json()["auth_req_id"]
        .as_str()
        .expect("id")
        .to_owned();
    harness
        .emulator
        .approve_ciba(&id, super::SUB)
        .expect("approved");

    let poll = harness.ciba_form(
        &issuer,
        &[
            ("grant_type", "urn:openid:params:grant-type:ciba"),
            ("auth_req_id", &id),
        ],
    );
    let token_url = format!("{issuer}/token");
    let (faulted, served) =
        faulted_then_served(&harness, EmulatorRoute::CibaToken, status(503), || {
            form_request(&token_url, &poll, None)
        })
        .await;
    assert_eq!(faulted.map(|reply| reply.status), Some(503));
    assert_eq!(
        served.status, 200,
        "no slow_down: the faulted poll never counted"
    );
}

#[tokio::test]
async fn quotas_and_random_failure_apply_to_the_new_routes() {
    let harness = Harness::start().await;
    harness.emulator.set_quota(EmulatorRoute::Par, 1.0, 1, true);
    let first = harness.push(&FapiLogin::new(), None).await;
    assert_eq!(first.status, 201);
    let second = harness.push(&FapiLogin::new(), None).await;
    assert_eq!(second.status, 429);
    assert_eq!(second.json()["error"], "TOO_MANY_REQUESTS");
    assert!(second.headers.contains_key("retry-after"));

    harness
        .emulator
        .fail_randomly(EmulatorRoute::Discovery, 1.0, vec![status(500)], 9);
    let discovery = harness.fapi_url("/.well-known/openid-configuration");
    assert_eq!(harness.get(&discovery, &[]).await.status, 500);
    harness.emulator.clear_faults();
    assert_eq!(harness.get(&discovery, &[]).await.status, 200);
    assert_eq!(harness.push(&FapiLogin::new(), None).await.status, 201);
}

#[tokio::test]
async fn injected_fapi_answers_carry_the_nonce_too() {
    let harness = Harness::start().await;
    harness.emulator.require_dpop_nonce(true);
    harness.emulator.script(EmulatorRoute::Par, status(503), 1);
    let reply = harness.push(&FapiLogin::new(), None).await;
    assert_eq!(reply.status, 503);
    assert!(reply.dpop_nonce().is_some());
    harness
        .emulator
        .script(EmulatorRoute::Token, status(503), 1);
    let v4 = harness.post_token(&[], None).await;
    assert_eq!((v4.status, v4.dpop_nonce()), (503, None));
}
