//! DPoP nonces (RFC 9449 sections 8 and 9): the newest nonce each upstream origin handed out.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use std::collections::HashMap;
use std::sync::Mutex;

static DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// The newest `DPoP-Nonce` per origin (`scheme://host:port`).
#[derive(Debug, Default)]
pub struct NonceStore {
    by_origin: Mutex<HashMap<String, String>>,
}

impl NonceStore {
    /// The nonce to put in the next proof for `origin`, if the server ever gave one.
    pub fn get(&self, origin: &str) -> Option<String> {
        self.by_origin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(origin)
            .cloned()
    }

    /// Keeps the nonce an answer carries; true when it differs from the one already held.
    pub fn observe(&self, origin: &str, res: &Response<Bytes>) -> bool {
        let Some(nonce) = res.headers().get(&DPOP_NONCE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        // A nonce is a token68-ish opaque string; refuse anything that could not go in a JWT
        // claim sensibly (and bound its size).
        if nonce.is_empty() || nonce.len() > 512 {
            return false;
        }
        let mut map = self.by_origin.lock().unwrap_or_else(|p| p.into_inner());
        let changed = map.get(origin).map(String::as_str) != Some(nonce);
        if changed {
            map.insert(origin.to_owned(), nonce.to_owned());
        }
        changed
    }
}

/// `scheme://authority` of a URL.
pub(super) fn origin(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map_or("", |a| a.as_str())
        ),
        Err(_) => url.to_owned(),
    }
}

/// An authorization server's `400 {"error":"use_dpop_nonce"}` or a resource server's `401`
/// with `WWW-Authenticate: DPoP error="use_dpop_nonce"`.
pub(super) fn asks_for_nonce(res: &Response<Bytes>) -> bool {
    match res.status() {
        StatusCode::BAD_REQUEST => {
            #[derive(serde::Deserialize)]
            struct OAuthError {
                error: Option<String>,
            }
            serde_json::from_slice::<OAuthError>(res.body())
                .is_ok_and(|e| e.error.as_deref() == Some("use_dpop_nonce"))
        }
        StatusCode::UNAUTHORIZED => res
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.trim_start()
                    .get(..5)
                    .is_some_and(|s| s.eq_ignore_ascii_case("dpop "))
                    && v.contains("use_dpop_nonce")
            }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<Bytes> {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Bytes::from_static(body.as_bytes())).unwrap()
    }

    #[test]
    fn recognises_both_nonce_demands() {
        assert!(asks_for_nonce(&res(
            400,
            &[],
            r#"{"error":"use_dpop_nonce"}"#
        )));
        assert!(!asks_for_nonce(&res(
            400,
            &[],
            r#"{"error":"invalid_dpop_proof"}"#
        )));
        assert!(asks_for_nonce(&res(
            401,
            &[(
                "www-authenticate",
                r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
            )],
            ""
        )));
        assert!(!asks_for_nonce(&res(
            401,
            &[("www-authenticate", r#"DPoP error="invalid_token""#)],
            ""
        )));
        assert!(!asks_for_nonce(&res(
            500,
            &[],
            r#"{"error":"use_dpop_nonce"}"#
        )));
    }

    #[test]
    fn keeps_the_newest_nonce_per_origin() {
        let store = NonceStore::default();
        assert!(store.observe("https://a", &res(200, &[("dpop-nonce", "n1")], "")));
        assert!(
            !store.observe("https://a", &res(200, &[("dpop-nonce", "n1")], "")),
            "same nonce is not news"
        );
        assert!(store.observe("https://a", &res(400, &[("dpop-nonce", "n2")], "")));
        assert!(!store.observe("https://a", &res(200, &[], "")));
        assert_eq!(store.get("https://a").as_deref(), Some("n2"));
        assert_eq!(store.get("https://b"), None);
        assert_eq!(
            origin("https://id.example:8443/fapi/token?x=1"),
            "https://id.example:8443"
        );
    }
}
