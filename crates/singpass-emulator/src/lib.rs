//! # singpass-emulator
//!
//! A strict local emulator of three Singpass APIs on one port: the judge that myinfo-proxy's
//! tests and its `demo` command hold the proxy to, and a server for offline development (the
//! `singpass-emulator` binary).
//!
//! - Myinfo v4 under `/com/v4`: `/token`, `/person/{sub}`, a browserless `/authorize`, `/jwks`.
//! - Singpass FAPI 2.0 (Login and Myinfo v5), issuer `http://HOST:PORT/fapi`: discovery,
//!   `/jwks`, `/par`, a browserless `/auth`, `/token`, `/userinfo`, DPoP nonces on request.
//! - CIBA on the non-FAPI issuer `http://HOST:PORT`: discovery, `/jwks`, `/bc-auth`, `/token`.
//!
//! Like Singpass, it holds a CIBA poll that finds its request pending for up to 30 s
//! ([`EmulatorConfig::ciba_hold`]), answers it at once when the user approves or denies, and
//! refuses (and counts) a poll that overlaps a held one.
//!
//! It serves on a socket ([`Emulator::start`]) or in process as a `tower::Service`
//! ([`Emulator::in_process`], [`Emulator::service`]), so a client under test can run against
//! it on paused tokio time without any I/O.
//!
//! It refuses whatever real Singpass would refuse — client assertions, DPoP proofs and their
//! key bindings, PKCE, single-use codes, request_uris and access tokens, nonces, poll
//! intervals — with Singpass's statuses and error bodies (OAuth codes for FAPI and CIBA), and
//! records every request it receives. This crate does not depend on myinfo-proxy, so its
//! checks cannot share the proxy's signing code (own RFC 7638 thumbprint, own claim rules);
//! only josekit is common to both.
//!
//! Clocks: `iat`/`exp` of assertions, proofs and issued JWTs follow the wall clock (clients
//! sign with it); quotas, delays, the 60 s request_uri and code windows, access-token expiry
//! and CIBA expiry, holds and poll intervals follow the tokio clock, so paused-time tests
//! drive them.
//!
//! It also misbehaves on request, so a client's retry, rate-limit and error-log code can be
//! tested against it: scripted or seeded-random [`Fault`]s (error statuses and bodies, delays,
//! hangs, dropped connections) and a per-route quota, on the tokio clock.
//!
//! Layout: `v4/`, `fapi/` and `ciba/` serve each API's endpoints; `checks/` verifies what
//! clients send (assertions, DPoP proofs and nonces, client authentication); the rest is
//! shared plumbing (`server`, `service`, `connection`, `router`, `state`, `faults/`,
//! `errors/`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use singpass_emulator::{Emulator, EmulatorConfig, EmulatorRoute, Fault};
//!
//! // The client's PUBLIC keys; here a throwaway ES256 key.
//! let key = josekit::jws::ES256.generate_key_pair()?.to_jwk_public_key();
//! let mut jwks = josekit::jwk::JwkSet::new();
//! jwks.push_key(key);
//! let emulator = Emulator::start(EmulatorConfig::new("MY-CLIENT", jwks), "127.0.0.1:0".parse()?).await?;
//! assert!(emulator.base_url().ends_with("/com/v4"));
//! // The next token call is answered 503, as Singpass does during incidents.
//! emulator.script(EmulatorRoute::Token, Fault::Status { status: 503, retry_after: None }, 1);
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod checks;
mod ciba;
mod client_jwks;
mod connection;
mod controls;
mod discovery;
mod errors;
mod expiring;
mod fapi;
mod faults;
mod form;
mod id_token;
mod person;
mod request;
mod router;
mod sealing;
mod server;
mod service;
mod signing;
mod state;
mod v4;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use josekit::jwk::JwkSet;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use client_jwks::{read_public_jwks, ClientJwksError};
pub use faults::{EmulatorRoute, Fault};
pub use service::{EmulatorService, NotThisEmulator};
pub use v4::authorize::SAMPLE_SUB;

