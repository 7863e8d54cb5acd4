//! Signs one attempt: a new client assertion (form routes), a new DPoP proof (with the
//! server's newest nonce once it gave one), and `Authorization: DPoP` for resource calls.

use super::Signing;
use crate::config::RouteKind;
use crate::error::{ProblemCode, ProxyError};
use crate::jose::{
    self, AssertionClaims, EphemeralKey, ProofClaims, SigningKey, CLIENT_ASSERTION_TYPE,
};
use crate::layer::RequestFacts;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request};
use rand::RngCore;
use std::time::SystemTime;

static DPOP: HeaderName = HeaderName::from_static("dpop");

/// The app's request, signed for one attempt.
pub(super) fn attempt(
    mut req: Request<Bytes>,
    facts: &RequestFacts,
    route: RouteKind,
    signing: &Signing,
    nonce: Option<&str>,
    now: SystemTime,
) -> Result<Request<Bytes>, ProxyError> {
    let missing = |fact: &str| {
        ProxyError::new(
            ProblemCode::SystemInternalError,
            format!("the request's RequestFacts have no {fact} for a {} call: the route's local checks choose it", route.label()),
        )
    };
    let key = match route.uses_dpop() {
        true => Some(facts.key.as_deref().ok_or_else(|| missing("key"))?),
        false => None,
    };
    let resource = matches!(route, RouteKind::V4Person | RouteKind::FapiUserinfo);
    let token = match resource {
        true => Some(
            facts
                .token
                .as_deref()
                .ok_or_else(|| missing("access token"))?,
        ),
        false => None,
    };
    let mut rng = rand::thread_rng();
    // The app's own proofs and credentials never go upstream.
    req.headers_mut().remove(&DPOP);
    req.headers_mut().remove(header::AUTHORIZATION);
    if !resource {
        let jkt = key
            .filter(|_| route == RouteKind::V4Token)
            .map(EphemeralKey::jkt);
        let claims = AssertionClaims {
            client_id: &signing.client_id,
            aud: &facts.aud,
            jkt,
            lifetime: signing.assertion_lifetime,
        };
        let keys = signing.keys.current();
        let assertion =
            client_assertion(keys.signing(), claims, now, &mut rng).map_err(internal)?;
        let form = std::str::from_utf8(req.body()).map_err(internal)?;
        let mut out = form_urlencoded::Serializer::for_suffix(form.to_owned(), 0);
        out.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
        out.append_pair("client_assertion", &assertion);
        *req.body_mut() = Bytes::from(out.finish());
    }
    if let Some(key) = key {
        let claims = ProofClaims {
            htm: req.method().as_str(),
            htu: &facts.htu,
            access_token: token,
            nonce,
        };
        let proof = dpop_proof(key, claims, now, &mut rng).map_err(internal)?;
        req.headers_mut()
            .insert(DPOP.clone(), header_value(&DPOP, &proof)?);
    }
    if let Some(token) = token {
        let value = header_value(&header::AUTHORIZATION, &format!("DPoP {token}"))?;
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
    Ok(req)
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

fn header_value(name: &HeaderName, value: &str) -> Result<HeaderValue, ProxyError> {
    HeaderValue::from_str(value).map_err(|_| {
        ProxyError::new(
            ProblemCode::ValidationInvalidParameter,
            format!("the value for {name} contains characters not allowed in a header"),
        )
    })
}

/// A signing failure: logged, and answered as an internal error (never the key's details).
fn internal(err: impl std::fmt::Display) -> ProxyError {
    tracing::error!(error = %err, "signing failed");
    ProxyError::new(
        ProblemCode::SystemInternalError,
        "the proxy could not sign the request; see its log",
    )
}
