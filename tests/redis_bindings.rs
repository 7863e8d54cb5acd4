//! The Redis binding store against a real redis-server: one-time tokens taken exactly once
//! across replicas, sealed records (bound to their names, nothing readable in a dump), seal key
//! rotation, and a Redis outage (503-class errors, then recovery without a restart).

mod common;

use base64::Engine as _;
use common::redis_server::RedisServer;
use myinfo_proxy::binding::{
    BindingError, BindingStore, RedisBindings, SealKeyring, TokenLookup, TokenUse,
};
use myinfo_proxy::jose::EphemeralKey;
use myinfo_proxy::shared::RedisClient;
use sha2::Digest as _;
use std::sync::Arc;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn store(redis: &RedisServer, prefix: &str, keys: &[&str]) -> RedisBindings {
    let client = RedisClient::connect(&redis.url(), prefix, Duration::from_millis(200), 3).unwrap();
    RedisBindings::new(client, SealKeyring::parse(&keys.join("\n")).unwrap())
}

fn key() -> Arc<EphemeralKey> {
    Arc::new(EphemeralKey::generate().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_token_used_at_two_replicas_at_once_gives_its_key_to_exactly_one() {
    common::logs::install();
    let redis = RedisServer::start();
    let seal = SealKeyring::generate_key();
    let (a, b) = (store(&redis, "p", &[&seal]), store(&redis, "p", &[&seal]));
    let (mut keys, mut reused) = (0, 0);
    for i in 0..200 {
        let token = format!("v4-token-{i}");
        let bound = key();
        a.bind_token(&token, bound.clone(), TokenUse::Once, MINUTE)
            .await
            .unwrap();
        let (ta, tb) = (token.clone(), token.clone());
        let (sa, sb) = (a.clone(), b.clone());
        let ha = tokio::spawn(async move { sa.use_token(&ta).await.unwrap() });
        let hb = tokio::spawn(async move { sb.use_token(&tb).await.unwrap() });
        for lookup in [ha.await.unwrap(), hb.await.unwrap()] {
            match lookup {
                TokenLookup::Key(k) => {
                    assert_eq!(k.jkt(), bound.jkt(), "the key bound to this token");
                    keys += 1;
                }
                TokenLookup::Reused => reused += 1,
                TokenLookup::Unknown => panic!("token {i} unknown at a replica"),
            }
        }
    }
    assert_eq!((keys, reused), (200, 200), "one key and one reuse per pair");
}

#[tokio::test]
async fn reusable_tokens_and_logins_are_found_from_any_replica() {
    common::logs::install();
    let redis = RedisServer::start();
    let seal = SealKeyring::generate_key();
    let (a, b) = (store(&redis, "p", &[&seal]), store(&redis, "p", &[&seal]));
    let k = key();
    a.bind_token("fapi-token", k.clone(), TokenUse::Reusable, MINUTE)
        .await
        .unwrap();
    for _ in 0..3 {
        match b.use_token("fapi-token").await.unwrap() {
            TokenLookup::Key(got) => assert_eq!(got.jkt(), k.jkt()),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        b.use_token("never-issued").await.unwrap(),
        TokenLookup::Unknown
    ));
    a.bind_login("challenge-1", k.clone(), MINUTE)
        .await
        .unwrap();
    assert_eq!(
        b.login_key("challenge-1").await.unwrap().unwrap().jkt(),
        k.jkt()
    );
    assert!(b.login_key("challenge-2").await.unwrap().is_none());
    b.forget_login("challenge-1").await.unwrap();
    assert!(
        a.login_key("challenge-1").await.unwrap().is_none(),
        "forgotten everywhere"
    );
    // Written with the binding's TTL.
    a.bind_token(
        "short",
        k.clone(),
        TokenUse::Once,
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let mut conn = redis.connection();
    let ttls: Vec<i64> = redis
        .dump()
        .iter()
        .map(|(name, _)| redis::cmd("PTTL").arg(name).query(&mut conn).unwrap())
        .collect();
    assert!(
        ttls.iter().all(|t| *t > 0),
        "every record expires: {ttls:?}"
    );
    assert!(
        ttls.iter().any(|t| *t <= 300),
        "the short token's TTL: {ttls:?}"
    );
}

#[tokio::test]
async fn a_record_moved_to_another_name_does_not_open() {
    common::logs::install();
    let redis = RedisServer::start();
    let seal = SealKeyring::generate_key();
    let (here, there) = (
        store(&redis, "here", &[&seal]),
        store(&redis, "there", &[&seal]),
    );
    here.bind_login("challenge", key(), MINUTE).await.unwrap();
    here.bind_token("token", key(), TokenUse::Reusable, MINUTE)
        .await
        .unwrap();
    let mut conn = redis.connection();
    for (name, value) in redis.dump() {
        // Same seal key, same token, same record name after the prefix: only the associated
        // data (the whole Redis key) differs.
        let moved = [b"there".as_slice(), &name[b"here".len()..]].concat();
        redis::cmd("SET")
            .arg(moved)
            .arg(value)
            .query::<()>(&mut conn)
            .unwrap();
    }
    assert!(there.login_key("challenge").await.unwrap().is_none());
    assert!(matches!(
        there.use_token("token").await.unwrap(),
        TokenLookup::Unknown
    ));
    assert!(
        here.login_key("challenge").await.unwrap().is_some(),
        "the original still opens"
    );
}

#[tokio::test]
async fn a_dump_of_redis_holds_no_token_challenge_or_private_key() {
    common::logs::install();
    let redis = RedisServer::start();
    let seal = SealKeyring::generate_key();
    let s = store(&redis, "myinfo-proxy", &[&seal]);
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for i in 0..20 {
        let (token, challenge) = (
            format!("eyJ.access-token-{i}.sig"),
            format!("challenge-{i}-abcdefghijklmnop"),
        );
        let (k1, k2) = (key(), key());
        s.bind_token(
            &token,
            k1.clone(),
            if i % 2 == 0 {
                TokenUse::Once
            } else {
                TokenUse::Reusable
            },
            MINUTE,
        )
        .await
        .unwrap();
        s.bind_login(&challenge, k2.clone(), MINUTE).await.unwrap();
        for k in [&k1, &k2] {
            secrets.push(k.export_secret()[..32].to_vec());
        }
        secrets.push(token.clone().into_bytes());
        secrets.push(challenge.clone().into_bytes());
        // Not even the plain SHA-256 someone could precompute from a token.
        secrets.push(sha2::Sha256::digest(token.as_bytes()).to_vec());
    }
    s.use_token("eyJ.access-token-0.sig").await.unwrap();
    let dump = redis.dump();
    assert_eq!(dump.len(), 40);
    let b64 = |e: &base64::engine::GeneralPurpose, v: &[u8]| e.encode(v).into_bytes();
    for secret in &secrets {
        let forms = [
            secret.clone(),
            hex::encode(secret).into_bytes(),
            hex::encode_upper(secret).into_bytes(),
            b64(&base64::engine::general_purpose::STANDARD, secret),
            b64(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret),
        ];
        for form in &forms {
            // 16 bytes of a form are enough to recognise it.
            let needle = &form[..form.len().min(16)];
            for (name, value) in &dump {
                assert!(
                    !contains(name, needle) && !contains(value, needle),
                    "a secret in Redis"
                );
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn after_a_seal_key_rotation_old_records_still_open() {
    common::logs::install();
    let redis = RedisServer::start();
    let (old, new) = (SealKeyring::generate_key(), SealKeyring::generate_key());
    let before = store(&redis, "p", &[&old]);
    let (k1, k2) = (key(), key());
    before
        .bind_token("t", k1.clone(), TokenUse::Once, MINUTE)
        .await
        .unwrap();
    before.bind_login("c", k2.clone(), MINUTE).await.unwrap();
    let after = store(&redis, "p", &[&new, &old]);
    match after.use_token("t").await.unwrap() {
        TokenLookup::Key(k) => assert_eq!(k.jkt(), k1.jkt()),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(before.use_token("t").await.unwrap(), TokenLookup::Reused),
        "taken once, across keyrings"
    );
    assert_eq!(after.login_key("c").await.unwrap().unwrap().jkt(), k2.jkt());
    after.bind_login("c2", k2.clone(), MINUTE).await.unwrap();
    assert!(
        before.login_key("c2").await.unwrap().is_none(),
        "new records are sealed with the new first key"
    );
    after.forget_login("c").await.unwrap();
    assert!(after.login_key("c").await.unwrap().is_none());
}

#[tokio::test]
async fn while_redis_is_stopped_lookups_fail_fast_and_bindings_work_again_after() {
    let (logs, _guard) = common::logs::capture();
    let redis = RedisServer::start();
    let seal = SealKeyring::generate_key();
    let s = store(&redis, "p", &[&seal]);
    let k = key();
    s.bind_token("made-before", k.clone(), TokenUse::Once, MINUTE)
        .await
        .unwrap();
    s.bind_login("login-before", k.clone(), MINUTE)
        .await
        .unwrap();
    redis.pause();
    let timeouts_before = common::redis_outcomes("timeout");
    for _ in 0..50 {
        let err = s.use_token("made-before").await.unwrap_err();
        assert!(matches!(err, BindingError::Unavailable(_)));
        assert!(s.login_key("login-before").await.is_err());
    }
    // 100 calls, each at most the timeout; all but the first (and a half-open probe or two)
    // fail at once on the open circuit instead of waiting for Redis.
    let timeouts = common::redis_outcomes("timeout") - timeouts_before;
    assert!(
        (1..=3).contains(&timeouts),
        "{timeouts} of 100 calls waited for the timeout"
    );
    redis.resume();
    let mut recovered = None;
    for _ in 0..100 {
        match s.use_token("made-before").await {
            Ok(lookup) => {
                recovered = Some(lookup);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    match recovered.expect("Redis answers again without a restart") {
        TokenLookup::Key(got) => assert_eq!(
            got.jkt(),
            k.jkt(),
            "no take queued during the stall consumed it"
        ),
        other => panic!("{other:?}"),
    }
    assert!(s.login_key("login-before").await.unwrap().is_some());
    let warn = logs
        .events()
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.starts_with("Redis is unavailable"))
        })
        .count();
    let back = logs
        .events()
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.starts_with("Redis answers again"))
        })
        .count();
    assert_eq!(
        (warn, back),
        (1, 1),
        "one line per outage, one per recovery"
    );
}
