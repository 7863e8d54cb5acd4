//! # myinfo-proxy
//!
//! Signs every Singpass Myinfo v4 and FAPI 2.0 call for the app behind it: client assertions,
//! one-time DPoP proofs from one ephemeral key per transaction or login, DPoP-bound tokens,
//! DPoP nonces; retries 502/503 with fresh proofs, keeps under rate limits, logs the `id` and
//! `trace_id` of every upstream error. It runs as a sidecar or egress proxy (the
//! `myinfo-proxy` binary), or inside any Rust service as a stack of tower layers (this crate).
//!
//! ## The layers, outermost first
//!
//! ```text
//! request id, sensitive headers, trace span, catch panic   (tower-http); the trace layer's
//!               answer hook logs the access event and counts the metrics (what the app saw:
//!               requests and durations by route; layer::MetricsLayer does the same alone)
//! rescue        (layer::RescueLayer)        every error becomes a problem+json answer
//! API key, body (read after the key)        inbound auth on the headers; the body capped
//! router                                    path + method -> the route's own stack:
//!   local checks (layer::LocalChecksLayer)  form, token and login lookups; no permit taken
//!   timeout      (tower TimeoutLayer)       timeouts.overall (signed routes; a passthrough
//!                                           route's attempts end by the deadline instead)
//!   breaker      (layer::BreakerLayer)     fails fast (503) while an upstream keeps failing
//!   retry        (layer::RetryLayer)        decisions in layer::RetryPolicy: 502/503,
//!                                           retryable OAuth errors, no-answer failures; backoff
//!                                           with full jitter, Retry-After, budget, deadline,
//!                                           one DPoP-nonce repeat
//!   rate limit   (layer::RateLimitLayer)    the route's quota (layer::RouteQuota); pause and
//!                                           AIMD on 429
//!   error log    (layer::ErrorLogLayer)     one event per failed attempt, with id and trace_id
//!   inject       (layer::InjectLayer)       client assertion, DPoP proof, Authorization: DPoP,
//!                                           token and login bindings, decryption
//!   timeout      (layer::AttemptTimeoutLayer) timeouts.attempt, never past the deadline
//!   upstream     (layer::BufferBodies)      any HTTP client, bodies buffered
//! ```
//!
//! One module of the crate orders them (the file map is in `docs/ARCHITECTURE.md`). Each layer
//! is built with its own configuration (`FooLayer::new(..)`); what it needs per request is one
//! typed extension, [`layer::RequestFacts`], which the router and the local checks make; a
//! layer that finds none answers with a problem naming it. What comes back up (the route, the
//! attempts, the last upstream error's ids) is a response extension, [`layer::Outcome`].
//!
//! ## Use it in process
//!
//! Build a [`Proxy`] from a [`Config`] (the same file the binary reads, or a string), with the
//! built-in client or your own HTTP client wrapped in [`upstream::BufferBodies`], and call it
//! with what the app would have sent to Myinfo. Here against the strict emulator (the
//! `singpass-emulator` crate of this workspace, a dev-dependency):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use singpass_emulator::{Emulator, EmulatorConfig};
//! use myinfo_proxy::jose::{generate_client_jwks, sha256_b64url};
//! use myinfo_proxy::layer::BufferBodiesLayer;
//! use myinfo_proxy::{Config, Proxy};
//! use tower::{Layer, Service, ServiceExt};
//!
//! // Throwaway client keys; the emulator knows the public half.
//! let (private, public) = generate_client_jwks()?;
//! let dir = std::env::temp_dir().join(format!("myinfo-proxy-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("private-jwks.json"), private.to_string())?;
//! let jwks = josekit::jwk::JwkSet::from_bytes(public.to_string())?;
//! let emulator = Emulator::start(EmulatorConfig::new("MY-CLIENT", jwks), "127.0.0.1:0".parse()?).await?;
//!
//! let config = Config::from_toml(
//!     &format!(
//!         "client_id = \"MY-CLIENT\"\n[keys]\njwks_file = \"private-jwks.json\"\n\
//!          [[upstream]]\nkind = \"myinfo-v4\"\nbase_url = \"{}\"\n",
//!         emulator.base_url()
//!     ),
//!     &dir,
//! )?;
//! // Any tower HTTP client will do; here hyper-util's, with bodies buffered.
//! let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
//! let mut proxy = Proxy::builder(&config).upstream(BufferBodiesLayer::new(1 << 20).layer(http)).build()?;
//!
//! // The app's usual token call: no assertion, no DPoP; the proxy adds both.
//! let verifier = "a-code-verifier-of-at-least-43-characters-0123456789";
//! let code = emulator.mint_code("user-1", "name", &sha256_b64url(verifier.as_bytes()), "https://app/cb");
//! let form = format!("grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fapp%2Fcb&code_verifier={verifier}");
//! let token = proxy
//!     .ready()
//!     .await?
//!     .call(http::Request::post("/com/v4/token").header("content-type", "application/x-www-form-urlencoded").body(Bytes::from(form))?)
//!     .await?;
//! assert_eq!(token.status(), 200);
//! let access_token = serde_json::from_slice::<serde_json::Value>(token.body())?["access_token"].as_str().unwrap().to_owned();
//!
//! // The person call with a Bearer token: the proxy signs it with the token's key.
//! let person = proxy
//!     .call(http::Request::get("/com/v4/person/user-1?scope=name").header("authorization", format!("Bearer {access_token}")).body(Bytes::new())?)
//!     .await?;
//! assert_eq!(person.status(), 200);
//! assert!(emulator.received().iter().all(|r| r.rejection.is_none()));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! The individual layers can also wrap your own `tower::Service<http::Request<Bytes>>`; see
//! [`layer`]. A request for them carries its [`layer::RequestFacts`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod admin;
pub mod binding;
pub mod config;
mod deadline;
#[cfg(feature = "demo")]
#[doc(hidden)]
pub mod demo;
mod discovery;
pub mod error;
// These two modules mark their items `pub`; being private modules, that means the crate only.
#[allow(unreachable_pub)]
mod inbound;
pub mod jose;
mod key_source;
pub mod layer;
pub mod metrics;
mod path_guard;
mod pkce;
mod proxy;
mod route;
mod scrub;
#[allow(unreachable_pub)]
mod server;
pub mod shared;
mod stack;
mod upstream;
mod upstream_answer;
mod whole_body;

pub use config::Config;
pub use proxy::{Proxy, ProxyBuilder, RouteLine};
