//! Which of the three APIs on the emulator's one port a path names — Myinfo v4 under its base
//! path, the FAPI issuer under `/fapi`, the CIBA issuer at the root — and the faultable route.
//!
//! v4 is matched first, so its behaviour never changes. A v4 base path of "" or "/fapi" would
//! therefore shadow CIBA's `/token` or the FAPI issuer: keep v4 under its own prefix (the
//! default "/com/v4") when FAPI or CIBA are used.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

use crate::ciba::RootEndpoint;
use crate::errors::Rejection;
use crate::fapi::FapiEndpoint;
use crate::faults::EmulatorRoute;
use crate::request::{EmulatorRequest, Observed};
use crate::state::EmulatorState;
use crate::v4::V4Endpoint;

/// The endpoint a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    V4(V4Endpoint<'a>),
    Fapi(FapiEndpoint),
    Root(RootEndpoint),
}

impl<'a> Target<'a> {
    pub(crate) fn of(v4_base_path: &str, path: &'a str) -> Option<Self> {
        V4Endpoint::from_path(v4_base_path, path)
            .map(Target::V4)
            .or_else(|| FapiEndpoint::from_path(path).map(Target::Fapi))
            .or_else(|| RootEndpoint::from_path(path).map(Target::Root))
    }

    /// The faultable endpoint, whatever the method (a gateway routes on the path).
    pub(crate) fn route(self) -> Option<EmulatorRoute> {
        match self {
            Target::V4(endpoint) => endpoint.route(),
            Target::Fapi(endpoint) => endpoint.route(),
            Target::Root(endpoint) => Some(endpoint.route()),
        }
    }

    /// Whether answers carry the FAPI issuer's `DPoP-Nonce` (while nonces are required).
    pub(crate) fn hands_out_dpop_nonces(self) -> bool {
        matches!(self, Target::Fapi(_))
    }

    async fn serve(
        self,
        state: &EmulatorState,
        request: EmulatorRequest<'_>,
        observed: &mut Observed,
    ) -> Result<Response<Full<Bytes>>, Rejection> {
        match self {
            Target::V4(endpoint) => endpoint.serve(state, request, observed),
            Target::Fapi(endpoint) => endpoint.serve(state, request, observed),
            Target::Root(endpoint) => endpoint.serve(state, request, observed).await,
        }
    }
}

/// Sends the request to its endpoint; an unknown path is a Singpass-shaped 404. Only a CIBA
/// poll ever waits (while it is held).
pub(crate) async fn serve(
    state: &EmulatorState,
    target: Option<Target<'_>>,
    request: EmulatorRequest<'_>,
    observed: &mut Observed,
) -> Result<Response<Full<Bytes>>, Rejection> {
    target
        .ok_or_else(Rejection::not_found)?
        .serve(state, request, observed)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_gets_its_paths() {
        let target = |path| Target::of("/com/v4", path);
        assert_eq!(target("/com/v4/token"), Some(Target::V4(V4Endpoint::Token)));
        assert_eq!(
            target("/fapi/token"),
            Some(Target::Fapi(FapiEndpoint::Token))
        );
        assert_eq!(target("/token"), Some(Target::Root(RootEndpoint::Token)));
        assert_eq!(
            target("/fapi/.well-known/openid-configuration").and_then(Target::route),
            Some(EmulatorRoute::Discovery)
        );
        assert_eq!(target("/fapi/auth").and_then(Target::route), None);
        assert_eq!(target("/fapi"), None);
        assert_eq!(target("/fapi/token/"), None);
        assert_eq!(target("/nope"), None);
        // An empty v4 base path shadows CIBA's token endpoint.
        assert_eq!(
            Target::of("", "/token"),
            Some(Target::V4(V4Endpoint::Token))
        );
    }
}
