//! A fuzz of 1,000 configs: the shipped config (plus a CIBA and a passthrough upstream),
//! mutated deterministically with a seeded RNG (huge, negative and zero durations, empty
//! strings, wrong types, unknown keys, odd URLs, removed keys, per-route tables). Every one is
//! either accepted or refused with the key named, never a panic; every accepted one builds a
//! proxy that answers one request on each route without panicking; and a sample goes through
//! the real binary's `check-config`, which exits 0 or 64.

use bytes::Bytes;
use http::{Request, Response};
use myinfo_proxy::error::BoxError;
use myinfo_proxy::{Config, Proxy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use toml::Value;

const CONFIGS: usize = 1000;
/// Every this many configs also go through the binary (a process each).
const BINARY_EVERY: usize = 25;
const SEED: u64 = 0x5eed_c0f1;

fn base_config() -> Value {
    let shipped = include_str!("../config.toml")
        .replace("STG-REPLACE-WITH-YOUR-CLIENT-ID", "STG-FUZZ")
        .replace("keys/private-jwks.json", "private-jwks.json");
    let extra = "\n[[upstream]]\nname = \"ciba\"\nkind = \"singpass-ciba\"\nissuer = \"https://ciba.example\"\n[[upstream]]\nname = \"pass\"\nkind = \"passthrough\"\nbase_url = \"https://pass.example/api\"\nlocal_prefix = \"/pass\"\n";
    toml::from_str(&format!("{shipped}{extra}")).unwrap()
}

/// The values a mutation writes: what a hurried operator or a broken template produces.
fn odd_value(rng: &mut StdRng) -> Value {
    let strings = [
        "300000000000y",
        "18446744073709551615s",
        "-5s",
        "0s",
        "0ns",
        "1ns",
        "",
        " ",
        "59m",
        "11m",
        "2h",
        "25h",
        "35s",
        "121s",
        "http://",
        "https://h/p?q=1",
        "https://h/p#f",
        "ftp://x/y",
        "http://[::1",
        "https://a b/c",
        "https://127.0.0.1:1/x",
        "/relative",
        "not a url",
        "0.0.0.0:0",
        "[::1]:0",
        "999.1.1.1:80",
        "json",
        "both",
        "system",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "\u{0}\u{7f}",
    ];
    match rng.gen_range(0..12) {
        0..=4 => Value::String(strings[rng.gen_range(0..strings.len())].to_owned()),
        5 => Value::String("x".repeat(rng.gen_range(1000..20000))),
        6 => Value::Integer(
            [0, -1, 1, 7, 64, 65536, 1 << 40, i64::MAX, i64::MIN][rng.gen_range(0..9)],
        ),
        7 => Value::Float(
            [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-9, 1e300, 0.5][rng.gen_range(0..7)],
        ),
        8 => Value::Boolean(rng.gen()),
        9 => Value::Array(vec![]),
        10 => Value::Array(vec![Value::String(
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
        )]),
        _ => Value::Table(Default::default()),
    }
}

/// A value of the same type as `old`: plausible enough to pass the parser, often not the checks.
fn same_type(old: &Value, rng: &mut StdRng) -> Value {
    match old {
        Value::String(_) => Value::String(
            [
                "1ms",
                "500ms",
                "5s",
                "35s",
                "59m",
                "1h",
                "10m",
                "0s",
                "1day",
                "11m",
                "-1s",
                "300000000000y",
                "",
                "https://127.0.0.1:1/x",
                "http://upstream.internal/a/",
                "https://h/p?q=1",
                "127.0.0.1:0",
                "[::1]:0",
                "0.0.0.0:8080",
                "json",
                "system",
            ][rng.gen_range(0..21)]
            .to_owned(),
        ),
        Value::Integer(_) => {
            Value::Integer([0, 1, 7, 64, 65536, i64::MAX, -1][rng.gen_range(0..7)])
        }
        Value::Float(_) => {
            Value::Float([0.5, 1e-9, 0.0, 1e300, f64::NAN, 3.0][rng.gen_range(0..6)])
        }
        Value::Boolean(b) => Value::Boolean(!b),
        _ => odd_value(rng),
    }
}

/// Every table in the document, as a path of keys (array elements by index).
fn tables(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Table(t) => {
            out.push(path.clone());
            for (k, child) in t {
                path.push(k.clone());
                tables(child, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                path.push(i.to_string());
                tables(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn table_at<'a>(root: &'a mut Value, path: &[String]) -> &'a mut toml::map::Map<String, Value> {
    let mut v = root;
    for seg in path {
        v = match v {
            Value::Table(t) => t.get_mut(seg).unwrap(),
            Value::Array(a) => &mut a[seg.parse::<usize>().unwrap()],
            _ => unreachable!(),
        };
    }
    match v {
        Value::Table(t) => t,
        _ => unreachable!("{path:?} is a table"),
    }
}

fn mutate(rng: &mut StdRng) -> Value {
    let mut doc = base_config();
    let mutations = if rng.gen_bool(0.6) {
        1
    } else {
        rng.gen_range(2..=3)
    };
    for _ in 0..mutations {
        let mut all = Vec::new();
        tables(&doc, &mut Vec::new(), &mut all);
        let path = all[rng.gen_range(0..all.len())].clone();
        let table = table_at(&mut doc, &path);
        let keys: Vec<String> = table.keys().cloned().collect();
        match rng.gen_range(0..10) {
            // Change an existing key: to a value of its type (most likely to reach a check)...
            0..=3 if !keys.is_empty() => {
                let key = &keys[rng.gen_range(0..keys.len())];
                let value = same_type(&table[key], rng);
                table.insert(key.clone(), value);
            }
            // ... or to anything.
            4..=5 if !keys.is_empty() => {
                let key = &keys[rng.gen_range(0..keys.len())];
                table.insert(key.clone(), odd_value(rng));
            }
            6 if !keys.is_empty() => {
                let key = &keys[rng.gen_range(0..keys.len())];
                table.remove(key);
            }
            7 => {
                table.insert("unknown_key".into(), odd_value(rng));
            }
            // A per-route table on an upstream: timeouts, retry or rate_limit overrides.
            _ => {
                let Some(Value::Array(ups)) = table_at(&mut doc, &[]).get_mut("upstream") else {
                    continue;
                };
                let i = rng.gen_range(0..ups.len());
                let route = ["token", "person", "par", "userinfo", "auth", "all", "nope"]
                    [rng.gen_range(0..7)];
                let (section, field) = [
                    ("timeouts", "attempt"),
                    ("timeouts", "overall"),
                    ("retry", "max_delay"),
                    ("retry", "base_delay"),
                    ("retry", "max_retries"),
                    ("rate_limit", "max_wait"),
                    ("rate_limit", "per_second"),
                    ("rate_limit", "burst"),
                ][rng.gen_range(0..8)];
                let text = format!("[routes.{route}.{section}]\n{field} = 1\n");
                let mut fresh: Value = toml::from_str(&text).unwrap();
                *table_at(&mut fresh, &["routes".into(), route.into(), section.into()])
                    .get_mut(field)
                    .unwrap() = odd_value(rng);
                if let Value::Table(up) = &mut ups[i] {
                    up.insert("routes".into(), fresh["routes"].clone());
                }
            }
        }
    }
    doc
}

/// Answers every upstream call: discovery documents for any issuer, 200 JSON otherwise.
async fn dummy_upstream(req: Request<Bytes>) -> Result<Response<Bytes>, BoxError> {
    let uri = req.uri().to_string();
    let body = match uri.strip_suffix("/.well-known/openid-configuration") {
        Some(issuer) => serde_json::json!({
            "issuer": issuer,
            "pushed_authorization_request_endpoint": format!("{issuer}/par"),
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/jwks"),
            "backchannel_authentication_endpoint": format!("{issuer}/bc-auth"),
        })
        .to_string(),
        None => r#"{"access_token":"t","token_type":"DPoP","expires_in":60,"keys":[]}"#.into(),
    };
    let mut res = Response::new(Bytes::from(body));
    res.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(res)
}

/// One request on every route of an accepted config.
async fn exercise(config: Config) {
    let upstream = tower::service_fn(dummy_upstream);
    let proxy = Proxy::builder(&config).upstream(upstream).build();
    let Ok(proxy) = proxy else {
        return; // Refused at build (e.g. keys): with the key named, like any config error.
    };
    for line in proxy.routes() {
        let (method, path) = (line.method, &line.local);
        let path = path.replace("{sub}", "S1234567A").replace("/*", "/x");
        let req = Request::builder()
            .method(method)
            .uri(format!("{path}?scope=name"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", "Bearer t")
            .body(Bytes::from_static(
                b"grant_type=authorization_code&code=c&code_verifier=v&code_challenge=c&code_challenge_method=S256&auth_req_id=a",
            ))
            .unwrap();
        let res = proxy.call_buffered(req).await;
        assert!(res.status().as_u16() >= 200, "{path}");
    }
}

#[tokio::test(start_paused = true)]
async fn mutated_configs_are_accepted_or_refused_by_key_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (private, _) = myinfo_proxy::jose::generate_client_jwks().unwrap();
    std::fs::write(dir.path().join("private-jwks.json"), private.to_string()).unwrap();
    assert!(
        Config::from_toml(&toml::to_string(&base_config()).unwrap(), dir.path()).is_ok(),
        "the unmutated base is valid"
    );
    let mut rng = StdRng::seed_from_u64(SEED);
    let (mut accepted, mut refused) = (0, 0);
    for n in 0..CONFIGS {
        let text = toml::to_string(&mutate(&mut rng)).unwrap();
        let parsed = std::panic::catch_unwind(|| Config::from_toml(&text, dir.path()));
        let parsed = parsed.unwrap_or_else(|_| panic!("config #{n} panicked:\n{text}"));
        match parsed {
            Ok(config) => {
                accepted += 1;
                let ran = tokio::spawn(exercise(config)).await;
                assert!(ran.is_ok(), "config #{n} panicked at run time:\n{text}");
            }
            Err(e) => {
                refused += 1;
                assert!(!e.key.is_empty() && !e.fix.is_empty(), "#{n}: {e}");
            }
        }
        if n % BINARY_EVERY == 0 {
            check_config_exits_0_or_64(dir.path(), &text, n);
        }
    }
    // The mutations hit both sides.
    eprintln!("{accepted} accepted, {refused} refused");
    assert!(
        accepted > 100 && refused > 500,
        "{accepted} accepted, {refused} refused"
    );
}

fn check_config_exits_0_or_64(dir: &Path, text: &str, n: usize) {
    std::fs::write(dir.join("config.toml"), text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_myinfo-proxy"))
        .args(["check-config", "--config", "config.toml"])
        .current_dir(dir)
        .output()
        .unwrap();
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 64)),
        "config #{n}: exit {code:?}\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}
