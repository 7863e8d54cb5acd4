//! The kinds of route: the names `[upstream.routes.<name>]` is parsed into, and what each route
//! calls upstream (and so what the inject layer adds).

use super::UpstreamKind;
use http::Method;

/// What kind of call a route makes upstream, which decides what the inject layer adds. The
/// config parses `[upstream.routes.<name>]` straight into this (the name depends on the
/// upstream's kind: `token` is [`RouteKind::V4Token`] under a `myinfo-v4` upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// Every route kind, in declaration order (`ALL[k as usize] == k`).
    pub const ALL: [RouteKind; 8] = [
        Self::V4Token,
        Self::V4Person,
        Self::FapiPar,
        Self::FapiToken,
        Self::FapiUserinfo,
        Self::CibaAuth,
        Self::CibaToken,
        Self::Passthrough,
    ];
    /// The routes of an upstream kind, in the order they are matched.
    pub fn of(kind: UpstreamKind) -> &'static [RouteKind] {
        match kind {
            UpstreamKind::MyinfoV4 => &[Self::V4Token, Self::V4Person],
            UpstreamKind::SingpassFapi => &[Self::FapiPar, Self::FapiToken, Self::FapiUserinfo],
            UpstreamKind::SingpassCiba => &[Self::CibaAuth, Self::CibaToken],
            UpstreamKind::Passthrough => &[Self::Passthrough],
        }
    }
    /// The route of `kind` called `name` in `[upstream.routes.<name>]`, if there is one.
    pub fn named(kind: UpstreamKind, name: &str) -> Option<RouteKind> {
        Self::of(kind)
            .iter()
            .copied()
            .find(|r| r.config_name() == name)
    }
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
    /// Whether `decrypt = true` is allowed: the route's answer is a JWE.
    pub fn decryptable(self) -> bool {
        matches!(self, Self::V4Person | Self::FapiToken | Self::FapiUserinfo)
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
}

#[cfg(test)]
mod tests {
    use super::RouteKind;

    #[test]
    fn all_lists_every_kind_at_its_own_index() {
        for (i, kind) in RouteKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind:?}");
        }
    }
}
