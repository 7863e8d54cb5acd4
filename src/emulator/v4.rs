//! Routing of the Myinfo v4 API under `base_path`: which endpoint a request is for, which
//! methods each allows, and the response helpers the endpoints share.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

use super::errors::Rejection;
use super::faults::EmulatorRoute;
use super::state::EmulatorState;
use super::{authorize, person_endpoint, token_endpoint};

/// One request as the endpoints see it, body already read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct V4Request<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a Bytes,
}

/// What the request log keeps beyond the raw request: the `jti`s that parsed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Observed {
    pub(crate) assertion_jti: Option<String>,
    pub(crate) proof_jti: Option<String>,
}

/// The endpoints of the v4 API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Authorize,
    Token,
    Person { sub: &'a str },
}

impl<'a> Endpoint<'a> {
    fn from_path(base_path: &str, path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix(base_path)?;
        match rest {
            "/authorize" => Some(Endpoint::Authorize),
            "/token" => Some(Endpoint::Token),
            _ => {
                let sub = rest.strip_prefix("/person/")?;
                (!sub.is_empty() && !sub.contains('/')).then_some(Endpoint::Person { sub })
            }
        }
    }

    fn allows(self, method: &Method) -> bool {
        match self {
            Endpoint::Authorize | Endpoint::Person { .. } => method == Method::GET,
            Endpoint::Token => method == Method::POST,
        }
    }
}

/// The faultable endpoint `path` names, whatever the method (a gateway in front of Singpass
/// routes on the path).
pub(crate) fn route_of(base_path: &str, path: &str) -> Option<EmulatorRoute> {
    match Endpoint::from_path(base_path, path)? {
        Endpoint::Token => Some(EmulatorRoute::Token),
        Endpoint::Person { .. } => Some(EmulatorRoute::Person),
        Endpoint::Authorize => None,
    }
}

/// Sends the request to its endpoint; a refusal comes back as a [`Rejection`].
pub(crate) fn route(
    state: &EmulatorState,
    request: V4Request<'_>,
    observed: &mut Observed,
) -> Result<Response<Full<Bytes>>, Rejection> {
    let endpoint = Endpoint::from_path(&state.config.base_path, request.path)
        .ok_or_else(Rejection::not_found)?;
    if !endpoint.allows(request.method) {
        return Err(Rejection::method_not_allowed());
    }
    match endpoint {
        Endpoint::Authorize => authorize::consent(state, request),
        Endpoint::Token => token_endpoint::exchange_code(state, request, observed),
        Endpoint::Person { sub } => person_endpoint::read_person(state, request, sub, observed),
    }
}

/// A 200 JSON answer that no cache may keep.
pub(crate) fn json_response(body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 200 answer whose body is a compact JOSE object.
pub(crate) fn jose_response(compact: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(compact)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jose"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 302 to `location`.
pub(crate) fn redirect(location: HeaderValue) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    response.headers_mut().insert(header::LOCATION, location);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_endpoints() {
        let base = "/com/v4";
        assert_eq!(
            Endpoint::from_path(base, "/com/v4/token"),
            Some(Endpoint::Token)
        );
        assert_eq!(
            Endpoint::from_path(base, "/com/v4/person/abc"),
            Some(Endpoint::Person { sub: "abc" })
        );
        assert_eq!(Endpoint::from_path(base, "/com/v4/person/"), None);
        assert_eq!(Endpoint::from_path(base, "/com/v4/person/a/b"), None);
        assert_eq!(Endpoint::from_path(base, "/com/v4/tokens"), None);
        assert_eq!(Endpoint::from_path(base, "/token"), None);
    }
}
