//! Routing of the Singpass FAPI 2.0 issuer under `/fapi`: discovery, JWKS, PAR, the
//! browserless authorization endpoint, token and userinfo, and which methods each allows.

mod authorize;
pub(crate) mod grants;
mod par;
mod token;
mod userinfo;

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::Full;

use crate::discovery;
use crate::errors::Rejection;
use crate::faults::EmulatorRoute;
use crate::request::{EmulatorRequest, Observed};
use crate::state::EmulatorState;

/// Where the FAPI issuer lives on the emulator's origin (its `issuer` has no trailing slash).
pub(crate) const FAPI_PATH: &str = "/fapi";

/// The endpoints of the FAPI issuer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FapiEndpoint {
    Discovery,
    Jwks,
    Par,
    Authorize,
    Token,
    Userinfo,
}

impl FapiEndpoint {
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        match path.strip_prefix(FAPI_PATH)? {
            "/.well-known/openid-configuration" => Some(FapiEndpoint::Discovery),
            "/jwks" => Some(FapiEndpoint::Jwks),
            "/par" => Some(FapiEndpoint::Par),
            "/auth" => Some(FapiEndpoint::Authorize),
            "/token" => Some(FapiEndpoint::Token),
            "/userinfo" => Some(FapiEndpoint::Userinfo),
            _ => None,
        }
    }

    /// The faultable endpoint; None for the browser's authorization endpoint.
    pub(crate) fn route(self) -> Option<EmulatorRoute> {
        match self {
            FapiEndpoint::Discovery => Some(EmulatorRoute::Discovery),
            FapiEndpoint::Jwks => Some(EmulatorRoute::Jwks),
            FapiEndpoint::Par => Some(EmulatorRoute::Par),
            FapiEndpoint::Authorize => None,
            FapiEndpoint::Token => Some(EmulatorRoute::FapiToken),
            FapiEndpoint::Userinfo => Some(EmulatorRoute::Userinfo),
        }
    }

    pub(crate) fn serve(
        self,
        state: &EmulatorState,
        request: EmulatorRequest<'_>,
        observed: &mut Observed,
    ) -> Result<Response<Full<Bytes>>, Rejection> {
        let expected = match self {
            FapiEndpoint::Par | FapiEndpoint::Token => Method::POST,
            FapiEndpoint::Discovery
            | FapiEndpoint::Jwks
            | FapiEndpoint::Authorize
            | FapiEndpoint::Userinfo => Method::GET,
        };
        if *request.method != expected {
            return Err(Rejection::method_not_allowed());
        }
        match self {
            FapiEndpoint::Discovery => discovery::fapi_configuration(state),
            FapiEndpoint::Jwks => Ok(discovery::signing_keys(state)),
            FapiEndpoint::Par => par::push_authorization_request(state, request, observed),
            FapiEndpoint::Authorize => authorize::consent_to_pushed_request(state, request),
            FapiEndpoint::Token => token::exchange_fapi_code(state, request, observed),
            FapiEndpoint::Userinfo => userinfo::read_userinfo(state, request, observed),
        }
    }
}
