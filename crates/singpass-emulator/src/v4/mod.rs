//! Routing of the Myinfo v4 API under `base_path`: which endpoint a request is for, and which
//! methods each allows.

pub(crate) mod authorize;
mod person;
pub(crate) mod token;

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::Full;

use crate::discovery;
use crate::errors::Rejection;
use crate::faults::EmulatorRoute;
use crate::request::{EmulatorRequest, Observed};
use crate::state::EmulatorState;

/// The endpoints of the v4 API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum V4Endpoint<'a> {
    Authorize,
    Token,
    Person {
        sub: &'a str,
    },
    /// The emulator's signing keys (to verify the person JWS), as under the other issuers.
    Jwks,
}

impl<'a> V4Endpoint<'a> {
    pub(crate) fn from_path(base_path: &str, path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix(base_path)?;
        match rest {
            "/authorize" => Some(V4Endpoint::Authorize),
            "/token" => Some(V4Endpoint::Token),
            "/jwks" => Some(V4Endpoint::Jwks),
            _ => {
                let sub = rest.strip_prefix("/person/")?;
                (!sub.is_empty() && !sub.contains('/')).then_some(V4Endpoint::Person { sub })
            }
        }
    }

    fn allows(self, method: &Method) -> bool {
        match self {
            V4Endpoint::Authorize | V4Endpoint::Person { .. } | V4Endpoint::Jwks => {
                method == Method::GET
            }
            V4Endpoint::Token => method == Method::POST,
        }
    }

    /// The faultable endpoint, whatever the method (a gateway in front of Singpass routes on
    /// the path).
    pub(crate) fn route(self) -> Option<EmulatorRoute> {
        match self {
            V4Endpoint::Token => Some(EmulatorRoute::Token),
            V4Endpoint::Person { .. } => Some(EmulatorRoute::Person),
            V4Endpoint::Jwks => Some(EmulatorRoute::Jwks),
            V4Endpoint::Authorize => None,
        }
    }

    /// Sends the request to this endpoint; a refusal comes back as a [`Rejection`].
    pub(crate) fn serve(
        self,
        state: &EmulatorState,
        request: EmulatorRequest<'_>,
        observed: &mut Observed,
    ) -> Result<Response<Full<Bytes>>, Rejection> {
        if !self.allows(request.method) {
            return Err(Rejection::method_not_allowed());
        }
        match self {
            V4Endpoint::Authorize => authorize::consent(state, request),
            V4Endpoint::Token => token::exchange_code(state, request, observed),
            V4Endpoint::Person { sub } => person::read_person(state, request, sub, observed),
            V4Endpoint::Jwks => Ok(discovery::signing_keys(state)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_endpoints() {
        let base = "/com/v4";
        let endpoint = |path| V4Endpoint::from_path(base, path);
        assert_eq!(endpoint("/com/v4/token"), Some(V4Endpoint::Token));
        assert_eq!(endpoint("/com/v4/jwks"), Some(V4Endpoint::Jwks));
        assert_eq!(
            endpoint("/com/v4/person/abc"),
            Some(V4Endpoint::Person { sub: "abc" })
        );
        assert_eq!(endpoint("/com/v4/person/"), None);
        assert_eq!(endpoint("/com/v4/person/a/b"), None);
        assert_eq!(endpoint("/com/v4/tokens"), None);
        assert_eq!(endpoint("/token"), None);
    }
}
