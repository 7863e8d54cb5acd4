//! Config that cannot work is refused at start-up, naming the key and the fix (exit 64):
//! absurd durations, the hash of an empty API key, deadlines that contradict each other.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_myinfo-proxy");
const SHIPPED: &str = include_str!("../config.toml");
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn check_config(dir: &Path, text: &str) -> (i32, String) {
    std::fs::write(dir.join("config.toml"), text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", "config.toml"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with_keys() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(BIN)
        .args(["keygen", "--out", "keys"])
        .current_dir(dir.path())
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    dir
}

#[test]
fn check_config_refuses_absurd_values_naming_the_key() {
    let dir = with_keys();
    let shipped = SHIPPED.replace("STG-REPLACE-WITH-YOUR-CLIENT-ID", "STG-123");
    let (code, err) = check_config(dir.path(), &shipped);
    assert_eq!(code, 0, "the shipped config passes: {err}");
    let huge = "\"300000000000y\"";
    let cases: &[(&str, String, &str)] = &[
        (
            "connect = \"3s\"",
            format!("connect = {huge}"),
            "timeouts.connect",
        ),
        (
            "attempt = \"10s\"",
            "attempt = \"11m\"".into(),
            "timeouts.attempt",
        ),
        (
            "overall = \"30s\"",
            format!("overall = {huge}"),
            "timeouts.overall",
        ),
        (
            "login_ttl = \"10m\"",
            format!("login_ttl = {huge}"),
            "upstream[1].login_ttl",
        ),
        (
            "token_ttl_cap = \"30m\"",
            "token_ttl_cap = \"2days\"".into(),
            "upstream[0].token_ttl_cap",
        ),
        (
            "discovery_refresh = \"1h\"",
            format!("discovery_refresh = {huge}"),
            "upstream[1].discovery_refresh",
        ),
        (
            "max_wait = \"250ms\"",
            "max_wait = \"31s\"".into(),
            "rate_limit.max_wait",
        ),
        (
            "max_wait = \"250ms\"",
            format!("max_wait = {huge}"),
            "rate_limit.max_wait",
        ),
        (
            "max_delay = \"2s\"",
            format!("max_delay = {huge}"),
            "retry.max_delay",
        ),
        (
            "retry_after_cap = \"5s\"",
            "retry_after_cap = \"1y\"".into(),
            "retry.retry_after_cap",
        ),
        (
            "drain_timeout = \"20s\"",
            format!("drain_timeout = {huge}"),
            "drain_timeout",
        ),
        (
            "reload_interval = \"10s\"",
            "reload_interval = \"2days\"".into(),
            "keys.reload_interval",
        ),
        (
            "assertion_lifetime = \"60s\"",
            "assertion_lifetime = \"121s\"".into(),
            "assertion_lifetime",
        ),
        (
            "max_connections = 4096",
            "max_connections = 0".into(),
            "listener.main.max_connections",
        ),
        (
            "header_read_timeout = \"10s\"",
            format!("header_read_timeout = {huge}"),
            "listener.main.header_read_timeout",
        ),
        (
            "idle_timeout = \"60s\"\nmax_connections = 64",
            "idle_timeout = \"2h\"\nmax_connections = 64".into(),
            "listener.admin.idle_timeout",
        ),
        (
            "max_request_body = 65536",
            "max_request_body = 1000000000".into(),
            "max_request_body",
        ),
        (
            "api_key_sha256 = []",
            format!("api_key_sha256 = [\"{EMPTY_SHA256}\"]"),
            "inbound.api_key_sha256[0]",
        ),
        (
            "token_ttl_cap = \"30m\"         # longest",
            "token_ttl_cap = \"30m\"\n[upstream.routes.person.timeouts]\nattempt = \"40s\"\n#"
                .into(),
            "upstream[0].routes.person.timeouts.attempt",
        ),
    ];
    for (from, to, key) in cases {
        assert!(shipped.contains(from), "{from}");
        let (code, err) = check_config(dir.path(), &shipped.replacen(from, to, 1));
        assert_eq!(code, 64, "{to}: {err}");
        assert!(
            err.contains(&format!("config key `{key}`")) && err.contains("fix:"),
            "{to}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

fn parse(text: &str) -> Result<myinfo_proxy::Config, myinfo_proxy::config::ConfigError> {
    myinfo_proxy::Config::from_toml(text, Path::new("/etc/myinfo-proxy"))
}

const CIBA: &str = "client_id = \"STG-1\"\n[keys]\njwks_file = \"k.json\"\n[[upstream]]\nkind = \"singpass-ciba\"\nissuer = \"https://stg-id.singpass.gov.sg\"\n";

#[test]
fn route_timeouts_default_to_the_global_ones_and_the_ciba_poll_outlasts_singpass_hold() {
    let c = parse(CIBA).unwrap();
    let up = &c.upstreams[0];
    let poll = up.routes[&myinfo_proxy::config::RouteKind::CibaToken].timeouts;
    assert!(poll.attempt >= Duration::from_secs(35), "{poll:?}");
    assert!(poll.overall > poll.attempt, "{poll:?}");
    assert_eq!(
        up.routes[&myinfo_proxy::config::RouteKind::CibaAuth]
            .timeouts
            .attempt,
        c.timeouts.attempt
    );
    assert_eq!(
        up.routes[&myinfo_proxy::config::RouteKind::CibaAuth]
            .timeouts
            .overall,
        c.timeouts.overall
    );

    // Longer global timeouts lift the poll's too; its own table wins.
    let long = parse(&CIBA.replace(
        "[keys]",
        "[timeouts]\nattempt = \"50s\"\noverall = \"55s\"\n[keys]",
    ))
    .unwrap();
    let poll = long.upstreams[0].routes[&myinfo_proxy::config::RouteKind::CibaToken].timeouts;
    assert_eq!(poll.attempt, Duration::from_secs(50));
    assert_eq!(poll.overall, Duration::from_secs(60));
    let own = parse(&format!(
        "{CIBA}[upstream.routes.token.timeouts]\nattempt = \"5s\"\noverall = \"6s\"\n"
    ))
    .unwrap();
    let poll = own.upstreams[0].routes[&myinfo_proxy::config::RouteKind::CibaToken].timeouts;
    assert_eq!(
        (poll.attempt, poll.overall),
        (Duration::from_secs(5), Duration::from_secs(6))
    );

    let err = parse(&format!(
        "{CIBA}[upstream.routes.auth.timeouts]\noverall = \"5s\"\n"
    ))
    .unwrap_err();
    assert_eq!(err.key, "upstream[0].routes.auth.timeouts.overall", "{err}");
    let err = parse(&format!(
        "{CIBA}[upstream.routes.auth.timeouts]\nconnect = \"5s\"\n"
    ))
    .unwrap_err();
    assert_eq!(err.key, "upstream[0].routes.auth.timeouts.connect", "{err}");
    // A route's max_wait may not outlast its overall deadline.
    let err = parse(&format!("{CIBA}[upstream.routes.auth.timeouts]\nattempt = \"1s\"\noverall = \"2s\"\n[upstream.routes.auth.rate_limit]\nmax_wait = \"3s\"\n")).unwrap_err();
    assert_eq!(
        err.key, "upstream[0].routes.auth.rate_limit.max_wait",
        "{err}"
    );
}

#[test]
fn defaults_leave_room_for_clock_skew_and_limit_both_listeners() {
    let c = parse(CIBA).unwrap();
    assert_eq!(c.assertion_lifetime, Duration::from_secs(60));
    let (main, admin) = (c.listeners.main, c.listeners.admin);
    assert_eq!(main.header_read_timeout, Duration::from_secs(10));
    assert_eq!(main.body_timeout, Duration::from_secs(15));
    assert_eq!(main.idle_timeout, Duration::from_secs(60));
    assert_eq!((main.max_connections, admin.max_connections), (4096, 64));
    let set = parse(&CIBA.replace(
        "[keys]",
        "[listener.admin]\nmax_connections = 8\nbody_timeout = \"1s\"\n[keys]",
    ))
    .unwrap();
    assert_eq!(set.listeners.admin.max_connections, 8);
    assert_eq!(set.listeners.admin.body_timeout, Duration::from_secs(1));
    assert_eq!(set.listeners.main, main);
}
