//! Redis killed under three real proxies, then restarted empty on the same port: while it is
//! down every call that needs it is answered 503 at once; once it is back, the tokens and
//! logins it held are answered as unknown with a detail that says Redis lost them, and new
//! logins work without restarting any proxy.

mod common;

use common::replicas::*;
use common::*;
use http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_loses_its_bindings_with_a_clear_answer() {
    let mut r = Replicas::start_with(3, "timeout = \"200ms\"", "").await;
    let (t1, t2) = (r.v4_token(0).await, r.v4_token(1).await);
    let (verifier, challenge) = pkce();
    let par = r.form(2, "/fapi/par", par_form(&challenge)).await;
    assert_eq!(par.status, StatusCode::CREATED, "{:?}", par.body);
    let request_uri = par.json()["request_uri"].as_str().unwrap().to_owned();
    let code = r.emulator.authorize_par(&request_uri, FAPI_SUB).unwrap();

    r.redis.kill();
    // Down: answered at once with the documented 503, never a hang.
    let down = r.bearer(1, &person_path(), &t1).await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        down.body
    );
    down.problem("SYSTEM_SHARED_STATE_UNAVAILABLE");
    assert_eq!(down.headers["retry-after"], "1");

    r.redis.restart_empty();
    // Back, empty: the tokens and the login it held are unknown, and the detail says why.
    let person = person_path();
    for (replica, token) in [(2, &t1), (0, &t2)] {
        let answer = honouring_retry_after(|| r.bearer(replica, &person, token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", answer.body);
        let p = answer.problem("AUTH_TOKEN_UNKNOWN");
        assert!(
            p["detail"].as_str().unwrap().contains("restarted empty"),
            "{p}"
        );
    }
    let form = fapi_token_form(&code, &verifier);
    let token = honouring_retry_after(|| r.form(0, "/fapi/token", form.clone())).await;
    assert_eq!(token.status, StatusCode::BAD_REQUEST, "{:?}", token.body);
    let p = token.problem("AUTH_LOGIN_UNKNOWN");
    assert!(
        p["detail"].as_str().unwrap().contains("restarted empty"),
        "{p}"
    );

    // New logins work at every replica without a restart.
    for i in 0..3 {
        let token = r.v4_token(i).await;
        let person = r.bearer(i + 1, &person_path(), &token).await;
        assert_eq!(person.status, StatusCode::OK, "{:?}", person.body);
    }
    let (verifier, challenge) = pkce();
    let par = r.form(1, "/fapi/par", par_form(&challenge)).await;
    assert_eq!(par.status, StatusCode::CREATED, "{:?}", par.body);
    let request_uri = par.json()["request_uri"].as_str().unwrap().to_owned();
    let code = r.emulator.authorize_par(&request_uri, FAPI_SUB).unwrap();
    let token = r
        .form(2, "/fapi/token", fapi_token_form(&code, &verifier))
        .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
}
