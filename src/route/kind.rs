//! The kinds of route: what each calls upstream, and so what the inject layer adds.

use crate::config::UpstreamKind;
use crate::discovery::Endpoint;
use http::Method;

/// What kind of call a route makes upstream, which decides what the inject layer adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Myinfo v4 `POST /token`.
    V4Token,
    /// Myinfo v4 `GET /person/{sub}`.
    V4Person,
    /// FAPI pushed authorization request.
    FapiPar,
    /// FAPI token (authorization code grant).
    FapiToken,
    /// FAPI userinfo (Myinfo v5).
    FapiUserinfo,
    /// CIBA backchannel authentication request.
    CibaAuth,
    /// CIBA token poll.
    CibaToken,
    /// Any path under a passthrough upstream's prefix, any method, unsigned.
    Passthrough,
}

impl RouteKind {
    /// The one method this route takes.
    pub fn method(self) -> Method {
        match self {
            Self::V4Person | Self::FapiUserinfo => Method::GET,
            _ => Method::POST,
        }
    }
    /// The `Allow` header value for this route.
    pub fn allow(self) -> &'static str {
        match self.method() {
            Method::GET => "GET",
            _ => "POST",
        }
    }
    /// A fixed label for logs and metrics (never user data).
    pub fn label(self) -> &'static str {
        match self {
            Self::V4Token => "v4_token",
            Self::V4Person => "v4_person",
            Self::FapiPar => "fapi_par",
            Self::FapiToken => "fapi_token",
            Self::FapiUserinfo => "fapi_userinfo",
            Self::CibaAuth => "ciba_auth",
            Self::CibaToken => "ciba_token",
            Self::Passthrough => "passthrough",
        }
    }
    /// The name of this route in `[upstream.routes.<name>]`.
    pub fn config_name(self) -> &'static str {
        match self {
            Self::V4Token | Self::FapiToken | Self::CibaToken => "token",
            Self::V4Person => "person",
            Self::FapiPar => "par",
            Self::FapiUserinfo => "userinfo",
            Self::CibaAuth => "auth",
            Self::Passthrough => "all",
        }
    }
    /// The local path under the upstream's prefix (`{sub}`: one path segment).
    pub fn local_path(self) -> &'static str {
        match self {
            Self::V4Token | Self::FapiToken | Self::CibaToken => "/token",
            Self::V4Person => "/person/{sub}",
            Self::FapiPar => "/par",
            Self::FapiUserinfo => "/userinfo",
            Self::CibaAuth => "/bc-auth",
            Self::Passthrough => "/*",
        }
    }
    /// Whether each attempt carries a DPoP proof (CIBA has none).
    pub fn uses_dpop(self) -> bool {
        !matches!(self, Self::CibaAuth | Self::CibaToken | Self::Passthrough)
    }
    /// Whether the route takes `method` (a passthrough takes any but CONNECT).
    pub fn takes(self, method: &Method) -> bool {
        match self {
            Self::Passthrough => method != Method::CONNECT,
            _ => *method == self.method(),
        }
    }
    /// The routes of an upstream kind.
    pub fn of(kind: UpstreamKind) -> &'static [RouteKind] {
        match kind {
            UpstreamKind::MyinfoV4 => &[Self::V4Token, Self::V4Person],
            UpstreamKind::SingpassFapi => &[Self::FapiPar, Self::FapiToken, Self::FapiUserinfo],
            UpstreamKind::SingpassCiba => &[Self::CibaAuth, Self::CibaToken],
            UpstreamKind::Passthrough => &[Self::Passthrough],
        }
    }
    pub(super) fn endpoint(self) -> Option<Endpoint> {
        match self {
            Self::V4Token | Self::V4Person | Self::Passthrough => None,
            Self::FapiPar => Some(Endpoint::Par),
            Self::FapiToken | Self::CibaToken => Some(Endpoint::Token),
            Self::FapiUserinfo => Some(Endpoint::Userinfo),
            Self::CibaAuth => Some(Endpoint::BackchannelAuthentication),
        }
    }
}
