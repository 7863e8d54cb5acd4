//! The request that goes upstream: the app's request with the upstream URL (and the app's
//! query), the upstream's `Host`, HTTP/1.1, no hop-by-hop headers, and its [`RequestFacts`].

use super::hop_by_hop::strip_hop_by_hop;
use super::{Destination, Target};
use crate::error::{ProblemCode, ProxyError};
use crate::layer::RequestFacts;
use bytes::Bytes;
use http::{header, HeaderValue, Request};
use std::sync::Arc;

/// The app's request made ready for the upstream: the upstream URL with the app's query,
/// HTTP/1.1 (the client negotiates), no hop-by-hop headers, and the request's facts.
pub(super) async fn upstream_request(
    req: Request<Bytes>,
    destination: Destination,
    deadline: tokio::time::Instant,
) -> Result<Request<Bytes>, ProxyError> {
    prepare(req, destination.resolve().await?, deadline)
}

/// [`upstream_request`] once the URL is known.
fn prepare(
    req: Request<Bytes>,
    target: Target,
    deadline: tokio::time::Instant,
) -> Result<Request<Bytes>, ProxyError> {
    let (parts, body) = req.into_parts();
    let mut uri = String::with_capacity(target.url.len() + query_room(&parts.uri));
    uri.push_str(&target.url);
    forward(parts, body, uri, target, None, deadline)
}

/// [`prepare`] for a URL from config, which [`Router::find`] made with room for the query:
/// the URI is made in it (one allocation fewer per request).
pub(super) fn prepare_fixed(
    req: Request<Bytes>,
    url: String,
    host: Option<HeaderValue>,
    deadline: tokio::time::Instant,
) -> Result<Request<Bytes>, ProxyError> {
    let (parts, body) = req.into_parts();
    let htu: Arc<str> = url.as_str().into();
    let target = Target {
        aud: htu.clone(),
        url: htu,
    };
    forward(parts, body, url, target, host, deadline)
}

/// Bytes a URI needs for its query (`?` and the query), if it has one.
pub(super) fn query_room(uri: &http::Uri) -> usize {
    uri.query().map_or(0, |q| q.len() + 1)
}

/// The `Host` the upstream client would give requests to `base_url` ([`crate::upstream::host_of`]),
/// made once per upstream instead of once per request. None where the URL's authority is not
/// exactly that (user info, or an explicit default port): the client then sets it, so that
/// `Host` never differs from an HTTP/2 `:authority`.
pub(crate) fn host_header(base_url: &str) -> Option<HeaderValue> {
    let uri: http::Uri = base_url.parse().ok()?;
    let host = crate::upstream::host_of(&uri)?;
    (uri.authority()?.as_str().as_bytes() == host.as_bytes()).then_some(host)
}

/// The request for the upstream: `uri` (the target's URL) with the app's query, and `host`
/// (None: the client sets it).
fn forward(
    mut parts: http::request::Parts,
    body: Bytes,
    mut uri: String,
    target: Target,
    host: Option<HeaderValue>,
    deadline: tokio::time::Instant,
) -> Result<Request<Bytes>, ProxyError> {
    if let Some(q) = parts.uri.query() {
        uri.push('?');
        uri.push_str(q);
    }
    // From the String itself: its bytes become the URI's, uncopied.
    parts.uri = http::Uri::try_from(uri).map_err(|_| {
        ProxyError::new(
            ProblemCode::ValidationInvalidParameter,
            "the request path or query is not a valid URI",
        )
    })?;
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    // The app's `Host` names the proxy; the upstream's replaces it.
    match host {
        Some(host) => parts.headers.insert(header::HOST, host),
        None => parts.headers.remove(header::HOST),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .extensions
        .insert(RequestFacts::new(target.url, target.aud, deadline));
    Ok(Request::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::host_header;

    #[test]
    fn the_host_header_is_what_the_client_would_send() {
        let host = |url: &str| host_header(url).map(|h| h.to_str().unwrap().to_owned());
        assert_eq!(
            host("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            host("https://api.myinfo.gov.sg/com/v4").as_deref(),
            Some("api.myinfo.gov.sg")
        );
        assert_eq!(host("http://[::1]:9000/x").as_deref(), Some("[::1]:9000"));
        // Left to the client: an explicit default port, user info.
        assert_eq!(host("https://api.myinfo.gov.sg:443/com/v4"), None);
        assert_eq!(host("http://user@example.test:8080"), None);
    }
}
