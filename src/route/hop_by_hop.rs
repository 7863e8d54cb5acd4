//! Hop-by-hop headers: what a proxy must not pass on, in requests and in answers alike.

use http::{header, HeaderMap, HeaderName, HeaderValue};

/// Drops the RFC 9110 section 7.6.1 connection-specific headers and any the `Connection`
/// header names (a proxy's own duty; tower-http has no layer for it). One pass over the names
/// finds them; a request or answer without any is left as it is. An upstream's usual
/// `Connection: keep-alive` costs one removal per name it lists, with no allocation: the
/// names are looked up as they are, not made into `HeaderName`s.
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
            for name in value.split(',') {
                // `&str` names that are not valid header names match nothing.
                headers.remove(name.trim());
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
