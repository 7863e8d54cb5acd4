//! Three proxy replicas, one Redis, one strict emulator, and an app whose every request of a
//! flow goes to the next replica in turn: key bindings made at one replica work at the others,
//! a v4 token sent to two replicas at once reaches Singpass once, and after all the flows Redis
//! holds nothing readable.

mod common;

use common::replicas::*;
use common::*;
use http::StatusCode;
use singpass_emulator::EmulatorRoute;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_and_fapi_flows_spread_over_three_replicas_all_succeed() {
    let r = Replicas::start(3).await;
    let mut tokens = Vec::new();
    for i in 0..300 {
        let token = r.v4_token(i).await;
        let person = r.bearer(i + 1, &person_path(), &token).await;
        assert_eq!(person.status, StatusCode::OK, "flow {i}: {:?}", person.body);
        tokens.push(token);
    }
    let mut secrets = Vec::new();
    for i in 0..100 {
        let (verifier, challenge) = pkce();
        let par = r.form(i, "/fapi/par", par_form(&challenge)).await;
        assert_eq!(par.status, StatusCode::CREATED, "login {i}: {:?}", par.body);
        let request_uri = par.json()["request_uri"].as_str().unwrap().to_owned();
        let code = r.emulator.authorize_par(&request_uri, FAPI_SUB).unwrap();
        let token = r
            .form(i + 1, "/fapi/token", fapi_token_form(&code, &verifier))
            .await;
        assert_eq!(token.status, StatusCode::OK, "login {i}: {:?}", token.body);
        let access = token.json()["access_token"].as_str().unwrap().to_owned();
        for hop in [2, 3] {
            let info = r.bearer(i + hop, "/fapi/userinfo", &access).await;
            assert_eq!(info.status, StatusCode::OK, "login {i}: {:?}", info.body);
        }
        secrets.extend([verifier, challenge, code, access]);
    }
    assert_eq!(r.accepted(EmulatorRoute::Person), 300);
    assert_eq!(r.accepted(EmulatorRoute::Userinfo), 200);
    // Nothing readable in Redis: no token, code, verifier or challenge in any key or value.
    secrets.extend(tokens);
    let dump = r.redis.dump();
    assert!(!dump.is_empty());
    for secret in &secrets {
        for (name, value) in &dump {
            let (name, value) = (
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value),
            );
            assert!(
                !name.contains(secret.as_str()) && !value.contains(secret.as_str()),
                "a secret in Redis"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_v4_token_sent_to_two_replicas_at_once_reaches_singpass_once() {
    let r = std::sync::Arc::new(Replicas::start(3).await);
    let (mut ok, mut reused) = (0, 0);
    for i in 0..200 {
        let token = r.v4_token(i).await;
        let calls = [i + 1, i + 2].map(|replica| {
            let (r, token) = (r.clone(), token.clone());
            tokio::spawn(async move { r.bearer(replica, &person_path(), &token).await })
        });
        for call in calls {
            let answer = call.await.unwrap();
            match answer.status {
                StatusCode::OK => ok += 1,
                StatusCode::UNAUTHORIZED => {
                    answer.problem("AUTH_TOKEN_REUSED");
                    reused += 1;
                }
                other => panic!("pair {i}: {other} {:?}", answer.body),
            }
        }
    }
    assert_eq!((ok, reused), (200, 200));
    assert_eq!(
        r.accepted(EmulatorRoute::Person),
        200,
        "each token reached the emulator once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_nonce_learned_at_one_replica_is_in_the_first_proof_of_the_others() {
    let r = Replicas::start(3).await;
    r.emulator.require_dpop_nonce(true);
    // Replica 0 learns the nonce: its PAR is refused once (use_dpop_nonce) and repeated.
    let (verifier, challenge) = pkce();
    let par = r.form(0, "/fapi/par", par_form(&challenge)).await;
    assert_eq!(par.status, StatusCode::CREATED, "{:?}", par.body);
    let request_uri = par.json()["request_uri"].as_str().unwrap().to_owned();
    let code = r.emulator.authorize_par(&request_uri, FAPI_SUB).unwrap();
    // Replicas 1 and 2 have never called Singpass: their first proofs carry that nonce.
    let token = r
        .form(1, "/fapi/token", fapi_token_form(&code, &verifier))
        .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    let access = token.json()["access_token"].as_str().unwrap().to_owned();
    let info = r.bearer(2, "/fapi/userinfo", &access).await;
    assert_eq!(info.status, StatusCode::OK, "{:?}", info.body);
    let received = r.emulator.received();
    let attempts = |route| received.iter().filter(|x| x.route == Some(route)).count();
    assert_eq!(
        (
            attempts(EmulatorRoute::Par),
            attempts(EmulatorRoute::FapiToken),
            attempts(EmulatorRoute::Userinfo)
        ),
        (2, 1, 1),
        "only replica 0's first PAR lacked the nonce"
    );
    let refused: Vec<_> = received.iter().filter(|x| x.status >= 400).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].route, Some(EmulatorRoute::Par));
}
