//! Config parsing and validation, from strings.

use crate::config::*;
use std::path::Path;

const MINIMAL: &str = r#"
client_id = "STG-123"
[keys]
jwks_file = "keys/private-jwks.json"
[[upstream]]
kind = "myinfo-v4"
base_url = "https://test.api.myinfo.gov.sg/com/v4"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/etc/myinfo-proxy"))
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.max_request_body, 65536);
    assert_eq!(
        c.keys,
        KeySource::JwksFile("/etc/myinfo-proxy/keys/private-jwks.json".into())
    );
    let up = &c.upstreams[0];
    assert_eq!(
        up.local_prefix, "/com/v4",
        "the local path defaults to the upstream's path"
    );
    assert_eq!(up.base_url, "https://test.api.myinfo.gov.sg/com/v4");
    assert_eq!(c.timeouts.attempt, std::time::Duration::from_secs(10));
    assert!(c.warnings.is_empty());
}

#[test]
fn the_shipped_config_is_valid() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
    let c = parse(&text).unwrap();
    assert!(c
        .upstreams
        .iter()
        .any(|u| u.base_url == "https://test.api.myinfo.gov.sg/com/v4"));
}

#[test]
fn unknown_key_is_named() {
    let err = parse(&MINIMAL.replace("[keys]", "[keys]\njwks_fiel = \"x\"")).unwrap_err();
    assert_eq!(err.key, "keys.jwks_fiel");
    assert!(err.problem.contains("unknown field"), "{err}");
}

#[test]
fn unknown_upstream_kind_is_named() {
    let err = parse(&MINIMAL.replace("myinfo-v4", "myinfo-v9")).unwrap_err();
    assert_eq!(err.key, "upstream[0].kind");
}

#[test]
fn missing_client_id_and_keys_are_named() {
    let err = parse(&MINIMAL.replace("client_id = \"STG-123\"", "")).unwrap_err();
    assert_eq!(err.key, "client_id");
    let err = parse(&MINIMAL.replace("jwks_file = \"keys/private-jwks.json\"", "")).unwrap_err();
    assert_eq!(err.key, "keys");
    assert!(err.fix.contains("keygen"));
    let both = MINIMAL.replace("[keys]", "[keys]\njwks_env = \"JWKS\"");
    assert_eq!(
        parse(&both).unwrap_err().problem,
        "more than one key source is configured"
    );
}

#[test]
fn env_key_source_must_name_a_variable_not_hold_a_key() {
    let text = MINIMAL.replace(
        "jwks_file = \"keys/private-jwks.json\"",
        "jwks_env = '{\"keys\":[]}'",
    );
    let err = parse(&text).unwrap_err();
    assert_eq!(err.key, "keys.jwks_env");
    let ok = MINIMAL.replace(
        "jwks_file = \"keys/private-jwks.json\"",
        "jwks_env = \"MYINFO_JWKS\"",
    );
    assert_eq!(
        parse(&ok).unwrap().keys,
        KeySource::JwksEnv("MYINFO_JWKS".into())
    );
}

