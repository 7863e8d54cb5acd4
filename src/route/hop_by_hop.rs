//! Hop-by-hop headers: what a proxy must not pass on, in requests and in answers alike.

use http::{header, HeaderMap, HeaderName, HeaderValue};

/// Drops the RFC 9110 section 7.6.1 connection-specific headers and any the `Connection`
/// header names (a proxy's own duty; tower-http has no layer for it). One pass over the names
/// finds them; a request or answer without any is left as it is. An upstream's usual
/// `Connection: keep-alive` costs one removal and no allocation: options that are themselves
/// connection-specific headers go with the fixed list, the others are looked up as they are, not
/// made into `HeaderName`s.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if let http::header::Entry::Occupied(connection) = headers.entry(header::CONNECTION) {
        let (_, mut values) = connection.remove_entry_mult();
        // Almost always one value; the drain borrows the map, so the values come out first.
        let first = values.next();
        let rest: Vec<HeaderValue> = values.collect();
        for value in first.iter().chain(&rest) {
            let Ok(value) = value.to_str() else { continue };
            for name in value.split(',').map(str::trim) {
                if !is_listed(name) {
                    // `&str` names that are not valid header names match nothing.
                    headers.remove(name);
                }
            }
        }
    }
    while let Some(name) = headers.keys().find(|name| is_hop_by_hop(name)).cloned() {
        headers.remove(name);
    }
}

/// One of the connection-specific headers.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// A `Connection` option that names one of the fixed list (removed with it).
fn is_listed(option: &str) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|hop| hop.as_str().eq_ignore_ascii_case(option))
}

/// The connection-specific headers of RFC 9110 section 7.6.1 (and two old ones).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn connection_specific_headers_and_named_options_go_the_rest_stays() {
        let mut headers = map(&[
            ("connection", "Keep-Alive, X-Trace-Hop"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("x-trace-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic eA=="),
            ("content-type", "application/json"),
            ("x-request-id", "r-1"),
        ]);
        strip_hop_by_hop(&mut headers);
        assert_eq!(names(&headers), ["content-type", "x-request-id"]);
    }

    #[test]
    fn a_map_without_any_is_left_as_it_is() {
        let mut headers = map(&[("content-type", "text/plain"), ("accept", "*/*")]);
        let before = headers.clone();
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers, before);
        // An option that is not a header name matches nothing.
        let mut odd = map(&[("connection", "not a name, ,"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut odd);
        assert_eq!(names(&odd), ["accept"]);
    }
}
