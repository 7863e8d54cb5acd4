//! The request that goes upstream: the app's request with the upstream URL (and the app's
//! query), HTTP/1.1, no hop-by-hop headers, and its [`RequestFacts`].

use super::hop_by_hop::strip_hop_by_hop;
use super::{Destination, Target};
use crate::error::{ProblemCode, ProxyError};
use crate::layer::RequestFacts;
use bytes::Bytes;
use http::{header, Request};
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
    forward(parts, body, uri, target, deadline)
}

/// [`prepare`] for a URL from config, which [`Router::find`] made with room for the query:
/// the URI is made in it (one allocation fewer per request).
pub(super) fn prepare_fixed(
    req: Request<Bytes>,
    url: String,
    deadline: tokio::time::Instant,
) -> Result<Request<Bytes>, ProxyError> {
    let (parts, body) = req.into_parts();
    let htu: Arc<str> = url.as_str().into();
    let target = Target {
        aud: htu.clone(),
        url: htu,
    };
    forward(parts, body, url, target, deadline)
}

/// Bytes a URI needs for its query (`?` and the query), if it has one.
pub(super) fn query_room(uri: &http::Uri) -> usize {
    uri.query().map_or(0, |q| q.len() + 1)
}

/// The request for the upstream: `uri` (the target's URL) with the app's query.
fn forward(
    mut parts: http::request::Parts,
    body: Bytes,
    mut uri: String,
    target: Target,
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
    parts.headers.remove(header::HOST);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .extensions
        .insert(RequestFacts::new(target.url, target.aud, deadline));
    Ok(Request::from_parts(parts, body))
}
