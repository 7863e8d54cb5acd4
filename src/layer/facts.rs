//! The facts of one app request: what flows down to the layers as one typed request extension
//! ([`RequestFacts`]), and what flows back up as a response extension ([`Outcome`]).
//!
//! Settings never travel here: every layer is built with its own. A layer that needs the
//! request's facts and finds none answers with a problem naming them, never passes through.

use crate::config::RouteKind;
use crate::error::{ProblemCode, ProxyError, UpstreamIds};
use crate::jose::EphemeralKey;
use crate::layer::Stop;
use http::Request;
use std::sync::Arc;
use tokio::time::Instant;

/// What one app request carries down to every attempt: where it goes, by when it must be
/// answered, and (once the route's local checks ran) the key that signs it.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    /// The upstream URL without query: the DPoP `htu`.
    pub htu: Arc<str>,
    /// The client assertion's `aud`: the token URL (v4) or the issuer (FAPI, CIBA).
    pub aud: Arc<str>,
    /// When the whole request must be answered (no retry starts that would end later).
    pub deadline: Instant,
    /// The ephemeral key of this transaction or login, chosen once per app request.
    pub key: Option<Arc<EphemeralKey>>,
    /// A resource call's access token (sent as `Authorization: DPoP`, hashed into `ath`).
    pub token: Option<Arc<str>>,
    /// What a successful answer binds.
    pub bind: Bind,
}

impl RequestFacts {
    /// Facts for a request to `htu` with assertion audience `aud`, to be answered by `deadline`;
    /// no key yet.
    pub fn new(htu: impl Into<Arc<str>>, aud: impl Into<Arc<str>>, deadline: Instant) -> Self {
        Self {
            htu: htu.into(),
            aud: aud.into(),
            deadline,
            key: None,
            token: None,
            bind: Bind::Nothing,
        }
    }

    /// The facts `req` carries, or the problem that names what is missing.
    pub fn of<B>(req: &Request<B>) -> Result<&Self, ProxyError> {
        req.extensions().get::<Self>().ok_or_else(missing)
    }

    /// The facts `req` carries, to complete them.
    pub(crate) fn of_mut<B>(req: &mut Request<B>) -> Result<&mut Self, ProxyError> {
        req.extensions_mut().get_mut::<Self>().ok_or_else(missing)
    }
}

fn missing() -> ProxyError {
    ProxyError::new(
        ProblemCode::SystemInternalError,
        "the request carries no RequestFacts extension: a route's layers run behind the proxy's router, or behind your own code that inserts RequestFacts",
    )
}

/// What a successful answer leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// Nothing to remember.
    Nothing,
    /// A v4 token answer: bind its access token to the key, for one use.
    V4Token,
    /// A PAR answer: bind the login's key to its `code_challenge`.
    Login {
        /// The PAR's `code_challenge`.
        code_challenge: String,
    },
    /// A FAPI token answer: bind its access token (reusable) and forget the login; when the app
    /// sent a `nonce`, the id_token must carry it.
    FapiToken {
        /// S256 of the token call's `code_verifier`.
        code_challenge: String,
        /// The `nonce` the app expects in the id_token.
        nonce: Option<String>,
    },
}

/// What flows back up with an answer (a response extension): which route answered, how many
/// upstream attempts it took, the ids of the last upstream error among them, and why retrying
/// stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The route that answered (None: refused before routing).
    pub route: Option<RouteKind>,
    /// Upstream attempts made.
    pub attempts: u32,
    /// The `id`/`trace_id` of the last upstream error answer, if there was one.
    pub upstream: Option<UpstreamIds>,
    /// The retry policy's last decision (None: the request never reached it).
    pub stop: Option<Stop>,
}

impl Outcome {
    /// The route's label, or `none`.
    pub fn route_label(&self) -> &'static str {
        self.route.map_or("none", RouteKind::label)
    }
}
