//! The non-FAPI Singpass issuer at the emulator's root, as far as CIBA needs it: discovery,
//! JWKS, `POST /bc-auth` (backchannel authentication, poll mode) and `POST /token` (polling,
//! in `token.rs`).
//!
//! No DPoP is documented for CIBA: a `DPoP` header sent anyway is ignored, not refused.

pub(crate) mod grants;
mod token;

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::Full;
use tokio::time::Instant;

use crate::checks::client_auth::{require_fields, PresentedClient};
use crate::checks::jose::unix_now;
use crate::discovery;
use crate::errors::Rejection;
use crate::faults::EmulatorRoute;
use crate::form::FormBody;
use crate::request::{json_response, EmulatorRequest, Observed};
use crate::state::EmulatorState;
use grants::{AUTH_REQ_LIFETIME, POLL_INTERVAL};

/// The endpoints at the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RootEndpoint {
    Discovery,
    Jwks,
    BackchannelAuthentication,
    Token,
}

impl RootEndpoint {
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        match path {
            "/.well-known/openid-configuration" => Some(RootEndpoint::Discovery),
            "/jwks" => Some(RootEndpoint::Jwks),
            "/bc-auth" => Some(RootEndpoint::BackchannelAuthentication),
            "/token" => Some(RootEndpoint::Token),
            _ => None,
        }
    }

    pub(crate) fn route(self) -> EmulatorRoute {
        match self {
            RootEndpoint::Discovery => EmulatorRoute::Discovery,
            RootEndpoint::Jwks => EmulatorRoute::Jwks,
            RootEndpoint::BackchannelAuthentication => EmulatorRoute::CibaAuth,
            RootEndpoint::Token => EmulatorRoute::CibaToken,
        }
    }

    pub(crate) async fn serve(
        self,
        state: &EmulatorState,
        request: EmulatorRequest<'_>,
        observed: &mut Observed,
    ) -> Result<Response<Full<Bytes>>, Rejection> {
        let expected = match self {
            RootEndpoint::Discovery | RootEndpoint::Jwks => Method::GET,
            RootEndpoint::BackchannelAuthentication | RootEndpoint::Token => Method::POST,
        };
        if *request.method != expected {
            return Err(Rejection::method_not_allowed());
        }
        match self {
            RootEndpoint::Discovery => discovery::ciba_configuration(state),
            RootEndpoint::Jwks => Ok(discovery::signing_keys(state)),
            RootEndpoint::BackchannelAuthentication => {
                start_backchannel_authentication(state, request, observed)
            }
            RootEndpoint::Token => token::poll_for_tokens(state, request, observed).await,
        }
    }
}

/// `POST /bc-auth`: client assertion for the root issuer, `login_hint`, `scope` with
/// `openid`. Answers `{"auth_req_id", "expires_in": 120, "interval": 5}`.
fn start_backchannel_authentication(
    state: &EmulatorState,
    request: EmulatorRequest<'_>,
    observed: &mut Observed,
) -> Result<Response<Full<Bytes>>, Rejection> {
    let now = unix_now();
    let form =
        FormBody::parse(request).map_err(|rejection| rejection.or_oauth("invalid_request"))?;
    require_fields(&form, &["scope", "login_hint"])?;
    let client = PresentedClient::read(&form, state, false)?;
    client.authenticate(state, &state.origin, now, observed)?;
    let scope = form
        .required("scope")
        .map_err(|rejection| rejection.or_oauth("invalid_request"))?;
    if !scope.split_whitespace().any(|value| value == "openid") {
        return Err(Rejection::invalid_scope("scope must contain openid"));
    }
    let auth_req_id = state.ciba.open(scope, Instant::now());
    Ok(json_response(&serde_json::json!({
        "auth_req_id": auth_req_id,
        "expires_in": AUTH_REQ_LIFETIME.as_secs(),
        "interval": POLL_INTERVAL.as_secs(),
    })))
}
