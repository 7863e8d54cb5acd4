//! Odd paths are refused before anything is signed or forwarded: a v4 person `sub` that is a
//! dot segment or hides a separator, and a passthrough path that leaves its mount.

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};

const SUB: &str = "S1234567A";
const SCOPE: &str = "uinfin name";

#[tokio::test]
async fn odd_person_subs_get_400_and_nothing_is_signed_or_sent() {
    let h = Harness::start().await;
    let token = h.token(SUB, SCOPE).await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    let access_token = token.json()["access_token"].as_str().unwrap().to_owned();
    for sub in [
        "..",
        ".",
        "%2e%2e",
        "%2E.",
        "a%2F..%2F..%2Ftoken",
        "%252e%252e",
        "a%5Cb",
    ] {
        let res = h.person(sub, &access_token, SCOPE).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{sub}: {:?}", res.body);
        let p = res.problem("VALIDATION_INVALID_PARAMETER");
        assert!(
            p["detail"].as_str().unwrap().contains("person `sub`"),
            "{p}"
        );
    }
    assert!(
        h.received_on("/person/").is_empty(),
        "no odd person path reached the upstream"
    );
    // The one-time token was not spent by the refusals: the real call still works.
    let ok = h.person(SUB, &access_token, SCOPE).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(h.received_on("/person/").len(), 1);
}

#[tokio::test]
async fn a_uuid_sub_is_forwarded_as_it_is() {
    let h = Harness::start().await;
    let sub = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
    let token = h.token(sub, SCOPE).await;
    let access_token = token.json()["access_token"].as_str().unwrap().to_owned();
    let res = h.person(sub, &access_token, SCOPE).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let seen = h.received_on("/person/");
    assert!(
        seen[0].path.ends_with(&format!("/person/{sub}")),
        "{}",
        seen[0].path
    );
}

async fn passthrough() -> Harness {
    Harness::start_configured_v4(|base| {
        let root = base.trim_end_matches("/com/v4");
        format!("base_url = \"{base}\"\n[[upstream]]\nname = \"plain\"\nkind = \"passthrough\"\nbase_url = \"{root}\"\nlocal_prefix = \"/plain\"\n")
    })
    .await
}

#[tokio::test]
async fn passthrough_resolves_dot_segments_below_its_prefix() {
    let h = passthrough().await;
    let res = h
        .send(
            Method::GET,
            "/plain/x/../com/v4/./jwks?x=1",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let seen = &h.emulator.received()[0];
    assert_eq!(seen.path, "/com/v4/jwks", "forwarded as resolved");
    assert_eq!(seen.query.as_deref(), Some("x=1"));
}

#[tokio::test]
async fn passthrough_refuses_paths_that_leave_the_mount_or_hide_separators() {
    let h = passthrough().await;
    for path in [
        "/plain/x/../../y",
        "/plain/..",
        "/plain/com/v4/%2e%2e/token",
        "/plain/a%2F..%2F..%2Ftoken",
        "/plain/a/%252e%252e/b",
    ] {
        let res = h.send(Method::GET, path, &[], Bytes::new()).await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{path}: {:?}",
            res.body
        );
        let p = res.problem("VALIDATION_INVALID_PARAMETER");
        assert!(
            p["detail"].as_str().unwrap().contains("passthrough path"),
            "{p}"
        );
    }
    assert!(h.emulator.received().is_empty(), "nothing was forwarded");
}
