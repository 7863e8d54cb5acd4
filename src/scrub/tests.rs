//! Every form a secret can be echoed in is redacted; ids are bounded; the answer is untouched.

use super::*;

const CODE: &str = "c0de-6f2b1a9e-7d3c-4b5a-8e9f/0a1b+2c3d";
const VERIFIER: &str = "verifier-00000000000000000001-00000000000000000002";
const TOKEN: &str = "opaque-access-token-5d41402abc4b2a76b9719d911017c592";

fn app_request() -> Request<Bytes> {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", CODE)
        .append_pair("code_verifier", VERIFIER)
        .append_pair("redirect_uri", "https://app.example/callback")
        .finish();
    Request::post("/com/v4/token?access_token=query-token-0123456789")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-api-key", "api-key-of-the-app-0123")
        .body(Bytes::from(form))
        .unwrap()
}

fn secrets() -> Secrets {
    Secrets::of([&Sent::capture(&app_request())])
}

#[test]
fn every_form_of_a_secret_is_redacted() {
    let s = secrets();
    let encoded: String = form_urlencoded::byte_serialize(CODE.as_bytes()).collect();
    assert!(encoded.contains("%2F"), "{encoded}");
    let lower = encoded.replace("%2F", "%2f").replace("%2B", "%2b");
    let json = CODE.replace('/', "\\/");
    for text in [
        format!("invalid code {CODE}"),
        format!("code={encoded}&x=1"),
        format!("code={lower}"),
        format!(r#"{{"echo":"{json}"}}"#),
        format!("verifier {VERIFIER} was wrong"),
        format!("token {TOKEN}"),
        format!("Authorization: Bearer {TOKEN}"),
        "query access_token=query-token-0123456789".to_owned(),
        "key api-key-of-the-app-0123".to_owned(),
    ] {
        let scrubbed = s.scrub(&text);
        assert!(scrubbed.contains(REDACTED), "{text} -> {scrubbed}");
        for secret in [
            CODE,
            VERIFIER,
            TOKEN,
            "query-token-0123456789",
            "api-key-of-the-app-0123",
        ] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
        assert!(
            !scrubbed.contains("c0de-6f2b1a9e"),
            "no piece is left: {scrubbed}"
        );
    }
}

#[test]
fn text_without_secrets_is_left_alone() {
    let s = secrets();
    let text =
        "The authorization code is invalid or expired (redirect_uri https://app.example/callback).";
    assert!(matches!(s.scrub(text), Cow::Borrowed(t) if t == text));
}

#[test]
fn short_values_are_not_treated_as_secrets() {
    let mut s = Secrets::default();
    s.add("abc");
    s.add("");
    assert_eq!(s.scrub("abc abc"), "abc abc");
}

#[test]
fn a_secret_containing_another_is_redacted_whole() {
    let mut s = Secrets::default();
    s.add("inner-secret-value");
    s.add("outer-inner-secret-value-outer");
    assert_eq!(
        s.scrub("x outer-inner-secret-value-outer y"),
        format!("x {REDACTED} y")
    );
}

#[test]
fn jose_shaped_runs_are_redacted_even_when_not_captured() {
    let s = Secrets::default();
    let jws = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImRwb3Arand0In0.eyJqdGkiOiIxIn0.c2lnbmF0dXJl";
    assert_eq!(
        s.scrub(&format!("bad proof {jws}, and again:{jws}")),
        format!("bad proof {REDACTED}, and again:{REDACTED}")
    );
    // Cut short by the upstream (no dot left): still redacted.
    assert_eq!(
        s.scrub("assertion eyJhbGciOiJFUzI1NiIsImtpZCI6"),
        format!("assertion {REDACTED}")
    );
    // Ordinary words are not.
    assert_eq!(s.scrub("keyJar eyJ short"), "keyJar eyJ short");
}

#[test]
fn ids_are_bounded_and_checked() {
    let s = secrets();
    for ok in [
        "bcba4bc3",
        "66f4d6c9-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
        "a.b_c:d-e",
    ] {
        assert_eq!(s.safe_id(ok), ok);
    }
    for bad in [
        "",
        "a b",
        "x\u{1b}[31m",
        &"a".repeat(MAX_ID_LEN + 1),
        "<script>",
    ] {
        assert_eq!(s.safe_id(bad), INVALID_ID, "{bad:?}");
    }
    assert_eq!(s.safe_id(&"a".repeat(MAX_ID_LEN)), "a".repeat(MAX_ID_LEN));
    assert_eq!(s.safe_id(VERIFIER), REDACTED);
}

fn answer(status: u16, body: String) -> Response<Bytes> {
    let mut res = Response::new(Bytes::from(body));
    *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
    res
}

#[test]
fn the_logged_fields_are_scrubbed_and_the_answer_is_not() {
    let signed = Request::post("/token")
        .header("dpop", "eyJ0eXAiOiJkcG9wK2p3dCJ9.eyJqdGkiOiJ4In0.c2ln")
        .body(Bytes::from(
            "client_assertion=signed-assertion-value-xyz&code=abc",
        ))
        .unwrap();
    let body = serde_json::json!({
        "id": VERIFIER,
        "trace_id": "t 1",
        "error": format!("invalid_grant {CODE}"),
        "error_description": "assertion signed-assertion-value-xyz and proof eyJ0eXAiOiJkcG9wK2p3dCJ9.eyJqdGkiOiJ4In0.c2ln",
    })
    .to_string();
    let mut res = answer(400, body.clone());
    Sent::capture(&signed).attach_to_error(&mut res);
    let attempt = res.extensions_mut().remove::<Sent>();
    assert!(
        attempt.is_some(),
        "the inject layer's capture rides on the error answer"
    );
    let logged = loggable_error_body(&res, &Sent::capture(&app_request()), attempt.as_ref());
    assert_eq!(logged.id.as_deref(), Some(REDACTED));
    assert_eq!(logged.trace_id.as_deref(), Some(INVALID_ID));
    assert_eq!(logged.error.as_deref(), Some("invalid_grant [redacted]"));
    assert_eq!(
        logged.error_description.as_deref(),
        Some("assertion [redacted] and proof [redacted]")
    );
    assert_eq!(res.body(), &Bytes::from(body), "the answer is unchanged");
}

#[test]
fn a_non_json_echo_becomes_a_scrubbed_excerpt() {
    let res = answer(502, format!("<html>bad gateway for code={CODE}</html>"));
    let logged = loggable_error_body(&res, &Sent::capture(&app_request()), None);
    let excerpt = logged.excerpt.unwrap();
    assert_eq!(excerpt, "<html>bad gateway for code=[redacted]</html>");
}

#[test]
fn only_error_answers_carry_the_attempts_secrets_and_nothing_prints_them() {
    let sent = Sent::capture(&app_request());
    let mut ok = answer(200, String::new());
    sent.clone().attach_to_error(&mut ok);
    assert!(ok.extensions().get::<Sent>().is_none());
    let mut err = answer(401, String::new());
    sent.clone().attach_to_error(&mut err);
    assert!(err.extensions().get::<Sent>().is_some());
    let printed = format!("{sent:?} {:?}", secrets());
    assert!(
        !printed.contains(TOKEN) && !printed.contains(VERIFIER),
        "{printed}"
    );
}
