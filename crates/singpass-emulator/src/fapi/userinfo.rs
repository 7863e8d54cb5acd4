//! `GET /fapi/userinfo` (Myinfo v5): a resource server call with `Authorization: DPoP
//! <token>` and a proof from the token's key carrying `ath`. The token stays usable for its
//! lifetime (tokio clock). Refusals are 401 with `WWW-Authenticate: DPoP error=".."` (400 for
//! a malformed request); the answer is `application/jwt`, a JWE around the signed userinfo.

use bytes::Bytes;
use http::{header, Response};
use http_body_util::Full;
use tokio::time::Instant;

use crate::checks::dpop::{verify_dpop_proof, ProofExpectation};
use crate::checks::jose::unix_now;
use crate::errors::Rejection;
use crate::expiring::Lookup;
use crate::id_token::sealed_userinfo;
use crate::request::{jwt_response, EmulatorRequest, Observed};
use crate::state::EmulatorState;

pub(crate) fn read_userinfo(
    state: &EmulatorState,
    request: EmulatorRequest<'_>,
    observed: &mut Observed,
) -> Result<Response<Full<Bytes>>, Rejection> {
    serve(state, request, observed).map_err(Rejection::at_resource_server)
}

fn serve(
    state: &EmulatorState,
    request: EmulatorRequest<'_>,
    observed: &mut Observed,
) -> Result<Response<Full<Bytes>>, Rejection> {
    let now = unix_now();
    if request.query.is_some() {
        return Err(Rejection::invalid_request(
            "userinfo takes no query parameters",
        ));
    }
    let access_token = dpop_access_token(request)?;
    let access = match state.fapi.tokens.get(access_token, Instant::now()) {
        Lookup::Live(access) => access,
        Lookup::Expired => return Err(Rejection::invalid_token("The access token has expired")),
        Lookup::Unknown => return Err(Rejection::invalid_token("Unknown access token")),
    };
    let proof = verify_dpop_proof(
        request.headers,
        ProofExpectation {
            htm: "GET",
            htu: &state.fapi_url("/userinfo"),
            access_token: Some(access_token),
            nonces: Some(&state.nonces),
        },
        &state.proof_jtis,
        now,
        &mut observed.proof_jti,
    )
    .map_err(|rejection| rejection.or_oauth("invalid_dpop_proof"))?;
    if proof.jkt != access.jkt {
        return Err(Rejection::invalid_dpop_proof(
            "DPoP proof key does not match the key the access token is bound to",
        ));
    }
    let sealed = sealed_userinfo(state, &access.sub, &access.scope, now)?;
    Ok(jwt_response(sealed))
}

/// The token of `Authorization: DPoP <token>` (the scheme compared case-insensitively, as
/// HTTP schemes are). A `Bearer` presentation of a DPoP-bound token is `invalid_token`.
fn dpop_access_token(request: EmulatorRequest<'_>) -> Result<&str, Rejection> {
    let mut values = request.headers.get_all(header::AUTHORIZATION).iter();
    let value = values
        .next()
        .ok_or_else(|| Rejection::invalid_token("Missing Authorization header"))?;
    if values.next().is_some() {
        return Err(Rejection::invalid_request(
            "More than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| Rejection::invalid_token("Unreadable Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("DPoP") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("Bearer") => Err(
            Rejection::invalid_token("The access token is DPoP-bound: use the DPoP scheme"),
        ),
        _ => Err(Rejection::invalid_token("Unsupported Authorization scheme")),
    }
}
