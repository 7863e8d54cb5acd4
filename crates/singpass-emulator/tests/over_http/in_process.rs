//! The emulator in process, through its tower service: the same answers as over a socket, a
//! Drop that fails like a closed connection, a Hang that never answers, and no answer for a
//! request addressed to another host.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use tower_service::Service;

use singpass_emulator::{Emulator, EmulatorConfig, EmulatorRoute, EmulatorService, Fault};

use super::{Harness, KeyPair, Reply, SCOPE, SUB};

/// Where an in-process emulator serves (nothing listens there).
pub(crate) const ORIGIN: &str = "https://emulator.test";

/// Sends `request` through `service`, as a connection would.
pub(crate) async fn send(
    mut service: EmulatorService,
    request: Request<Full<Bytes>>,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
    let response = service.call(Request::from_parts(parts, body)).await?;
    Ok(Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.into_body(),
    })
}

fn token_call(uri: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

#[tokio::test]
async fn a_v4_transaction_runs_in_process_on_its_origin() {
    let harness = Harness::in_process_with(|_| {});
    assert_eq!(harness.emulator.base_url(), format!("{ORIGIN}/com/v4"));
    assert_eq!(harness.emulator.ciba_issuer(), ORIGIN);
    assert_eq!(harness.emulator.local_addr().port(), 0);
    let key = KeyPair::generate();
    let token = harness.obtain_token(&key).await;
    let person = harness.call_person(&key, &token, SCOPE).await;
    assert_eq!(person.status, 200, "{:?}", person.body);
    // Single use, as over a socket.
    let again = harness.call_person(&key, &token, SCOPE).await;
    assert_eq!(again.status, 400);
    let paths: Vec<_> = harness
        .emulator
        .received()
        .into_iter()
        .map(|received| (received.path, received.status))
        .collect();
    let person_path = format!("/com/v4/person/{SUB}");
    assert_eq!(
        paths,
        [
            ("/com/v4/token".to_owned(), 200),
            (person_path.clone(), 200),
            (person_path, 400)
        ]
    );
}

#[tokio::test]
async fn a_request_for_another_host_gets_no_answer() {
    let harness = Harness::in_process_with(|_| {});
    let mut service = harness.emulator.service();
    for elsewhere in [
        "https://other.test/com/v4/token",
        "http://emulator.test/com/v4/token",
        "https://emulator.test:8443/com/v4/token",
    ] {
        let error = service
            .call(token_call(elsewhere).map(|_| Bytes::new()))
            .await
            .expect_err(elsewhere);
        assert!(error.to_string().contains(ORIGIN), "{error}");
    }
    assert!(harness.emulator.received().is_empty());
    // Origin-form and this origin's URLs do reach it.
    for here in ["/com/v4/token", "https://emulator.test:443/com/v4/token"] {
        let reply = harness.send(token_call(here)).await;
        assert_eq!(reply.status, 400, "{here}: an empty form is refused");
    }
}

#[tokio::test(start_paused = true)]
async fn a_drop_fails_like_a_closed_connection_and_a_hang_never_answers() {
    let harness = Harness::in_process_with(|_| {});
    let token_url = harness.token_url();
    harness
        .emulator
        .script(EmulatorRoute::Token, Fault::Drop, 1);
    let dropped = harness.try_send(token_call(&token_url)).await;
    assert!(dropped.is_err());
    harness
        .emulator
        .script(EmulatorRoute::Token, Fault::Hang, 1);
    let hung = tokio::time::timeout(
        Duration::from_secs(3600),
        harness.try_send(token_call(&token_url)),
    )
    .await;
    assert!(hung.is_err(), "a hung request got an answer");
    let faults: Vec<_> = harness
        .emulator
        .received()
        .into_iter()
        .map(|received| (received.status, received.fault))
        .collect();
    assert_eq!(
        faults,
        [
            (0, Some("scripted: drop".to_owned())),
            (0, Some("scripted: hang".to_owned()))
        ]
    );
}

#[test]
fn an_origin_is_a_scheme_and_a_host_only() {
    let config = || EmulatorConfig::new("client", josekit::jwk::JwkSet::new());
    for bad in [
        "emulator.test",
        "https://emulator.test/fapi",
        "ftp://emulator.test",
    ] {
        let error = Emulator::in_process(config(), bad).expect_err(bad);
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains(bad), "{error}");
    }
    let emulator = Emulator::in_process(config(), "http://127.0.0.1:9/").expect("origin");
    assert_eq!(emulator.fapi_issuer(), "http://127.0.0.1:9/fapi");
}
