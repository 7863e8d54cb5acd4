//! The `myinfo-proxy` binary as a user runs it: keygen, check-config, jwks, serve; demo and
//! emulator with the default `demo` feature, and their refusal in a build without it.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_myinfo-proxy");

fn run(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn shipped_config_with(dir: &Path, from: &str, to: &str) {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
    std::fs::write(dir.join("config.toml"), text.replace(from, to)).unwrap();
}

#[test]
fn keygen_then_check_config_succeeds_and_prints_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(&["keygen", "--out", "keys"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    let private: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("keys/private-jwks.json")).unwrap())
            .unwrap();
    let public: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("keys/public-jwks.json")).unwrap())
            .unwrap();
    let (pk, pub_keys) = (
        private["keys"].as_array().unwrap(),
        public["keys"].as_array().unwrap(),
    );
    assert_eq!(pk.len(), 2);
    assert!(pk.iter().all(|k| k["d"].is_string() && k["crv"] == "P-256"));
    assert_ne!(pk[0]["kid"], pk[1]["kid"]);
    assert!(pub_keys.iter().all(|k| k.get("d").is_none()));
    let uses: Vec<_> = pub_keys
        .iter()
        .map(|k| (k["use"].as_str().unwrap(), k["alg"].as_str().unwrap()))
        .collect();
    assert_eq!(uses, [("sig", "ES256"), ("enc", "ECDH-ES+A256KW")]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("keys/private-jwks.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private JWKS readable by others");
    }
    // Refuses to overwrite.
    assert_ne!(run(&["keygen", "--out", "keys"], dir.path()).0, 0);

    shipped_config_with(dir.path(), "STG-REPLACE-WITH-YOUR-CLIENT-ID", "STG-123");
    let (code, out, err) = run(&["check-config"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(pk[0]["kid"].as_str().unwrap()), "{out}");
    for k in pk {
        assert!(
            !out.contains(k["d"].as_str().unwrap()),
            "private key printed"
        );
    }

    let (code, out, _) = run(&["jwks"], dir.path());
    assert_eq!(code, 0);
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed, public);
}

#[test]
fn bad_config_exits_64_naming_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    run(&["keygen", "--out", "keys"], dir.path());
    shipped_config_with(dir.path(), "connect = \"3s\"", "connect = \"3 parsecs\"");
    let (code, _, err) = run(&["check-config"], dir.path());
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("timeouts.connect") && err.contains("fix:"),
        "{err}"
    );

    shipped_config_with(
        dir.path(),
        "jwks_file = \"keys/private-jwks.json\"",
        "jwks_file = \"keys/missing.json\"",
    );
    let (code, _, err) = run(&["check-config"], dir.path());
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("keys.jwks_file") && err.contains("missing.json") && err.contains("keygen"),
        "{err}"
    );

    // A key file that is the PUBLIC set: refused with the reason.
    shipped_config_with(
        dir.path(),
        "keys/private-jwks.json",
        "keys/public-jwks.json",
    );
    let (code, _, err) = run(&["serve"], dir.path());
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("no private member"), "{err}");
}

/// The binary, run with `serve` against the emulator, completes token then person and refuses a
/// second use of the token without calling upstream.
#[tokio::test]
async fn serve_runs_the_v4_flow_against_the_emulator() {
    let keys = ClientKeyFiles::new();
    let emulator = keys.emulator().await;
    let config = keys.dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nclient_id = \"{CLIENT_ID}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[keys]\njwks_file = \"private-jwks.json\"\n[[upstream]]\nkind = \"myinfo-v4\"\nbase_url = \"{}\"\n",
            emulator.base_url()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("MYINFO_PROXY_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The proxy logs the address it bound; read its log until that line.
    let stderr = child.stderr.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                serde_json::from_str::<serde_json::Value>(&l).ok()?["fields"]["listen"]
                    .as_str()
                    .map(str::to_owned)
            })
            .expect("the proxy never logged its address");
        std::thread::spawn(move || lines.for_each(drop));
        addr
    })
    .await
    .unwrap();

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let (verifier, challenge) = pkce();
    let code = emulator.mint_code("u-1", "name", &challenge, REDIRECT);
    let req = http::Request::post(format!("http://{addr}/com/v4/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(token_form(&code, &verifier).into())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let token = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for expected in [200, 401] {
        let req = http::Request::get(format!("http://{addr}/com/v4/person/u-1?scope=name"))
            .header("authorization", format!("Bearer {token}"))
            .body(Default::default())
            .unwrap();
        assert_eq!(client.request(req).await.unwrap().status(), expected);
    }
    let seen = emulator.received();
    assert_eq!(
        seen.len(),
        2,
        "the refused second use must not reach upstream"
    );
    assert!(seen
        .iter()
        .all(|r| r.status == 200 && r.rejection.is_none()));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The README's "run it" command: the demo completes both flows with every proof accepted.
#[cfg(feature = "demo")]
#[test]
fn the_demo_runs_both_flows_with_every_proof_accepted() {
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let account: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.starts_with("Try it yourself"))
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    let text = account.join("\n");
    assert!(text.contains("Singpass FAPI 2.0"), "{text}");
    assert!(!text.contains("REJECTED"), "{text}");
    assert!(
        text.contains("503 (scripted: status 503"),
        "the injected 503 is not in the account: {text}"
    );
    assert!(text.contains("AUTH_TOKEN_REUSED"));
    assert!(text.contains("RESOURCE_RATE_LIMITED"));
    assert!(text.contains("decrypted and verified the id_token"));
    let accepted = text.matches("-> accepted").count();
    assert!(accepted >= 6, "{accepted} accepted upstream calls: {text}");
    let retries = text
        .lines()
        .find(|l| l.contains("myinfo_proxy_retries_total"))
        .unwrap();
    assert!(!retries.trim_end().ends_with(" 0"), "{retries}");
}

/// The standalone emulator refuses a private JWKS (the usual mix-up with keygen's two files).
#[cfg(feature = "demo")]
#[test]
fn the_emulator_command_refuses_a_private_jwks() {
    let dir = tempfile::tempdir().unwrap();
    run(&["keygen", "--out", "keys"], dir.path());
    let (code, _, err) = run(
        &[
            "emulator",
            "--client-id",
            "X",
            "--client-jwks",
            "keys/private-jwks.json",
        ],
        dir.path(),
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("give the emulator the PUBLIC JWKS"), "{err}");
}

/// A build without the `demo` feature (the production image) answers `demo` and `emulator`
/// with the reason and the way to get them, not with clap's bare "unrecognized subcommand".
#[cfg(not(feature = "demo"))]
#[test]
fn without_the_demo_feature_demo_and_emulator_say_why() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["demo"][..],
        &["emulator", "--client-id", "X"],
        &["demo", "--help"],
    ] {
        let (code, out, err) = run(args, dir.path());
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains("built without the `demo` feature")
                && err.contains("cargo run --release -- demo"),
            "{args:?}: {err}"
        );
    }
    let (_, help, _) = run(&["--help"], dir.path());
    assert!(!help.contains("demo"), "{help}");
}
