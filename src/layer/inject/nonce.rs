//! DPoP nonces (RFC 9449 sections 8 and 9): the newest nonce each upstream origin handed out,
//! behind [`NonceStore`] so that replicas can share it, and how a nonce demand looks.

use crate::upstream_answer::error_body;
use bytes::Bytes;
use http::{header, Response, StatusCode};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

static DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// A boxed future of a [`NonceStore`] call.
pub type NonceFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the newest `DPoP-Nonce` of each upstream origin (`scheme://host:port`) is kept. Both
/// calls are on the request path, so a shared store answers from a local copy whenever it
/// can: `newest` may wait for it the first time an origin is signed for (to pick up what other
/// replicas learned), and `remember` only when the nonce changed (to tell them before the
/// answer goes back). Neither may fail: a store that cannot be reached keeps its own copy.
pub trait NonceStore: Send + Sync + 'static {
    /// The nonce to put in the next proof for `origin`, if the server ever gave one.
    fn newest<'a>(&'a self, origin: &'a str) -> NonceFuture<'a, Option<String>>;
    /// Keeps the nonce an answer from `origin` carried.
    fn remember<'a>(&'a self, origin: &'a str, nonce: &'a str) -> NonceFuture<'a, ()>;
}

/// The nonces of this process, one per origin (a handful of origins: bounded by the config).
#[derive(Debug, Default)]
pub struct MemoryNonces {
    by_origin: Mutex<HashMap<String, String>>,
}

/// Answers at once: the future is ready when made.
impl NonceStore for MemoryNonces {
    fn newest<'a>(&'a self, origin: &'a str) -> NonceFuture<'a, Option<String>> {
        let held = self
            .by_origin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(origin)
            .cloned();
        Box::pin(std::future::ready(held))
    }

    fn remember<'a>(&'a self, origin: &'a str, nonce: &'a str) -> NonceFuture<'a, ()> {
        let mut map = self.by_origin.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(origin).map(String::as_str) != Some(nonce) {
            map.insert(origin.to_owned(), nonce.to_owned());
        }
        Box::pin(std::future::ready(()))
    }
}

/// The `DPoP-Nonce` an answer carries, if it is usable in a proof: a nonce is an opaque
/// token68-ish string; anything empty or oversized is ignored.
pub(super) fn handed_out(res: &Response<Bytes>) -> Option<&str> {
    res.headers()
        .get(&DPOP_NONCE)
        .and_then(|v| v.to_str().ok())
        .filter(|n| !n.is_empty() && n.len() <= 512)
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
pub(super) fn asks_for_nonce(res: &mut Response<Bytes>) -> bool {
    match res.status() {
        StatusCode::BAD_REQUEST => error_body(res).error.as_deref() == Some("use_dpop_nonce"),
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
        assert!(asks_for_nonce(&mut res(
            400,
            &[],
            r#"{"error":"use_dpop_nonce"}"#
        )));
        assert!(!asks_for_nonce(&mut res(
            400,
            &[],
            r#"{"error":"invalid_dpop_proof"}"#
        )));
        assert!(asks_for_nonce(&mut res(
            401,
            &[(
                "www-authenticate",
                r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
            )],
            ""
        )));
        assert!(!asks_for_nonce(&mut res(
            401,
            &[("www-authenticate", r#"DPoP error="invalid_token""#)],
            ""
        )));
        assert!(!asks_for_nonce(&mut res(
            500,
            &[],
            r#"{"error":"use_dpop_nonce"}"#
        )));
    }

    #[tokio::test]
    async fn keeps_the_newest_nonce_per_origin() {
        let store = MemoryNonces::default();
        store.remember("https://a", "n1").await;
        store.remember("https://a", "n2").await;
        assert_eq!(store.newest("https://a").await.as_deref(), Some("n2"));
        assert_eq!(store.newest("https://b").await, None);
        assert_eq!(
            handed_out(&res(200, &[("dpop-nonce", "n3")], "")),
            Some("n3")
        );
        assert_eq!(handed_out(&res(200, &[("dpop-nonce", "")], "")), None);
        assert_eq!(handed_out(&res(200, &[], "")), None);
        assert_eq!(
            origin("https://id.example:8443/fapi/token?x=1"),
            "https://id.example:8443"
        );
    }
}
