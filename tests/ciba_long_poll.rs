//! CIBA long polls through the proxy with the shipped timeout defaults, in process (the strict
//! emulator as the upstream service, no socket) on paused tokio time. Singpass holds a pending
//! poll for up to 30 s ("wait for at least 30s for a response") and forbids overlapping polls
//! of one `auth_req_id`: the app must get Singpass's own answer to a held poll, not a proxy
//! timeout, so that an app that polls, waits for the answer, then waits the interval never
//! makes two polls overlap upstream.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use myinfo_proxy::{Config, Proxy};
use singpass_emulator::{Emulator, EmulatorConfig};
use tokio::time::Instant;
use tower::ServiceExt as _;

use common::{ClientKeyFiles, CLIENT_ID};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the in-process emulator serves; nothing listens there.
const ISSUER: &str = "https://ciba.emulator.test";
const SUB: &str = "c1b2a3d4-ciba-user";
/// Singpass's hold, the emulator's default.
const HOLD: Duration = Duration::from_secs(30);

/// Every answer the emulator gave to a token poll: status and body as it sent them.
type Answers = Arc<Mutex<Vec<(StatusCode, Bytes)>>>;

/// The emulator's service, recording what it answers to `/token`.
fn recording_upstream(
    emulator: &Emulator,
    answers: Answers,
) -> impl tower::Service<
    Request<Bytes>,
    Response = Response<Bytes>,
    Error = BoxError,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    let service = emulator.service();
    tower::service_fn(move |request: Request<Bytes>| {
        let service = service.clone();
        let answers = Arc::clone(&answers);
        async move {
            let is_poll = request.uri().path() == "/token";
            let response = service.oneshot(request).await?;
            if is_poll {
                let answer = (response.status(), response.body().clone());
                answers.lock().unwrap().push(answer);
            }
            Ok::<_, BoxError>(response)
        }
    })
}

/// What the app sends: a form POST to the proxy's local path.
async fn app_post(proxy: &Proxy, path: &str, form: &str) -> Response<Bytes> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(form.to_owned()))
        .unwrap();
    proxy.call_buffered(request).await
}

fn json(response: &Response<Bytes>) -> serde_json::Value {
    serde_json::from_slice(response.body()).unwrap_or_else(|error| {
        panic!(
            "{} {:?}: {error}",
            response.status(),
            String::from_utf8_lossy(response.body())
        )
    })
}

#[tokio::test(start_paused = true)]
async fn a_held_poll_reaches_the_app_as_the_emulator_answered_it_and_polls_never_overlap() {
    let keys = ClientKeyFiles::new();
    let emulator =
        Emulator::in_process(EmulatorConfig::new(CLIENT_ID, keys.public_jwks()), ISSUER).unwrap();
    assert_eq!(emulator.ciba_issuer(), ISSUER);
    // The shipped defaults: no timeout (or retry) key anywhere.
    let text = format!(
        "client_id = \"{CLIENT_ID}\"\n[keys]\njwks_file = \"{}\"\n[[upstream]]\nname = \"ciba\"\nkind = \"singpass-ciba\"\nissuer = \"{ISSUER}\"\n",
        keys.private_path().display()
    );
    let config = Config::from_toml(&text, keys.dir.path()).unwrap();
    let answers = Answers::default();
    let proxy = Proxy::builder(&config)
        .upstream(recording_upstream(&emulator, Arc::clone(&answers)))
        .build()
        .unwrap();

    let started = app_post(&proxy, "/ciba/bc-auth", "login_hint=S1234567A&scope=openid").await;
    assert_eq!(started.status(), StatusCode::OK, "{:?}", started.body());
    let started = json(&started);
    let auth_req_id = started["auth_req_id"].as_str().unwrap().to_owned();
    // CIBA Core 7.3: 5 s when the answer names no interval.
    let interval = Duration::from_secs(started["interval"].as_u64().unwrap_or(5));
    let poll_form =
        format!("grant_type=urn:openid:params:grant-type:ciba&auth_req_id={auth_req_id}");

    // The user has not answered: the emulator holds the poll for 30 s, then answers
    // authorization_pending, and the app gets exactly that.
    let polled_at = Instant::now();
    let pending = app_post(&proxy, "/ciba/token", &poll_form).await;
    let waited = polled_at.elapsed();
    assert_eq!(
        pending.status(),
        StatusCode::BAD_REQUEST,
        "a poll the emulator holds for 30 s must reach the app as the emulator's answer, not \
         as the proxy's own {} after {waited:?}: {:?}",
        pending.status(),
        String::from_utf8_lossy(pending.body())
    );
    assert!(waited >= HOLD, "the emulator held it ({waited:?})");
    assert_eq!(json(&pending)["error"], "authorization_pending");
    let first_answer = answers.lock().unwrap().last().cloned();
    assert_eq!(
        first_answer,
        Some((StatusCode::BAD_REQUEST, pending.body().clone())),
        "the emulator's answer, byte for byte"
    );

    // As an app does: the interval after the answer, then the next poll, which the user
    // approves 10 s into its hold.
    tokio::time::sleep(interval).await;
    let polled_at = Instant::now();
    let user = async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        emulator.approve_ciba(&auth_req_id, SUB).unwrap();
    };
    let (approved, ()) = tokio::join!(app_post(&proxy, "/ciba/token", &poll_form), user);
    assert_eq!(
        approved.status(),
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(approved.body())
    );
    assert!(
        polled_at.elapsed() < HOLD,
        "answered when the user approved"
    );
    let tokens = json(&approved);
    assert!(tokens["access_token"].is_string() && tokens["id_token"].is_string());
    let last_answer = answers.lock().unwrap().last().cloned();
    assert_eq!(
        last_answer,
        Some((StatusCode::OK, approved.body().clone())),
        "the emulator's tokens, byte for byte"
    );

    // One upstream poll per app poll, none of them overlapping.
    assert_eq!(answers.lock().unwrap().len(), 2, "{answers:?}");
    assert_eq!(emulator.ciba_overlapping_polls(), 0);
}
