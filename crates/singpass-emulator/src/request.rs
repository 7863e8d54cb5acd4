//! What every endpoint of the emulator works with: the request as read (body included), the
//! `jti`s the request log keeps, and the shapes of the successful answers.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

/// One request as the endpoints see it, body already read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EmulatorRequest<'a> {
    pub(crate) method: &'a Method,
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

/// A 200 JSON answer that no cache may keep.
pub(crate) fn json_response(body: &serde_json::Value) -> Response<Full<Bytes>> {
    typed_response(StatusCode::OK, body.to_string(), "application/json")
}

/// A JSON answer with another success status (PAR's 201).
pub(crate) fn json_response_with(
    status: StatusCode,
    body: &serde_json::Value,
) -> Response<Full<Bytes>> {
    typed_response(status, body.to_string(), "application/json")
}

/// A 200 answer whose body is a compact JOSE object (Myinfo v4's person).
pub(crate) fn jose_response(compact: String) -> Response<Full<Bytes>> {
    typed_response(StatusCode::OK, compact, "application/jose")
}

/// A 200 answer whose body is a compact JWT (OIDC userinfo, signed and encrypted).
pub(crate) fn jwt_response(compact: String) -> Response<Full<Bytes>> {
    typed_response(StatusCode::OK, compact, "application/jwt")
}

fn typed_response(
    status: StatusCode,
    body: String,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
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

/// The query of `request` as name/value pairs, decoded.
pub(crate) fn query_pairs(request: EmulatorRequest<'_>) -> Vec<(String, String)> {
    form_urlencoded::parse(request.query.unwrap_or_default().as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}
