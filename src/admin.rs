//! The admin listener: `/metrics` (Prometheus text), `/healthz` (alive), `/readyz` (ready to
//! take traffic), `/.well-known/jwks.json` (the client's public keys, for Singpass to fetch).

use crate::discovery::Discovery;
use crate::key_source::KeyStore;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether the proxy should get traffic.
#[derive(Debug)]
pub(crate) struct Health {
    draining: AtomicBool,
    keys: Arc<KeyStore>,
    discoveries: Vec<Arc<Discovery>>,
}

impl Health {
    /// Health over these keys and discoveries.
    pub(crate) fn new(keys: Arc<KeyStore>, discoveries: Vec<Arc<Discovery>>) -> Self {
        Self {
            draining: AtomicBool::new(false),
            keys,
            discoveries,
        }
    }

    /// Marks the proxy as shutting down: readiness turns false at once.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// True once shutdown began.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Ready, or the reasons not.
    pub(crate) fn readiness(&self) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        if self.is_draining() {
            reasons.push("draining: shutting down".to_owned());
        }
        if self.keys.current().encryption().is_empty() {
            reasons.push("no encryption key loaded".to_owned());
        }
        for d in &self.discoveries {
            if !d.is_ready() {
                reasons.push(format!("discovery for {} not fetched yet", d.issuer()));
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

/// What the admin endpoints read.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    /// Readiness state.
    pub health: Arc<Health>,
    /// The client's keys (public halves are served).
    pub keys: Arc<KeyStore>,
}

impl Admin {
    /// Answers one admin request.
    pub(crate) fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
        }
        match req.uri().path() {
            "/metrics" => {
                let mut res = text(StatusCode::OK, &crate::metrics::render());
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                res
            }
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => match self.health.readiness() {
                Ok(()) => text(StatusCode::OK, "ready\n"),
                Err(reasons) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("not ready:\n{}\n", reasons.join("\n")),
                ),
            },
            "/.well-known/jwks.json" => jwks_response(&self.keys).map(Full::new),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: /metrics, /healthz, /readyz, /.well-known/jwks.json\n",
            ),
        }
    }
}

/// The public JWKS with a cache lifetime short enough for key rotation to reach Singpass
/// (which caches for about an hour itself).
pub(crate) fn jwks_response(keys: &KeyStore) -> Response<Bytes> {
    let body = keys.current().public_jwks().to_string();
    let mut res = Response::new(Bytes::from(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_owned())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}