use faults::quota::Quota;
use server::{accept_loop, normalize_base_path, reachable};
use state::{AuthorizationCode, EmulatorState};

/// How the emulator is set up: which client it knows and where it serves.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// The client id it accepts (assertion `iss`/`sub`, form `client_id`).
    pub client_id: String,
    /// The client's PUBLIC JWKS (an ES256 `use=sig` key and an ECDH-ES+A256KW `use=enc` key,
    /// P-256).
    pub client_jwks: JwkSet,
    /// Path prefix the v4 API is served under; default "/com/v4". v4 is routed first, so
    /// "" or "/fapi" would hide CIBA's `/token` or the FAPI issuer (see `router.rs`).
    pub base_path: String,
    /// Access-token lifetime (default 1800 s), of v4 and FAPI tokens alike.
    pub token_lifetime: Duration,
    /// How long a CIBA token poll that finds its request pending is held before it is
    /// answered `authorization_pending` (default 30 s, as Singpass: "wait for at least 30s for
    /// a response"); the user's approval or denial answers it at once. Zero answers at once.
    pub ciba_hold: Duration,
}

impl EmulatorConfig {
    /// A config for `client_id` with its public JWKS, v4 under `/com/v4`, tokens of 30 min.
    pub fn new(client_id: impl Into<String>, client_jwks: JwkSet) -> Self {
        EmulatorConfig {
            client_id: client_id.into(),
            client_jwks,
            base_path: "/com/v4".to_owned(),
            token_lifetime: Duration::from_secs(1800),
            ciba_hold: Duration::from_secs(30),
        }
    }
}

/// One request as the emulator received it, and how it answered.
#[derive(Clone, Debug)]
pub struct Received {
    /// The HTTP method.
    pub method: String,
    /// The path, without query.
    pub path: String,
    /// The query, if any.
    pub query: Option<String>,
    /// Every header, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body as received.
    pub body: Bytes,
    /// The status answered (0: no answer, for Hang and Drop).
    pub status: u16,
    /// The `error_description` it answered with, None on success.
    pub rejection: Option<String>,
    /// jti of the client assertion and of the DPoP proof, when they parsed (that is, once
    /// their signature verified). For a request that an injected fault or the quota answered,
    /// they are read from the payloads unverified, and not spent.
    pub assertion_jti: Option<String>,
    /// jti of the DPoP proof (as `assertion_jti`).
    pub proof_jti: Option<String>,
    /// When the request arrived, by the tokio clock (paused-time tests control it). The log is
    /// in order of answering; a delayed request is logged after quicker later ones.
    pub at: tokio::time::Instant,
    /// The endpoint the path names, whatever the method; None for the browser's
    /// `/authorize` and `/fapi/auth`, and unknown paths (which faults and quotas never touch).
    pub route: Option<EmulatorRoute>,
    /// What was injected, e.g. "scripted: status 503", "random: drop", "quota: over 10/s,
    /// burst 2", "scripted: delay 2s" (then served normally); None when nothing was.
    pub fault: Option<String>,
    /// `id` and `trace_id` of the error body answered (injected or a real refusal); None on
    /// success and when no answer was sent. `status` is 0 when none was (Hang, Drop).
    pub error_id: Option<String>,
    /// `trace_id` of the error body answered (as `error_id`).
    pub trace_id: Option<String>,
}

/// A running emulator; dropping it (or [`Emulator::shutdown`]) stops it.
pub struct Emulator {
    state: Arc<EmulatorState>,
    local_addr: SocketAddr,
    server: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds (e.g. "127.0.0.1:0") and serves on a spawned tokio task.
    pub async fn start(config: EmulatorConfig, addr: SocketAddr) -> std::io::Result<Emulator> {
        let mut config = config;
        config.base_path = normalize_base_path(&config.base_path);
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let key = signing::EmulatorKey::generate().map_err(std::io::Error::other)?;
        let origin = format!("http://{}", reachable(local_addr));
        let base_url = format!("{origin}{}", config.base_path);
        let state = Arc::new(EmulatorState::new(config, origin, base_url, key));
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(Emulator {
            state,
            local_addr,
            server: Some(server),
        })
    }

