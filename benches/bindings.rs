//! Criterion benchmark of the in-memory binding store: what minting a token binding (and a
//! FAPI login's bind + forget) costs in a store holding 10% of its cap, and in one at its cap,
//! where every new binding evicts one. The store is the proxy's default size (1,000,000).
//!
//! Run: `cargo bench --bench bindings` (about a minute; filling the stores takes a few
//! seconds of setup that is not timed). Nothing here asserts a time; the numbers are in
//! BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt as _;
use myinfo_proxy::binding::{BindingStore, MemoryBindings, TokenUse};
use myinfo_proxy::jose::EphemeralKey;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The capacity the proxy gives each store (`BINDINGS` in src/proxy.rs).
const CAP: u64 = 1_000_000;
/// The token lifetime Singpass gives (30 min): nothing expires during a run.
const TTL: Duration = Duration::from_secs(1800);
/// Timed operations run in chunks of at most this many (1% of the cap), each on fresh keys
/// made before its clock starts; the 10% store is refilled before each chunk, so that it
/// holds 10-11% of its cap while timed.
const CHUNK: u64 = CAP / 100;

/// Fresh tokens, never used before in this process.
struct Tokens(u64);

impl Tokens {
    fn next(&mut self, n: u64) -> Vec<String> {
        let start = self.0;
        self.0 += n;
        (start..self.0).map(|i| format!("token-{i}")).collect()
    }
}

/// The memory store's futures are ready when made.
fn now<T>(f: myinfo_proxy::binding::BindingFuture<'_, T>) -> T {
    f.now_or_never()
        .expect("the memory store answers at once")
        .expect("the memory store never fails")
}

/// Runs `chunk(n)` for chunks of `iters` and adds up the times it reports.
fn in_chunks(iters: u64, mut chunk: impl FnMut(u64) -> Duration) -> Duration {
    let mut left = iters;
    let mut timed = Duration::ZERO;
    while left > 0 {
        let n = left.min(CHUNK);
        timed += chunk(n);
        left -= n;
    }
    timed
}

/// Times binding each of `tokens` into `store` (hashing included, as on the request path).
fn bind_all(store: &MemoryBindings, key: &Arc<EphemeralKey>, tokens: Vec<String>) -> Duration {
    let started = Instant::now();
    for token in &tokens {
        now(store.bind_token(token, key.clone(), TokenUse::Once, TTL));
    }
    started.elapsed()
}

fn mint_token_binding(c: &mut Criterion) {
    let key = Arc::new(EphemeralKey::generate().expect("key"));
    let mut tokens = Tokens(0);
    let mut g = c.benchmark_group("bind_token");
    g.sample_size(20);

    // The same 10% of bindings fill every fresh store (a store has never seen them).
    let tenth = tokens.next(CAP / 10);
    g.bench_function("at_10pct_of_cap", |b| {
        b.iter_custom(|iters| {
            in_chunks(iters, |n| {
                let store = MemoryBindings::new(CAP);
                bind_all(&store, &key, tenth.clone());
                bind_all(&store, &key, tokens.next(n))
            })
        })
    });

    let full = MemoryBindings::new(CAP);
    bind_all(&full, &key, tokens.next(CAP));
    assert!(full.live_bindings() >= CAP * 99 / 100, "the store is full");
    g.bench_function("at_cap", |b| {
        // Every binding evicts one, so the store stays at its cap across samples.
        b.iter_custom(|iters| in_chunks(iters, |n| bind_all(&full, &key, tokens.next(n))))
    });
    g.finish();
}

/// FAPI logins as the proxy makes them: bound at the PAR, forgotten at the token call.
fn login_round_trips(
    store: &MemoryBindings,
    key: &Arc<EphemeralKey>,
    first: u64,
    n: u64,
) -> Duration {
    let challenges: Vec<String> = (first..first + n).map(|i| format!("{i:0>43}")).collect();
    let started = Instant::now();
    for challenge in &challenges {
        now(store.bind_login(challenge, key.clone(), Duration::from_secs(600)));
        now(store.forget_login(challenge));
    }
    started.elapsed()
}

fn login_bind_and_forget(c: &mut Criterion) {
    let key = Arc::new(EphemeralKey::generate().expect("key"));
    let mut next = 0u64;
    let mut g = c.benchmark_group("bind_and_forget_login");
    g.sample_size(20);
    for (name, abandoned) in [("at_10pct_of_cap", CAP / 10), ("at_cap", CAP)] {
        // Logins never completed (the user walked away) fill the store to the level; a bind
        // and a forget leave it there.
        let store = MemoryBindings::new(CAP);
        for i in 0..abandoned {
            now(store.bind_login(
                &format!("abandoned-{i:0>33}"),
                key.clone(),
                Duration::from_secs(600),
            ));
        }
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                in_chunks(iters, |n| {
                    next += n;
                    login_round_trips(&store, &key, next - n, n)
                })
            })
        });
    }
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
    targets = mint_token_binding, login_bind_and_forget
}
criterion_main!(benches);
