//! Criterion microbenchmarks of the JOSE work on (and just off) the request path: DPoP proofs,
//! client assertions, ephemeral keys (generation and a warm pool take), thumbprints, and
//! opening an encrypted answer (JWE decrypt + JWS verify).
//!
//! Run: `cargo bench --bench jose` (about two minutes). Nothing here asserts a time; the
//! numbers and the budget they are held against are in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use josekit::jwe::{JweHeader, ECDH_ES_A256KW};
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::{Jwk, JwkSet, KeyPair as _};
use josekit::jws::{JwsHeader, JwsSigner as _, ES256};
use myinfo_proxy::jose::{
    self, generate_client_jwks, AssertionClaims, ClientKeys, EphemeralKey, EphemeralKeyPool,
    ProofClaims,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

/// The capacity the proxy gives its pool (`KEY_POOL` in src/proxy.rs).
const POOL: usize = 64;

fn client_keys() -> ClientKeys {
    let (private, _) = generate_client_jwks().expect("keygen");
    ClientKeys::from_private_jwks(private.to_string().as_bytes()).expect("load keys")
}

fn signing(c: &mut Criterion) {
    let key = EphemeralKey::generate().expect("key");
    let keys = client_keys();
    let now = SystemTime::now();
    let mut rng = StdRng::seed_from_u64(7);
    let mut g = c.benchmark_group("sign");

    // A resource call (FAPI userinfo, v4 person): htm, htu, iat, exp, jti and ath.
    let userinfo = ProofClaims {
        htm: "GET",
        htu: "https://stg-id.singpass.gov.sg/fapi/userinfo",
        access_token: Some("a3f1c0de5e6a4b9c8d7e6f5a4b3c2d1e"),
        nonce: None,
    };
    g.bench_function("dpop_proof/userinfo_with_ath", |b| {
        b.iter(|| jose::dpop_proof(&key, black_box(userinfo), now, &mut rng).unwrap())
    });
    // A token call: no ath, a server nonce.
    let token = ProofClaims {
        htm: "POST",
        htu: "https://stg-id.singpass.gov.sg/fapi/token",
        access_token: None,
        nonce: Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
    };
    g.bench_function("dpop_proof/token_with_nonce", |b| {
        b.iter(|| jose::dpop_proof(&key, black_box(token), now, &mut rng).unwrap())
    });

    let assertion = AssertionClaims {
        client_id: "STG-BENCH-CLIENT",
        aud: "https://test.api.myinfo.gov.sg/com/v4/token",
        jkt: Some(key.jkt()),
        lifetime: Duration::from_secs(120),
    };
    g.bench_function("client_assertion/v4_with_cnf", |b| {
        b.iter(|| {
            jose::client_assertion(keys.signing(), black_box(assertion), now, &mut rng).unwrap()
        })
    });

    // The bare ES256 signature over a proof-sized input, to tell the signature from the JSON
    // and base64 around it: ring (what proofs and assertions use) and, for reference, OpenSSL
    // through josekit (what client assertions used before they moved to ring).
    let message = [b'x'; 420];
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ring_pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    g.bench_function("es256_signature/ring", |b| {
        b.iter(|| ring_pair.sign(&rng, black_box(&message)).unwrap())
    });
    let pair = EcKeyPair::generate(EcCurve::P256).unwrap();
    let signer = ES256.signer_from_jwk(&pair.to_jwk_key_pair()).unwrap();
    g.bench_function("es256_signature/openssl_josekit", |b| {
        b.iter(|| signer.sign(black_box(&message)).unwrap())
    });
    g.finish();
}

fn ephemeral_keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("ephemeral_key");
    g.bench_function("generate", |b| b.iter(|| EphemeralKey::generate().unwrap()));

    // For reference, the path `generate` took before ring (josekit over OpenSSL 3): the key
    // pair, the DER round trip josekit needs to make a signer, the public JWK and thumbprint.
    g.bench_function("josekit_openssl/ec_key_pair", |b| {
        b.iter(|| EcKeyPair::generate(EcCurve::P256).unwrap())
    });
    g.bench_function("josekit_openssl/signer_from_der", |b| {
        b.iter_batched(
            || EcKeyPair::generate(EcCurve::P256).unwrap(),
            |pair| ES256.signer_from_der(pair.to_der_private_key()).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("josekit_openssl/public_jwk_and_thumbprint", |b| {
        b.iter_batched(
            || EcKeyPair::generate(EcCurve::P256).unwrap(),
            |pair| jose::thumbprint(&pair.to_jwk_public_key()).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    pool_take(c);
}

/// `EphemeralKeyPool::take` from a warm pool (the proxy's capacity, 64 keys ready). Every
/// take makes the background thread generate one key, so the pool is refilled before each
/// chunk of 64 takes and only the takes are timed (the keys are dropped after the clock
/// stops, as a bound key is dropped long after its take). The reported time is the mean over
/// whole chunks, so it includes the first take after a refill, which wakes the generator.
/// The iteration count is kept small enough that the refills stay within a few seconds.
fn pool_take(c: &mut Criterion) {
    let pool = EphemeralKeyPool::new(POOL);
    let started = Instant::now();
    for _ in 0..8 {
        black_box(EphemeralKey::generate().unwrap());
    }
    let per_key = started.elapsed() / 8;
    // Generous: the generator thread may share its core with this one.
    let refill = per_key * (3 * POOL as u32) + Duration::from_millis(20);
    let chunk = |kept: &mut Vec<EphemeralKey>| {
        std::thread::sleep(refill);
        let t = Instant::now();
        for _ in 0..POOL {
            kept.push(pool.take().unwrap());
        }
        let spent = t.elapsed();
        // A take that generated inline (the pool ran dry) costs as much as `generate`.
        if spent > per_key * 4 {
            eprintln!("warning: pool_take_warm: {POOL} takes took {spent:?}; pool ran dry?");
        }
        kept.clear();
        spent
    };
    let mut kept = Vec::with_capacity(POOL);
    let per_take = chunk(&mut kept) / POOL as u32;
    // About 3,000 timed takes in all: each costs one background generation to refill.
    let measure = (per_take * 3_000).max(Duration::from_micros(500));

    let mut g = c.benchmark_group("ephemeral_key");
    g.sample_size(10)
        .warm_up_time(measure / 4)
        .measurement_time(measure);
    g.bench_function("pool_take_warm", |b| {
        b.iter_custom(|iters| {
            let chunks = iters.div_ceil(POOL as u64);
            let timed: Duration = (0..chunks).map(|_| chunk(&mut kept)).sum();
            timed.mul_f64(iters as f64 / (chunks * POOL as u64) as f64)
        })
    });
    g.finish();
}

fn thumbprint(c: &mut Criterion) {
    let key = EphemeralKey::generate().unwrap();
    let public = key.public_jwk().clone();
    c.bench_function("thumbprint/ec_p256", |b| {
        b.iter(|| jose::thumbprint(black_box(&public)).unwrap())
    });
}

/// An upstream (issuer) signing key and the JWKS that publishes it.
fn issuer() -> (Jwk, JwkSet) {
    let pair = EcKeyPair::generate(EcCurve::P256).unwrap();
    let mut private = pair.to_jwk_key_pair();
    private.set_key_id("issuer-sig-1");
    let mut public = pair.to_jwk_public_key();
    public.set_key_id("issuer-sig-1");
    public.set_key_use("sig");
    public.set_algorithm("ES256");
    let mut jwks = JwkSet::new();
    jwks.push_key(public);
    (private, jwks)
}

/// A userinfo-like payload of about 1.5 KB.
fn userinfo_claims() -> String {
    let now = jose::unix_seconds(SystemTime::now());
    let mut claims = serde_json::json!({
        "iss": "https://stg-id.singpass.gov.sg/fapi",
        "aud": "STG-BENCH-CLIENT",
        "sub": "u=S1234567A",
        "iat": now,
        "exp": now + 600,
    });
    let person = claims.as_object_mut().unwrap();
    for field in [
        "name",
        "sex",
        "race",
        "dob",
        "nationality",
        "regadd",
        "mobileno",
        "email",
        "marital",
        "hdbtype",
        "housingtype",
        "occupation",
        "employment",
        "cpfbalances",
        "noa-basic",
    ] {
        person.insert(
            field.into(),
            serde_json::json!({"value": "bench-value-0123456789abcdef", "source": "1",
                               "classification": "C", "lastupdated": "2026-01-01"}),
        );
    }
    claims.to_string()
}

fn unwrap_answer(c: &mut Criterion) {
    let keys = client_keys();
    let (issuer_private, jwks) = issuer();

    let mut jws_header = JwsHeader::new();
    jws_header.set_token_type("JWT");
    jws_header.set_key_id("issuer-sig-1");
    let issuer_signer = ES256.signer_from_jwk(&issuer_private).unwrap();
    let jws =
        josekit::jws::serialize_compact(userinfo_claims().as_bytes(), &jws_header, &issuer_signer)
            .unwrap();

    let enc = &keys.encryption()[0];
    let mut to = enc.public_jwk().clone();
    to.set_algorithm(ECDH_ES_A256KW.name());
    let encrypter = ECDH_ES_A256KW.encrypter_from_jwk(&to).unwrap();
    let mut jwe_header = JweHeader::new();
    jwe_header.set_content_encryption("A256GCM");
    jwe_header.set_content_type("JWT");
    jwe_header.set_key_id(enc.kid());
    let jwe = josekit::jwe::serialize_compact(jws.as_bytes(), &jwe_header, &encrypter).unwrap();

    // Sanity: the pair opens.
    let inner = jose::decrypt(&jwe, keys.encryption()).unwrap();
    assert_eq!(inner, jws.as_bytes());
    jose::verify(&inner, &jwks).unwrap();

    let mut g = c.benchmark_group("unwrap");
    g.bench_function("decrypt/ecdh_es_a256kw_a256gcm", |b| {
        b.iter(|| jose::decrypt(black_box(&jwe), keys.encryption()).unwrap())
    });
    g.bench_function("verify/es256", |b| {
        b.iter(|| jose::verify(black_box(jws.as_bytes()), &jwks).unwrap())
    });
    // Where verify's time goes: it builds a verifier for each JWKS key on every call, and
    // josekit does that through OpenSSL's DER decoder.
    let issuer_public = jwks.keys()[0].clone();
    g.bench_function("verify/part1_verifier_from_jwk", |b| {
        b.iter(|| ES256.verifier_from_jwk(black_box(&issuer_public)).unwrap())
    });
    g.bench_function("decrypt_and_verify", |b| {
        b.iter(|| {
            let inner = jose::decrypt(black_box(&jwe), keys.encryption()).unwrap();
            jose::verify(&inner, &jwks).unwrap()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = signing, ephemeral_keys, thumbprint, unwrap_answer
}
criterion_main!(benches);
