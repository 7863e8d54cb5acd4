//! Singpass CIBA through the proxy against the strict emulator: the client assertion, and poll
//! answers passed through unretried.

mod common;

use common::*;
use http::StatusCode;
use singpass_emulator::{EmulatorRoute, Fault};

const SUB: &str = "f1a2b3c4-user";

#[tokio::test(start_paused = true)]
async fn ciba_adds_the_assertion_and_passes_poll_answers_through_unretried() {
    let h = Harness::start_fapi("", "").await;
    let start = h
        .post_form("/ciba/bc-auth", "login_hint=S1234567A&scope=openid", &[])
        .await;
    assert_eq!(start.status, StatusCode::OK, "{:?}", start.body);
    let auth_req_id = start.json()["auth_req_id"].as_str().unwrap().to_owned();
    let poll_form =
        format!("grant_type=urn:openid:params:grant-type:ciba&auth_req_id={auth_req_id}");
    let pending = h.post_form("/ciba/token", &poll_form, &[]).await;
    assert_eq!(pending.status, StatusCode::BAD_REQUEST);
    assert_eq!(pending.json()["error"], "authorization_pending");
    let sent = h
        .emulator
        .received()
        .into_iter()
        .find(|r| r.route == Some(EmulatorRoute::CibaAuth))
        .unwrap();
    assert!(String::from_utf8_lossy(&sent.body).contains("client_assertion="));
    assert!(
        !sent.headers.iter().any(|(k, _)| k == "dpop"),
        "CIBA carries no DPoP proof"
    );

    // A 503 on a poll is the app's to repeat: passed through after exactly one attempt.
    h.emulator.script(
        EmulatorRoute::CibaToken,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    let polls_before = h
        .emulator
        .received()
        .iter()
        .filter(|r| r.route == Some(EmulatorRoute::CibaToken))
        .count();
    let unavailable = h.post_form("/ciba/token", &poll_form, &[]).await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    let polls_after = h
        .emulator
        .received()
        .iter()
        .filter(|r| r.route == Some(EmulatorRoute::CibaToken))
        .count();
    assert_eq!(polls_after, polls_before + 1);

    h.emulator.approve_ciba(&auth_req_id, SUB).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    let mut done = None;
    for _ in 0..3 {
        let res = h.post_form("/ciba/token", &poll_form, &[]).await;
        if res.status == StatusCode::OK {
            done = Some(res);
            break;
        }
        // slow_down: the emulator's 5 s poll interval runs on tokio time, paused here.
        assert_eq!(res.json()["error"], "slow_down");
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    assert!(done.expect("the approved request never completed").json()["access_token"].is_string());
}
