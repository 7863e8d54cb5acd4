//! Signs one attempt from its plan: a new client assertion (form routes), a new DPoP proof
//! (with the server's nonce once it gave one), and `Authorization: DPoP` for resource calls.

use super::plan::Plan;
use super::Signing;
use crate::error::{ProblemCode, ProxyError};
use crate::jose::{
    self, AssertionClaims, EphemeralKey, ProofClaims, SigningKey, CLIENT_ASSERTION_TYPE,
};
use crate::route::{RequestContext, RouteKind};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request};
use rand::RngCore;
use std::time::SystemTime;

static DPOP: HeaderName = HeaderName::from_static("dpop");

/// The app's request, signed for one attempt.
pub(super) fn attempt(
    req: &Request<Bytes>,
    ctx: &RequestContext,
    plan: &Plan,
    signing: &Signing,
    nonce: Option<&str>,
    now: SystemTime,
) -> Result<Request<Bytes>, ProxyError> {
    let mut rng = rand::thread_rng();
    let mut headers = req.headers().clone();
    // The app's own proofs and credentials never go upstream.
    headers.remove(&DPOP);
    headers.remove(header::AUTHORIZATION);
    let body = match &plan.form {
        Some(form) => {
            let jkt = (ctx.route.kind == RouteKind::V4Token)
                .then(|| plan.key.as_deref().map(EphemeralKey::jkt))
                .flatten();
            let claims = AssertionClaims {
                client_id: &signing.client_id,
                aud: &ctx.aud,
                jkt,
                lifetime: signing.assertion_lifetime,
            };
            let keys = signing.keys.current();
            let assertion =
                client_assertion(keys.signing(), claims, now, &mut rng).map_err(internal)?;
            let mut out = form_urlencoded::Serializer::for_suffix(form.clone(), 0);
            out.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
            out.append_pair("client_assertion", &assertion);
            Bytes::from(out.finish())
        }
        None => req.body().clone(),
    };
    if let Some(key) = plan.key.as_deref().filter(|_| ctx.route.kind.uses_dpop()) {
        let claims = ProofClaims {
            htm: req.method().as_str(),
            htu: &ctx.htu,
            access_token: plan.token.as_deref(),
            nonce,
        };
        let proof = dpop_proof(key, claims, now, &mut rng).map_err(internal)?;
        set_sensitive(&mut headers, DPOP.clone(), &proof)?;
    }
    if let Some(token) = &plan.token {
        set_sensitive(
            &mut headers,
            header::AUTHORIZATION,
            &format!("DPoP {token}"),
        )?;
    }
    let mut signed = Request::new(body);
    *signed.method_mut() = req.method().clone();
    *signed.uri_mut() = req.uri().clone();
    *signed.version_mut() = req.version();
    *signed.headers_mut() = headers;
    *signed.extensions_mut() = req.extensions().clone();
    Ok(signed)
}

/// Signs a client assertion, counting it and its time.
fn client_assertion(
    key: &SigningKey,
    claims: AssertionClaims<'_>,
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Result<String, josekit::JoseError> {
    let started = std::time::Instant::now();
    let jwt = jose::client_assertion(key, claims, now, rng);
    crate::metrics::signed("client_assertion", started.elapsed());
    jwt
}

/// Signs a DPoP proof, counting it and its time.
fn dpop_proof(
    key: &EphemeralKey,
    claims: ProofClaims<'_>,
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Result<String, josekit::JoseError> {
    let started = std::time::Instant::now();
    let jwt = jose::dpop_proof(key, claims, now, rng);
    crate::metrics::signed("dpop_proof", started.elapsed());
    jwt
}

fn set_sensitive(headers: &mut HeaderMap, name: HeaderName, value: &str) -> Result<(), ProxyError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        ProxyError::new(
            ProblemCode::ValidationInvalidParameter,
            format!("the value for {name} contains characters not allowed in a header"),
        )
    })?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

/// A signing failure: logged, and answered as an internal error (never the key's details).
pub(super) fn internal(err: impl std::fmt::Display) -> ProxyError {
    tracing::error!(error = %err, "signing failed");
    ProxyError::new(
        ProblemCode::SystemInternalError,
        "the proxy could not sign the request; see its log",
    )
}