#[test]
fn pem_sources_need_kids() {
    let text = MINIMAL.replace(
        "jwks_file = \"keys/private-jwks.json\"",
        "sig_pem_file = \"sig.pem\"\nenc_pem_env = \"ENC_PEM\"\nsig_kid = \"s1\"",
    );
    assert_eq!(parse(&text).unwrap_err().key, "keys.enc_kid");
    let text = text.replace("sig_kid = \"s1\"", "sig_kid = \"s1\"\nenc_kid = \"e1\"");
    match parse(&text).unwrap().keys {
        KeySource::Pem {
            sig,
            enc,
            sig_kid,
            enc_kid,
        } => {
            assert_eq!(sig, PemSource::File("/etc/myinfo-proxy/sig.pem".into()));
            assert_eq!(enc, PemSource::Env("ENC_PEM".into()));
            assert_eq!((sig_kid.as_str(), enc_kid.as_str()), ("s1", "e1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_values_are_named_with_a_fix() {
    let cases = [
        (
            "client_id = \"STG-123\"",
            "client_id = \"STG-123\"\nlisten = \"localhost\"",
            "listen",
        ),
        (
            "client_id = \"STG-123\"",
            "client_id = \"STG-123\"\nmax_request_body = 0",
            "max_request_body",
        ),
        (
            "https://test.api.myinfo.gov.sg/com/v4",
            "ftp://x/y",
            "upstream[0].base_url",
        ),
        (
            "https://test.api.myinfo.gov.sg/com/v4",
            "not a url",
            "upstream[0].base_url",
        ),
        (
            "https://test.api.myinfo.gov.sg/com/v4",
            "https://h/p?q=1",
            "upstream[0].base_url",
        ),
        (
            "kind = \"myinfo-v4\"",
            "kind = \"myinfo-v4\"\nlocal_prefix = \"com\"",
            "upstream[0].local_prefix",
        ),
        (
            "[[upstream]]",
            "[timeouts]\nattempt = \"20s\"\noverall = \"5s\"\n[[upstream]]",
            "timeouts.overall",
        ),
        (
            "[[upstream]]",
            "[timeouts]\nconnect = \"soon\"\n[[upstream]]",
            "timeouts.connect",
        ),
    ];
    for (from, to, key) in cases {
        let err = parse(&MINIMAL.replace(from, to)).unwrap_err();
        assert_eq!(err.key, key, "{to}: {err}");
        assert!(!err.fix.is_empty());
    }
}

#[test]
fn duplicate_prefixes_are_refused() {
    let text = format!("{MINIMAL}\n[[upstream]]\nname = \"b\"\nkind = \"myinfo-v4\"\nbase_url = \"https://api.myinfo.gov.sg/com/v4\"\n");
    assert_eq!(parse(&text).unwrap_err().key, "upstream[1].local_prefix");
}

#[test]
fn plain_http_warns_unless_loopback() {
    let local =
        parse(&MINIMAL.replace("https://test.api.myinfo.gov.sg", "http://127.0.0.1:9000")).unwrap();
    assert!(local.warnings.is_empty());
    let remote =
        parse(&MINIMAL.replace("https://test.api.myinfo.gov.sg", "http://myinfo.internal"))
            .unwrap();
    assert_eq!(remote.warnings.len(), 1);
    assert!(remote.warnings[0].contains("plain http"));
}

#[test]
fn retry_and_rate_limit_defaults_and_per_route_overrides() {
    let text = format!(
        "{MINIMAL}\n[upstream.routes.person.retry]\nmax_retries = 0\n[upstream.routes.token.rate_limit]\nper_second = 5\n"
    )
    .replace("[keys]", "[retry]\nbase_delay = \"50ms\"\n[rate_limit]\nburst = 7\n[keys]");
    let c = parse(&text).unwrap();
    let up = &c.upstreams[0];
    let (token, person) = (
        &up.routes[&RouteKind::V4Token],
        &up.routes[&RouteKind::V4Person],
    );
    assert_eq!(token.retry.max_retries, 3);
    assert_eq!(person.retry.max_retries, 0);
    assert_eq!(
        person.retry.base_delay,
        std::time::Duration::from_millis(50),
        "file default applies"
    );
    assert_eq!(
        token.rate_limit.quota,
        Some(Quota {
            per_second: 5.0,
            burst: 7
        }),
        "merged field by field"
    );
    assert_eq!(
        person.rate_limit.quota,
        Some(Quota {
            per_second: 20.0,
            burst: 7
        })
    );
    assert_eq!(c.global_rate_limit, None);
}

#[test]
fn unknown_route_and_bad_policy_values_are_named() {
    let err = parse(&format!(
        "{MINIMAL}\n[upstream.routes.tokn.retry]\nmax_retries = 1\n"
    ))
    .unwrap_err();
    assert_eq!(err.key, "upstream[0].routes.tokn");
    assert!(err.fix.contains("token, person"));
    let err = parse(&format!(
        "{MINIMAL}\n[upstream.routes.token.rate_limit]\nburst = 0\n"
    ))
    .unwrap_err();
    assert_eq!(err.key, "upstream[0].routes.token.rate_limit.burst");
    let err = parse(&MINIMAL.replace("[keys]", "[retry]\nmax_retries = 50\n[keys]")).unwrap_err();
    assert_eq!(err.key, "retry.max_retries");
    let err = parse(&MINIMAL.replace(
        "[keys]",
        "[rate_limit.global]\nper_second = -1\nburst = 1\n[keys]",
    ))
    .unwrap_err();
    assert_eq!(err.key, "rate_limit.global.per_second");
    let off = parse(&MINIMAL.replace("[keys]", "[rate_limit]\nenabled = false\n[keys]")).unwrap();
    assert_eq!(
        off.upstreams[0].routes[&RouteKind::V4Token]
            .rate_limit
            .quota,
        None
    );
}

#[test]
fn off_loopback_the_listener_needs_inbound_authentication() {
    let open = MINIMAL.replace("client_id", "listen = \"0.0.0.0:8080\"\nclient_id");
    let err = parse(&open).unwrap_err();
    assert_eq!(err.key, "inbound");
    assert!(err.fix.contains("api_key_sha256") && err.fix.contains("client_ca_file"));

    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let keyed = open.replace(
        "[keys]",
        &format!("[inbound]\napi_key_sha256 = [\"{hash}\"]\n[keys]"),
    );
    let c = parse(&keyed).unwrap();
    assert_eq!(c.inbound.api_key_sha256.len(), 1);
    assert!(c.warnings.is_empty());

    let plain_key = open.replace(
        "[keys]",
        "[inbound]\napi_key_sha256 = [\"my-secret-key\"]\n[keys]",
    );
    assert_eq!(
        parse(&plain_key).unwrap_err().key,
        "inbound.api_key_sha256[0]"
    );

    let allowed = open.replace("[keys]", "[inbound]\nallow_unauthenticated = true\n[keys]");
    let c = parse(&allowed).unwrap();
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("allow_unauthenticated")));

    let tls_only = open.replace(
        "[keys]",
        "[inbound]\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n[keys]",
    );
    assert_eq!(
        parse(&tls_only).unwrap_err().key,
        "inbound",
        "TLS without client certificates authenticates nobody"
    );
    let mtls = tls_only.replace("tls_key_file", "client_ca_file = \"ca.pem\"\ntls_key_file");
    assert!(parse(&mtls)
        .unwrap()
        .inbound
        .tls
        .unwrap()
        .client_ca_file
        .is_some());
    // Loopback needs nothing.
    assert!(parse(MINIMAL).unwrap().inbound.api_key_sha256.is_empty());
}