    /// The address it is bound to; `0.0.0.0:0` for one [in process](Emulator::in_process).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// "http://127.0.0.1:PORT/com/v4" — the exact base URL clients must sign `htu`/`aud` for.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Registers an authorization code without a browser, as if user `sub` consented to
    /// `scope` (space-separated) with PKCE `code_challenge` (S256) and `redirect_uri`.
    /// Returns the code.
    pub fn mint_code(
        &self,
        sub: &str,
        scope: &str,
        code_challenge: &str,
        redirect_uri: &str,
    ) -> String {
        let code = signing::random_id();
        self.state.register_code(
            code.clone(),
            AuthorizationCode {
                sub: sub.to_owned(),
                scope: scope.to_owned(),
                code_challenge: code_challenge.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
            },
        );
        code
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.received()
    }

    /// The next `n` requests on `route` get `fault` (queued after earlier scripted faults).
    /// Faults apply after the quota and before random failure (see `set_quota`).
    pub fn script(&self, route: EmulatorRoute, fault: Fault, n: usize) {
        self.state.faults.script(route, fault, n);
    }

    /// Each request on `route` fails with probability `fraction`, choosing uniformly among
    /// `faults`, using a deterministic RNG seeded with `seed`. Scripted faults go first, and
    /// only requests that reach this stage draw from the RNG, so the same seed and traffic give
    /// the same failures. Replaces an earlier call's setting for `route`; an empty `faults`
    /// never fails.
    pub fn fail_randomly(
        &self,
        route: EmulatorRoute,
        fraction: f64,
        faults: Vec<Fault>,
        seed: u64,
    ) {
        self.state
            .faults
            .fail_randomly(route, fraction, faults, seed);
    }

    /// Enforces a quota on `route`: a GCRA / token bucket of `per_second` requests per second
    /// with `burst` capacity (starting full), measured with `tokio::time::Instant`. Requests
    /// over it get 429 with a TOO_MANY_REQUESTS Singpass body and, if `retry_after`, a
    /// `Retry-After` header (delta-seconds, rounded up).
    ///
    /// The quota is checked first, as a gateway in front of the service would: a refused
    /// request spends no scripted fault and no random draw, while an admitted one spends quota
    /// even if a fault then answers it. Refusals do not spend quota. A `burst` of 0 refuses
    /// everything; a `per_second` that is not positive counts as one a day.
    pub fn set_quota(&self, route: EmulatorRoute, per_second: f64, burst: u32, retry_after: bool) {
        self.state
            .faults
            .set_quota(route, Quota::new(per_second, burst, retry_after));
    }

    /// Removes faults, random failure and quotas.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// The emulator's public signing JWKS (to verify the person, id_token and userinfo JWS
    /// inside their JWEs); also served at `{base}/jwks`, `/fapi/jwks` and `/jwks`.
    pub fn signing_jwks(&self) -> JwkSet {
        self.state.key.public_jwks()
    }

    /// Stops accepting and closes every open connection.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            // The task was aborted; its JoinError says only that.
            let _ = server.await;
        }
    }
}

/// Shows where it serves, never what it holds (codes, tokens, recorded requests).
impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.state.base_url)
            .field("client_id", &self.state.config.client_id)
            .finish_non_exhaustive()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Runs an emulator until the returned future is dropped (e.g. by a `select!` on Ctrl-C),
/// for the CLI's standalone `emulator` command. Fails only if `addr` cannot be bound.
pub async fn serve_forever(config: EmulatorConfig, addr: SocketAddr) -> std::io::Result<()> {
    let mut emulator = Emulator::start(config, addr).await?;
    tracing::info!(
        base_url = %emulator.base_url(),
        fapi_issuer = %emulator.fapi_issuer(),
        ciba_issuer = %emulator.ciba_issuer(),
        "Singpass emulator listening (Myinfo v4, FAPI 2.0, CIBA)"
    );
    if let Some(server) = emulator.server.as_mut() {
        // The accept loop only ends by being aborted.
        let _ = server.await;
    }
    Ok(())
}
